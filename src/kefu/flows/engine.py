"""Run a flow one customer message at a time, deterministically.

Every branch that moves money or changes an order is decided here, from slots, tool results and
facts computed from the injected clock — never by a model. Writes need a verified customer and carry
an idempotency key derived from (conversation, flow, step, order), so a retried or double-submitted
turn cannot create a second return. The order system being down ends the flow with a handoff and
nothing half-done.

Slots are read deterministically (``slots.py``). With a ``slot_reader`` (a capable model through
function calling, ``model_slots.py``) the model is asked too — on a flow's first message, and whenever
the deterministic readers cannot answer the question being asked; what it proposes passes the engine's
checks before it fills a slot, and deterministic readings always win.
"""

from __future__ import annotations

import hashlib
import logging
import re
from collections.abc import Callable, Mapping
from datetime import datetime, timedelta, timezone
from typing import Any

from kefu.errors import ConfigError, NotFound
from kefu.flows import slots as readers
from kefu.flows.actions import ACTIONS
from kefu.flows.expr import MissingValue, lookup, render, template_paths
from kefu.flows.model_slots import MODEL_READABLE, SlotReader
from kefu.flows.notices import NOTICES, default_invalid
from kefu.flows.spec import Ask, Call, Decide, FlowSpec, Handoff, Say, Step, Text
from kefu.flows.state import FlowMessage, FlowState, FlowTurn, Outcome
from kefu.tools.orders import OrderSystem, ToolRejected, ToolUnavailable, TooManyAttempts

log = logging.getLogger("kefu.flows")

SHOP_TZ = timezone(timedelta(hours=8), "Asia/Shanghai")  # China has no daylight saving time
DEFAULT_TTL = timedelta(hours=24)
RESUME_GAP = timedelta(minutes=10)
MAX_STEPS_PER_TURN = 100

_QUIT = re.compile(
    r"^\s*(算了|不办了|不用了|不弄了|先不办了|先不了|退出|never ?mind|forget it|stop|quit)[\s!！。.,，~了吧啊]*$",
    re.IGNORECASE,
)
_RESTART = re.compile(r"(重新开始|重来|从头开始|重新办理|start over|restart)", re.IGNORECASE)


def idempotency_key(conversation_id: str, flow: str, step: str, order_id: str) -> str:
    raw = "\x1f".join((conversation_id, flow, step, order_id))
    return "kefu-" + hashlib.sha256(raw.encode("utf-8")).hexdigest()[:40]


class _Turn:
    def __init__(self, state: FlowState) -> None:
        self.state = state
        self.messages: list[FlowMessage] = []

    def say(self, text: Text, context: Mapping[str, Any] | None = None) -> None:
        ctx = context or {}
        self.messages.append(FlowMessage(zh=render(text.zh, ctx), en=render(text.en, ctx)))

    def note(self, event: str, step: str, **detail: Any) -> None:
        self.state.history.append({"event": event, "step": step, "at": self.state.updated_at, **detail})

    def finish(self) -> FlowTurn:
        self.state.last_messages = [{"zh": m.zh, "en": m.en} for m in self.messages]
        return FlowTurn(list(self.messages), self.state, self.state.outcome, dict(self.state.data))


class FlowEngine:
    def __init__(
        self,
        specs: Mapping[str, FlowSpec],
        orders: OrderSystem,
        clock: Callable[[], datetime],
        *,
        ttl: timedelta = DEFAULT_TTL,
        tz: timezone = SHOP_TZ,
        slot_reader: SlotReader | None = None,
    ) -> None:
        self.specs = dict(specs)
        self.orders = orders
        self.clock = clock
        self.ttl = ttl
        self.tz = tz
        self.slot_reader = slot_reader

    # ----- public API -----

    def close(self) -> None:
        """Release the order system (an HTTP client; the demo ERP server it owns)."""
        close = getattr(self.orders, "close", None)
        if close is not None:
            close()

    def start(self, flow_name: str, conversation_id: str, initial_text: str = "") -> FlowTurn:
        spec = self._spec(flow_name)
        now = self._now().isoformat()
        lang = _language(initial_text, "zh")
        state = FlowState(
            flow=flow_name, conversation_id=conversation_id, started_at=now, updated_at=now, lang=lang
        )
        turn = _Turn(state)
        self._pick_up(spec, state, initial_text)
        turn.note("started", spec.start)
        if initial_text.strip():
            self._read_by_model(spec, turn, initial_text, None)
        self._run(spec, turn, spec.start)
        return turn.finish()

    def advance(self, state: FlowState, customer_text: str) -> FlowTurn:
        state = state.copy()
        if state.outcome != "ongoing" or state.step is None:
            # A finished flow replays its last reply: a re-sent message never repeats a tool call.
            replay = [FlowMessage(**m) for m in state.last_messages]
            return FlowTurn(replay, state, state.outcome, dict(state.data))
        spec = self._spec(state.flow)
        now = self._now()
        idle = now - datetime.fromisoformat(state.updated_at)
        if idle > self.ttl or _RESTART.search(customer_text):
            return self._restart(spec, state, customer_text, "expired" if idle > self.ttl else "restarted")
        state.updated_at = now.isoformat()
        state.lang = _language(customer_text, state.lang)
        turn = _Turn(state)
        if _QUIT.match(customer_text):
            turn.say(NOTICES["abandoned"])
            self._finish(turn, "abandoned", state.step, {"reason": "customer_stopped"})
            return turn.finish()
        self._answer(spec, turn, customer_text, resumed=idle > RESUME_GAP)
        return turn.finish()

    def answers(self, state: FlowState, customer_text: str) -> bool:
        """Whether ``customer_text`` answers the question the flow waits on (read deterministically), or
        stops or restarts the flow. The caller answers anything else that is a question from the knowledge
        base and leaves the flow waiting (「退款多久到账？」 while the order number is awaited)."""
        if state.outcome != "ongoing" or state.step is None or state.flow not in self.specs:
            return True  # advance() replays or reports it
        step = self.specs[state.flow].steps.get(state.step)
        if not isinstance(step, Ask) or _QUIT.match(customer_text) or _RESTART.search(customer_text):
            return True
        return readers.extract(step.validator, customer_text, step.options) is not None

    def waiting_for(self, state: FlowState) -> FlowMessage | None:
        """The question an ongoing flow waits on, as it was asked (to remind the customer of it)."""
        spec = self.specs.get(state.flow)
        step = spec.steps.get(state.step) if spec is not None and state.step else None
        if state.outcome != "ongoing" or not isinstance(step, Ask):
            return None
        context = self._context(state)
        try:
            return FlowMessage(zh=render(step.prompt.zh, context), en=render(step.prompt.en, context))
        except MissingValue:
            return None

    # ----- one turn -----

    def _answer(self, spec: FlowSpec, turn: _Turn, text: str, *, resumed: bool) -> None:
        state = turn.state
        step = spec.step(state.step or spec.start)
        if not isinstance(step, Ask):
            raise ConfigError(f"flow {spec.name}: the stored step {step.name!r} is not a question")
        value = readers.extract(step.validator, text, step.options)
        self._pick_up(spec, state, text, skip=step.slot)
        if value is None:
            value = self._read_by_model(spec, turn, text, step)
        if value is None and resumed:
            turn.say(NOTICES["welcome_back"])
            turn.say(step.prompt, self._context(state))
            return
        if value is None:
            turn.note("invalid", step.name)
            turn.say(step.invalid or default_invalid(step), self._context(state))
            self._run(spec, turn, step.name)
            return
        state.slots[step.slot] = value
        turn.note("answered", step.name, slot=step.slot)
        self._run(spec, turn, step.next)

    def _restart(self, spec: FlowSpec, old: FlowState, text: str, why: str) -> FlowTurn:
        fresh = self.start(spec.name, old.conversation_id, "" if why == "restarted" else text)
        fresh.state.lang = _language(text, old.lang)
        notice = NOTICES[why]
        fresh.messages.insert(0, FlowMessage(notice.zh, notice.en))
        fresh.state.history.insert(0, {"event": why, "step": old.step, "at": fresh.state.started_at})
        fresh.state.last_messages.insert(0, {"zh": notice.zh, "en": notice.en})
        return fresh

    def _run(self, spec: FlowSpec, turn: _Turn, name: str | None) -> None:
        """Run steps until a question or an end. A broken flow (a bug in its YAML that loading cannot
        see) ends as ``failed`` with a handoff notice instead of an error in the customer's chat."""
        try:
            self._steps(spec, turn, name)
        except ConfigError as exc:
            log.error("flow %s failed: %s", spec.name, exc.message)
            turn.say(NOTICES["flow_error"])
            self._finish(turn, "failed", turn.state.step, {"reason": "flow_error"})

    def _steps(self, spec: FlowSpec, turn: _Turn, name: str | None) -> None:
        for _ in range(MAX_STEPS_PER_TURN):
            if name is None:
                return
            step = spec.step(name)
            name = self._execute(spec, turn, step)
            for slot in step.clear:
                turn.state.slots.pop(slot, None)
        raise ConfigError(
            f"flow file {spec.source}: more than {MAX_STEPS_PER_TURN} steps without a question — "
            "a decide/say loop never reaches an ask or an end; fix the flow"
        )

    def _execute(self, spec: FlowSpec, turn: _Turn, step: Step) -> str | None:
        if isinstance(step, Ask):
            return self._ask(turn, step)
        if isinstance(step, Call):
            return self._call(spec, turn, step)
        if isinstance(step, Decide):
            return self._decide(turn, step)
        if isinstance(step, Say):
            self._check_shown(spec, turn.state, step.name, step.message)
            turn.say(step.message, self._context(turn.state))
            return step.next
        if step.message is not None:
            self._check_shown(spec, turn.state, step.name, step.message)
            turn.say(step.message, self._context(turn.state))
        if isinstance(step, Handoff):
            self._finish(turn, "handoff", step.name, {"reason": step.reason})
        else:
            self._finish(turn, step.outcome, step.name, {"result": step.result} if step.result else {})
        return None

    def _ask(self, turn: _Turn, step: Ask) -> str | None:
        state = turn.state
        if step.slot in state.slots:
            return step.next
        state.asks[step.name] = state.asks.get(step.name, 0) + 1
        if state.asks[step.name] > step.max_tries:
            turn.note("exhausted", step.name, tries=step.max_tries)
            if step.on_exhausted:
                return step.on_exhausted
            turn.say(NOTICES["too_many_tries"])
            self._finish(turn, "handoff", step.name, {"reason": "too_many_tries", "slot": step.slot})
            return None
        turn.say(step.prompt, self._context(state))
        state.step = step.name
        turn.note("asked", step.name, slot=step.slot)
        return None

    def _call(self, spec: FlowSpec, turn: _Turn, step: Call) -> str | None:
        state, action = turn.state, ACTIONS[step.action]
        order_id = str(state.slots.get("order_id", ""))
        if action.writes and state.facts.get("verified_order") != order_id:
            log.error("flow %s step %s tried to write before verifying the customer", spec.name, step.name)
            return self._stop(turn, step.name, "not_verified", "identity_not_verified")
        key = idempotency_key(state.conversation_id, spec.name, step.name, order_id)
        try:
            got = action.run(self.orders, order_id, self._args(step, state), key)
        except ToolUnavailable as exc:
            log.warning("flow %s step %s: order system unavailable: %s", spec.name, step.name, exc.message)
            notice = "unavailable_write" if action.writes else "unavailable_read"
            return self._stop(turn, step.name, notice, "order_system_unavailable")
        except TooManyAttempts as exc:
            log.warning("flow %s step %s: identity checks locked: %s", spec.name, step.name, exc.message)
            return self._stop(turn, step.name, "too_many_tries", "identity_locked")
        except NotFound:
            turn.note("not_found", step.name)
            return step.on_not_found or self._stop(turn, step.name, "not_found", "order_not_found")
        except ToolRejected as exc:
            turn.note("rejected", step.name, detail=exc.message)
            return step.on_rejected or self._stop(turn, step.name, "rejected", "order_system_rejected")
        turn.note(
            "called", step.name, action=step.action, **({"idempotency_key": key} if action.writes else {})
        )
        return self._store(turn, step, got, order_id)

    def _store(self, turn: _Turn, step: Call, got: dict[str, Any], order_id: str) -> str | None:
        facts = turn.state.facts
        if "order" in got:
            facts["order"] = got["order"]
        if "result" in got:
            facts.setdefault("result", {}).update(got["result"])
            turn.state.data.update(got["result"])
        if "verified" in got:
            if not got["verified"]:
                return step.on_false or self._stop(turn, step.name, "too_many_tries", "identity_failed")
            facts["verified_order"] = order_id
        return step.next

    def _decide(self, turn: _Turn, step: Decide) -> str:
        context = self._context(turn.state)
        for number, branch in enumerate(step.branches):
            if all(c.holds(context) for c in branch.when):
                turn.note("decided", step.name, branch=number, goto=branch.goto, facts=context["facts"])
                return branch.goto
        turn.note("decided", step.name, branch="otherwise", goto=step.otherwise, facts=context["facts"])
        return step.otherwise

    # ----- helpers -----

    def _stop(self, turn: _Turn, step: str, notice: str, reason: str) -> str | None:
        """Hand the customer to a human with a notice; returns no next step."""
        turn.say(NOTICES[notice])
        self._finish(turn, "handoff", step, {"reason": reason})
        return None

    def _finish(self, turn: _Turn, outcome: Outcome, step: str | None, data: dict[str, Any]) -> None:
        state = turn.state
        state.outcome, state.step = outcome, None
        state.data.update(data)
        if "order_id" in state.slots:
            state.data.setdefault("order_id", state.slots["order_id"])
        turn.note(outcome, step or "", **data)

    def _args(self, step: Call, state: FlowState) -> dict[str, Any]:
        args: dict[str, Any] = {}
        context = self._context(state)
        for name, value in step.args.items():
            args[name] = lookup(context, value, missing_ok=True) if _is_path(value) else value
        return args

    def _read_by_model(self, spec: FlowSpec, turn: _Turn, text: str, asked: Ask | None) -> Any:
        """Let the slot reader (a model) propose slots; fill the still-empty ones it may fill — those
        read in passing, and the one being asked — and return the value for ``asked`` (or None)."""
        if self.slot_reader is None or (asked is not None and asked.validator not in MODEL_READABLE):
            return None
        state = turn.state
        question = state.last_messages[-1] if state.last_messages else None
        proposal = self.slot_reader.read(spec, text, question.get(state.lang) if question else None)
        filled = []
        for ask in spec.asks():
            value = proposal.values.get(ask.slot)
            passing = ask.validator in readers.OPPORTUNISTIC and ask.validator in MODEL_READABLE
            if value is None or ask.slot in state.slots or not (passing or ask is asked):
                continue
            if ask is not asked:
                state.slots[ask.slot] = value
            filled.append(ask.slot)
        turn.note("model_read", state.step or spec.start, filled=filled, rejected=proposal.rejected)
        return proposal.values.get(asked.slot) if asked is not None else None

    def _pick_up(self, spec: FlowSpec, state: FlowState, text: str, skip: str | None = None) -> None:
        """Fill still-empty slots that the text states outright (an order id, 尾号1234, 质量问题…)."""
        for ask in spec.asks():
            if ask.slot == skip or ask.slot in state.slots or ask.validator not in readers.OPPORTUNISTIC:
                continue
            value = readers.extract(ask.validator, text, ask.options, opportunistic=True)
            if value is not None:
                state.slots[ask.slot] = value

    def _context(self, state: FlowState) -> dict[str, Any]:
        order = state.facts.get("order") or {}
        return {
            "slots": state.slots,
            "order": order,
            "result": state.facts.get("result", {}),
            "facts": {
                "days_since_delivery": self._days_since(order.get("delivered_at")),
                "delivered_on": self._shop_date(order.get("delivered_at")),
                "placed_on": self._shop_date(order.get("placed_at")),
                "has_photos": bool(state.slots.get("photos")),
                "verified": bool(order) and state.facts.get("verified_order") == order.get("order_id"),
            },
        }

    def _days_since(self, delivered_at: str | None) -> int | None:
        """Days since sign-for in the shop's calendar: the day after signing is day 1."""
        signed = self._local(delivered_at)
        return None if signed is None else (self._now().astimezone(self.tz).date() - signed.date()).days

    def _shop_date(self, moment: str | None) -> str | None:
        local = self._local(moment)
        return None if local is None else local.date().isoformat()

    def _local(self, moment: str | None) -> datetime | None:
        if not moment:
            return None
        parsed = datetime.fromisoformat(moment)
        return (parsed if parsed.tzinfo else parsed.replace(tzinfo=self.tz)).astimezone(self.tz)

    def _check_shown(self, spec: FlowSpec, state: FlowState, step: str, text: Text) -> None:
        shows_order = any(p.startswith("order.") for p in template_paths(text.zh + text.en))
        order_id = (state.facts.get("order") or {}).get("order_id")
        if shows_order and state.facts.get("verified_order") != order_id:
            raise ConfigError(
                f"flow file {spec.source}, step {step!r}: shows order details before the customer is "
                "verified — put an orders.verify step before it"
            )
        try:
            render(text.zh + text.en, self._context(state))
        except MissingValue as exc:
            raise ConfigError(
                f"flow file {spec.source}, step {step!r}: the message uses {{{exc.args[0]}}}, which has "
                "no value here — guard it with a decide step"
            ) from exc

    def _spec(self, name: str) -> FlowSpec:
        if name not in self.specs:
            raise NotFound(f"no flow named {name!r}; the loaded flows are {', '.join(sorted(self.specs))}")
        return self.specs[name]

    def _now(self) -> datetime:
        now = self.clock()
        if now.tzinfo is None:
            raise ConfigError(
                "the flow engine's clock returned a naive datetime — give it a timezone-aware clock"
            )
        return now


def _is_path(value: Any) -> bool:
    return isinstance(value, str) and value.split(".", 1)[0] in ("slots", "order", "facts", "result")


def _language(text: str, current: str) -> str:
    """The flow's language after ``text``: Chinese words switch to Chinese, two English words to English,
    anything else (「XP1001」, 「9002」) keeps the conversation's."""
    if re.search(r"[\u3400-\u9fff]", text):
        return "zh"
    return "en" if len(re.findall(r"[A-Za-z]{2,}", text)) >= 2 else current
