"""Slot filling by a capable model through function calling: the model proposes, the engine checks.

Each flow has one tool, ``fill_<flow>``, whose JSON Schema is built from the flow's questions: an
order id by its pattern, the phone's last four digits, a reason or a choice by their enums, free text
by its minimum length. The model is made to call it (``tool_choice``) on the customer's redacted
message and returns arguments. ``check_arguments`` then applies the same deterministic validators as
the regex path, and more: a value must be *written in the message* (an order id, digits, an address),
a choice must be one of the flow's own values, and a call with anything the schema does not define —
``"approve": true``, say — is ignored as a whole. The engine still decides every branch.

Never read by a model: ``yes_no`` (consent to a cancellation or a change must be the customer's own
words, read strictly) and ``photos`` (evidence is an upload, not a claim).

    reader = ModelSlotReader(model)                  # any ChatModel with supports_tools
    engine = FlowEngine(specs, orders, clock, slot_reader=reader)
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

import anyio.from_thread

from kefu.config import Settings
from kefu.errors import ConfigError, KefuError
from kefu.flows import slots as readers
from kefu.flows.spec import Ask, FlowSpec
from kefu.llm.base import ChatModel, ChatRequest, Message, Reply, Tool, ToolCall

log = logging.getLogger("kefu.flows")

MODEL_READABLE = frozenset({"order_id", "phone_last4", "reason", "choice", "text", "pattern"})
WHOLE_CALL = "(call)"  # the key of a rejection that concerns the whole call

_DESCRIPTIONS = {
    "order_id": "The order number exactly as the customer wrote it (XP followed by digits, e.g. XP10023).",
    "phone_last4": "The last 4 digits of the phone number on the order, only if the customer states them.",
    "reason": "Why the customer wants this: quality = a quality problem (broken, defective, 质量问题, 坏了); "
    "no_reason = they no longer want it or it does not fit (不想要了, 不合适).",
}


@dataclass(frozen=True)
class Proposal:
    """What the model proposed, after the engine's checks: usable ``values`` and ``rejected`` slots
    (slot → why; ``WHOLE_CALL`` when the whole call was refused)."""

    values: dict[str, Any] = field(default_factory=dict)
    rejected: dict[str, str] = field(default_factory=dict)


class SlotReader(Protocol):
    def read(self, spec: FlowSpec, text: str, asked: str | None) -> Proposal:
        """Slot values ``text`` states, checked; ``asked`` is the question the customer answers."""
        ...


def readable_asks(spec: FlowSpec) -> dict[str, Ask]:
    """The flow's questions a model may answer, by slot (the first question of a slot wins)."""
    found: dict[str, Ask] = {}
    for ask in spec.asks():
        if ask.validator in MODEL_READABLE:
            found.setdefault(ask.slot, ask)
    return found


def tool_name(spec: FlowSpec) -> str:
    return "fill_" + re.sub(r"[^A-Za-z0-9_-]", "_", spec.name)[:59]


def flow_tool(spec: FlowSpec) -> Tool:
    """The flow's function: every model-readable slot an optional property, nothing else allowed."""
    properties = {slot: _property(ask) for slot, ask in readable_asks(spec).items()}
    schema = {"type": "object", "properties": properties, "required": [], "additionalProperties": False}
    purpose = spec.description or spec.name
    return Tool(
        tool_name(spec),
        f"Record what the customer's message states for the task「{purpose}」. Leave out anything it "
        "does not state; never guess.",
        schema,
    )


def _property(ask: Ask) -> dict[str, Any]:
    question = ask.prompt.en if "{" not in ask.prompt.en else ""
    if ask.validator == "order_id":
        return {"type": "string", "pattern": r"^XP\d{4,}$", "description": _DESCRIPTIONS["order_id"]}
    if ask.validator == "phone_last4":
        return {"type": "string", "pattern": r"^\d{4}$", "description": _DESCRIPTIONS["phone_last4"]}
    if ask.validator == "reason":
        return {"type": "string", "enum": sorted(readers.REASONS), "description": _DESCRIPTIONS["reason"]}
    if ask.validator == "choice":
        choices: Mapping[str, list[str]] = ask.options["choices"]
        meaning = "; ".join(f"{value} = {', '.join(words[:6])}" for value, words in choices.items())
        return {"type": "string", "enum": list(choices), "description": f"{question} ({meaning})".strip()}
    if ask.validator == "pattern":
        regex: re.Pattern[str] = ask.options["regex"]
        return {"type": "string", "pattern": regex.pattern, "description": question}
    min_length = int(ask.options.get("min_length", 1))
    return {"type": "string", "minLength": min_length, "description": f"{question} Copy it as written."}


def check_arguments(spec: FlowSpec, arguments: str, text: str) -> Proposal:
    """The engine's checks on a model's arguments (see the module): all or nothing for the call's
    shape, value by value for the slots."""
    try:
        parsed = json.loads(arguments or "{}")
    except ValueError:
        return Proposal(rejected={WHOLE_CALL: "the arguments are not JSON"})
    if not isinstance(parsed, dict):
        return Proposal(rejected={WHOLE_CALL: "the arguments are not a JSON object"})
    asks = readable_asks(spec)
    unknown = sorted(set(parsed) - set(asks))
    if unknown:
        return Proposal(rejected={WHOLE_CALL: f"fields this flow does not define: {', '.join(unknown)}"})
    values: dict[str, Any] = {}
    rejected: dict[str, str] = {}
    for slot, raw in parsed.items():
        if raw is None or raw == "":
            continue  # "not stated"
        value, problem = _check(asks[slot], raw, text)
        if problem:
            rejected[slot] = problem
        else:
            values[slot] = value
    return Proposal(values, rejected)


def _check(ask: Ask, raw: Any, text: str) -> tuple[Any, str]:
    if not isinstance(raw, str):
        return None, "not a string"
    value = raw.strip()
    flat = re.sub(r"\s+", "", text).upper()
    if ask.validator == "order_id":
        found = readers.order_id(value)
        if found != value.upper():
            return None, "not an order number"
        return (found, "") if found in flat else (None, "not written in the message")
    if ask.validator == "phone_last4":
        if value not in readers.standalone_four_digits(text):
            return None, "not four digits standing alone in the message"
        return value, ""
    if ask.validator in ("reason", "choice"):
        allowed = readers.REASONS if ask.validator == "reason" else ask.options["choices"]
        return (value, "") if value in allowed else (None, "not one of the allowed values")
    if ask.validator == "pattern":
        found = readers.pattern(value, ask.options["regex"])
        if found != value.upper():
            return None, "does not match the expected format"
        return (found, "") if found in flat else (None, "not written in the message")
    if len(value) < int(ask.options.get("min_length", 1)):
        return None, "too short"
    return (value, "") if value in text else (None, "not written in the message")


class ModelSlotReader:
    """A ``SlotReader`` over a ``ChatModel`` with function calling. Runs the (async) model from the
    engine's worker thread on the caller's event loop; called from plain code, on a loop of its own.
    A failed call proposes nothing: the deterministic path carries on. ``record`` (optional) receives
    each call — what the model received and returned, and what the engine kept — for the audit log."""

    def __init__(self, model: ChatModel, *, record: Callable[[dict[str, Any]], object] | None = None) -> None:
        self.model = model
        self.record = record

    def read(self, spec: FlowSpec, text: str, asked: str | None) -> Proposal:
        tool = flow_tool(spec)
        request = ChatRequest(
            _messages(spec, tool, text, asked),
            max_tokens=200,
            temperature=0,
            tools=[tool],
            tool_choice=tool.name,
        )
        try:
            reply = _run(self.model, request)
        except KefuError as exc:
            log.warning("slot reading by the model failed (%s); using the deterministic readers", exc.message)
            return Proposal(rejected={WHOLE_CALL: "the model call failed"})
        calls = [c for c in reply.tool_calls if c.name == tool.name]
        proposal = (
            check_arguments(spec, calls[0].arguments, text)
            if calls
            else Proposal(rejected={WHOLE_CALL: f"the model did not call {tool.name}"})
        )
        if self.record is not None:
            self.record(_record(spec, request, reply.tool_calls, proposal))
        return proposal


def _messages(spec: FlowSpec, tool: Tool, text: str, asked: str | None) -> list[Message]:
    system = (
        f"你在「{spec.description or spec.name}」的办理流程里提取信息：只填写顾客这条消息里明确写出的内容，"
        f"调用 {tool.name}；没写到的字段不要填，不要猜测或编造。是否办理由系统按规则决定，不由你决定。\n"
        f"You extract facts from one customer message and call {tool.name} with only what it states; "
        "leave out anything it does not say and never guess. You decide nothing."
    )
    if asked:
        system += f"\n刚才问顾客的是 / The customer was just asked: {asked}"
    return [Message("system", system), Message("user", text)]


def _run(model: ChatModel, request: ChatRequest) -> Reply:
    try:
        anyio.from_thread.check_cancelled()
    except RuntimeError:  # not an AnyIO worker thread: no caller's loop to borrow
        return asyncio.run(model.complete(request))
    return anyio.from_thread.run(model.complete, request)


def _record(
    spec: FlowSpec, request: ChatRequest, calls: list[ToolCall], proposal: Proposal
) -> dict[str, Any]:
    return {
        "purpose": "slot_filling",
        "flow": spec.name,
        "messages": [{"role": m.role, "content": m.content} for m in request.messages],
        "tool": request.tools[0].name,
        "tool_calls": [{"name": c.name, "arguments": _masked(c.arguments)} for c in calls],
        "accepted": sorted(proposal.values),
        "rejected": proposal.rejected,
    }


def _masked(arguments: str) -> str:
    """The arguments with the phone digits hidden, as in the order system's audit records."""
    try:
        parsed = json.loads(arguments)
    except ValueError:
        return arguments
    if isinstance(parsed, dict) and "phone_last4" in parsed:
        parsed["phone_last4"] = "****"
        return json.dumps(parsed, ensure_ascii=False)
    return arguments


def slot_reader_for(
    settings: Settings, model: ChatModel | None, record: Callable[[dict[str, Any]], object] | None = None
) -> ModelSlotReader | None:
    """The reader ``KEFU_LLM_TOOLS`` asks for: "auto" → for KEFU_LLM=openai; "on" → always (a model
    without function calling is a ConfigError); "off" → none."""
    mode = settings.llm_tools
    if mode == "off" or (mode == "auto" and settings.llm != "openai"):
        return None
    if model is None or not model.supports_tools:
        if mode == "on":
            name = model.describe() if model is not None else "no model (KEFU_LLM=none)"
            raise ConfigError(
                f"KEFU_LLM_TOOLS=on needs a model with function calling, but the configured one is {name}; "
                "use KEFU_LLM=openai with a model that supports tools, or set KEFU_LLM_TOOLS=auto"
            )
        return None
    return ModelSlotReader(model, record=record)
