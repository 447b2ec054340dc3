"""``kefu report tau2-policy``: do our policy checks agree with tau2-bench's retail policy?

The tau2 retail store (``tau2_retail/db.json``) is imported into a demo ERP once; each training task
(``tasks_train.json``) then runs on a fresh copy of it. Its expected write actions run in order through
our flows and tools, the customer answering as a customer would (order number, the last four digits of
their zip — the importer's stand-in for a phone —, the reason, 「是」):

    tau2 action                          ours
    cancel_pending_order                 flow cancel_order: identity, status check, confirmation, ERP cancel
    modify_pending_order_address         flow change_address
    return_delivered_order_items         flow return_exchange (return; reason 不想要了)
    exchange_delivered_order_items       flow return_exchange (exchange; reason 不合适)
    modify_pending_order_items           no flow: identity, then the ERP's modify-items operation (once per
                                         order; it locks the order against cancel, address and items)
    modify_pending_order_payment         no such tool: identity + the ERP's rule for changes before shipping

Each expected action is *allowed by us* when the flow (or the ERP, for items) carries it out, and passes *identity first* when
the same request with wrong digits changes nothing and the successful run verified before it wrote.
*Policy probes* cover the other direction: for every order of the task's customer, each of the five
actions is tried on the task's initial state as a dry run (the ERP's own rule checks run in a
transaction that is rolled back; a modify-items probe asks for the first item that has another available
option to become the nearest-priced one, paid with the customer's first payment method that is not a
gift card), and again on each order the task changed once its actions are done
(tau2's status is then "return requested", "pending (item modified)" …). tau2 allows cancel/modify
only for ``pending`` and return/exchange only for ``delivered`` orders; a probe agrees when we allow
exactly those. Figures, not a gate.
"""

from __future__ import annotations

import json
import re
import shutil
import tempfile
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from kefu.errors import InvalidInput, NotFound
from kefu.flows import FlowEngine, FlowSpec, FlowTurn, demo_flows
from kefu.flows.actions import ACTIONS
from kefu.flows.spec import Ask
from kefu.tools.demo_erp import DemoOrderSystem, ErpStore, import_tau2_retail, rules
from kefu.tools.demo_erp.dry_run import DryRunOrders
from kefu.tools.orders import ToolRejected

TAU2_ORDER_ID = re.compile(r"#W\d{7}")
FLOW_ACTIONS = {
    "cancel_pending_order": ("cancel_order", "cancelled"),
    "modify_pending_order_address": ("change_address", "address_changed"),
    "return_delivered_order_items": ("return_exchange", "return_created"),
    "exchange_delivered_order_items": ("return_exchange", "return_created"),
}
ERP_ACTIONS = ("modify_pending_order_items",)  # no flow: identity, then the ERP operation itself
RULE_ACTIONS = ("modify_pending_order_payment",)  # no tool: identity, then the ERP's rule
WRITES = (*FLOW_ACTIONS, *ERP_ACTIONS, *RULE_ACTIONS)
PROBED = (*FLOW_ACTIONS, "modify_pending_order_items")
SHORT = {
    "cancel_pending_order": "cancel",
    "modify_pending_order_address": "address",
    "modify_pending_order_items": "items",
    "modify_pending_order_payment": "payment",
    "return_delivered_order_items": "return",
    "exchange_delivered_order_items": "exchange",
}
# tau2's status after each write (its policy: one modify-items or exchange per order, nothing after)
TAU2_AFTER = {
    "cancel_pending_order": "cancelled",
    "modify_pending_order_items": "pending (item modified)",
    "return_delivered_order_items": "return requested",
    "exchange_delivered_order_items": "exchange requested",
}


def tau2_allows(action: str, status: str) -> bool:
    """tau2's policy: cancel/modify pending orders, return/exchange delivered ones — nothing else."""
    return status == ("delivered" if "delivered" in action else "pending")


@dataclass
class Check:
    task: str
    action: str
    order_id: str
    tau2_status: str
    kind: str  # "expected" (one of the task's actions), "probe" (initial state), "after" (final state)
    tau2: bool  # tau2's policy allows it
    ours: bool = False
    identity: bool | None = None  # expected actions: wrong digits refused and verification first
    note: str = ""

    @property
    def agrees(self) -> bool:
        return self.ours == self.tau2 and self.identity is not False


@dataclass
class TaskResult:
    task: str
    user: str
    tau2_identity_first: bool  # tau2's own action list authenticates before the first write
    checks: list[Check] = field(default_factory=list)
    skipped: str = ""

    def of(self, *kinds: str) -> list[Check]:
        return [c for c in self.checks if c.kind in kinds]


@dataclass
class Tau2PolicyReport:
    tasks: list[TaskResult]

    def checks(self, *kinds: str) -> list[Check]:
        return [c for t in self.tasks for c in t.of(*kinds)]

    def format_table(self) -> str:
        head = f"{'task':<6}{'customer':<24}{'writes':>7}{'allowed':>9}{'identity':>10}{'probes':>9}{'after':>8}  notes"
        title = "tau2 retail policy agreement: expected actions through our flows, policy probes as dry runs"
        lines = [title, head, *(_task_line(t) for t in self.tasks)]
        lines += ["", *self._totals(), "", *self._matrix(), "", *self._disagreements()]
        return "\n".join(lines)

    def _totals(self) -> list[str]:
        expected, probes, after = self.checks("expected"), self.checks("probe"), self.checks("after")
        every = [*expected, *probes, *after]
        run = [t for t in self.tasks if not t.skipped]
        lines = [
            f"tasks: {len(self.tasks)} ({len(run)} run, {len(self.tasks) - len(run)} without a customer)",
            f"expected actions allowed by us:       {_ratio(sum(c.ours for c in expected), len(expected))}",
            f"  identity first (wrong digits change nothing; verified before writing): "
            f"{_ratio(sum(c.identity is True for c in expected), len(expected))}",
            f"policy probes on the initial state:   {_ratio(sum(c.agrees for c in probes), len(probes))} agree",
            f"policy probes after the task's writes: {_ratio(sum(c.agrees for c in after), len(after))} agree",
            f"all checks:                           {_ratio(sum(c.agrees for c in every), len(every))} agree",
            f"tau2 action lists authenticating before the first write: "
            f"{sum(t.tau2_identity_first for t in run)}/{len(run)}",
        ]
        by_action = Counter(c.action for c in expected)
        done = Counter(c.action for c in expected if c.ours)
        return lines + [f"  {a:<34} allowed {done[a]}/{n}" for a, n in sorted(by_action.items())]

    def _matrix(self) -> list[str]:
        probes = self.checks("probe", "after")
        lines = ["probes agreeing by tau2 status and action (✓ tau2 allows, ✗ tau2 forbids; agree/n):"]
        lines.append(f"  {'':<26}" + "".join(f"{SHORT[a]:>12}" for a in PROBED))
        for status in sorted({c.tau2_status for c in probes}):
            cells = []
            for action in PROBED:
                group = [c for c in probes if c.action == action and c.tau2_status == status]
                mark = "✓" if tau2_allows(action, status) else "✗"
                cells.append(f"{mark} {sum(c.agrees for c in group)}/{len(group)}" if group else "-")
            lines.append(f"  {status:<26}" + "".join(f"{cell:>12}" for cell in cells))
        return lines

    def _disagreements(self) -> list[str]:
        wrong = [c for c in self.checks("expected", "probe", "after") if not c.agrees]
        lines = [f"disagreements: {len(wrong)}"]
        for c in wrong[:60]:
            verdict = f"tau2 {'allows' if c.tau2 else 'forbids'}, ours {'allowed' if c.ours else 'refused'}"
            identity = "; identity check failed" if c.identity is False else ""
            lines.append(
                f"  task {c.task} {c.kind} {c.action} {c.order_id} ({c.tau2_status}): {verdict}{identity} — {c.note}"
            )
        if len(wrong) > 60:
            lines.append(f"  … and {len(wrong) - 60} more")
        return lines


def _grouped(checks: list[Check]) -> list[str]:
    """Disagreements in short: "after, pending (item modified): we allow cancel, address"."""
    groups: dict[tuple[str, str, bool], list[str]] = {}
    for c in checks:
        if not c.agrees:
            groups.setdefault((c.kind, c.tau2_status, c.ours), []).append(SHORT[c.action])
    return [
        f"{kind}, {status}: we {'allow' if ours else 'refuse'} {', '.join(dict.fromkeys(actions))}"
        for (kind, status, ours), actions in sorted(groups.items())
    ]


def _ratio(part: int, whole: int) -> str:
    return f"{part}/{whole} ({part / whole:.1%})" if whole else "0/0"


def _task_line(t: TaskResult) -> str:
    if t.skipped:
        return f"{t.task:<6}{t.user or '-':<24}{'':>43}  {t.skipped}"
    expected, probes, after = t.of("expected"), t.of("probe"), t.of("after")
    allowed = f"{sum(c.ours for c in expected)}/{len(expected)}"
    identity = f"{sum(c.identity is True for c in expected)}/{len(expected)}"
    agree = f"{sum(c.agrees for c in probes)}/{len(probes)}"
    agree_after = f"{sum(c.agrees for c in after)}/{len(after)}"
    notes = "; ".join(
        ([] if t.tau2_identity_first else ["tau2 lists no authentication"]) + _grouped(t.checks)
    )
    return f"{t.task:<6}{t.user[:23]:<24}{len(expected):>7}{allowed:>9}{identity:>10}{agree:>9}{agree_after:>8}  {notes}"


# ----- running ------------------------------------------------------------------------------------


def run_tau2_policy_report(eval_dir: Path, clock: Callable[[], datetime] | None = None) -> Tau2PolicyReport:
    folder = Path(eval_dir) / "tau2_retail"
    db_json, tasks_json = folder / "db.json", folder / "tasks_train.json"
    try:
        db = json.loads(db_json.read_text(encoding="utf-8"))
        tasks = json.loads(tasks_json.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise InvalidInput(
            f"cannot read the tau2 retail data in {folder} ({exc}); pass --data pointing at shared/eval"
        ) from None
    now = (clock or (lambda: datetime.now(UTC)))()
    with tempfile.TemporaryDirectory(prefix="kefu-tau2-") as tmp:
        template = Path(tmp) / "tau2-template.db"
        import_tau2_retail(db_json, template, clock=lambda: now)
        runner = _Runner(db, template, Path(tmp), now)
        return Tau2PolicyReport([runner.task(task) for task in tasks])


def tau2_flows() -> dict[str, FlowSpec]:
    """The demo flows with tau2's order numbers (#W1234567) instead of the shop's (XP…)."""
    pattern = {"regex": TAU2_ORDER_ID}
    specs = {}
    for name, spec in demo_flows().items():
        steps = {
            key: replace(step, validator="pattern", options=pattern)
            if isinstance(step, Ask) and step.validator == "order_id"
            else step
            for key, step in spec.steps.items()
        }
        specs[name] = replace(spec, steps=steps)
    return specs


class _Runner:
    def __init__(self, db: dict[str, Any], template: Path, tmp: Path, now: datetime) -> None:
        self.db, self.template, self.tmp, self.now = db, template, tmp, now
        self.specs = tau2_flows()
        self.variants = {  # sku → (product id, price, available)
            sku: (str(p["product_id"]), float(v["price"]), bool(v.get("available", True)))
            for p in db["products"].values()
            for sku, v in p["variants"].items()
        }

    def task(self, task: dict[str, Any]) -> TaskResult:
        actions = (task.get("evaluation_criteria") or {}).get("actions") or []
        user_id = self._user(actions)
        writes = [a for a in actions if a["name"] in WRITES]
        first_write = next((i for i, a in enumerate(actions) if a["name"] in WRITES), len(actions))
        auth_first = any(a["name"].startswith("find_user_id") for a in actions[:first_write])
        result = TaskResult(str(task["id"]), user_id or "", auth_first)
        if user_id is None:
            result.skipped = "no customer in the expected actions"
            return result
        with self._store(result.task) as store:
            last4 = str(self.db["users"][user_id]["address"]["zip"])[-4:]
            statuses = {oid: str(o["status"]) for oid, o in self.db["orders"].items()}
            mine = list(self.db["users"][user_id].get("orders", []))
            result.checks += self._probes(store, "probe", mine, statuses, (user_id, last4), result.task)
            for number, action in enumerate(writes):
                oid, name = action["arguments"]["order_id"], action["name"]
                check = Check(
                    result.task, name, oid, statuses[oid], "expected", tau2_allows(name, statuses[oid])
                )
                self._expected(store, check, action["arguments"], last4, f"t{result.task}-{number}")
                statuses[oid] = TAU2_AFTER.get(name, statuses[oid])
                result.checks.append(check)
            changed = list(dict.fromkeys(str(a["arguments"]["order_id"]) for a in writes))
            result.checks += self._probes(store, "after", changed, statuses, (user_id, last4), result.task)
        return result

    def _user(self, actions: list[dict[str, Any]]) -> str | None:
        users = self.db["users"]
        for action in actions:
            args = action.get("arguments") or {}
            if action["name"] == "find_user_id_by_email":
                found = [uid for uid, u in users.items() if u.get("email") == args.get("email")]
                if found:
                    return found[0]
            if action["name"] == "find_user_id_by_name_zip":
                for uid, u in users.items():
                    name, zip_code = u["name"], u["address"]["zip"]
                    if (name["first_name"], name["last_name"], zip_code) == (
                        args.get("first_name"), args.get("last_name"), args.get("zip")
                    ):  # fmt: skip
                        return uid
        for action in actions:
            order = self.db["orders"].get((action.get("arguments") or {}).get("order_id", ""))
            if order is not None:
                return str(order["user_id"])
        return None

    @contextmanager
    def _store(self, name: str) -> Iterator[ErpStore]:
        path = self.tmp / f"task-{re.sub(r'[^A-Za-z0-9_-]', '_', name)}.db"
        shutil.copyfile(self.template, path)
        store = ErpStore(path, clock=lambda: self.now)
        try:
            yield store
        finally:
            store.close()
            path.unlink(missing_ok=True)

    # -- the two directions ----------------------------------------------------------------------

    def _probes(
        self,
        store: ErpStore,
        kind: str,
        order_ids: list[str],
        statuses: dict[str, str],
        customer: tuple[str, str],
        task: str,
    ) -> list[Check]:
        dry = FlowEngine(self.specs, DryRunOrders(store), clock=lambda: self.now)
        user_id, last4 = customer
        checks = []
        for oid in order_ids:
            status = statuses[oid]
            for action in PROBED:
                check = Check(task, action, oid, status, kind, tau2_allows(action, status))
                args = self._swap(store, oid, user_id) if action in ERP_ACTIONS else {}
                attempt = _attempt(dry, store, action, oid, last4, args, f"{kind}-{task}-{oid}-{action}")
                check.ours, check.note = attempt.done, attempt.how
                checks.append(check)
        return checks

    def _swap(self, store: ErpStore, oid: str, user_id: str) -> dict[str, Any]:
        """What a customer would ask for: the first item that has another available option, changed to
        the nearest-priced one, paid with their first payment method that is not a gift card."""
        items = store.get_order(oid).items
        swap = (items[0].sku, items[0].sku) if items else ("-", "-")  # no option to change to: refused
        for item in items:
            product, price, _ = self.variants.get(item.sku, ("", 0.0, False))
            options = [
                (abs(p - price), sku)
                for sku, (other, p, available) in self.variants.items()
                if other == product and available and sku != item.sku
            ]
            if options:
                swap = (item.sku, min(options)[1])
                break
        methods = list(self.db["users"][user_id].get("payment_methods") or {})
        method = next((m for m in methods if not m.startswith("gift_card")), methods[0] if methods else "-")
        return {"item_ids": [swap[0]], "new_item_ids": [swap[1]], "payment_method_id": method}

    def _expected(self, store: ErpStore, check: Check, args: dict[str, Any], last4: str, conv: str) -> None:
        engine = FlowEngine(self.specs, DemoOrderSystem(store), clock=lambda: self.now)
        wrong = f"{(int(last4) + 1) % 10000:04d}" if last4.isdigit() else "0000"
        writes_before = store.count("idempotency_keys")
        impostor = _attempt(engine, store, check.action, check.order_id, wrong, args, conv + "-wrong")
        nothing_done = not impostor.done and store.count("idempotency_keys") == writes_before
        attempt = _attempt(engine, store, check.action, check.order_id, last4, args, conv)
        check.ours, check.note = attempt.done, attempt.how
        check.identity = nothing_done and attempt.verified_first
        if not nothing_done:
            check.note = "wrong digits were accepted; " + check.note


@dataclass(frozen=True)
class _Attempt:
    done: bool  # we carried the action out (or, dry, would have)
    how: str  # how it ended: the flow's result or handoff reason, or the rule's verdict
    verified_first: bool = True  # no write before a successful verification


def _attempt(
    engine: FlowEngine, store: ErpStore, action: str, oid: str, last4: str, args: dict[str, Any], conv: str
) -> _Attempt:
    """What happens when a customer giving ``last4`` asks for ``action`` on ``oid``."""
    if action in (*ERP_ACTIONS, *RULE_ACTIONS):
        if not engine.orders.verify_customer(oid, last4):
            return _Attempt(False, "identity not confirmed")
        try:
            return _unflowed(engine, store, action, oid, args, conv)
        except (ToolRejected, NotFound) as exc:
            return _Attempt(False, f"refused: {exc.message}")
    flow, success = FLOW_ACTIONS[action]
    turn = _talk(engine, flow, conv, _script(action, oid, last4, args))
    ended = turn.data.get("result") or turn.data.get("reason") or turn.outcome
    issued = turn.data.get("return_id")  # the ERP's after-sales number, when it issued one
    how = f"{flow}: {ended}" + (f" {issued}" if issued else "")
    return _Attempt(turn.data.get("result") == success, how, _verified_before_writing(turn))


def _unflowed(
    engine: FlowEngine, store: ErpStore, action: str, oid: str, args: dict[str, Any], conv: str
) -> _Attempt:
    """An action no flow offers, once identity is confirmed: modify items through the ERP operation
    itself, modify payment by the ERP's rule for any change before shipping."""
    if action == "modify_pending_order_items":
        order = engine.orders.modify_items(
            oid,
            skus=[str(sku) for sku in args["item_ids"]],
            new_skus=[str(sku) for sku in args["new_item_ids"]],
            payment_method_id=str(args["payment_method_id"]),
            idempotency_key=conv,
        )
        return _Attempt(order.items_modified, f"modify_items: items modified, total {order.total}")
    order = store.get_order(oid)
    rules.require_changeable(order, "the payment can only be changed before the order ships")
    return _Attempt(True, f"rule: order is {order.status}")


def _script(action: str, oid: str, last4: str, args: dict[str, Any]) -> list[str]:
    if action == "cancel_pending_order":
        return ["取消订单", oid, last4, "是"]
    if action == "modify_pending_order_address":
        parts = [args.get(k) for k in ("address1", "address2", "city", "state", "zip", "country")]
        address = ", ".join(str(p) for p in parts if p) or "1 Main Street, Springfield, IL 62701, USA"
        return ["修改地址", oid, last4, address, "是"]
    if action == "exchange_delivered_order_items":
        return ["换货", oid, last4, "不合适"]
    return ["退货", oid, last4, "不想要了"]


def _talk(engine: FlowEngine, flow: str, conv: str, texts: list[str]) -> FlowTurn:
    turn = engine.start(flow, conv, texts[0])
    for text in texts[1:]:
        if turn.outcome != "ongoing":
            break
        turn = engine.advance(turn.state, text)
    if turn.outcome == "ongoing":  # e.g. asked for the digits again after wrong ones: the customer stops
        turn = engine.advance(turn.state, "算了")
    return turn


def _verified_before_writing(turn: FlowTurn) -> bool:
    verified = False
    for event in turn.state.history:
        if event.get("event") != "called":
            continue
        action = str(event.get("action", ""))
        if action == "orders.verify":
            verified = True
        elif ACTIONS[action].writes and not verified:
            return False
    return True
