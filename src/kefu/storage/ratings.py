"""Ratings and CSAT (issue #13 part 1): ``SqlRatingStore`` and the CSV / JSONL export.

Three kinds: ``thumbs`` (0 = 👎, 1 = 👍) and ``stars`` (1-5) on one bot answer, ``csat`` (1-5) on the
whole conversation (``message_id`` None). A rating snapshots what the answer was made from — its
knowledge-base version, cited chunk ids, model route, model and answer kind — so later KB versions
or routing changes never rewrite what was rated. Rating the same thing again with the same kind
replaces the earlier rating (a 👍 changed to 👎 counts once).

The comment arrives here already redacted (the caller runs the conversation's PII redaction), so
the table, the export and the audit log hold placeholders like [手机号_1], never the raw value.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterable, Iterator
from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import Any, Literal, get_args
from uuid import uuid4

from sqlalchemy import Engine, delete, select
from sqlalchemy.orm import sessionmaker

from kefu.errors import InvalidInput, NotFound
from kefu.storage.models import ConversationRow, MessageRow, RatingRow, utcnow

RatingKind = Literal["thumbs", "stars", "csat"]
SCORES: dict[str, tuple[int, int]] = {"thumbs": (0, 1), "stars": (1, 5), "csat": (1, 5)}
COMMENT_MAX_CHARS = 2000
EXPORT_FIELDS = (
    "id",
    "created_at",
    "conversation_id",
    "message_id",
    "kind",
    "score",
    "comment",
    "channel",
    "answer_kind",
    "kb_version",
    "citations",
    "route",
    "model",
    "experiment_arm",
)


class InvalidRating(InvalidInput):
    """The rating cannot be stored as sent: a score out of range, a message that is not a bot answer."""

    code = "invalid_rating"
    status = 422


@dataclass
class RatingRecord:
    id: str
    conversation_id: str
    message_id: str | None
    kind: str
    score: int
    comment: str | None
    channel: str
    created_at: datetime
    kb_version: str | None = None
    citations: list[str] = field(default_factory=list)  # chunk ids cited by the rated answer
    route: str | None = None
    model: str | None = None
    answer_kind: str | None = None
    experiment_arm: str | None = None

    def public(self) -> dict[str, Any]:
        data = asdict(self)
        data["created_at"] = self.created_at.isoformat()
        return data


def check_score(kind: str, score: int) -> None:
    if kind not in SCORES:
        raise InvalidRating(f"rating kind {kind!r} is not one of {list(get_args(RatingKind))}")
    low, high = SCORES[kind]
    if not low <= score <= high:
        what = "0 (👎) or 1 (👍)" if kind == "thumbs" else f"{low} to {high} stars"
        raise InvalidRating(f"a {kind} rating's score must be {what}, got {score}")


def clean_comment(comment: str | None) -> str | None:
    text = (comment or "").strip()
    if len(text) > COMMENT_MAX_CHARS:
        raise InvalidRating(
            f"the comment has {len(text)} characters, more than {COMMENT_MAX_CHARS}; shorten it"
        )
    return text or None


class SqlRatingStore:
    """Ratings in the kefu database (SQLite or PostgreSQL); thread-safe like the other SQL stores."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self._session = sessionmaker(engine, expire_on_commit=False)

    def add(
        self,
        conversation_id: str,
        message_id: str | None,
        kind: str,
        score: int,
        *,
        comment: str | None = None,
        channel: str | None = None,
        experiment_arm: str | None = None,
    ) -> RatingRecord:
        """Store a rating (replacing this conversation's earlier one of the same kind on the same
        answer). ``NotFound`` for an unknown conversation or message, ``InvalidRating`` for a score out
        of range, a CSAT on one answer, or a message that is not the bot's answer."""
        check_score(kind, score)
        if (kind == "csat") != (message_id is None):
            raise InvalidRating(
                "csat rates the whole conversation (POST /v1/conversations/{id}/rating); thumbs and "
                "stars rate one answer (POST /v1/conversations/{id}/messages/{message_id}/rating)"
            )
        row = RatingRow(
            id=uuid4().hex,
            conversation_id=conversation_id,
            message_id=message_id,
            kind=kind,
            score=score,
            comment=clean_comment(comment),
            channel=channel or "api",
            experiment_arm=experiment_arm,
            citations=[],
            created_at=utcnow(),
        )
        with self._session.begin() as session:
            conversation = session.get(ConversationRow, conversation_id)
            if conversation is None:
                raise NotFound(
                    f"conversation {conversation_id!r} not found — rate a conversation you have the id of"
                )
            row.channel = channel or conversation.channel
            if message_id is not None:
                _snapshot(row, session.get(MessageRow, message_id), conversation_id, message_id)
            session.execute(
                delete(RatingRow).where(
                    RatingRow.conversation_id == conversation_id,
                    RatingRow.message_id.is_(None)
                    if message_id is None
                    else RatingRow.message_id == message_id,
                    RatingRow.kind == kind,
                )
            )
            session.add(row)
        return _record(row)

    def conversation_of(self, message_id: str) -> str:
        """The conversation a message belongs to; ``NotFound`` for an unknown message id."""
        with self._session() as session:
            found = session.scalar(select(MessageRow.conversation_id).where(MessageRow.id == message_id))
        if found is None:
            raise NotFound(
                f"message {message_id!r} not found — use the message_id of a reply (the response's "
                "kefu.message_id, or the id in GET /v1/conversations/{id}/messages)"
            )
        return found

    def list(self, conversation_id: str) -> list[RatingRecord]:
        query = (
            select(RatingRow)
            .where(RatingRow.conversation_id == conversation_id)
            .order_by(RatingRow.created_at, RatingRow.id)
        )
        with self._session() as session:
            return [_record(row) for row in session.scalars(query)]

    def export(self, since: datetime | None = None, until: datetime | None = None) -> Iterator[RatingRecord]:
        """Every rating given in [since, until), oldest first, read in pages."""
        query = select(RatingRow).order_by(RatingRow.created_at, RatingRow.id)
        if since is not None:
            query = query.where(RatingRow.created_at >= since)
        if until is not None:
            query = query.where(RatingRow.created_at < until)
        with self._session() as session:
            for row in session.scalars(query.execution_options(yield_per=500)):
                yield _record(row)


def _snapshot(row: RatingRow, message: MessageRow | None, conversation_id: str, message_id: str) -> None:
    if message is None or message.conversation_id != conversation_id:
        raise NotFound(
            f"message {message_id!r} is not in conversation {conversation_id!r}; rate an answer of "
            "this conversation (its ids are in GET /v1/conversations/{id}/messages)"
        )
    if message.role != "assistant":
        who = {"user": "the customer's own message", "agent": "a human agent's message"}
        raise InvalidRating(
            f"message {message_id!r} is {who.get(message.role, 'a ' + message.role + ' message')}; "
            "only the bot's answers can be rated (rate the conversation itself with kind csat)"
        )
    cites = message.citations or []
    versions = [str(c["kb_version"]) for c in cites if isinstance(c, dict) and c.get("kb_version")]
    row.kb_version = versions[0] if versions else None
    row.citations = [str(c["chunk_id"]) for c in cites if isinstance(c, dict) and c.get("chunk_id")]
    row.route, row.model, row.answer_kind = message.route, message.model, message.answer_kind
    row.experiment_arm = message.experiment_arm  # the A/B test's arm the answer was given in


def _record(row: RatingRow) -> RatingRecord:
    return RatingRecord(
        id=row.id,
        conversation_id=row.conversation_id,
        message_id=row.message_id,
        kind=row.kind,
        score=row.score,
        comment=row.comment,
        channel=row.channel,
        created_at=row.created_at,
        kb_version=row.kb_version,
        citations=list(row.citations or []),
        route=row.route,
        model=row.model,
        answer_kind=row.answer_kind,
        experiment_arm=row.experiment_arm,
    )


def to_jsonl(records: Iterable[RatingRecord]) -> Iterator[str]:
    """One JSON object per line, the fields of ``EXPORT_FIELDS``."""
    for record in records:
        data = record.public()
        yield json.dumps({k: data[k] for k in EXPORT_FIELDS}, ensure_ascii=False) + "\n"


def to_csv(records: Iterable[RatingRecord]) -> Iterator[str]:
    """A header line, then one line per rating; citations as chunk ids joined by spaces."""
    buffer = io.StringIO()
    writer = csv.writer(buffer)

    def flush() -> str:
        text = buffer.getvalue()
        buffer.seek(0)
        buffer.truncate()
        return text

    writer.writerow(EXPORT_FIELDS)
    yield flush()
    for record in records:
        data = record.public()
        data["citations"] = " ".join(record.citations)
        writer.writerow(["" if data[k] is None else data[k] for k in EXPORT_FIELDS])
        yield flush()


EXPORTERS = {"csv": to_csv, "jsonl": to_jsonl}
MEDIA_TYPES = {"csv": "text/csv; charset=utf-8", "jsonl": "application/x-ndjson"}
