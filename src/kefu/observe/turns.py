"""Timing one turn's event stream for the metrics, without changing a single event.

``timed_turn`` wraps ``Assistant``'s events: the clock starts when the customer's message arrives, the
first ``Delta`` is the first text, ``Done`` the full reply (stored). The ``Meta`` event gives the answer
kind, the cache result, the route and a handoff this turn opened; the stored reply gives the model,
tokens, status and cost.
"""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import replace

from kefu.dialog.events import Delta, Done, Event, Meta
from kefu.observe.metrics import Metrics, TurnFacts

log = logging.getLogger("kefu.observe")

# answer kinds whose Meta.handoff is a handoff opened this turn (agent_pending: one already open)
OPENED_HANDOFF_KINDS = frozenset({"handoff", "ticket"})


async def timed_turn(
    events: AsyncIterator[Event],
    metrics: Metrics,
    *,
    conversation_id: str,
    channel: str,
    first_of_conversation: bool,
    started: float,
    clock: Callable[[], float] = time.perf_counter,
) -> AsyncIterator[Event]:
    """Yield ``events`` unchanged; record the turn when its ``Done`` has been yielded (an abandoned
    stream — the client went away — records nothing)."""
    meta: Meta | None = None
    first_text: float | None = None
    # wall-clock nanoseconds for the trace (``started`` is on ``clock``)
    started_ns = time.time_ns() - int((clock() - started) * 1e9)
    planned_ns: int | None = None
    first_ns: int | None = None
    async for event in events:
        if isinstance(event, Meta):
            meta, planned_ns = event, time.time_ns()
        elif isinstance(event, Delta) and first_text is None and event.text:
            first_text, first_ns = clock() - started, time.time_ns()
        elif isinstance(event, Done) and not (meta is not None and meta.replayed):  # a retry: counted once
            facts = turn_facts(event, meta, conversation_id, channel, clock() - started, first_text)
            facts = replace(facts, first_of_conversation=first_of_conversation)
            metrics.turn(facts)
            if metrics.tracer is not None:
                try:
                    metrics.tracer.record(facts, started_ns, planned_ns, first_ns, time.time_ns())
                except Exception as exc:  # a trace is never worth a customer's reply
                    log.warning("the turn's trace was not recorded (%s) — check KEFU_OTLP_ENDPOINT", exc)
        yield event


def turn_facts(
    done: Done, meta: Meta | None, conversation_id: str, channel: str, total: float, first_text: float | None
) -> TurnFacts:
    message = done.message
    # the stored kind is the final one (a grounded plan can end as "fallback" or "no_answer")
    kind = (message.answer_kind if message else None) or (meta.answer_kind if meta else None) or "other"
    opened = meta is not None and meta.handoff is not None and kind in OPENED_HANDOFF_KINDS
    return TurnFacts(
        conversation_id=conversation_id,
        channel=channel,
        kind=kind,
        total=total,
        first_text=first_text,
        status=message.status if message is not None else "ok",
        cache=meta.cache if meta is not None else None,
        route=getattr(message, "route", None) or (meta.route if meta is not None else None),
        handoff_reason=_reason(meta) if opened else None,
        model=message.model if message is not None else None,
        prompt_tokens=message.prompt_tokens if message is not None else 0,
        completion_tokens=message.completion_tokens if message is not None else 0,
        # H2's MessageRecord.cost (migration 0006); 0 until a price list says otherwise
        cost=float(getattr(message, "cost", 0.0) or 0.0) if message is not None else 0.0,
    )


def _reason(meta: Meta | None) -> str:
    handoff = meta.handoff if meta is not None else None
    return str((handoff or {}).get("reason") or "unknown")
