"""Safety on a whole turn through the real app: what reaches the disk, the log and the model, and the
per-turn sentiment signal."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator

import pytest
from fastapi.testclient import TestClient

from conftest import MINI_KB
from kefu.api.app import create_app
from kefu.config import Settings
from kefu.llm.testing import ScriptedModel

SECRETS = ("11010519491231002X", "13800138000", "6222021234567890128")
MESSAGE = f"我的身份证号是{SECRETS[0]}，手机{SECRETS[1]}，卡号{SECRETS[2]}帮我查下订单"


@pytest.fixture
def settings(make_settings: Callable[..., Settings]) -> Settings:
    return make_settings(kb_dir=MINI_KB)


@pytest.fixture
def client(settings: Settings, model: ScriptedModel) -> Iterator[TestClient]:
    with TestClient(create_app(settings, model=model)) as test_client:
        yield test_client


def post(client: TestClient, conversation: str, text: str) -> dict:
    response = client.post(f"/v1/conversations/{conversation}/messages", json={"content": text})
    assert response.status_code == 200, response.text
    return dict(response.json()["message"])


def test_identity_phone_and_card_never_reach_disk_log_audit_or_model(
    client: TestClient, model: ScriptedModel, settings: Settings, caplog: pytest.LogCaptureFixture
):
    caplog.set_level("DEBUG")
    conversation = client.post(
        "/v1/conversations", json={"channel": "web", "external_user": SECRETS[1]}
    ).json()["id"]
    post(client, conversation, MESSAGE)
    model.enqueue("好的 [1]。")
    post(client, conversation, f"另外，手机{SECRETS[1]}的订单发到新疆、西藏这些偏远地区多久能送到？")
    stored = client.get(f"/v1/conversations/{conversation}/messages").json()["data"]
    assert stored[0]["content"] == "我的身份证号是[身份证号_1]，手机[手机号_1]，卡号[银行卡号_1]帮我查下订单"
    assert "[手机号_1]" in stored[2]["content"]  # the same phone keeps its placeholder across turns
    assert all(secret not in str(r.messages) for r in model.history for secret in SECRETS)
    assert all(secret not in caplog.text for secret in SECRETS)
    runtime = client.app.state.runtime  # type: ignore[attr-defined]
    audited = json.dumps([runtime.audit.decrypt(r) for r in runtime.audit.records()], ensure_ascii=False)
    assert "[身份证号_1]" in audited and all(secret not in audited for secret in SECRETS)
    runtime.stores.engine.dispose()  # flush the WAL into the file before reading its bytes
    raw = b"".join(p.read_bytes() for p in settings.data_dir.glob("kefu.db*"))
    assert "[银行卡号_1]".encode() in raw  # we are reading the right bytes
    assert all(secret.encode() not in raw for secret in SECRETS)


def test_sentiment_is_scored_per_turn_and_sustained_anger_raises_the_escalation_signal(client: TestClient):
    conversation = client.post("/v1/conversations", json={}).json()["id"]

    def meta(text: str) -> dict:
        with client.stream(
            "POST", f"/v1/conversations/{conversation}/messages", json={"content": text, "stream": True}
        ) as response:
            lines = list(response.iter_lines())  # read to the end: the turn completes and is stored
        first_data = next(line for line in lines if line.startswith("data:"))
        assert lines[0] == "event: meta"
        return dict(json.loads(first_data[5:]))

    calm = meta("你们发什么快递？多久能到？")
    assert calm["escalate"] is False and calm["sentiment"] > -0.35
    first = meta("等了一个星期还没到，太差劲了，气死我了")
    second = meta("什么破服务，再也不买了，垃圾")
    assert first["sentiment"] < -0.35 and second["sentiment"] < -0.35
    assert second["escalate"] is True
    stored = client.get(f"/v1/conversations/{conversation}/messages").json()["data"]
    assert [m["role"] for m in stored][:2] == ["user", "assistant"]
