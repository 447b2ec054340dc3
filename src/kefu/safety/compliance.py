"""Compliance disclaimers as data: which regulatory notice goes under which answer.

Rules live in ``compliance.yaml`` (or an operator's copy named by ``KEFU_COMPLIANCE_RULES``). Each rule
belongs to a domain ("ecommerce", "finance", …); only the domains a deployment enables ever fire. A rule
fires when *any* of its ``when`` alternatives holds, and an alternative holds when *all* of its
conditions do:

    question: [phrases]   a phrase occurs in the customer's (redacted) question
    answer:   [phrases]   a phrase occurs in the answer text
    text:     [phrases]   a phrase occurs in either
    citation: {source: [globs], about: [phrases], tags: [labels]}
                          one cited chunk matches every key given: its source (or doc id) matches a
                          glob, its title or heading path holds a phrase, it carries one of the tags

Chinese phrases match as written after NFKC (full-width → half-width); phrases without CJK match whole
words, ignoring case. ``ignore`` phrases are blanked out before matching, so 「保险丝」 never reads as
「保险」. When an answer marks its sources ("[1]"), only those citations count as cited. Matching is
deterministic: disclaimers come out in file order, each text once.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from fnmatch import fnmatchcase
from pathlib import Path
from typing import Any

import yaml

from kefu.errors import ConfigError

DEFAULT_RULES = Path(__file__).with_name("compliance.yaml")
LANGS = ("zh", "en")
TEXT_KEYS = ("question", "answer", "text")
CITATION_KEYS = ("source", "about", "tags")
RULE_KEYS = ("id", "domain", "when", "ignore", "text")

_CJK = re.compile(r"[\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff]")
_MARKER = re.compile(r"\[(\d+(?:\s*[,，]\s*\d+)*)\]")


@dataclass(frozen=True)
class Disclaimer:
    rule_id: str
    text: str


def normalize(text: str) -> str:
    return unicodedata.normalize("NFKC", text)


@dataclass(frozen=True)
class Phrases:
    """A set of phrases: CJK ones as substrings, the others as whole words ignoring case."""

    cjk: tuple[str, ...]
    words: re.Pattern[str] | None

    @classmethod
    def of(cls, phrases: list[str]) -> Phrases:
        cjk = tuple(p for p in phrases if _CJK.search(p))
        latin = sorted((p for p in phrases if not _CJK.search(p)), key=len, reverse=True)
        alternatives = "|".join(re.escape(p) for p in latin)
        words = (
            re.compile(rf"(?<![A-Za-z0-9])(?:{alternatives})(?![A-Za-z0-9])", re.IGNORECASE)
            if latin
            else None
        )
        return cls(cjk, words)

    def found_in(self, text: str) -> bool:
        return any(p in text for p in self.cjk) or bool(self.words and self.words.search(text))

    def blank_out(self, text: str) -> str:
        for phrase in self.cjk:
            text = text.replace(phrase, " ")
        return self.words.sub(" ", text) if self.words else text


@dataclass(frozen=True)
class CitationMatch:
    sources: tuple[str, ...] = ()
    about: Phrases | None = None
    tags: frozenset[str] = frozenset()

    def matches(self, cite: dict[str, Any]) -> bool:
        where = (str(cite.get("source") or ""), str(cite.get("doc_id") or ""))
        if self.sources and not any(fnmatchcase(w, g) for w in where for g in self.sources):
            return False
        heading = normalize(f"{cite.get('title') or ''} > {cite.get('section') or ''}")
        if self.about is not None and not self.about.found_in(heading):
            return False
        return not self.tags or bool(self.tags & {str(t) for t in cite.get("tags") or ()})


@dataclass(frozen=True)
class Condition:
    """One ``when`` alternative: every condition given must hold."""

    question: Phrases | None = None
    answer: Phrases | None = None
    text: Phrases | None = None
    citation: CitationMatch | None = None

    def holds(self, question: str, answer: str, cited: list[dict[str, Any]]) -> bool:
        checks = [
            self.question is None or self.question.found_in(question),
            self.answer is None or self.answer.found_in(answer),
            self.text is None or self.text.found_in(question) or self.text.found_in(answer),
            self.citation is None or any(self.citation.matches(c) for c in cited),
        ]
        return all(checks)


@dataclass(frozen=True)
class ComplianceRule:
    id: str
    domain: str
    when: tuple[Condition, ...]
    ignore: Phrases
    texts: dict[str, str]  # lang -> disclaimer

    def fires(self, question: str, answer: str, cited: list[dict[str, Any]]) -> bool:
        question, answer = self.ignore.blank_out(question), self.ignore.blank_out(answer)
        return any(c.holds(question, answer, cited) for c in self.when)

    def disclaimer(self, lang: str) -> Disclaimer:
        return Disclaimer(self.id, self.texts.get(lang) or self.texts["zh"])


def cited_only(answer: str, citations: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The citations the answer refers to by ``[n]``; all of them when it refers to none."""
    numbers = {int(n) for group in _MARKER.findall(answer) for n in re.split(r"\s*[,，]\s*", group)}
    referred = [c for c in citations if c.get("index") in numbers]
    return referred or citations


class CompliancePolicy:
    """The rules of the enabled domains, in file order."""

    def __init__(self, rules: list[ComplianceRule], domains: list[str]) -> None:
        self.domains = tuple(domains)
        self.rules = tuple(r for r in rules if r.domain in self.domains)

    @classmethod
    def load(cls, path: Path | None = None, domains: list[str] | None = None) -> CompliancePolicy:
        """Read ``path`` (default: the bundled file); ``domains`` overrides the file's ``enabled`` list."""
        path = path or DEFAULT_RULES
        rules, enabled = parse_rules(path)
        chosen = list(enabled if domains is None else domains)
        known = sorted({r.domain for r in rules})
        unknown = [d for d in chosen if d not in known]
        if unknown:
            raise ConfigError(
                f"{path}: compliance domain {', '.join(map(repr, unknown))} has no rules; "
                f"enable one of {', '.join(known) or '(none defined)'}, or add rules for it."
            )
        return cls(rules, chosen)

    def disclaimers(
        self, *, question: str, answer: str, citations: list[dict[str, Any]], lang: str
    ) -> list[Disclaimer]:
        """The disclaimers this answer must carry, in rule order, each text once."""
        question, answer = normalize(question), normalize(answer)
        cited = cited_only(answer, citations)
        found: list[Disclaimer] = []
        for rule in self.rules:
            if rule.fires(question, answer, cited):
                notice = rule.disclaimer(lang)
                if all(notice.text != d.text for d in found):
                    found.append(notice)
        return found


def parse_rules(path: Path) -> tuple[list[ComplianceRule], list[str]]:
    """The rules and the ``enabled`` domains of a compliance YAML; ``ConfigError`` names the bad key."""
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as exc:
        raise ConfigError(
            f"cannot read the compliance rules at {path} ({exc}); fix the file or point "
            "KEFU_COMPLIANCE_RULES at a valid one."
        ) from exc
    if not isinstance(raw, dict) or not isinstance(raw.get("rules"), list):
        raise ConfigError(
            f"{path}: expected a mapping with a `rules:` list (see the bundled compliance.yaml)."
        )
    _only(raw, ("enabled", "rules"), "top level", path)
    enabled = _strings(raw.get("enabled") or [], "enabled", path)
    rules = [_rule(body, f"rules[{i}]", path) for i, body in enumerate(raw["rules"])]
    seen: set[str] = set()
    for rule in rules:
        if rule.id in seen:
            raise ConfigError(f"{path}: rule id `{rule.id}` is used twice; give each rule its own id.")
        seen.add(rule.id)
    return rules, enabled


def _only(raw: dict[str, Any], allowed: tuple[str, ...], where: str, path: Path) -> None:
    extra = [str(k) for k in raw if k not in allowed]
    if extra:
        raise ConfigError(f"{path}: {where}: unknown key `{extra[0]}`; use only {', '.join(allowed)}.")


def _strings(raw: Any, where: str, path: Path) -> list[str]:
    if isinstance(raw, str):
        raw = [raw]
    if not isinstance(raw, list) or not all(isinstance(t, str) and t.strip() for t in raw):
        raise ConfigError(f"{path}: {where} must be a list of non-empty strings; fix the YAML.")
    return [normalize(t).strip() for t in raw]


def _phrases(raw: Any, where: str, path: Path) -> Phrases:
    phrases = _strings(raw, where, path)
    if not phrases:
        raise ConfigError(f"{path}: {where} is empty; list at least one phrase or remove the key.")
    return Phrases.of(phrases)


def _citation(raw: Any, where: str, path: Path) -> CitationMatch:
    if not isinstance(raw, dict) or not raw:
        raise ConfigError(f"{path}: {where} must be a mapping with source, about and/or tags.")
    _only(raw, CITATION_KEYS, where, path)
    return CitationMatch(
        sources=tuple(_strings(raw.get("source") or [], f"{where}.source", path)),
        about=_phrases(raw["about"], f"{where}.about", path) if "about" in raw else None,
        tags=frozenset(_strings(raw.get("tags") or [], f"{where}.tags", path)),
    )


def _condition(raw: Any, where: str, path: Path) -> Condition:
    if not isinstance(raw, dict) or not raw:
        raise ConfigError(f"{path}: {where} must be a mapping of question, answer, text and/or citation.")
    _only(raw, (*TEXT_KEYS, "citation"), where, path)
    texts = {k: _phrases(raw[k], f"{where}.{k}", path) for k in TEXT_KEYS if k in raw}
    citation = _citation(raw["citation"], f"{where}.citation", path) if "citation" in raw else None
    return Condition(**texts, citation=citation)


def _texts(raw: Any, where: str, path: Path) -> dict[str, str]:
    if not isinstance(raw, dict) or not all(
        isinstance(raw.get(lang), str) and raw[lang].strip() for lang in LANGS
    ):
        raise ConfigError(f"{path}: {where} needs a non-empty `zh` and `en` disclaimer; add them.")
    return {str(k): str(v).strip() for k, v in raw.items()}


def _rule(raw: Any, where: str, path: Path) -> ComplianceRule:
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: {where} must be a mapping with id, domain, when and text.")
    _only(raw, RULE_KEYS, where, path)
    for key in ("id", "domain"):
        if not isinstance(raw.get(key), str) or not raw[key].strip():
            raise ConfigError(f"{path}: {where}.{key} is missing; give the rule a non-empty {key}.")
    where = f"{where} ({raw['id'].strip()})"
    when = raw.get("when")
    if not isinstance(when, list) or not when:
        raise ConfigError(f"{path}: {where}.when must be a non-empty list of alternatives; fix the YAML.")
    ignore = _strings(raw.get("ignore") or [], f"{where}.ignore", path)
    return ComplianceRule(
        id=raw["id"].strip(),
        domain=raw["domain"].strip(),
        when=tuple(_condition(c, f"{where}.when[{i}]", path) for i, c in enumerate(when)),
        ignore=Phrases.of(ignore),
        texts=_texts(raw.get("text"), f"{where}.text", path),
    )


def append_disclaimers(answer: str, disclaimers: list[Disclaimer], lang: str) -> str:
    """``answer`` + ``"\n\n"`` + each disclaimer not already in it. The result always starts with
    ``answer``, so a streaming caller sends ``result[len(answer):]`` as one more piece.

    ``lang`` is the reply's language; both languages currently use the same layout."""
    text = answer
    for notice in disclaimers:
        if notice.text and notice.text not in text:
            text += f"\n\n{notice.text}" if text else notice.text
    return text
