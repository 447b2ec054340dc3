"""The injection guard's patterns (``injection_patterns.yaml``), loaded, validated and compiled once.

Each pattern is compiled twice: as written, for the normalised message, and "compact" (without
spaces or word boundaries) for words an attacker spelt one letter at a time, which come back as one
run of letters ("ignoreallpreviousinstructions")."""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

import yaml

from kefu.errors import ConfigError

DEFAULT_PATTERNS = Path(__file__).with_name("injection_patterns.yaml")
KINDS = ("override", "reveal_prompt", "role_play", "tool_without_identity", "encoding")
STRONG, WEAK = 1.0, 0.5


@dataclass(frozen=True)
class Rule:
    kind: str
    weight: float
    pattern: re.Pattern[str]
    compact: re.Pattern[str]

    def search(self, text: str, *, compact: bool = False) -> str | None:
        found = (self.compact if compact else self.pattern).search(text)
        return found.group(0) if found else None


@dataclass(frozen=True)
class RuleSet:
    rules: tuple[Rule, ...]
    source_rules: tuple[re.Pattern[str], ...]

    def matches(self, text: str, *, compact: bool = False) -> list[tuple[Rule, str]]:
        """Every rule that matches ``text`` (a normalised view), with the words it matched."""
        found = []
        for rule in self.rules:
            words = rule.search(text, compact=compact)
            if words is not None:
                found.append((rule, words))
        return found

    def source_match(self, text: str) -> str | None:
        """The words of ``text`` that address the model as a knowledge-base sentence, if any."""
        for pattern in self.source_rules:
            found = pattern.search(text)
            if found:
                return found.group(0)
        return None


def _compile(regex: str, where: str, path: Path) -> tuple[re.Pattern[str], re.Pattern[str]]:
    flags = re.IGNORECASE | re.MULTILINE | re.ASCII  # ASCII \b: 「的system prompt」 has a word boundary
    compact = regex.replace(r"\b", "").replace(" ", "")
    try:
        return re.compile(regex, flags), re.compile(compact, flags)
    except re.error as exc:
        raise ConfigError(f"{path}: {where} is not a valid regular expression ({exc}); fix it.") from exc


def _pattern_list(raw: Any, where: str, path: Path) -> list[str]:
    if raw is None:
        return []
    if not isinstance(raw, list) or not all(isinstance(p, str) and p for p in raw):
        raise ConfigError(f"{path}: {where} must be a list of regular expressions (strings); fix the YAML.")
    return list(raw)


def _kind_rules(kind: str, raw: Any, path: Path) -> list[Rule]:
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: kinds.{kind} must be a mapping with `strong:` and `weak:` lists.")
    rules = []
    for level, weight in (("strong", STRONG), ("weak", WEAK)):
        for n, regex in enumerate(_pattern_list(raw.get(level), f"kinds.{kind}.{level}", path)):
            pattern, compact = _compile(regex, f"kinds.{kind}.{level}[{n}]", path)
            rules.append(Rule(kind, weight, pattern, compact))
    return rules


def load_rules(path: Path = DEFAULT_PATTERNS) -> RuleSet:
    """Read and compile an injection-pattern YAML (see ``injection_patterns.yaml`` for the format)."""
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as exc:
        raise ConfigError(
            f"cannot read the injection patterns at {path} ({exc}); fix or restore it."
        ) from exc
    if not isinstance(raw, dict) or not isinstance(raw.get("kinds"), dict):
        raise ConfigError(f"{path}: expected a mapping with a `kinds:` section.")
    unknown = set(raw["kinds"]) - set(KINDS)
    if unknown:
        raise ConfigError(f"{path}: unknown kinds {sorted(unknown)}; use only {', '.join(KINDS)}.")
    rules = [r for kind, body in raw["kinds"].items() for r in _kind_rules(kind, body, path)]
    sources = [
        _compile(regex, f"source[{n}]", path)[0]
        for n, regex in enumerate(_pattern_list(raw.get("source"), "source", path))
    ]
    return RuleSet(tuple(rules), tuple(sources))


@lru_cache(maxsize=1)
def default_rules() -> RuleSet:
    return load_rules(DEFAULT_PATTERNS)
