"""``SqlConversationStore``: conversations and their messages in SQLite or PostgreSQL.

Thread-safe: every call opens its own session from the engine's pool. ``add_message`` serialises
writers per conversation by touching the conversation row first (a row lock on PostgreSQL, the
write lock on SQLite), so concurrent appends get distinct, gap-free ``seq`` numbers.

``external_user`` is never stored in clear: the row holds it AES-256-GCM encrypted (bound to the row
id) and an HMAC blind index that ``find_conversation`` matches on (see ``crypto.py``).
"""

from __future__ import annotations

from dataclasses import fields
from datetime import datetime
from typing import Any, get_args
from uuid import uuid4

from sqlalchemy import CursorResult, Engine, func, select, update
from sqlalchemy.orm import Session, sessionmaker

from kefu.audit.keyring import Keyring
from kefu.errors import NotFound
from kefu.storage.base import ConversationRecord, MessageRecord, MessageRole, MessageStatus
from kefu.storage.crypto import Binding, FieldCipher, pack, unpack
from kefu.storage.engine import ping_engine
from kefu.storage.models import ConversationRow, MessageRow, utcnow

_MESSAGE_META = {f.name for f in fields(MessageRecord)} - {
    "id",
    "conversation_id",
    "role",
    "content",
    "created_at",
}
_META_DEFAULTS: dict[str, Any] = {
    "status": "ok",
    "answer_kind": None,
    "model": None,
    "prompt_tokens": 0,
    "completion_tokens": 0,
    "latency_ms": None,
    "sentiment": None,
    "agent_id": None,
    "route": None,
    "cost": None,
    "cache": None,
    "experiment": None,
    "experiment_arm": None,
}
# The blind index's purpose string; changing it orphans every stored index.
EXTERNAL_USER_INDEX = "conversations.external_user"


def not_found(conversation_id: str) -> NotFound:
    return NotFound(f"conversation {conversation_id!r} not found — create one with POST /v1/conversations")


def external_user_binding(conversation_id: str) -> Binding:
    return Binding("conversations", "external_user", conversation_id)


def seal_external_user(cipher: FieldCipher, conversation_id: str, external_user: str) -> dict[str, str]:
    """The stored columns for a plaintext ``external_user`` (also used by migration 0002)."""
    sealed = cipher.seal(external_user, external_user_binding(conversation_id))
    return {
        "external_user_hmac": cipher.blind_index(external_user, EXTERNAL_USER_INDEX),
        "external_user_encrypted": pack(sealed),
    }


class SqlConversationStore:
    """``ConversationStore`` over SQLAlchemy; ``keyring`` (the ``KEFU_AUDIT_KEYS`` ring) encrypts
    ``external_user``. A record whose value does not decrypt raises ``FieldDecryptError``."""

    def __init__(self, engine: Engine, keyring: Keyring) -> None:
        self.engine = engine
        self.cipher = FieldCipher(keyring)
        self._session = sessionmaker(engine, expire_on_commit=False)

    def create_conversation(self, *, channel: str, external_user: str | None = None) -> ConversationRecord:
        now = utcnow()
        conversation_id = uuid4().hex
        sealed = (
            {} if external_user is None else seal_external_user(self.cipher, conversation_id, external_user)
        )
        row = ConversationRow(
            id=conversation_id, channel=channel, status="open", created_at=now, updated_at=now, **sealed
        )
        with self._session.begin() as session:
            session.add(row)
        return self._record(row)

    def get_conversation(self, conversation_id: str) -> ConversationRecord:
        with self._session() as session:
            row = session.get(ConversationRow, conversation_id)
            if row is None:
                raise not_found(conversation_id)
        return self._record(row)

    def find_conversation(self, *, channel: str, external_user: str) -> ConversationRecord | None:
        query = (
            select(ConversationRow)
            .where(
                ConversationRow.channel == channel,
                ConversationRow.external_user_hmac.in_(
                    self.cipher.blind_indexes(external_user, EXTERNAL_USER_INDEX)
                ),
                ConversationRow.status == "open",
            )
            .order_by(ConversationRow.created_at.desc())
            .limit(1)
        )
        with self._session() as session:
            row = session.scalars(query).first()
        return self._record(row) if row else None

    def add_message(
        self, conversation_id: str, role: MessageRole, content: str, **meta: Any
    ) -> MessageRecord:
        _check_choice("role", role, MessageRole)
        row = MessageRow(
            id=uuid4().hex, conversation_id=conversation_id, role=role, content=content, **_columns(meta)
        )
        with self._session.begin() as session:
            row.created_at = _touch(session, conversation_id)
            row.seq = _next_seq(session, conversation_id)
            session.add(row)
        return _message_record(row)

    def list_messages(self, conversation_id: str, *, limit: int | None = None) -> list[MessageRecord]:
        if limit is not None and limit < 0:
            raise ValueError(f"limit must be >= 0, got {limit}")
        query = select(MessageRow).where(MessageRow.conversation_id == conversation_id)
        query = query.order_by(MessageRow.seq.desc()).limit(limit)
        with self._session() as session:
            rows = list(session.scalars(query))
            if not rows and session.get(ConversationRow, conversation_id) is None:
                raise not_found(conversation_id)
        return [_message_record(row) for row in reversed(rows)]

    def find_sent(
        self, conversation_id: str, client_id: str
    ) -> tuple[MessageRecord, MessageRecord | None] | None:
        sent = select(MessageRow).where(
            MessageRow.conversation_id == conversation_id, MessageRow.client_id == client_id
        )
        with self._session() as session:
            row = session.scalars(sent).first()
            if row is None:
                return None
            following = (
                select(MessageRow)
                .where(MessageRow.conversation_id == conversation_id, MessageRow.seq > row.seq)
                .order_by(MessageRow.seq)
                .limit(8)
            )
            reply = None
            for later in session.scalars(following):
                if later.role == "user":
                    break
                if later.role == "assistant":
                    reply = later
                    break
            return _message_record(row), _message_record(reply) if reply is not None else None

    def ping(self) -> None:
        ping_engine(self.engine)

    def _record(self, row: ConversationRow) -> ConversationRecord:
        external_user = None
        if row.external_user_encrypted is not None:
            binding = external_user_binding(row.id)
            external_user = self.cipher.open(unpack(row.external_user_encrypted, binding), binding)
        return ConversationRecord(
            id=row.id,
            channel=row.channel,
            external_user=external_user,
            status=row.status,
            created_at=row.created_at,
            updated_at=row.updated_at,
        )


def _columns(meta: dict[str, Any]) -> dict[str, Any]:
    unknown = set(meta) - _MESSAGE_META
    if unknown:
        raise TypeError(
            f"add_message() got unknown field(s) {sorted(unknown)}; allowed: {sorted(_MESSAGE_META)}"
        )
    columns = {**_META_DEFAULTS, **meta}
    _check_choice("status", columns["status"], MessageStatus)
    columns["citations"] = list(meta.get("citations") or [])
    return columns


def _check_choice(name: str, value: str, choices: Any) -> None:
    if value not in get_args(choices):
        raise ValueError(f"message {name} {value!r} is not one of {get_args(choices)}")


def _touch(session: Session, conversation_id: str) -> datetime:
    """Bump ``updated_at`` (taking the conversation's write lock); NotFound if it does not exist."""
    now = utcnow()
    statement = (
        update(ConversationRow)
        .where(ConversationRow.id == conversation_id)
        .values(updated_at=now)
        .execution_options(synchronize_session=False)
    )
    result = session.execute(statement)
    assert isinstance(result, CursorResult)
    if result.rowcount == 0:
        raise not_found(conversation_id)
    return now


def _next_seq(session: Session, conversation_id: str) -> int:
    query = select(func.coalesce(func.max(MessageRow.seq), 0)).where(
        MessageRow.conversation_id == conversation_id
    )
    return int(session.scalar(query) or 0) + 1


def _message_record(row: MessageRow) -> MessageRecord:
    return MessageRecord(
        id=row.id,
        conversation_id=row.conversation_id,
        role=row.role,  # type: ignore[arg-type]  # only MessageRole values are ever written
        content=row.content,
        created_at=row.created_at,
        status=row.status,  # type: ignore[arg-type]
        answer_kind=row.answer_kind,
        citations=row.citations,
        model=row.model,
        prompt_tokens=row.prompt_tokens,
        completion_tokens=row.completion_tokens,
        latency_ms=row.latency_ms,
        sentiment=row.sentiment,
        agent_id=row.agent_id,
        route=row.route,
        cost=row.cost,
        cache=row.cache,
        client_id=row.client_id,
        experiment=row.experiment,
        experiment_arm=row.experiment_arm,
    )
