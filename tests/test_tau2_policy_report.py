"""``kefu report tau2-policy`` on a small synthetic tau2 retail store: expected actions go through our
flows into a real demo-ERP store, probes test the other direction, and disagreements are named."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from kefu.cli import app
from kefu.errors import InvalidInput
from kefu.evals.tau2_policy import Check, TaskResult, Tau2PolicyReport, run_tau2_policy_report, tau2_allows

NOW = datetime(2026, 11, 24, 4, 0, tzinfo=UTC)


def _address(zip_code: str) -> dict[str, str]:
    return {
        "address1": "1 Main St",
        "address2": "",
        "city": "Austin",
        "state": "TX",
        "zip": zip_code,
        "country": "USA",
    }


def _order(oid: str, user: str, status: str, zip_code: str) -> dict[str, Any]:
    item = {"name": "Lamp", "product_id": "p1", "item_id": "i1", "price": 20.5, "options": {"color": "red"}}
    fulfilled = (
        [{"tracking_id": ["T" + oid[2:]], "item_ids": ["i1"]}] if status in ("processed", "delivered") else []
    )
    return {"order_id": oid, "user_id": user, "address": _address(zip_code), "items": [item], "status": status,
            "fulfillments": fulfilled, "payment_history": []}  # fmt: skip


def _act(name: str, **arguments: Any) -> dict[str, Any]:
    return {"action_id": name, "name": name, "arguments": arguments, "info": None}


@pytest.fixture(scope="module")
def eval_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    tmp_path = tmp_path_factory.mktemp("tau2")
    orders = [
        _order("#W0000001", "ann", "pending", "10001"),
        _order("#W0000002", "ann", "delivered", "10001"),
        _order("#W0000003", "ann", "processed", "10001"),
        _order("#W0000004", "ann", "cancelled", "10001"),
        _order("#W0000005", "ann", "delivered", "94105"),  # shipped elsewhere: Ann still proves it's her
        _order("#W0000006", "bob", "pending", "20002"),
        _order("#W0000007", "ann", "pending (item modified)", "10001"),  # changed before: locked
    ]
    ann_pays = {
        "gift_card_1": {"source": "gift_card", "id": "gift_card_1", "balance": 1.0},
        "credit_card_1": {
            "source": "credit_card",
            "id": "credit_card_1",
            "brand": "visa",
            "last_four": "4242",
        },
    }
    users = {
        "ann": {"user_id": "ann", "name": {"first_name": "Ann", "last_name": "Lee"}, "address": _address("10001"),
                "email": "ann@example.com", "orders": [o["order_id"] for o in orders if o["user_id"] == "ann"],
                "payment_methods": ann_pays},
        "bob": {"user_id": "bob", "name": {"first_name": "Bob", "last_name": "Ray"}, "address": _address("20002"),
                "email": "bob@example.com", "orders": ["#W0000006"],
                "payment_methods": {"paypal_1": {"source": "paypal", "id": "paypal_1"}}},
    }  # fmt: skip
    product = {"product_id": "p1", "name": "Lamp", "variants": {
        "i1": {"item_id": "i1", "options": {"color": "red"}, "available": True, "price": 20.5},
        "i2": {"item_id": "i2", "options": {"color": "blue"}, "available": True, "price": 22.0}}}  # fmt: skip
    db = {"users": users, "products": {"p1": product}, "orders": {o["order_id"]: o for o in orders}}
    tasks = [
        {"id": "t1", "evaluation_criteria": {"actions": [
            _act("find_user_id_by_name_zip", first_name="Ann", last_name="Lee", zip="10001"),
            _act("cancel_pending_order", order_id="#W0000001", reason="no longer needed"),
            _act("return_delivered_order_items", order_id="#W0000002", item_ids=["i1"], payment_method_id="pm"),
            _act("exchange_delivered_order_items", order_id="#W0000005", item_ids=["i1"], new_item_ids=["i2"],
                 payment_method_id="pm"),
        ]}},
        {"id": "t2", "evaluation_criteria": {"actions": [
            _act("modify_pending_order_address", order_id="#W0000006", address1="9 Elm Road", address2="",
                 city="Boston", state="MA", zip="02110", country="USA"),
            _act("modify_pending_order_items", order_id="#W0000006", item_ids=["i1"], new_item_ids=["i2"],
                 payment_method_id="paypal_1"),
        ]}},
        {"id": "t3", "evaluation_criteria": {"actions": []}},
        {"id": "t4", "evaluation_criteria": {"actions": [  # the gift card holds 1.00, the lamp costs 1.50 more
            _act("modify_pending_order_items", order_id="#W0000001", item_ids=["i1"], new_item_ids=["i2"],
                 payment_method_id="gift_card_1"),
        ]}},
    ]  # fmt: skip
    folder = tmp_path / "eval" / "tau2_retail"
    folder.mkdir(parents=True)
    (folder / "db.json").write_text(json.dumps(db), encoding="utf-8")
    (folder / "tasks_train.json").write_text(json.dumps(tasks), encoding="utf-8")
    return tmp_path / "eval"


@pytest.fixture(scope="module")
def report(eval_dir: Path) -> Tau2PolicyReport:
    return run_tau2_policy_report(eval_dir, clock=lambda: NOW)


def by_task(report: Tau2PolicyReport, task: str) -> list[Check]:
    return next(t for t in report.tasks if t.task == task).checks


def test_expected_actions_run_through_the_flows_into_the_erp(report: Tau2PolicyReport):
    expected = [c for c in by_task(report, "t1") if c.kind == "expected"]
    assert [(c.action, c.tau2_status, c.ours, c.identity) for c in expected] == [
        ("cancel_pending_order", "pending", True, True),
        ("return_delivered_order_items", "delivered", True, True),
        ("exchange_delivered_order_items", "delivered", True, True),
    ]
    assert expected[0].note == "cancel_order: cancelled"
    assert "return_created RT2026" in expected[1].note and "return_created RT2026" in expected[2].note
    t2 = [c for c in by_task(report, "t2") if c.kind == "expected"]
    assert [(c.ours, c.identity, c.note) for c in t2] == [
        (True, True, "change_address: address_changed"),
        (True, True, "modify_items: items modified, total 22.00"),  # the ERP operation itself: 20.50 → 22.00
    ]


def test_probes_cover_every_order_of_the_customer_in_both_directions(report: Tau2PolicyReport):
    probes = [c for c in by_task(report, "t1") if c.kind == "probe"]
    assert len(probes) == 6 * 5 and all(c.agrees for c in probes)
    allowed = {(c.order_id, c.action) for c in probes if c.ours}
    assert allowed == {
        ("#W0000001", "cancel_pending_order"), ("#W0000001", "modify_pending_order_address"),
        ("#W0000001", "modify_pending_order_items"),
        ("#W0000002", "return_delivered_order_items"), ("#W0000002", "exchange_delivered_order_items"),
        ("#W0000005", "return_delivered_order_items"), ("#W0000005", "exchange_delivered_order_items"),
    }  # fmt: skip
    assert all(tau2_allows(c.action, c.tau2_status) == c.ours for c in probes)


def test_after_the_task_a_returned_order_takes_nothing_more(report: Tau2PolicyReport):
    after = {(c.order_id, c.action): c for c in by_task(report, "t1") if c.kind == "after"}
    assert after[("#W0000002", "exchange_delivered_order_items")].tau2_status == "return requested"
    assert not any(c.ours for c in after.values()) and all(c.agrees for c in after.values())


def test_an_item_modified_order_takes_nothing_more(report: Tau2PolicyReport):
    after = {c.action: c for c in by_task(report, "t2") if c.kind == "after"}
    assert {c.tau2_status for c in after.values()} == {"pending (item modified)"}
    assert not any(c.ours for c in after.values()) and all(c.agrees for c in after.values())
    assert after["cancel_pending_order"].note == "cancel_order: not_cancellable_items_modified"
    assert after["modify_pending_order_address"].note == "change_address: address_locked_items_modified"
    assert "#W0000006 were already modified" in after["modify_pending_order_items"].note
    imported = [c for c in by_task(report, "t1") if c.order_id == "#W0000007"]  # modified in tau2's db
    assert len(imported) == 5 and not any(c.ours for c in imported)


def test_a_modify_items_probe_swaps_an_option_as_a_dry_run(report: Tau2PolicyReport):
    probe = next(
        c for c in by_task(report, "t2") if c.kind == "probe" and c.action == "modify_pending_order_items"
    )
    assert (probe.order_id, probe.ours, probe.note) == (
        "#W0000006", True, "modify_items: items modified, total 22.00"
    )  # fmt: skip
    expected = [c for c in by_task(report, "t2") if c.kind == "expected"]
    assert expected[1].ours  # the dry run before it left the order as it was


def test_an_erp_refusal_tau2_would_not_make_is_a_named_disagreement(report: Tau2PolicyReport):
    [expected] = [c for c in by_task(report, "t4") if c.kind == "expected"]
    assert (expected.tau2, expected.ours, expected.agrees) == (True, False, False)
    assert "gift card gift_card_1 holds 1.00, less than the price difference 1.50" in expected.note
    after = {c.action: c for c in by_task(report, "t4") if c.kind == "after"}
    assert after["cancel_pending_order"].ours  # not modified by us, so still open: tau2 forbids it now
    table = report.format_table()
    assert "expected, pending: we refuse items" in table
    assert "after, pending (item modified): we allow cancel, address, items" in table
    assert "disagreements: 4" in table
    assert "expected actions allowed by us:       5/6 (83.3%)" in table
    assert "tau2 action lists authenticating before the first write: 1/3" in table  # t2, t4 list none
    assert next(t for t in report.tasks if t.task == "t3").skipped


def test_the_table_groups_disagreements_by_status():
    checks = [
        Check("9", action, "#W1", "pending (item modified)", "after", tau2=False, ours=True)
        for action in ("cancel_pending_order", "modify_pending_order_address")
    ]
    table = Tau2PolicyReport([TaskResult("9", "cy", True, checks)]).format_table()
    assert "after, pending (item modified): we allow cancel, address" in table
    assert "disagreements: 2" in table and "all checks:                           0/2 (0.0%) agree" in table


def test_the_cli_prints_the_table_and_names_a_missing_folder(eval_dir: Path, tmp_path: Path):
    result = CliRunner().invoke(app, ["report", "tau2-policy", "--data", str(eval_dir)])
    assert result.exit_code == 0, result.output
    assert "tau2 retail policy agreement" in result.output and "disagreements: 4" in result.output
    with pytest.raises(InvalidInput, match="tau2_retail"):
        run_tau2_policy_report(tmp_path / "nowhere")
