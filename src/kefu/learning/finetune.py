"""Fine-tuning data out of the kefu database (issue #13 part 5): ``kefu export finetune``.

What becomes an example (one question, one answer; OpenAI chat fine-tuning format)::

    {"messages": [{"role": "system", "content": <the bot's system prompt with its [Sources]>},
                  {"role": "user", "content": <the customer's question, redacted>},
                  {"role": "assistant", "content": <the target answer>}]}

* a **well-rated answer**: a bot answer rated 👍 or 4-5 stars, or any answer of a conversation with
  CSAT >= 4 — unless the answer itself was rated 👎 or 1-3 stars (the answer's own rating wins);
* an **agent-corrected answer**: the first agent reply of ``MIN_AGENT_CHARS`` or more after a bot answer
  of a knowledge kind (faq, grounded, policy, no_answer) — the agent's words become the target for the
  question the bot answered (shorter replies such as 「好的」 are skipped and counted).

Skipped, counted by reason: answers with status ``replaced`` / ``fallback`` or a kind that is not a
knowledge answer (smalltalk, refusals, handoff notices), low-rated answers, targets that still hold a PII
placeholder ([手机号_1]: a model must never learn to write placeholders; placeholders in the *user*
turn are fine — they are the redacted values the model sees in production too), and duplicates by the
normalised (question, answer) pair.

The system prompt is built by ``kefu.dialog.prompts.system_prompt`` (the one the bot uses) from the
answer's stored citations: title, section and the chunk's full text, re-chunked from the documents of
the KB version the citation names (``KbChunkTexts``: the versioned KB store, chunked with the configured
``kb_chunk_chars`` / ``kb_chunk_overlap``); where that version or chunk cannot be found (a KB served from
files, a pruned version, changed chunk settings) the stored snippet — the first ``SNIPPET_CHARS`` — is
used and counted (``snippet_sources``). The conversation summary and earlier turns are not
reproduced: each example is a single turn.

Texts are stored redacted; every output text is run through ``redact_pii`` again (defence in depth).
Train / validation: by a stable hash of the conversation id, so no conversation is in both files.
"""

from __future__ import annotations

import hashlib
import json
import re
import unicodedata
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, Protocol

from sqlalchemy import Engine, select
from sqlalchemy.orm import Session

from kefu.dialog import prompts
from kefu.dialog.language import detect_language
from kefu.errors import KefuError
from kefu.kb.loader import build_pack
from kefu.kb.store import KbStore
from kefu.kb.types import Chunk, Hit
from kefu.kb.versions_schema import parse_version
from kefu.safety.pii import redact_pii
from kefu.storage.models import MessageRow, RatingRow

KNOWLEDGE_KINDS = frozenset({"faq", "grounded", "policy", "no_answer"})
# The same shape as kefu.safety.pii's placeholders: [手机号_1], [EMAIL_2]
PLACEHOLDER = re.compile(r"\[([^\[\]\s_]{1,16})_([0-9]{1,6})\]")
MIN_AGENT_CHARS = 8  # shorter agent replies (「好的」「稍等一下」) answer nothing
SNIPPET_ONLY = "source_snippet_only"
TRAIN_FILE, VALIDATION_FILE = "train.jsonl", "validation.jsonl"


@dataclass
class Example:
    conversation_id: str
    message_id: str
    source: str  # "rated" | "agent"
    messages: list[dict[str, str]]

    def line(self) -> str:
        return json.dumps({"messages": self.messages}, ensure_ascii=False) + "\n"


@dataclass
class FinetuneExport:
    train: list[Example] = field(default_factory=list)
    validation: list[Example] = field(default_factory=list)
    skipped: Counter[str] = field(default_factory=Counter)
    snippet_sources: int = 0  # sources given as the stored snippet: the chunk's KB version not found

    @property
    def examples(self) -> list[Example]:
        return self.train + self.validation

    def summary(self) -> str:
        conversations = {e.conversation_id for e in self.examples}
        by_source = Counter(e.source for e in self.examples)
        skipped = ", ".join(f"{k} {v}" for k, v in sorted(self.skipped.items())) or "none"
        return (
            f"{len(self.examples)} examples ({by_source['rated']} well-rated, {by_source['agent']} "
            f"agent-corrected) from {len(conversations)} conversations: train {len(self.train)}, "
            f"validation {len(self.validation)}; skipped: {skipped}"
            + (
                f"; {self.snippet_sources} sources as their stored snippet (their KB version or chunk "
                "is not in this database's KB store)"
                if self.snippet_sources
                else ""
            )
        )

    def write(self, out: Path) -> tuple[Path, Path]:
        out.mkdir(parents=True, exist_ok=True)
        paths = out / TRAIN_FILE, out / VALIDATION_FILE
        for path, examples in zip(paths, (self.train, self.validation), strict=True):
            with path.open("w", encoding="utf-8") as handle:
                handle.writelines(e.line() for e in examples)
        return paths


class ChunkTexts(Protocol):
    def __call__(self, kb_version: str, chunk_id: str) -> str | None: ...


class KbChunkTexts:
    """A cited chunk's full text in the KB version it was served from, from the versioned KB store
    (chunked as the server chunks it); None when the version or the chunk is not there."""

    def __init__(self, engine: Engine, max_chars: int, overlap: int) -> None:
        self.store, self.max_chars, self.overlap = KbStore(engine), max_chars, overlap
        self._versions: dict[int, dict[str, str]] = {}

    def __call__(self, kb_version: str, chunk_id: str) -> str | None:
        try:
            number = parse_version(kb_version)
        except KefuError:
            return None
        if number not in self._versions:
            try:
                documents = self.store.documents(number)
            except KefuError:  # a version this database does not hold
                documents = []
            pack = build_pack(documents, f"v{number}", self.max_chars, self.overlap)
            self._versions[number] = {chunk.id: chunk.text for chunk in pack.chunks}
        return self._versions[number].get(chunk_id)


def in_validation(conversation_id: str, fraction: float) -> bool:
    """Stable across runs and machines: the first 8 bytes of sha256(conversation id) as a fraction."""
    digest = hashlib.sha256(conversation_id.encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64 < fraction


def _normal(text: str) -> str:
    return " ".join(unicodedata.normalize("NFKC", text).casefold().split())


def _hits(citations: Iterable[dict[str, Any]], texts: ChunkTexts | None, skipped: Counter[str]) -> list[Hit]:
    hits = []
    for cite in sorted(citations, key=lambda c: int(c.get("index") or 0)):
        full = texts(str(cite.get("kb_version") or ""), str(cite.get("chunk_id") or "")) if texts else None
        if full is None:
            skipped[SNIPPET_ONLY] += 1  # a note, not a skip: moved to snippet_sources
        chunk = Chunk(
            id=str(cite.get("chunk_id") or ""),
            doc_id=str(cite.get("doc_id") or ""),
            kind="faq" if cite.get("kind") == "faq" else "doc",
            title=str(cite.get("title") or ""),
            section=str(cite.get("section") or ""),
            text=full if full is not None else str(cite.get("snippet") or ""),
            source=str(cite.get("source") or ""),
        )
        hits.append(Hit(chunk, score=float(cite.get("score") or 0.0), dense=0.0, sparse=0.0))
    return hits


def _clean(text: str) -> str:
    return redact_pii(text.strip()).text


def _ratings(session: Session, since: datetime | None) -> tuple[dict[str, bool], set[str]]:
    """(message id → well rated?, conversation ids with CSAT >= 4); the answer's own rating wins."""
    verdict: dict[str, bool] = {}
    happy: set[str] = set()
    query = select(RatingRow).order_by(RatingRow.created_at, RatingRow.id)
    if since is not None:
        query = query.where(RatingRow.created_at >= since)
    for rating in session.scalars(query):
        if rating.kind == "csat":
            if rating.score >= 4:
                happy.add(rating.conversation_id)
        elif rating.message_id is not None:
            good = rating.score == 1 if rating.kind == "thumbs" else rating.score >= 4
            # a 👎 next to 5 stars (or the reverse) is not a clear signal: any low rating excludes
            verdict[rating.message_id] = verdict.get(rating.message_id, True) and good
    return verdict, happy


def collect(
    engine: Engine,
    *,
    shop: str,
    since: datetime | None = None,
    validation: float = 0.1,
    texts: ChunkTexts | None = None,
) -> FinetuneExport:
    """Every example from conversations with a rating given since ``since`` (or an agent reply);
    ``texts`` finds a cited chunk's full text (else the stored snippet is the source)."""
    if not 0.0 <= validation < 1.0:
        raise ValueError(f"--validation must be in [0, 1), got {validation}")
    result = FinetuneExport()
    seen: set[tuple[str, str]] = set()
    with Session(engine) as session:
        verdict, happy = _ratings(session, since)
        agent_convs = select(MessageRow.conversation_id).where(MessageRow.role == "agent")
        if since is not None:
            agent_convs = agent_convs.where(MessageRow.created_at >= since)
        conversations = (
            set(session.scalars(agent_convs))
            | happy
            | set(session.scalars(select(MessageRow.conversation_id).where(MessageRow.id.in_(verdict))))
        )
        for conversation_id in sorted(conversations):
            rows = list(
                session.scalars(
                    select(MessageRow)
                    .where(MessageRow.conversation_id == conversation_id)
                    .order_by(MessageRow.seq)
                )
            )
            for example in _examples(rows, verdict, conversation_id in happy, shop, texts, result.skipped):
                key = (_normal(example.messages[1]["content"]), _normal(example.messages[2]["content"]))
                if key in seen:
                    result.skipped["duplicate"] += 1
                    continue
                seen.add(key)
                split = in_validation(conversation_id, validation)
                (result.validation if split else result.train).append(example)
    result.snippet_sources = result.skipped.pop(SNIPPET_ONLY, 0)
    return result


def _examples(
    rows: list[MessageRow],
    verdict: dict[str, bool],
    happy: bool,
    shop: str,
    texts: ChunkTexts | None,
    skipped: Counter[str],
) -> Iterable[Example]:
    question: MessageRow | None = None
    answered: tuple[MessageRow, MessageRow] | None = None  # (question, bot answer) an agent may correct
    for row in rows:
        if row.role == "user":
            question = row
            continue
        if row.role == "agent":
            if answered is not None and len(_normal(row.content).replace(" ", "")) < MIN_AGENT_CHARS:
                skipped["agent_reply_too_short"] += 1  # 「好的」「稍等」: wait for the reply that answers
                continue
            if answered is not None:
                asked, bot = answered
                answered = None
                example = _example(asked, bot, row.content, "agent", shop, texts, skipped)
                if example is not None:
                    yield example
            continue
        if row.role != "assistant" or question is None:
            continue
        knowledge = row.answer_kind in KNOWLEDGE_KINDS and row.status not in ("replaced", "fallback")
        if knowledge:
            answered = (question, row)
        rated = verdict.get(row.id)
        if rated is None and not happy:
            continue  # neither rated nor in a well-rated conversation: not an example
        if not knowledge:
            skipped[f"status_{row.status}" if row.status != "ok" else f"kind_{row.answer_kind}"] += 1
        elif rated is False:
            skipped["low_rated"] += 1
        else:
            example = _example(question, row, row.content, "rated", shop, texts, skipped)
            if example is not None:
                yield example


def _example(
    question: MessageRow,
    bot: MessageRow,
    target: str,
    source: str,
    shop: str,
    texts: ChunkTexts | None,
    skipped: Counter[str],
) -> Example | None:
    answer = _clean(target)
    if not answer:
        skipped["empty_answer"] += 1
        return None
    if PLACEHOLDER.search(answer):
        skipped["pii_placeholder_in_answer"] += 1
        return None
    asked = _clean(question.content)
    lang = detect_language(asked)
    system = prompts.system_prompt(shop, lang, _hits(bot.citations or [], texts, skipped), "")
    messages = [
        {"role": "system", "content": _clean(system)},
        {"role": "user", "content": asked},
        {"role": "assistant", "content": answer},
    ]
    return Example(bot.conversation_id, bot.id, source, messages)
