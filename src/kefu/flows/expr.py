"""The small, closed language of flow conditions and message templates — parsed, never ``eval``-ed.

A condition is ``<path> <op> <literal>`` or a bare ``<path>`` (truthy), e.g.
``facts.days_since_delivery <= 7``, ``order.status in [pending, paid]``, ``slots.reason == quality``.
Paths start with one of ROOTS; literals are read as YAML (numbers, words, lists, true/false/null).
A template is text with ``{path}`` placeholders, e.g. ``退货单号：{result.return_id}``.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import yaml

ROOTS = frozenset({"slots", "order", "facts", "result"})
OPERATORS = ("not in", "==", "!=", "<=", ">=", "<", ">", "in")

_CONDITION = re.compile(r"^\s*([a-z_][a-z0-9_.]*)\s*(?:(not in|==|!=|<=|>=|<|>|in)\s*(.+?))?\s*$")
_PLACEHOLDER = re.compile(r"\{([a-z_][a-z0-9_.]*)\}")


class ExprError(ValueError):
    """A condition or template that cannot be parsed; the loader turns it into a ConfigError."""


class MissingValue(LookupError):
    """A path that names nothing in the current context."""


@dataclass(frozen=True)
class Condition:
    path: str
    op: str | None  # None: the value at ``path`` is truthy
    value: Any = None

    def holds(self, context: Mapping[str, Any]) -> bool:
        left = lookup(context, self.path, missing_ok=True)
        return compare(left, self.op, self.value)


def parse_condition(text: str) -> Condition:
    found = _CONDITION.match(str(text))
    if found is None:
        raise ExprError(
            f"cannot read the condition {text!r}; write it as `path op value`, e.g. `slots.reason == quality`"
        )
    path, op, literal = found.groups()
    check_path(path)
    if op is None:
        return Condition(path, None)
    try:
        value = yaml.safe_load(literal)
    except yaml.YAMLError as exc:
        raise ExprError(f"cannot read the value {literal!r} in {text!r}: {exc}") from exc
    if op in ("in", "not in") and not isinstance(value, list):
        raise ExprError(f"`{op}` needs a list such as [pending, paid] in {text!r}")
    return Condition(path, op, value)


def compare(left: Any, op: str | None, right: Any) -> bool:
    if op is None:
        return bool(left)
    if op == "==":
        return bool(left == right)
    if op == "!=":
        return bool(left != right)
    if op == "in":
        return left in right
    if op == "not in":
        return left not in right
    if left is None or right is None or isinstance(left, bool) != isinstance(right, bool):
        return False  # an unknown fact (e.g. no delivery date) satisfies no ordering
    try:
        return bool({"<": left < right, "<=": left <= right, ">": left > right, ">=": left >= right}[op])
    except TypeError:
        return False


def check_path(path: str) -> None:
    if path.split(".", 1)[0] not in ROOTS:
        raise ExprError(f"the path {path!r} must start with one of {', '.join(sorted(ROOTS))}")


def lookup(context: Mapping[str, Any], path: str, *, missing_ok: bool = False) -> Any:
    value: Any = context
    for part in path.split("."):
        if isinstance(value, Mapping) and part in value:
            value = value[part]
        elif missing_ok:
            return None
        else:
            raise MissingValue(path)
    return value


def template_paths(template: str) -> list[str]:
    paths = _PLACEHOLDER.findall(template)
    for path in paths:
        check_path(path)
    return paths


def render(template: str, context: Mapping[str, Any]) -> str:
    def value(found: re.Match[str]) -> str:
        got = lookup(context, found.group(1))
        if isinstance(got, list):
            return "、".join(str(item) for item in got)
        return "" if got is None else str(got)

    return _PLACEHOLDER.sub(value, template)
