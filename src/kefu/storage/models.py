"""SQLAlchemy tables behind the SQL stores. The schema itself is created by the Alembic
migrations in ``migrations/versions``; keep the two in step (a test compares them).

Sensitive values are stored encrypted (``crypto.py``): ``conversations.external_user`` as a sealed
token plus a blind index for lookups, ``pii_vault`` values as key id + nonce + ciphertext. The audit
log's tables are defined in ``kefu.audit.schema`` and copied into this metadata, so that the
migrations (0002) and the schema comparison cover them too."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, ClassVar

from sqlalchemy import (
    JSON,
    Boolean,
    DateTime,
    Dialect,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
    Text,
)
from sqlalchemy import UniqueConstraint as Unique
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column
from sqlalchemy.types import TypeDecorator

from kefu.audit.schema import audit_checkpoints, audit_log
from kefu.kb.sources import kb_sources
from kefu.kb.store import KB_TABLES


def utcnow() -> datetime:
    return datetime.now(UTC)


class UTCDateTime(TypeDecorator[datetime]):
    """Timezone-aware UTC in and out, on PostgreSQL (timestamptz) and SQLite (naive text) alike."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError(f"naive datetime {value!r}: pass a timezone-aware UTC datetime")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


class Base(DeclarativeBase):
    type_annotation_map: ClassVar[dict[Any, Any]] = {datetime: UTCDateTime()}


class ConversationRow(Base):
    __tablename__ = "conversations"
    __table_args__ = (Index("ix_conversations_channel_user_hmac", "channel", "external_user_hmac"),)

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    channel: Mapped[str] = mapped_column(String(32))
    # hex HMAC-SHA256 blind index (find_conversation) and the sealed value (crypto.pack)
    external_user_hmac: Mapped[str | None] = mapped_column(String(64))
    external_user_encrypted: Mapped[str | None] = mapped_column(Text)
    status: Mapped[str] = mapped_column(String(16))
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]


class MessageRow(Base):
    __tablename__ = "messages"
    __table_args__ = (
        Unique("conversation_id", "seq", name="uq_messages_conversation_seq"),
        Index("ix_messages_created_at", "created_at", "cost"),  # the daily budget: an index-only sum (0006)
        Unique("conversation_id", "client_id", name="uq_messages_conversation_client"),  # retries (0007)
        Index("ix_messages_experiment", "experiment", "experiment_arm"),  # kefu ab report (0009)
    )

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    conversation_id: Mapped[str] = mapped_column(ForeignKey("conversations.id", ondelete="CASCADE"))
    seq: Mapped[int] = mapped_column(Integer)
    role: Mapped[str] = mapped_column(String(16))
    content: Mapped[str] = mapped_column(Text)
    status: Mapped[str] = mapped_column(String(16))
    answer_kind: Mapped[str | None] = mapped_column(String(32))
    citations: Mapped[list[dict[str, Any]]] = mapped_column(JSON)
    model: Mapped[str | None] = mapped_column(String(255))
    prompt_tokens: Mapped[int] = mapped_column(Integer)
    completion_tokens: Mapped[int] = mapped_column(Integer)
    latency_ms: Mapped[float | None] = mapped_column(Float)
    sentiment: Mapped[float | None] = mapped_column(Float)
    agent_id: Mapped[str | None] = mapped_column(String(32))  # role "agent": who wrote it (agents.id)
    route: Mapped[str | None] = mapped_column(String(32))  # the model route of the turn (llm/routing)
    cost: Mapped[float | None] = mapped_column(Float)  # the turn's model cost, in the matrix's currency
    cache: Mapped[str | None] = mapped_column(String(16))  # "exact" / "semantic": an answer-cache hit
    client_id: Mapped[str | None] = mapped_column(String(64))  # the client's message id (Idempotency-Key)
    experiment: Mapped[str | None] = mapped_column(String(64))  # the A/B test of the turn (0009)
    experiment_arm: Mapped[str | None] = mapped_column(String(64))  # …and its arm (kefu.experiments)
    created_at: Mapped[datetime]


class SessionRow(Base):
    __tablename__ = "sessions"
    __table_args__ = (Index("ix_sessions_expires_at", "expires_at"),)

    session_id: Mapped[str] = mapped_column(String(255), primary_key=True)
    conversation_id: Mapped[str] = mapped_column(String(32))
    state: Mapped[str] = mapped_column(Text)
    expires_at: Mapped[datetime]


class PiiVaultRow(Base):
    """Placeholder → raw PII value of one conversation, encrypted (``vault.SqlPiiVault``)."""

    __tablename__ = "pii_vault"

    conversation_id: Mapped[str] = mapped_column(
        ForeignKey("conversations.id", ondelete="CASCADE"), primary_key=True
    )
    placeholder: Mapped[str] = mapped_column(String(64), primary_key=True)
    key_id: Mapped[str] = mapped_column(String(64))
    nonce: Mapped[bytes] = mapped_column(LargeBinary)
    ciphertext: Mapped[bytes] = mapped_column(LargeBinary)
    created_at: Mapped[datetime]


class AgentRow(Base):
    """A human agent of the console (``kefu agent add``); ``password_hash`` is scrypt with its salt."""

    __tablename__ = "agents"
    __table_args__ = (Unique("username", name="uq_agents_username"),)

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    username: Mapped[str] = mapped_column(String(64))
    display_name: Mapped[str] = mapped_column(String(128))
    password_hash: Mapped[str] = mapped_column(String(255))
    active: Mapped[bool] = mapped_column(Boolean)
    created_at: Mapped[datetime]
    last_seen_at: Mapped[datetime | None]  # last request or console heartbeat: "online" for 5 minutes


class HandoffRow(Base):
    """One transfer of a conversation to a human: queued → active → returned | closed, or a ticket."""

    __tablename__ = "handoffs"
    __table_args__ = (
        Index("ix_handoffs_status", "status"),
        Index("ix_handoffs_conversation_id", "conversation_id"),
    )

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    conversation_id: Mapped[str] = mapped_column(ForeignKey("conversations.id", ondelete="CASCADE"))
    status: Mapped[str] = mapped_column(String(16))
    priority: Mapped[int] = mapped_column(Integer)  # 1 (most urgent) .. 5
    reason: Mapped[str] = mapped_column(String(32))
    summary: Mapped[str] = mapped_column(Text)  # redacted, like every stored customer text
    agent_id: Mapped[str | None] = mapped_column(ForeignKey("agents.id"))
    vip: Mapped[bool] = mapped_column(Boolean)
    created_at: Mapped[datetime]
    taken_at: Mapped[datetime | None]
    ended_at: Mapped[datetime | None]


class ConversationStatsRow(Base):
    """Per-conversation counts for operations (``kefu.storage.stats``), updated every turn."""

    __tablename__ = "conversation_stats"

    conversation_id: Mapped[str] = mapped_column(
        ForeignKey("conversations.id", ondelete="CASCADE"), primary_key=True
    )
    user_messages: Mapped[int] = mapped_column(Integer)
    bot_replies: Mapped[int] = mapped_column(Integer)
    agent_replies: Mapped[int] = mapped_column(Integer)
    handoffs: Mapped[int] = mapped_column(Integer)
    low_confidence_streak: Mapped[int] = mapped_column(Integer)
    flows_started: Mapped[int] = mapped_column(Integer)
    flows_completed: Mapped[int] = mapped_column(Integer)
    flows_failed: Mapped[int] = mapped_column(Integer)
    resolved_by: Mapped[str | None] = mapped_column(String(16))  # "bot" | "agent" | None
    completed: Mapped[bool] = mapped_column(Boolean)
    updated_at: Mapped[datetime]


class RatingRow(Base):
    """A customer's rating of one bot answer (``message_id``) or of the conversation (CSAT, NULL), with
    what the answer was made from copied at rating time (``kefu.storage.ratings``; migration 0008)."""

    __tablename__ = "ratings"
    __table_args__ = (
        Index("ix_ratings_conversation_id", "conversation_id"),
        Index("ix_ratings_created_at", "created_at"),
    )

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    conversation_id: Mapped[str] = mapped_column(ForeignKey("conversations.id", ondelete="CASCADE"))
    message_id: Mapped[str | None] = mapped_column(ForeignKey("messages.id", ondelete="CASCADE"))
    kind: Mapped[str] = mapped_column(String(16))  # "thumbs" (0/1) | "stars" (1-5) | "csat" (1-5)
    score: Mapped[int] = mapped_column(Integer)
    comment: Mapped[str | None] = mapped_column(Text)  # redacted with the conversation's placeholders
    kb_version: Mapped[str | None] = mapped_column(String(64))
    citations: Mapped[list[str]] = mapped_column(JSON)  # the cited chunk ids
    route: Mapped[str | None] = mapped_column(String(32))
    model: Mapped[str | None] = mapped_column(String(255))
    answer_kind: Mapped[str | None] = mapped_column(String(32))
    experiment_arm: Mapped[str | None] = mapped_column(String(64))  # the A/B arm (issue #13 part 2)
    channel: Mapped[str] = mapped_column(String(32))  # where it was given: "web" | "api" | "openai"
    created_at: Mapped[datetime]


class FaqSuggestionRow(Base):
    """A suggested FAQ entry: a question the bot could not answer and the agent's reply, both redacted
    (``kefu.kb.gaps``; migration 0010)."""

    __tablename__ = "faq_suggestions"
    __table_args__ = (
        Unique("answer_message_id", name="uq_faq_suggestions_answer_message"),
        Index("ix_faq_suggestions_status", "status"),
        Index("ix_faq_suggestions_question_key", "question_key"),
    )

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    question: Mapped[str] = mapped_column(Text)
    answer: Mapped[str] = mapped_column(Text)
    question_key: Mapped[str] = mapped_column(String(64))  # sha256 of the normalised question
    conversation_id: Mapped[str] = mapped_column(String(32))
    question_message_id: Mapped[str] = mapped_column(String(32))
    answer_message_id: Mapped[str] = mapped_column(String(32))
    agent_id: Mapped[str | None] = mapped_column(String(32))
    status: Mapped[str] = mapped_column(String(16))  # pending | conflict | approved | rejected
    conflict_with: Mapped[str | None] = mapped_column(String(512))  # the existing FAQ "doc_id#faq_id"
    created_at: Mapped[datetime]
    decided_at: Mapped[datetime | None]
    decided_by: Mapped[str | None] = mapped_column(String(64))
    faq_doc_id: Mapped[str | None] = mapped_column(String(255))  # the FAQ document an approval wrote
    kb_version: Mapped[int | None] = mapped_column(Integer)  # the KB version that approval made


for _audit_table in (audit_log, audit_checkpoints, *KB_TABLES, kb_sources):  # KB: migrations 0004, 0005
    _audit_table.to_metadata(Base.metadata)
