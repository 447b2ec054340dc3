"""Human handoff through the real app: each trigger, the queue's order, places and waits, the bot's
silence while an agent has the conversation, tickets outside working hours, and the agent API's
authentication, ownership rules and audit trail."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from fastapi.testclient import TestClient

from conftest import MINI_KB, new_conversation
from kefu.api.agent_auth import issue_token, token_key
from kefu.api.app import create_app
from kefu.audit import verify
from kefu.config import Settings
from kefu.errors import ConfigError
from kefu.llm.testing import ScriptedModel
from kefu.runtime import Runtime

SHANGHAI = ZoneInfo("Asia/Shanghai")
UNKNOWN = ("你们卖二手挖掘机吗", "你们老板叫什么名字", "你们公司有多少员工")  # nothing in the mini pack


@pytest.fixture
def make_client(
    make_settings: Callable[..., Settings], model: ScriptedModel
) -> Iterator[Callable[..., TestClient]]:
    clients: list[TestClient] = []

    def make(**overrides: Any) -> TestClient:
        client = TestClient(create_app(make_settings(kb_dir=MINI_KB, **overrides), model=model))
        clients.append(client.__enter__())
        return client

    yield make
    for client in clients:
        client.__exit__(None, None, None)


@pytest.fixture
def shop(make_client: Callable[..., TestClient]) -> TestClient:
    return make_client()


def runtime_of(client: TestClient) -> Runtime:
    return client.app.state.runtime  # type: ignore[attr-defined,no-any-return]


def say(client: TestClient, conversation_id: str, text: str) -> dict[str, Any]:
    """The whole JSON reply: {"message", "answer_kind", "handoff"}."""
    response = client.post(f"/v1/conversations/{conversation_id}/messages", json={"content": text})
    assert response.status_code == 200, response.text
    return dict(response.json())


def sign_in(client: TestClient, username: str = "ann", name: str = "Ann") -> dict[str, str]:
    runtime_of(client).handoffs.store.ensure_agent(username, name, "password-1")
    response = client.post("/v1/agent/login", json={"username": username, "password": "password-1"})
    assert response.status_code == 200, response.text
    assert response.json()["agent"]["display_name"] == name
    return {"Authorization": f"Bearer {response.json()['token']}"}


def queue_of(client: TestClient, headers: dict[str, str]) -> dict[str, list[dict[str, Any]]]:
    response = client.get("/v1/agent/queue", headers=headers)
    assert response.status_code == 200, response.text
    return dict(response.json())


@pytest.mark.parametrize(
    "text", ["转人工", "我要人工客服", "找客服", "可以帮我转真人吗", "agent", "Can I talk to a human?"]
)
def test_asking_for_a_human_queues_the_conversation_with_place_and_wait(
    shop: TestClient, model: ScriptedModel, text: str
) -> None:
    conversation = new_conversation(shop)
    reply = say(shop, conversation, text)
    handoff = reply["handoff"]
    assert reply["answer_kind"] == reply["message"]["answer_kind"] == "handoff"
    assert (handoff["status"], handoff["position"], handoff["reason"]) == ("queued", 1, "asked")
    assert handoff["expected_wait_s"] == 180  # the default handling time, nobody online
    assert ("下一位" in reply["message"]["content"]) or ("next in line" in reply["message"]["content"])
    assert model.history == []  # no model call
    assert shop.get(f"/v1/conversations/{conversation}/handoff").json() == handoff
    [queued] = queue_of(shop, sign_in(shop))["handoffs"]
    assert (queued["conversation_id"], queued["priority"], queued["last_message"]) == (conversation, 4, text)
    assert text in queued["summary"]


@pytest.mark.parametrize(
    "text", ["人工智能音箱有货吗", "这件衣服是人工缝制的吗", "我不要转人工，发票怎么开？"]
)
def test_words_that_only_contain_人工_do_not_hand_over(shop: TestClient, text: str) -> None:
    conversation = new_conversation(shop)
    assert say(shop, conversation, text)["answer_kind"] != "handoff"
    response = shop.get(f"/v1/conversations/{conversation}/handoff")
    assert response.status_code == 404 and response.json()["error"]["code"] == "not_found"


def test_sustained_or_strong_anger_hands_over_with_priority_2(shop: TestClient) -> None:
    conversation = new_conversation(shop)
    first = say(shop, conversation, "等了好久还没收到，有点不开心")  # negative, not yet sustained
    assert first["handoff"] is None
    second = say(shop, conversation, "等了好久还没收到，有点不开心")
    assert second["answer_kind"] == "handoff" and second["handoff"]["reason"] == "negative_sentiment"
    assert second["message"]["content"].startswith("非常抱歉")
    strong = say(shop, new_conversation(shop), "什么破服务，再也不买了，垃圾")  # one very angry message
    assert strong["handoff"]["reason"] == "negative_sentiment"
    assert [h["priority"] for h in queue_of(shop, sign_in(shop))["handoffs"]] == [2, 2]


def test_two_answers_without_a_source_in_a_row_hand_over_with_priority_5(shop: TestClient) -> None:
    conversation = new_conversation(shop)
    first = say(shop, conversation, UNKNOWN[0])
    assert first["answer_kind"] == "no_answer" and first["handoff"] is None
    assert say(shop, conversation, "你好")["answer_kind"] == "smalltalk"  # the streak starts over
    assert say(shop, conversation, UNKNOWN[1])["answer_kind"] == "no_answer"
    second = say(shop, conversation, UNKNOWN[2])
    assert second["answer_kind"] == "handoff" and second["handoff"]["reason"] == "low_confidence"
    assert queue_of(shop, sign_in(shop))["handoffs"][0]["priority"] == 5


def test_the_low_confidence_trigger_can_be_turned_off(make_client: Callable[..., TestClient]) -> None:
    shop = make_client(handoff_low_confidence_turns=0)
    conversation = new_conversation(shop)
    assert [say(shop, conversation, q)["answer_kind"] for q in UNKNOWN] == ["no_answer"] * 3


def test_a_legal_question_is_refused_and_handed_to_a_human_but_a_medical_one_only_refused(
    shop: TestClient, model: ScriptedModel
) -> None:
    legal = say(shop, new_conversation(shop), "我想咨询离婚财产怎么分")
    assert legal["answer_kind"] == "handoff" and legal["handoff"]["reason"] == "sensitive"
    refusal, notice = legal["message"]["content"].split("\n\n")
    assert "法律意见" in refusal and "转接人工客服" in notice
    medical = say(shop, new_conversation(shop), "我头疼该吃什么药")
    assert medical["answer_kind"] == "refused" and medical["handoff"] is None
    assert queue_of(shop, sign_in(shop))["handoffs"][0]["priority"] == 3
    assert model.history == []


def test_the_sensitive_topics_are_configurable(make_client: Callable[..., TestClient]) -> None:
    shop = make_client(handoff_scope_topics=["medical"])
    medical = say(shop, new_conversation(shop), "我头疼该吃什么药")
    assert medical["answer_kind"] == "handoff" and medical["handoff"]["reason"] == "sensitive"
    assert say(shop, new_conversation(shop), "我想咨询离婚财产怎么分")["answer_kind"] == "refused"


def test_a_flow_that_ends_in_a_handoff_by_policy_queues_with_priority_3(
    make_client: Callable[..., TestClient],
) -> None:
    shop = make_client(demo_erp=True)
    conversation = new_conversation(shop)
    replies = [say(shop, conversation, t) for t in ("耳机收到8天了想退", "XP1002", "9002", "不想要了")]
    assert [r["answer_kind"] for r in replies[:3]] == ["flow"] * 3
    last = replies[-1]
    assert last["answer_kind"] == "handoff" and last["handoff"]["reason"] == "flow_failed"
    flow_text, notice = last["message"]["content"].split("\n\n")[-2:]
    assert "RT" not in flow_text and "转接人工客服" in notice
    [queued] = queue_of(shop, sign_in(shop))["handoffs"]
    assert queued["priority"] == 3 and "超过 7 天无理由退货期" in queued["summary"]
    assert "policy_no_reason_after_7_days" not in queued["summary"]  # words, never internal names


def test_a_vip_goes_first_and_one_question_without_a_source_is_enough(
    make_client: Callable[..., TestClient],
) -> None:
    shop = make_client(vip_users=["vip-42"])
    regular = new_conversation(shop)
    assert say(shop, regular, "转人工")["handoff"]["position"] == 1
    vip = shop.post("/v1/conversations", json={"channel": "web", "external_user": "vip-42"}).json()["id"]
    reply = say(shop, vip, UNKNOWN[0])
    assert reply["answer_kind"] == "handoff" and reply["handoff"]["position"] == 1
    handoffs = queue_of(shop, sign_in(shop))["handoffs"]
    assert [(h["conversation_id"], h["priority"], h["vip"], h["position"]) for h in handoffs] == [
        (vip, 1, True, 1),
        (regular, 4, False, 2),
    ]
    assert shop.get(f"/v1/conversations/{regular}/handoff").json()["position"] == 2


def test_the_bot_is_silent_while_a_handoff_is_queued_or_active_and_answers_after_release(
    shop: TestClient, model: ScriptedModel
) -> None:
    conversation = new_conversation(shop)
    say(shop, conversation, "转人工")
    waiting = say(shop, conversation, "支持花呗付款吗？")
    assert waiting["message"] is None and waiting["answer_kind"] == "agent_pending"
    assert waiting["handoff"]["status"] == "queued"
    with shop.stream(
        "POST", f"/v1/conversations/{conversation}/messages", json={"content": "还在吗", "stream": True}
    ) as response:
        events = [(e, json.loads(d)) for e, d in _sse_pairs(response.iter_lines())]
    assert [name for name, _ in events] == ["meta", "done"]
    assert events[0][1]["answer_kind"] == "agent_pending" and events[1][1] == {"message": None}

    headers = sign_in(shop)
    handoff_id = waiting["handoff"]["id"]
    assert shop.post(f"/v1/agent/handoffs/{handoff_id}/take", headers=headers).json()["status"] == "active"
    assert say(shop, conversation, "你好？")["answer_kind"] == "agent_pending"
    stored = shop.get(f"/v1/conversations/{conversation}/messages").json()["data"]
    assert [m["role"] for m in stored] == ["user", "assistant", "user", "user", "user"]
    runtime = runtime_of(shop)  # what the customer said while waiting is on the audit chain too
    silent = [runtime.audit.decrypt(r) for r in runtime.audit.records(conversation)]
    said = [p["message"] for p in silent if "message" in p and "handoff" in p]
    assert said == ["支持花呗付款吗？", "还在吗", "你好？"]
    assert model.history == []

    released = shop.post(f"/v1/agent/handoffs/{handoff_id}/release", headers=headers)
    assert released.json()["status"] == "returned"
    assert say(shop, conversation, "支持花呗付款吗？")["answer_kind"] == "faq"
    assert shop.get(f"/v1/conversations/{conversation}/handoff").status_code == 404


def test_the_openai_endpoint_returns_empty_content_while_an_agent_has_the_conversation(
    shop: TestClient,
) -> None:
    body = {"model": "kefu", "user": "u-7", "messages": [{"role": "user", "content": "转人工"}]}
    first = shop.post("/v1/chat/completions", json=body).json()
    assert (
        first["kefu"]["answer_kind"] == "handoff"
        and "转接人工客服" in first["choices"][0]["message"]["content"]
    )
    body["messages"] = [{"role": "user", "content": "在吗"}]
    second = shop.post("/v1/chat/completions", json=body).json()
    assert second["choices"][0]["message"]["content"] == ""
    assert (
        second["kefu"]["answer_kind"] == "agent_pending" and second["kefu"]["handoff"]["status"] == "queued"
    )


def _sse_pairs(lines: Iterator[str]) -> Iterator[tuple[str, str]]:
    name = "message"
    for line in lines:
        if line.startswith("event:"):
            name = line.split(":", 1)[1].strip()
        elif line.startswith("data:"):
            yield name, line.split(":", 1)[1]


@pytest.mark.parametrize(
    ("local", "status"),
    [
        (datetime(2026, 3, 10, 23, 30), "ticket"),  # a Tuesday, after hours
        (datetime(2026, 3, 10, 10, 0), "queued"),
        (datetime(2026, 3, 14, 10, 0), "ticket"),  # a Saturday
    ],
)
def test_outside_working_hours_a_handoff_becomes_a_ticket_and_the_bot_keeps_answering(
    make_client: Callable[..., TestClient], local: datetime, status: str
) -> None:
    shop = make_client(handoff_hours="09:00-21:00", handoff_days="Mon-Fri")
    runtime_of(shop).handoffs.clock = lambda: local.replace(tzinfo=SHANGHAI).astimezone(UTC)
    conversation = new_conversation(shop)
    reply = say(shop, conversation, "转人工")
    assert reply["handoff"]["status"] == status
    headers = sign_in(shop)
    queue = queue_of(shop, headers)
    if status == "queued":
        assert reply["answer_kind"] == "handoff" and len(queue["handoffs"]) == 1 and queue["tickets"] == []
        return
    assert reply["answer_kind"] == "ticket" and "Mon-Fri 09:00-21:00" in reply["message"]["content"]
    assert say(shop, conversation, "支持花呗付款吗？")["answer_kind"] == "faq"  # not silent for a ticket
    assert say(shop, conversation, "转人工")["handoff"]["id"] == reply["handoff"]["id"]  # the same ticket
    assert queue["handoffs"] == [] and [t["conversation_id"] for t in queue["tickets"]] == [conversation]
    taken = shop.post(f"/v1/agent/handoffs/{reply['handoff']['id']}/take", headers=headers).json()
    assert taken["status"] == "active"
    assert say(shop, conversation, "你好")["answer_kind"] == "agent_pending"


def test_working_hours_are_validated_at_start_up(make_settings: Callable[..., Settings]) -> None:
    with pytest.raises(ConfigError, match="KEFU_HANDOFF_HOURS"):
        make_settings(handoff_hours="9-21")
    with pytest.raises(ConfigError, match="KEFU_HANDOFF_DAYS"):
        make_settings(handoff_days="Monday-Funday")
    with pytest.raises(ConfigError, match="KEFU_HANDOFF_TIMEZONE"):
        make_settings(handoff_timezone="Mars/Olympus")
    overnight = make_settings(handoff_hours="21:00-06:00", handoff_days="Fri").working_hours
    friday_late, saturday_early = datetime(2026, 3, 13, 23, 0), datetime(2026, 3, 14, 2, 0)
    assert overnight.is_open(friday_late.replace(tzinfo=SHANGHAI))
    assert overnight.is_open(saturday_early.replace(tzinfo=SHANGHAI))
    assert not overnight.is_open(datetime(2026, 3, 14, 23, 0, tzinfo=SHANGHAI))
    assert make_settings().working_hours.is_open(datetime(2026, 3, 14, 3, 0, tzinfo=UTC))  # empty: always


class Clock:
    def __init__(self) -> None:
        self.now = datetime(2026, 3, 10, 2, 0, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now


def test_expected_wait_is_place_times_mean_handling_time_over_agents_online(shop: TestClient) -> None:
    clock = Clock()
    runtime_of(shop).handoffs.store.clock = clock
    waits = []
    for _ in range(3):
        waits.append(say(shop, new_conversation(shop), "转人工")["handoff"])
        clock.now += timedelta(seconds=1)
    assert [(w["position"], w["expected_wait_s"]) for w in waits] == [(1, 180), (2, 360), (3, 540)]

    ann, bob = sign_in(shop, "ann", "Ann"), sign_in(shop, "bob", "Bob")  # two agents online
    assert _view(shop, waits[2])["expected_wait_s"] == 270  # 3 x 180 s / 2 agents
    first = shop.post(f"/v1/agent/handoffs/{waits[0]['id']}/take", headers=ann).json()
    clock.now += timedelta(seconds=100)
    shop.post(f"/v1/agent/handoffs/{first['id']}/close", headers=ann)
    assert shop.get(f"/v1/conversations/{first['conversation_id']}/handoff").status_code == 404
    # mean handling time now 100 s; places moved up: 1 and 2; two agents online
    assert [_view(shop, w)["position"] for w in waits[1:]] == [1, 2]
    assert [_view(shop, w)["expected_wait_s"] for w in waits[1:]] == [50, 100]
    clock.now += timedelta(minutes=6)  # both agents idle for more than 5 minutes: nobody online
    assert _view(shop, waits[2])["expected_wait_s"] == 200
    assert queue_of(shop, bob)["handoffs"][1]["position"] == 2


def _cid(shop: TestClient, view: dict[str, Any]) -> str:
    return str(runtime_of(shop).handoffs.store.get(view["id"]).conversation_id)


def _view(shop: TestClient, view: dict[str, Any]) -> dict[str, Any]:
    response = shop.get(f"/v1/conversations/{_cid(shop, view)}/handoff")
    assert response.status_code == 200, response.text
    return dict(response.json())


def test_agent_endpoints_need_a_valid_token_of_an_active_agent(shop: TestClient) -> None:
    def error(response: Any, status: int) -> str:
        assert response.status_code == status, response.text
        return str(response.json()["error"]["code"])

    assert error(shop.get("/v1/agent/queue"), 401) == "unauthorized"
    assert error(shop.get("/v1/stats/operations"), 401) == "unauthorized"
    assert (
        error(shop.get("/v1/agent/queue", headers={"Authorization": "Bearer nonsense"}), 401)
        == "unauthorized"
    )
    headers = sign_in(shop)
    bad = shop.post("/v1/agent/login", json={"username": "ann", "password": "password-2"})
    assert (
        error(bad, 401) == "unauthorized" and "wrong username or password" in bad.json()["error"]["message"]
    )
    runtime = runtime_of(shop)
    ann = runtime.handoffs.store.find_agent("ann")
    assert ann is not None
    key = token_key(runtime.settings)
    expired = issue_token(key, ann.id, 60, now=datetime.now(UTC).timestamp() - 3600)
    response = shop.get("/v1/agent/queue", headers={"Authorization": f"Bearer {expired}"})
    assert error(response, 401) == "unauthorized" and "expired" in response.json()["error"]["message"]
    forged = issue_token(b"another key" * 3, ann.id, 600)
    assert (
        error(shop.get("/v1/agent/queue", headers={"Authorization": f"Bearer {forged}"}), 401)
        == "unauthorized"
    )
    assert shop.get("/v1/agent/queue", headers=headers).status_code == 200

    assert error(shop.post("/v1/agent/handoffs/nope/take", headers=headers), 404) == "not_found"
    conversation = new_conversation(shop)
    handoff = say(shop, conversation, "转人工")["handoff"]
    reply = shop.post(
        f"/v1/agent/conversations/{conversation}/messages", json={"text": "hi"}, headers=headers
    )
    assert error(reply, 409) == "conflict"  # not taken yet
    shop.post(f"/v1/agent/handoffs/{handoff['id']}/take", headers=headers)
    bob = sign_in(shop, "bob", "Bob")
    taken_twice = shop.post(f"/v1/agent/handoffs/{handoff['id']}/take", headers=bob)
    assert error(taken_twice, 409) == "conflict" and "Ann" in taken_twice.json()["error"]["message"]
    reply = shop.post(f"/v1/agent/conversations/{conversation}/messages", json={"text": "hi"}, headers=bob)
    assert error(reply, 409) == "conflict"
    assert error(shop.post(f"/v1/agent/handoffs/{handoff['id']}/close", headers=bob), 409) == "conflict"

    runtime.handoffs.store.set_active("bob", False)
    assert error(shop.get("/v1/agent/queue", headers=bob), 403) == "forbidden"
    login = shop.post("/v1/agent/login", json={"username": "bob", "password": "password-1"})
    assert error(login, 403) == "forbidden"


def test_an_agent_reply_is_stored_audited_and_the_chain_verifies(shop: TestClient) -> None:
    conversation = new_conversation(shop)
    handoff = say(shop, conversation, "我的手机号是13812345678，转人工")["handoff"]
    headers = sign_in(shop)
    shop.post(f"/v1/agent/handoffs/{handoff['id']}/take", headers=headers)
    text = "您好，我是安娜。已为您登记，我们会打 13812345678 联系您。"
    response = shop.post(
        f"/v1/agent/conversations/{conversation}/messages", json={"text": text}, headers=headers
    )
    assert response.status_code == 201, response.text
    sent = response.json()["message"]
    assert (sent["role"], sent["content"], sent["agent"]) == ("agent", text, "Ann")
    history = shop.get(f"/v1/conversations/{conversation}/messages").json()["data"]
    assert (history[-1]["id"], history[-1]["role"], history[-1]["content"]) == (sent["id"], "agent", text)
    assert "13812345678" not in history[0]["content"]  # the customer's own text is redacted as always

    view = shop.get(f"/v1/agent/conversations/{conversation}", headers=headers).json()
    assert [m["role"] for m in view["messages"]] == ["user", "assistant", "agent"]
    assert view["messages"][-1]["agent"] == "Ann" and view["handoff"]["agent"] == "Ann"
    history = shop.get(f"/v1/conversations/{conversation}/messages").json()["data"]  # the customer's view
    assert [(m["role"], m["agent"]) for m in history][-1] == ("agent", "Ann")
    assert {m["agent"] for m in history if m["role"] != "agent"} == {None}
    assert "[手机号_1]" in view["summary"] and "13812345678" not in view["summary"]
    shop.post(f"/v1/agent/handoffs/{handoff['id']}/close", headers=headers)

    runtime = runtime_of(shop)
    records = list(runtime.audit.records(conversation))
    trail = [(r.fields.kind, r.fields.actor, runtime.audit.decrypt(r)) for r in records]
    assert [(kind, actor) for kind, actor, _ in trail] == [
        ("handoff", "bot"),
        ("bot_reply", "bot"),
        ("handoff", "agent:ann"),
        ("agent_reply", "agent:ann"),
        ("handoff", "agent:ann"),
    ]
    assert [payload.get("event") for kind, _, payload in trail if kind == "handoff"] == [
        "queued",
        "taken",
        "closed",
    ]
    agent_reply = trail[3][2]
    assert agent_reply["message_id"] == sent["id"] and "[手机号_1]" in agent_reply["reply"]
    assert "13812345678" not in json.dumps([p for _, _, p in trail], ensure_ascii=False)
    assert trail[1][2]["handoff"]["id"] == handoff["id"]
    report = verify(runtime.stores.engine, keyring=runtime.stores.keyring)
    assert report.ok, report


def test_kefu_agent_adds_lists_and_deactivates_accounts(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Any
) -> None:
    from typer.testing import CliRunner

    from kefu.cli import app as cli
    from kefu.config import load_settings
    from kefu.storage.engine import make_engine
    from kefu.storage.handoff import SqlHandoffStore

    runner = CliRunner()
    monkeypatch.setenv("KEFU_DATA_DIR", str(tmp_path))
    added = runner.invoke(cli, ["agent", "add", "ann", "--display-name", "安娜", "--password", "password-1"])
    assert added.exit_code == 0 and "安娜" in added.output, added.output
    prompted = runner.invoke(cli, ["agent", "add", "bob"], input="password-2\npassword-2\n")
    assert prompted.exit_code == 0, prompted.output
    again = runner.invoke(cli, ["agent", "add", "ann", "--password", "password-3"])
    assert again.exit_code == 2 and "already exists" in again.output
    assert runner.invoke(cli, ["agent", "deactivate", "ann"]).exit_code == 0
    listed = runner.invoke(cli, ["agent", "list"]).stdout.splitlines()  # stderr names the database
    assert [line.split("\t")[:3] for line in listed] == [
        ["ann", "安娜", "deactivated"],
        ["bob", "bob", "active"],
    ]
    engine = make_engine(load_settings().effective_database_url)
    try:
        assert SqlHandoffStore(engine).authenticate("bob", "password-2").username == "bob"
    finally:
        engine.dispose()
