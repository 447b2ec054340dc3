"""Loading flows: the demo flows load, and every kind of mistake is a ConfigError naming file and step."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from kefu.errors import ConfigError
from kefu.flows import demo_flows, load_dir, load_flow
from kefu.flows.spec import Ask, Call, Decide

PROMPT = {"zh": "订单号？", "en": "Order number?"}


def good() -> dict[str, Any]:
    return {
        "name": "tiny",
        "start": "ask_order",
        "steps": {
            "ask_order": {"ask": "order_id", "prompt": PROMPT, "next": "get"},
            "get": {"call": "orders.get", "next": "ask_phone", "on_not_found": "ask_order"},
            "ask_phone": {"ask": "phone_last4", "prompt": PROMPT, "next": "verify"},
            "verify": {
                "call": "orders.verify",
                "args": {"phone_last4": "slots.phone_last4"},
                "next": "check",
            },
            "check": {"decide": [{"when": "order.status in [paid]", "goto": "done"}], "otherwise": "human"},
            "done": {
                "end": "completed",
                "say": {"zh": "好了 {order.order_id}", "en": "Done {order.order_id}"},
            },
            "human": {"handoff": "not_paid"},
        },
    }


def write(tmp_path: Path, raw: Any) -> Path:
    path = tmp_path / "tiny.yaml"
    path.write_text(yaml.safe_dump(raw, allow_unicode=True), encoding="utf-8")
    return path


def test_the_demo_flows_load_with_their_steps() -> None:
    flows = demo_flows()
    assert set(flows) == {"order_status", "return_exchange", "cancel_order", "change_address", "invoice"}
    policy = flows["return_exchange"].step("policy")
    assert isinstance(policy, Decide) and policy.branches[0].when[0].path == "facts.days_since_delivery"
    for spec in flows.values():
        assert isinstance(spec.step(spec.start), Ask) and spec.triggers


def test_a_good_file_loads(tmp_path: Path) -> None:
    spec = load_flow(write(tmp_path, good()))
    verify = spec.step("verify")
    assert isinstance(verify, Call) and verify.args == {"phone_last4": "slots.phone_last4"}


def test_requests_and_triggers_are_lists_of_words(tmp_path: Path) -> None:
    spec = load_flow(write(tmp_path, {**good(), "requests": ["我要查"], "triggers": ["订单"]}))
    assert (spec.requests, spec.triggers) == (("我要查",), ("订单",))
    with pytest.raises(ConfigError, match="`requests` must be a list of words"):
        load_flow(write(tmp_path, {**good(), "requests": "我要查"}))


def broken(step: str, **body: Any) -> dict[str, Any]:
    raw = good()
    raw["steps"][step] = body
    return raw


CASES = [
    ("ask_order", broken("ask_order", ask="order_id", validator="telepathy", prompt=PROMPT, next="get"), "unknown validator"),
    ("ask_order", broken("ask_order", ask="order_id", prompt={"zh": "只有中文"}, next="get"), "needs both texts"),
    ("ask_order", broken("ask_order", ask="order_id", prompt=PROMPT, next="nowhere"), "'nowhere', which is not a step"),
    ("ask_order", broken("ask_order", ask="kind", validator="choice", prompt=PROMPT, next="get"), "needs `choices`"),
    ("ask_order", broken("ask_order", ask="tax", validator="pattern", regex="(", prompt=PROMPT, next="get"), "does not compile"),
    ("get", broken("get", call="orders.teleport", next="ask_phone"), "unknown action"),
    ("verify", broken("verify", call="orders.verify", next="check"), "missing ['phone_last4']"),
    ("check", broken("check", decide=[{"when": "order.status ~ paid", "goto": "done"}], otherwise="human"), "cannot read the condition"),
    ("check", broken("check", decide=[{"when": "secrets.key == 1", "goto": "done"}], otherwise="human"), "must start with one of"),
    ("check", broken("check", decide=[{"when": "order.status in paid", "goto": "done"}], otherwise="human"), "needs a list"),
    ("check", broken("check", decide=[{"when": "order.status == paid", "goto": "done"}]), "`otherwise` must name a step"),
    ("done", broken("done", end="completed", say={"zh": "{secret}", "en": "x"}), "must start with one of"),
    ("done", broken("done", end="finished"), "`end` must be `completed` or `abandoned`"),
    ("done", broken("done", say=PROMPT, ask="x", next="human"), "exactly one of"),
    ("human", broken("human", handoff="x", colour="red"), "unknown key(s) ['colour']"),
]  # fmt: skip


@pytest.mark.parametrize(("step", "raw", "problem"), CASES, ids=[c[2] for c in CASES])
def test_mistakes_name_the_file_and_step(
    tmp_path: Path, step: str, raw: dict[str, Any], problem: str
) -> None:
    with pytest.raises(ConfigError) as caught:
        load_flow(write(tmp_path, raw))
    assert str(tmp_path / "tiny.yaml") in caught.value.message
    assert f"step {step!r}" in caught.value.message
    assert problem in caught.value.message


def test_an_unreachable_step_is_refused(tmp_path: Path) -> None:
    raw = good()
    raw["steps"]["orphan"] = {"handoff": "x"}
    with pytest.raises(ConfigError, match="step 'orphan': no step leads here"):
        load_flow(write(tmp_path, raw))


def test_a_flow_touching_orders_must_verify_the_customer(tmp_path: Path) -> None:
    raw = good()
    raw["steps"]["ask_phone"]["next"] = "check"
    del raw["steps"]["verify"]
    with pytest.raises(ConfigError, match="must verify the customer"):
        load_flow(write(tmp_path, raw))


def test_bad_yaml_and_duplicate_names_are_refused(tmp_path: Path) -> None:
    (tmp_path / "broken.yaml").write_text("name: [unclosed", encoding="utf-8")
    with pytest.raises(ConfigError, match=r"broken\.yaml"):
        load_flow(tmp_path / "broken.yaml")
    (tmp_path / "broken.yaml").unlink()
    write(tmp_path, good())
    (tmp_path / "copy.yaml").write_text(
        (tmp_path / "tiny.yaml").read_text(encoding="utf-8"), encoding="utf-8"
    )
    with pytest.raises(ConfigError, match="defined in both"):
        load_dir(tmp_path)
    with pytest.raises(ConfigError, match="no flow files"):
        load_dir(tmp_path / "empty")
