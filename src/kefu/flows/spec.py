"""Flows as data: load a YAML flow, check every step, and build immutable step objects.

A flow file::

    name: cancel_order
    priority: 30                     # detect_flow tries higher priorities first
    requests: [我要取消, cancel my order]   # the customer's own request: starts the flow, even in a question
    triggers: [取消订单]                # the topic: starts the flow unless asked ABOUT the policy
    start: ask_order
    steps:
      ask_order:   {ask: order_id, prompt: {zh: ..., en: ...}, next: get_order}
      get_order:   {call: orders.get, next: ask_phone, on_not_found: unknown_order}
      check:       {decide: [{when: "order.status in [pending, paid]", goto: confirm}], otherwise: too_late}
      done:        {say: {zh: "已取消订单 {slots.order_id}", en: ...}, next: finish}
      finish:      {end: completed, result: cancelled}
      too_late:    {handoff: shipped_order, say: {zh: ..., en: ...}}

Step kinds: ``ask`` (slot; ``validator`` order_id | phone_last4 | reason | choice | yes_no | photos |
pattern | text; ``prompt``; optional ``invalid``, ``choices``, ``regex``, ``min_length``, ``max_tries``,
``on_exhausted``), ``call`` (an action of kefu.flows.actions; ``args``; ``on_not_found``, ``on_rejected``,
``on_false``), ``decide`` (branches ``when`` → ``goto``, then ``otherwise``), ``say``, ``handoff`` (a
reason), ``end`` (completed | abandoned; optional ``result``). ``say``, ``decide`` and ``call`` steps may
``clear`` slots once they have run (e.g. forget a wrong phone number before asking again).
Every mistake is a ConfigError naming the file and the step.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Literal

import yaml

from kefu.errors import ConfigError
from kefu.flows import slots as slot_readers
from kefu.flows.actions import ACTIONS
from kefu.flows.expr import Condition, ExprError, check_path, parse_condition, template_paths

DEMO_DIR = Path(__file__).parent / "demo"
DEFAULT_MAX_TRIES = 3


@dataclass(frozen=True)
class Text:
    zh: str
    en: str

    def get(self, lang: str) -> str:
        return self.en if lang == "en" else self.zh


@dataclass(frozen=True)
class Ask:
    name: str
    slot: str
    validator: str
    prompt: Text
    next: str
    invalid: Text | None = None
    options: Mapping[str, Any] = field(default_factory=dict)
    max_tries: int = DEFAULT_MAX_TRIES
    on_exhausted: str | None = None
    clear: tuple[str, ...] = ()


@dataclass(frozen=True)
class Call:
    name: str
    action: str
    next: str
    args: Mapping[str, Any] = field(default_factory=dict)
    on_not_found: str | None = None
    on_rejected: str | None = None
    on_false: str | None = None
    clear: tuple[str, ...] = ()


@dataclass(frozen=True)
class Branch:
    when: tuple[Condition, ...]
    goto: str


@dataclass(frozen=True)
class Decide:
    name: str
    branches: tuple[Branch, ...]
    otherwise: str
    clear: tuple[str, ...] = ()


@dataclass(frozen=True)
class Say:
    name: str
    message: Text
    next: str
    clear: tuple[str, ...] = ()


@dataclass(frozen=True)
class Handoff:
    name: str
    reason: str
    message: Text | None = None
    clear: tuple[str, ...] = ()


@dataclass(frozen=True)
class End:
    name: str
    outcome: Literal["completed", "abandoned"] = "completed"
    message: Text | None = None
    result: str | None = None
    clear: tuple[str, ...] = ()


Step = Ask | Call | Decide | Say | Handoff | End


@dataclass(frozen=True)
class FlowSpec:
    name: str
    start: str
    steps: Mapping[str, Step]
    source: str
    triggers: tuple[str, ...] = ()
    priority: int = 0
    description: str = ""
    requests: tuple[str, ...] = ()

    def step(self, name: str) -> Step:
        return self.steps[name]

    def asks(self) -> list[Ask]:
        return [s for s in self.steps.values() if isinstance(s, Ask)]


_KINDS = ("ask", "call", "decide", "say", "handoff", "end")
_ALLOWED = {
    "ask": {"ask", "validator", "prompt", "invalid", "choices", "regex", "min_length", "max_tries", "on_exhausted", "next"},
    "call": {"call", "args", "next", "on_not_found", "on_rejected", "on_false", "clear"},
    "decide": {"decide", "otherwise", "clear"},
    "say": {"say", "next", "clear"},
    "handoff": {"handoff", "say"},
    "end": {"end", "say", "result"},
}  # fmt: skip
_TOP = {"name", "description", "priority", "triggers", "requests", "start", "steps"}


class _Reader:
    """Builds one flow's steps, failing with the file and step in every message."""

    def __init__(self, source: str) -> None:
        self.source = source
        self.step = "(top level)"

    def fail(self, problem: str) -> ConfigError:
        return ConfigError(
            f"flow file {self.source}, step {self.step!r}: {problem} — fix the YAML and restart"
        )

    def text(self, raw: Any, what: str) -> Text:
        if isinstance(raw, str):
            raw = {"zh": raw, "en": raw}
        if not isinstance(raw, Mapping) or not all(isinstance(raw.get(k), str) for k in ("zh", "en")):
            raise self.fail(f"`{what}` needs both texts, e.g. {{zh: 请问…, en: Could you…}}")
        try:
            for lang in ("zh", "en"):
                template_paths(raw[lang])
        except ExprError as exc:
            raise self.fail(f"`{what}`: {exc}") from exc
        return Text(zh=raw["zh"], en=raw["en"])

    def name(self, raw: Mapping[str, Any], key: str, *, required: bool = True) -> str | None:
        value = raw.get(key)
        if value is None and not required:
            return None
        if not isinstance(value, str) or not value:
            raise self.fail(f"`{key}` must name a step")
        return value

    def step_from(self, name: str, raw: Any) -> Step:
        self.step = name
        if not isinstance(raw, Mapping):
            raise self.fail("a step must be a mapping with one of " + ", ".join(_KINDS))
        kinds = [k for k in _KINDS if k in raw]
        if len(kinds) == 2 and kinds[0] == "say" and kinds[1] in ("handoff", "end"):
            kinds = kinds[1:]  # a closing step's `say` is its message
        if len(kinds) != 1:
            raise self.fail(f"a step needs exactly one of {', '.join(_KINDS)}; found {kinds or 'none'}")
        kind = kinds[0]
        unknown = set(raw) - _ALLOWED[kind]
        if unknown:
            raise self.fail(f"unknown key(s) {sorted(unknown)} for a `{kind}` step")
        clear = raw.get("clear") or []
        if not isinstance(clear, list) or not all(isinstance(c, str) for c in clear):
            raise self.fail("`clear` must be a list of slot names")
        built: Step = getattr(self, f"_{kind}")(name, raw)
        return _with_clear(built, tuple(clear))

    def _ask(self, name: str, raw: Mapping[str, Any]) -> Ask:
        slot = raw["ask"]
        validator = raw.get("validator", slot)
        if validator not in slot_readers.VALIDATORS:
            known = ", ".join(sorted(slot_readers.VALIDATORS))
            raise self.fail(f"unknown validator {validator!r}; use one of {known}")
        options = self._options(validator, raw)
        tries = raw.get("max_tries", DEFAULT_MAX_TRIES)
        if not isinstance(tries, int) or tries < 1:
            raise self.fail("`max_tries` must be a whole number of at least 1")
        invalid = self.text(raw["invalid"], "invalid") if "invalid" in raw else None
        next_step = self.name(raw, "next")
        assert next_step is not None
        return Ask(name, str(slot), validator, self.text(raw.get("prompt"), "prompt"), next_step, invalid,
                   options, tries, self.name(raw, "on_exhausted", required=False))  # fmt: skip

    def _options(self, validator: str, raw: Mapping[str, Any]) -> dict[str, Any]:
        if validator == "choice":
            choices = raw.get("choices")
            if not isinstance(choices, Mapping) or not choices:
                raise self.fail("a `choice` ask needs `choices`: {value: [synonym, …]}")
            return {"choices": {str(k): [str(w) for w in (v or [])] for k, v in choices.items()}}
        if validator == "pattern":
            try:
                return {"regex": re.compile(str(raw.get("regex")), re.IGNORECASE)}
            except re.error as exc:
                raise self.fail(f"`regex` does not compile: {exc}") from exc
        if validator == "text":
            return {"min_length": int(raw.get("min_length", 1))}
        return {}

    def _call(self, name: str, raw: Mapping[str, Any]) -> Call:
        action = ACTIONS.get(raw["call"])
        if action is None:
            raise self.fail(f"unknown action {raw['call']!r}; use one of {', '.join(sorted(ACTIONS))}")
        args = raw.get("args") or {}
        if not isinstance(args, Mapping):
            raise self.fail("`args` must be a mapping of parameter → slots.x path or literal")
        missing = action.required - set(args)
        extra = set(args) - action.required - action.optional
        if missing or extra:
            raise self.fail(f"`{raw['call']}` needs args {sorted(action.required)}, may take "
                            f"{sorted(action.optional)}; missing {sorted(missing)}, unknown {sorted(extra)}")  # fmt: skip
        if "on_false" in raw and raw["call"] != "orders.verify":
            raise self.fail("`on_false` only applies to orders.verify")
        for value in args.values():
            self._arg(value)
        next_step = self.name(raw, "next")
        assert next_step is not None
        return Call(
            name,
            raw["call"],
            next_step,
            dict(args),
            on_not_found=self.name(raw, "on_not_found", required=False),
            on_rejected=self.name(raw, "on_rejected", required=False),
            on_false=self.name(raw, "on_false", required=False),
        )

    def _arg(self, value: Any) -> None:
        if isinstance(value, str) and "." in value:
            try:
                check_path(value)
            except ExprError as exc:
                raise self.fail(f"argument {value!r}: {exc}") from exc

    def _decide(self, name: str, raw: Mapping[str, Any]) -> Decide:
        branches = raw["decide"]
        if not isinstance(branches, list) or not branches:
            raise self.fail("`decide` must be a list of {when: condition(s), goto: step}")
        built = []
        for branch in branches:
            if not isinstance(branch, Mapping) or set(branch) != {"when", "goto"}:
                raise self.fail("each `decide` branch has exactly `when` and `goto`")
            conditions = branch["when"] if isinstance(branch["when"], list) else [branch["when"]]
            try:
                parsed = tuple(parse_condition(c) for c in conditions)
            except ExprError as exc:
                raise self.fail(str(exc)) from exc
            built.append(Branch(parsed, self.name(branch, "goto") or ""))
        otherwise = self.name(raw, "otherwise")
        assert otherwise is not None
        return Decide(name, tuple(built), otherwise)

    def _say(self, name: str, raw: Mapping[str, Any]) -> Say:
        next_step = self.name(raw, "next")
        assert next_step is not None
        return Say(name, self.text(raw["say"], "say"), next_step)

    def _handoff(self, name: str, raw: Mapping[str, Any]) -> Handoff:
        message = self.text(raw["say"], "say") if "say" in raw else None
        return Handoff(name, str(raw["handoff"]), message)

    def _end(self, name: str, raw: Mapping[str, Any]) -> End:
        outcome = raw["end"]
        if outcome not in ("completed", "abandoned"):
            raise self.fail("`end` must be `completed` or `abandoned`")
        message = self.text(raw["say"], "say") if "say" in raw else None
        result = raw.get("result")
        return End(name, outcome, message, None if result is None else str(result))


def _with_clear(step: Step, clear: tuple[str, ...]) -> Step:
    return replace(step, clear=clear) if clear else step


def parse_flow(raw: Any, source: str) -> FlowSpec:
    reader = _Reader(source)
    if not isinstance(raw, Mapping):
        raise reader.fail("the file must be a mapping with name, start and steps")
    unknown = set(raw) - _TOP
    if unknown or not isinstance(raw.get("name"), str) or not isinstance(raw.get("steps"), Mapping):
        raise reader.fail(f"need `name` and `steps` (a mapping); unknown keys {sorted(unknown)}")
    steps = {str(name): reader.step_from(str(name), body) for name, body in raw["steps"].items()}
    triggers, requests = raw.get("triggers") or [], raw.get("requests") or []
    for key, words in (("triggers", triggers), ("requests", requests)):
        if not isinstance(words, list) or not all(isinstance(w, str) and w for w in words):
            raise reader.fail(f"`{key}` must be a list of words")
    spec = FlowSpec(
        name=raw["name"],
        start=str(raw.get("start", "")),
        steps=steps,
        source=source,
        triggers=tuple(triggers),
        priority=int(raw.get("priority", 0)),
        description=str(raw.get("description", "")),
        requests=tuple(requests),
    )
    _check_graph(spec, reader)
    return spec


def _targets(step: Step) -> list[str]:
    if isinstance(step, Ask):
        return [t for t in (step.next, step.on_exhausted) if t]
    if isinstance(step, Call):
        return [t for t in (step.next, step.on_not_found, step.on_rejected, step.on_false) if t]
    if isinstance(step, Decide):
        return [b.goto for b in step.branches] + [step.otherwise]
    if isinstance(step, Say):
        return [step.next]
    return []


def _check_graph(spec: FlowSpec, reader: _Reader) -> None:
    reader.step = "(top level)"
    if spec.start not in spec.steps:
        raise reader.fail(f"`start` is {spec.start!r}, which is not one of the steps")
    for step in spec.steps.values():
        reader.step = step.name
        for target in _targets(step):
            if target not in spec.steps:
                raise reader.fail(f"goes to {target!r}, which is not a step of this flow")
    seen, todo = set(), [spec.start]
    while todo:
        name = todo.pop()
        if name not in seen:
            seen.add(name)
            todo.extend(_targets(spec.steps[name]))
    for name in spec.steps:
        if name not in seen:
            reader.step = name
            raise reader.fail("no step leads here; remove it or link it")
    calls = [s for s in spec.steps.values() if isinstance(s, Call)]
    if calls and not any(c.action == "orders.verify" for c in calls):
        reader.step = calls[0].name
        raise reader.fail("a flow that reads or changes an order must verify the customer (orders.verify)")


def load_flow(path: Path) -> FlowSpec:
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as exc:
        raise ConfigError(
            f"cannot read flow file {path}: {exc} — check the path and the YAML syntax"
        ) from exc
    return parse_flow(raw, str(path))


def load_flows(paths: Iterable[Path]) -> dict[str, FlowSpec]:
    flows: dict[str, FlowSpec] = {}
    for path in sorted(paths):
        spec = load_flow(path)
        if spec.name in flows:
            raise ConfigError(
                f"flow {spec.name!r} is defined in both {flows[spec.name].source} and {path} — rename one"
            )
        flows[spec.name] = spec
    return flows


def load_dir(directory: Path) -> dict[str, FlowSpec]:
    paths = list(directory.glob("*.yaml")) + list(directory.glob("*.yml"))
    if not paths:
        raise ConfigError(f"no flow files (*.yaml) in {directory} — point KEFU flows at a folder of flows")
    return load_flows(paths)


def demo_flows() -> dict[str, FlowSpec]:
    """The demo shop's flows shipped with the package."""
    return load_dir(DEMO_DIR)
