"""The knowledge-gap loop (issue #13 part 4): questions the bot could not answer that a human agent
then answered become suggested FAQ entries; an admin approves (or edits, or rejects) them, and an
approval lands as a new knowledge-base version with its source recorded.

* **Finding** (``GapFinder.scan``): in the stored conversations, a failed bot answer (the failure
  finder's cases, ``kefu.reports.failures``: "not in the KB", fallback, replaced, a handoff — a handoff
  after a bot answer blames that answer's question) followed by an agent's reply. The question is the
  customer's stored (redacted) text; the answer is the agent's reply redacted with the conversation's
  placeholders (agent replies are stored as written). Replies that still hold a placeholder
  (「[手机号_1]」: about one customer, not knowledge), or are short or generic (「好的」「稍等」) are skipped;
  the first good reply after the failure is taken.
* **Dedup**: a question equal once normalised (``faq_check.normalize_text``) to a pending suggestion's,
  or with query-embedding cosine ≥ ``SIMILAR`` (the KB's embedder), is not suggested again; nor is one
  whose reply was already suggested (``answer_message_id`` is unique).
* **Conflicts**: ``faq_check.find_faq_conflicts`` over the FAQ documents among the question's best
  search hits (head version) plus the candidate: the same question (or a paraphrase at cosine ≥
  ``SIMILAR``) with a different answer marks it "conflict" with that FAQ ("doc_id#faq_id"); with the
  same answer the KB already knows it (skipped).
* **Approval** writes one FAQ document ``learned/<suggestion id>`` whose ``source`` is
  ``agent:<agent id>/conversation:<conversation id>`` through ``KnowledgeService.put`` (a new version,
  author ``admin``), after checking the final text for conflicts again.
* **Hit counts** (``hit_counts``) are computed on demand from the stored messages, the failure finder
  and the ratings table — not kept as counters — per chunk and per document.
"""

from __future__ import annotations

import hashlib
import logging
import re
import uuid
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import numpy as np
from sqlalchemy import Engine, MetaData, Table, insert, inspect, select, update
from sqlalchemy.exc import IntegrityError

from kefu.errors import Conflict, InvalidInput, NotFound
from kefu.kb.documents import FaqEntry, SourceDocument
from kefu.kb.faq_check import find_faq_conflicts, normalize_text
from kefu.reports.failures import _conversation_failures, find_failures
from kefu.storage.models import FaqSuggestionRow, HandoffRow, MessageRow

if TYPE_CHECKING:
    from kefu.kb.service import KnowledgeService
    from kefu.kb.types import Embedder

log = logging.getLogger("kefu.kb.gaps")

CANDIDATES = 10  # search hits whose FAQ documents a suggestion is checked against
SIMILAR = 0.95  # query-embedding cosine at which two questions are the same (faq_check's default)
MIN_ANSWER_CHARS = 8  # shorter replies (after normalising) are not knowledge
LEARNED = "learned"  # approved suggestions become FAQ documents learned/<id>
STATUSES = ("pending", "conflict", "approved", "rejected")
OPEN = ("pending", "conflict")
GENERIC = {  # replies that answer nothing, normalised
    normalize_text(t)
    for t in (
        "好的", "好", "嗯", "嗯嗯", "收到", "稍等", "请稍等", "稍等一下", "好的，请稍等", "您好",
        "您好，请问有什么可以帮您", "在的", "在", "谢谢", "不客气", "没问题", "明白", "了解",
        "我帮您查一下", "我帮您看一下", "ok", "okay", "thanks", "one moment", "sure",
    )
}  # fmt: skip
_PLACEHOLDER = re.compile(r"\[[^\[\]\s_]{1,16}_[0-9]{1,6}\]")  # kefu.safety.pii's placeholders


@dataclass(frozen=True)
class Suggestion:
    id: str
    question: str
    answer: str
    conversation_id: str
    question_message_id: str
    answer_message_id: str
    agent_id: str | None
    status: str
    conflict_with: str | None
    created_at: datetime
    decided_at: datetime | None = None
    decided_by: str | None = None
    faq_doc_id: str | None = None
    kb_version: int | None = None

    @property
    def source(self) -> str:
        return f"agent:{self.agent_id or 'unknown'}/conversation:{self.conversation_id}"

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "question": self.question,
            "answer": self.answer,
            "status": self.status,
            "conflict_with": self.conflict_with,
            "source": {
                "conversation_id": self.conversation_id,
                "question_message_id": self.question_message_id,
                "answer_message_id": self.answer_message_id,
                "agent_id": self.agent_id,
                "recorded_as": self.source,
            },
            "created_at": self.created_at.isoformat(),
            "decided_at": self.decided_at.isoformat() if self.decided_at else None,
            "decided_by": self.decided_by,
            "faq_doc_id": self.faq_doc_id,
            "kb_version": self.kb_version,
        }


@dataclass
class ScanReport:
    suggested: list[Suggestion] = field(default_factory=list)
    skipped: list[dict[str, str]] = field(default_factory=list)  # {answer_message_id, reason}

    def to_dict(self) -> dict[str, Any]:
        return {
            "suggested": [s.to_dict() for s in self.suggested],
            "count": len(self.suggested),
            "conflicts": sum(1 for s in self.suggested if s.status == "conflict"),
            "skipped": self.skipped,
        }


@dataclass(frozen=True)
class _Candidate:
    conversation_id: str
    question: str
    question_message_id: str
    answer: str  # as stored (not yet redacted)
    answer_message_id: str
    agent_id: str | None


def answer_problem(answer: str) -> str | None:
    """Why a redacted agent reply is not FAQ material, or None."""
    if _PLACEHOLDER.search(answer):
        return "holds a personal-data placeholder: it is about one customer, not knowledge"
    key = normalize_text(answer)
    if key in GENERIC or len(key) < MIN_ANSWER_CHARS:
        return f"too short or generic ({MIN_ANSWER_CHARS}+ characters that answer the question needed)"
    return None


def question_key(question: str) -> str:
    return hashlib.sha256(normalize_text(question).encode()).hexdigest()


class GapFinder:
    """Suggestions in the database behind ``engine``; ``redact(text, conversation_id)`` is the
    assistant's redaction (the conversation's placeholders)."""

    def __init__(
        self, engine: Engine, knowledge: KnowledgeService, redact: Callable[[str, str], str]
    ) -> None:
        self.engine, self.knowledge, self.redact = engine, knowledge, redact

    @property
    def embedder(self) -> Embedder:
        return self.knowledge.embedder

    # -- finding

    def scan(
        self, since: datetime, until: datetime | None = None, conversation_id: str | None = None
    ) -> ScanReport:
        """Turn the agent answers to failed questions stored in [since, until) — of one conversation,
        or of all — into suggestions."""
        until = until or datetime.now(UTC)
        report = ScanReport()
        for candidate in self._candidates(since, until, conversation_id):
            answer = self.redact(candidate.answer, candidate.conversation_id).strip()
            problem = answer_problem(answer)
            if problem is None:
                problem = self._add(candidate, answer, report)
            if problem is not None:
                report.skipped.append({"answer_message_id": candidate.answer_message_id, "reason": problem})
        if report.suggested:
            log.info(
                "knowledge gaps: %d new FAQ suggestion(s) (%d conflicting); review them with "
                "GET /v1/kb/suggestions or `kefu kb suggestions`",
                len(report.suggested),
                sum(1 for s in report.suggested if s.status == "conflict"),
            )
        return report

    def _candidates(self, since: datetime, until: datetime, only: str | None) -> list[_Candidate]:
        m, h = MessageRow, HandoffRow
        query = select(m.conversation_id).where(
            m.role == "agent", m.created_at >= since, m.created_at < until
        )
        if only is not None:
            query = query.where(m.conversation_id == only)
        with self.engine.connect() as conn:
            conversations = [r[0] for r in conn.execute(query.distinct())]
            found: list[_Candidate] = []
            for conversation_id in conversations:
                messages = list(
                    conn.execute(
                        select(m.__table__).where(m.conversation_id == conversation_id).order_by(m.seq)
                    ).all()
                )
                handoffs = [
                    (r.created_at, r.reason)
                    for r in conn.execute(
                        select(h.created_at, h.reason)
                        .where(h.conversation_id == conversation_id)
                        .order_by(h.created_at)
                    )
                ]
                found += _pairs(messages, handoffs)
        return found

    def _add(self, candidate: _Candidate, answer: str, report: ScanReport) -> str | None:
        """Store one suggestion; the reason it was not stored, or None."""
        question = candidate.question.strip()
        key = question_key(question)
        with self.engine.connect() as conn:
            taken = conn.execute(
                select(FaqSuggestionRow.id).where(
                    FaqSuggestionRow.answer_message_id == candidate.answer_message_id
                )
            ).first()
            open_rows = conn.execute(
                select(FaqSuggestionRow.id, FaqSuggestionRow.question, FaqSuggestionRow.question_key).where(
                    FaqSuggestionRow.status.in_(OPEN)
                )
            ).all()
        if taken is not None:
            return f"already suggested as {taken[0]}"
        same = [r.id for r in open_rows if r.question_key == key]
        if not same and open_rows:
            same = self._similar(question, [(r.id, r.question) for r in open_rows])
        if same:
            return f"the same question is already suggested ({same[0]})"
        status, conflict_with = "pending", None
        clash = self.conflict(question, answer)
        if clash is not None:
            kind, ref = clash
            if kind == "duplicate":
                return f"the knowledge base already answers it the same way ({ref})"
            status, conflict_with = "conflict", ref
        row = FaqSuggestionRow(
            id=uuid.uuid4().hex,
            question=question,
            answer=answer,
            question_key=key,
            conversation_id=candidate.conversation_id,
            question_message_id=candidate.question_message_id,
            answer_message_id=candidate.answer_message_id,
            agent_id=candidate.agent_id,
            status=status,
            conflict_with=conflict_with,
            created_at=datetime.now(UTC),
        )
        suggestion = _record(row)
        try:
            with self.engine.begin() as conn:
                conn.execute(insert(FaqSuggestionRow).values(**_values(row)))
        except IntegrityError:  # another scan stored this reply a moment ago
            return "already suggested (by a concurrent scan)"
        report.suggested.append(suggestion)
        return None

    def _similar(self, question: str, others: Sequence[tuple[str, str]]) -> list[str]:
        vectors = self.embedder.embed_queries([question, *(q for _, q in others)])
        sims = vectors[1:] @ vectors[0]
        order = np.argsort(-sims)
        return [others[int(i)][0] for i in order if float(sims[int(i)]) >= SIMILAR]

    def conflict(self, question: str, answer: str, exclude_doc: str | None = None) -> tuple[str, str] | None:
        """("conflict" | "duplicate", "doc_id#faq_id") against the head version's FAQ entries, or None.
        Only the FAQ documents among the question's best ``CANDIDATES`` search hits are compared (the
        same question is always among them), so a large KB's FAQs are not all embedded per check."""
        probe = SourceDocument(
            doc_id="\x00candidate",
            kind="faq",
            title="candidate",
            faqs=(FaqEntry(id="\x00candidate", question=question, answer=answer),),
        )
        self.knowledge.refresh()  # the head version (cheap when it is already served)
        found_hits = self.knowledge.search(question, CANDIDATES).hits
        doc_ids = dict.fromkeys(h.chunk.doc_id for h in found_hits if h.chunk.kind == "faq")
        documents = [self.knowledge.store.document(d) for d in doc_ids if d != exclude_doc]
        found = find_faq_conflicts([*documents, probe], embedder=self.embedder, threshold=SIMILAR)
        for clash in found:  # conflicts come first
            refs = (clash.entry_a, clash.entry_b)
            if any(r.doc_id == probe.doc_id for r in refs):
                other = next(r for r in refs if r.doc_id != probe.doc_id)
                return clash.kind, f"{other.doc_id}#{other.faq_id}"
        return None

    # -- review

    def suggestions(self, status: str | None = None, limit: int = 100) -> list[Suggestion]:
        if status is not None and status not in STATUSES:
            raise InvalidInput(f"unknown status {status!r}; use one of {', '.join(STATUSES)}")
        query = select(FaqSuggestionRow.__table__).order_by(FaqSuggestionRow.created_at.desc()).limit(limit)
        if status is not None:
            query = query.where(FaqSuggestionRow.status == status)
        with self.engine.connect() as conn:
            return [_record(r) for r in conn.execute(query).all()]

    def get(self, suggestion_id: str) -> Suggestion:
        with self.engine.connect() as conn:
            row = conn.execute(
                select(FaqSuggestionRow.__table__).where(FaqSuggestionRow.id == suggestion_id)
            ).first()
        if row is None:
            raise NotFound(f"no FAQ suggestion {suggestion_id!r}; list them with GET /v1/kb/suggestions")
        return _record(row)

    def approve(
        self, suggestion_id: str, *, by: str, question: str | None = None, answer: str | None = None
    ) -> Suggestion:
        """Write the (edited) entry as the FAQ document learned/<id>: one new KB version."""
        found = self._open(suggestion_id)
        final_q = (question if question is not None else found.question).strip()
        final_a = (answer if answer is not None else found.answer).strip()
        if not final_q or not final_a:
            raise InvalidInput("the question and the answer must not be empty; send the text to approve")
        if _PLACEHOLDER.search(final_q + final_a):
            raise InvalidInput(
                "the question or answer holds a personal-data placeholder (like [手机号_1]); edit it out"
            )
        doc_id = f"{LEARNED}/{found.id}"
        clash = self.conflict(final_q, final_a, exclude_doc=doc_id)
        if clash is not None and clash[0] == "conflict":
            raise Conflict(
                f"the FAQ {clash[1]} asks the same question with a different answer; edit that entry "
                "(PUT /v1/kb/documents/…) or send an edited question, or reject this suggestion"
            )
        now = datetime.now(UTC)
        doc = SourceDocument(
            doc_id=doc_id,
            kind="faq",
            title=final_q[:120],
            faqs=(FaqEntry(id=f"{LEARNED}-{found.id[:12]}", question=final_q, answer=final_a),),
            source=found.source,
            updated_at=now.isoformat(timespec="seconds"),
            meta={"suggestion_id": found.id, "approved_by": by},
        )
        change = self.knowledge.put([doc], author=by, message=f"FAQ learned from {found.source}"[:500])
        number = change.version.number if change.version is not None else None
        values = {
            "status": "approved",
            "question": final_q,
            "answer": final_a,
            "decided_at": now,
            "decided_by": by,
            "faq_doc_id": doc_id,
            "kb_version": number,
        }
        self._decide(found.id, values)
        return self.get(found.id)

    def reject(self, suggestion_id: str, *, by: str) -> Suggestion:
        found = self._open(suggestion_id)
        self._decide(found.id, {"status": "rejected", "decided_at": datetime.now(UTC), "decided_by": by})
        return self.get(found.id)

    def _open(self, suggestion_id: str) -> Suggestion:
        found = self.get(suggestion_id)
        if found.status not in OPEN:
            raise Conflict(
                f"the suggestion {suggestion_id} is already {found.status}"
                + (f" (KB version {found.kb_version})" if found.kb_version else "")
                + "; only pending or conflicting suggestions can be decided"
            )
        return found

    def _decide(self, suggestion_id: str, values: dict[str, Any]) -> None:
        with self.engine.begin() as conn:
            done = conn.execute(
                update(FaqSuggestionRow)
                .where(FaqSuggestionRow.id == suggestion_id, FaqSuggestionRow.status.in_(OPEN))
                .values(**values)
            )
        if done.rowcount != 1:
            raise Conflict(f"the suggestion {suggestion_id} was decided by someone else meanwhile; reload it")


def _pairs(messages: list[Any], handoffs: list[tuple[datetime, str]]) -> list[_Candidate]:
    """(failed question, first agent reply after it) pairs of one conversation, in order."""
    bot = [m for m in messages if m.role in ("user", "assistant")]
    cases = _conversation_failures(bot, list(handoffs), set())
    position = {m.id: n for n, m in enumerate(messages)}
    found = []
    starts = sorted((position[c.message_id], c) for c in cases if c.message_id in position)
    for n, (start, case) in enumerate(starts):
        end = starts[n + 1][0] if n + 1 < len(starts) else len(messages)
        question_id = _latest_user_with(messages[:start], case.question)
        for m in messages[start + 1 : end]:
            if m.role == "agent" and answer_problem(m.content) is None:
                found.append(
                    _Candidate(m.conversation_id, case.question, question_id, m.content, m.id, m.agent_id)
                )
                break
    return found


def _latest_user_with(messages: list[Any], text: str) -> str:
    for m in reversed(messages):
        if m.role == "user" and m.content == text:
            return m.id
    return ""


def _values(row: FaqSuggestionRow) -> dict[str, Any]:
    return {c.key: getattr(row, c.key) for c in FaqSuggestionRow.__table__.columns}


def _record(row: Any) -> Suggestion:
    return Suggestion(
        id=row.id,
        question=row.question,
        answer=row.answer,
        conversation_id=row.conversation_id,
        question_message_id=row.question_message_id,
        answer_message_id=row.answer_message_id,
        agent_id=row.agent_id,
        status=row.status,
        conflict_with=row.conflict_with,
        created_at=row.created_at,
        decided_at=row.decided_at,
        decided_by=row.decided_by,
        faq_doc_id=row.faq_doc_id,
        kb_version=row.kb_version,
    )


# ------------------------------------------------------------------------------ hit counts


def hit_counts(engine: Engine, since: datetime, until: datetime | None = None) -> dict[str, Any]:
    """Per chunk and per document, over the bot answers stored in [since, until): ``cited`` (answers
    citing it), ``failed`` (failed cases — the failure finder's — citing it), ``rated`` (ratings of
    answers citing it) and ``rated_low`` (👎 or 1–2 stars). Computed on demand, not kept as counters."""
    until = until or datetime.now(UTC)
    m = MessageRow
    chunks: dict[str, dict[str, Any]] = defaultdict(
        lambda: {"doc_id": "", "cited": 0, "failed": 0, "rated": 0, "rated_low": 0}
    )
    query = select(m.citations).where(m.role == "assistant", m.created_at >= since, m.created_at < until)
    with engine.connect() as conn:
        for (citations,) in conn.execute(query):
            for cite in citations or []:
                if isinstance(cite, dict) and cite.get("chunk_id"):
                    entry = chunks[str(cite["chunk_id"])]
                    entry["cited"] += 1
                    entry["doc_id"] = entry["doc_id"] or str(cite.get("doc_id") or "")
        if inspect(engine).has_table("ratings"):
            ratings = Table("ratings", MetaData(), autoload_with=conn)
            c = ratings.c
            rated = (
                select(c.citations, c.kind, c.score)
                .join(m.__table__, m.id == c.message_id)
                .where(m.created_at >= since, m.created_at < until)
            )
            for citations, kind, score in conn.execute(rated):
                low = (kind == "thumbs" and score == 0) or (kind == "stars" and score <= 2)
                for chunk_id in citations or []:
                    entry = chunks[str(chunk_id)]
                    entry["rated"] += 1
                    entry["rated_low"] += int(low)
    for case in find_failures(engine, since, until):
        for chunk_id in dict.fromkeys(case.chunk_ids):
            chunks[chunk_id]["failed"] += 1
    documents: dict[str, dict[str, int]] = defaultdict(
        lambda: {"cited": 0, "failed": 0, "rated": 0, "rated_low": 0}
    )
    for chunk_id, entry in chunks.items():
        doc_id = entry["doc_id"] or chunk_id.split("#", 1)[0]
        entry["doc_id"] = doc_id
        for name in ("cited", "failed", "rated", "rated_low"):
            documents[doc_id][name] += entry[name]

    def ordered(table: dict[str, Any], key: str) -> list[dict[str, Any]]:
        rows = [{key: k, **v} for k, v in table.items()]
        return sorted(rows, key=lambda r: (-r["cited"], -r["failed"], r[key]))

    return {
        "since": since.isoformat(),
        "until": until.isoformat(),
        "chunks": ordered(chunks, "chunk_id"),
        "documents": ordered(documents, "doc_id"),
    }
