"""Counts for operations: what one turn changes, the summary over real conversations (through the API),
its HTTP and command-line forms, and the migration that back-fills conversations from before it."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from alembic import command
from fastapi.testclient import TestClient
from sqlalchemy import text
from typer.testing import CliRunner

from conftest import MINI_KB, new_conversation
from kefu.api.app import create_app
from kefu.cli import app as cli
from kefu.config import Settings
from kefu.llm.testing import ScriptedModel
from kefu.storage.engine import make_engine
from kefu.storage.migrate import alembic_config, migrate
from kefu.storage.stats import SqlStatsStore, format_summary, operations_summary, turn_changes

runner = CliRunner()


@pytest.mark.parametrize(
    ("kind", "outcome", "started", "add", "values"),
    [
        (
            "faq",
            None,
            False,
            {"user_messages": 1, "bot_replies": 1},
            {"completed": True, "resolved_by": "bot"},
        ),
        (
            "grounded",
            None,
            False,
            {"user_messages": 1, "bot_replies": 1},
            {"completed": True, "resolved_by": "bot"},
        ),
        (
            "no_answer",
            None,
            False,
            {"user_messages": 1, "bot_replies": 1},
            {"completed": False, "resolved_by": None},
        ),
        ("smalltalk", None, False, {"user_messages": 1, "bot_replies": 1}, {}),
        (
            "flow",
            "ongoing",
            True,
            {"user_messages": 1, "bot_replies": 1, "flows_started": 1},
            {"completed": False, "resolved_by": None},
        ),
        (
            "flow",
            "completed",
            False,
            {"user_messages": 1, "bot_replies": 1, "flows_completed": 1},
            {"completed": True, "resolved_by": "bot"},
        ),
        (
            "handoff",
            "handoff",
            False,
            {"user_messages": 1, "bot_replies": 1, "flows_failed": 1},
            {"completed": False, "resolved_by": None},
        ),
        (
            "agent_pending",
            None,
            False,
            {"user_messages": 1, "bot_replies": 0},
            {"completed": False, "resolved_by": None},
        ),
    ],
)
def test_what_one_turn_changes(
    kind: str, outcome: str | None, started: bool, add: dict[str, int], values: dict[str, Any]
) -> None:
    assert turn_changes(kind, flow_outcome=outcome, flow_started=started) == (add, values)


def say(client: TestClient, conversation: str, *texts: str) -> list[str]:
    kinds = []
    for content in texts:
        response = client.post(f"/v1/conversations/{conversation}/messages", json={"content": content})
        assert response.status_code == 200, response.text
        kinds.append(response.json()["answer_kind"])
    return kinds


def test_the_summary_over_real_conversations(make_settings: Callable[..., Settings]) -> None:
    settings = make_settings(kb_dir=MINI_KB, demo_erp=True)
    with TestClient(create_app(settings, model=ScriptedModel())) as client:
        runtime = client.app.state.runtime  # type: ignore[attr-defined]
        faq, human, unknown, thanks, order, refund = (new_conversation(client) for _ in range(6))
        assert say(client, faq, "支持花呗付款吗？") == ["faq"]
        assert say(client, human, "转人工", "在吗") == ["handoff", "agent_pending"]
        assert say(client, unknown, "你们卖二手挖掘机吗") == ["no_answer"]
        assert say(client, thanks, "支持花呗付款吗？", "谢谢") == ["faq", "smalltalk"]
        assert say(client, order, "我的订单到哪了", "XP1013", "8001") == ["flow"] * 3
        assert say(client, refund, "耳机收到8天了想退", "XP1002", "9002", "不想要了")[-1] == "handoff"
        new_conversation(client)  # never used: not counted
        runtime.handoffs.store.ensure_agent("ann", "Ann", "password-1")
        token = client.post("/v1/agent/login", json={"username": "ann", "password": "password-1"}).json()[
            "token"
        ]
        headers = {"Authorization": f"Bearer {token}"}
        [taken] = [
            h
            for h in client.get("/v1/agent/queue", headers=headers).json()["handoffs"]
            if h["conversation_id"] == human
        ]
        client.post(f"/v1/agent/handoffs/{taken['id']}/take", headers=headers)
        client.post(f"/v1/agent/conversations/{human}/messages", json={"text": "您好"}, headers=headers)
        client.post(f"/v1/agent/handoffs/{taken['id']}/close", headers=headers)

        summary = operations_summary(runtime.stores.engine)
        assert summary == client.get("/v1/stats/operations", headers=headers).json()
        stats = SqlStatsStore(runtime.stores.engine)
        human_stats = stats.get(human)
        assert (human_stats.user_messages, human_stats.bot_replies, human_stats.agent_replies) == (2, 1, 1)
        assert (human_stats.completed, human_stats.resolved_by, human_stats.handoffs) == (True, "agent", 1)
        future = (datetime.now(UTC) + timedelta(days=1)).isoformat()
        later = client.get("/v1/stats/operations", params={"since": future}, headers=headers).json()
        assert later["conversations"] == 0 and later["handoff_rate"] is None
        naive = client.get("/v1/stats/operations", params={"since": "2026-01-01T00:00:00"}, headers=headers)
        assert naive.status_code == 400 and "time zone" in naive.json()["error"]["message"]

    expected = {
        "conversations": 6,
        "conversations_with_handoff": 2,  # human, refund
        "handoff_rate": round(2 / 6, 4),
        "flows_started": 2,
        "flows_completed": 1,  # order status
        "flows_failed": 1,  # the 8-day return without a reason: handed over by policy
        "flow_completion_rate": 0.5,
        "completed_conversations": 4,  # faq, thanks (small talk keeps it), order, human (closed by the agent)
        "resolved_by_bot": 3,
        "resolved_by_agent": 1,
        "session_completion_rate": round(4 / 6, 4),
        "agent_replies": 1,
    }
    assert {key: summary[key] for key in expected} == expected
    assert "33.3%" in format_summary(summary) and "66.7%" in format_summary(summary)


def test_kefu_stats_prints_the_summary(monkeypatch: pytest.MonkeyPatch, tmp_path: Any) -> None:
    monkeypatch.setenv("KEFU_DATA_DIR", str(tmp_path))
    table = runner.invoke(cli, ["stats"])
    assert table.exit_code == 0, table.output
    assert "handoff rate             —" in table.output
    as_json = runner.invoke(cli, ["stats", "--json", "--since", "2026-03-01"])
    assert as_json.exit_code == 0, as_json.output
    summary = json.loads(as_json.stdout)
    assert summary["conversations"] == 0 and summary["since"] == "2026-03-01T00:00:00+08:00"
    bad = runner.invoke(cli, ["stats", "--since", "yesterday"])
    assert bad.exit_code == 2 and "--since" in bad.output


def test_migration_0003_back_fills_the_counts_of_earlier_conversations(database_url: str) -> None:
    engine = make_engine(database_url)
    try:
        with engine.connect() as connection:
            command.upgrade(alembic_config(connection), "0002")
            connection.commit()
        now = datetime.now(UTC).replace(tzinfo=None) if engine.dialect.name == "sqlite" else datetime.now(UTC)
        with engine.begin() as connection:
            for conversation, kinds in (("c-answered", ["faq"]), ("c-unanswered", ["grounded", "no_answer"])):
                connection.execute(
                    text(
                        "INSERT INTO conversations (id, channel, status, created_at, updated_at) "
                        "VALUES (:id, 'web', 'open', :now, :now)"
                    ),
                    {"id": conversation, "now": now},
                )
                for seq, kind in enumerate(kinds):
                    for offset, role in enumerate(("user", "assistant")):
                        connection.execute(
                            text(
                                "INSERT INTO messages (id, conversation_id, seq, role, content, status, "
                                "answer_kind, citations, prompt_tokens, completion_tokens, created_at) VALUES "
                                "(:id, :c, :seq, :role, 'x', 'ok', :kind, '[]', 0, 0, :now)"
                            ),
                            {
                                "id": f"{conversation}-{seq}-{role}",
                                "c": conversation,
                                "seq": 2 * seq + offset + 1,
                                "role": role,
                                "kind": kind if role == "assistant" else None,
                                "now": now,
                            },
                        )
        migrate(engine)
        stats = SqlStatsStore(engine)
        answered, unanswered = stats.get("c-answered"), stats.get("c-unanswered")
        assert (answered.user_messages, answered.bot_replies, answered.completed) == (1, 1, True)
        assert (unanswered.user_messages, unanswered.bot_replies, unanswered.completed) == (2, 2, False)
        assert operations_summary(engine)["session_completion_rate"] == 0.5
    finally:
        engine.dispose()
