"""``SqlHandoffStore``: agents and the handoff queue in the conversations' database (SQLite or PostgreSQL).

A handoff moves ``queued → active → returned | closed``; outside working hours it is created as a
``ticket``, which an agent may take like a queued one. At most one handoff per conversation is open
(queued, active or ticket) — the orchestrator checks under its per-conversation lock. State changes
are conditional UPDATEs, so two agents taking the same handoff cannot both win.

Passwords are hashed with scrypt (n=2**14, r=8, p=1, 16-byte random salt per agent) and compared in
constant time.
"""

from __future__ import annotations

import base64
import functools
import hashlib
import hmac
import secrets
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Literal
from uuid import uuid4

from sqlalchemy import CursorResult, Engine, Update, and_, func, or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import sessionmaker

from kefu.errors import Conflict, Forbidden, InvalidInput, NotFound, Unauthorized
from kefu.storage.models import AgentRow, HandoffRow, MessageRow, utcnow

HandoffStatus = Literal["queued", "active", "returned", "closed", "ticket"]
OPEN_STATUSES = ("queued", "active", "ticket")
ONLINE_FOR = timedelta(minutes=5)  # an agent counts as online this long after their last request
_SCRYPT = {"n": 2**14, "r": 8, "p": 1}
_USERNAME_CHARS = set("abcdefghijklmnopqrstuvwxyz0123456789._-")


@dataclass(frozen=True)
class AgentRecord:
    id: str
    username: str
    display_name: str
    active: bool
    created_at: datetime
    last_seen_at: datetime | None = None


@dataclass(frozen=True)
class HandoffRecord:
    id: str
    conversation_id: str
    status: HandoffStatus
    priority: int  # 1 (most urgent) .. 5
    reason: str
    summary: str
    agent_id: str | None
    vip: bool
    created_at: datetime
    taken_at: datetime | None = None
    ended_at: datetime | None = None


def hash_password(password: str) -> str:
    """``scrypt$n$r$p$<salt b64>$<hash b64>``."""
    salt = secrets.token_bytes(16)
    digest = hashlib.scrypt(password.encode(), salt=salt, dklen=32, **_SCRYPT)
    n, r, p = _SCRYPT["n"], _SCRYPT["r"], _SCRYPT["p"]
    return f"scrypt${n}${r}${p}${_b64(salt)}${_b64(digest)}"


def check_password(password: str, stored: str) -> bool:
    try:
        scheme, n, r, p, salt, digest = stored.split("$")
        expected = base64.b64decode(digest)
        got = hashlib.scrypt(
            password.encode(), salt=base64.b64decode(salt), n=int(n), r=int(r), p=int(p), dklen=len(expected)
        )
    except ValueError:
        return False
    return scheme == "scrypt" and hmac.compare_digest(got, expected)


@functools.cache
def _unknown_user_hash() -> str:
    return hash_password(secrets.token_hex(16))


def _b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode()


def check_new_agent(username: str, password: str) -> None:
    if not username or len(username) > 64 or not set(username) <= _USERNAME_CHARS:
        raise InvalidInput(
            f"agent username {username!r} is not valid; use 1-64 lower-case letters, digits, '.', '_' or '-'"
        )
    if len(password) < 8:
        raise InvalidInput("the agent's password is shorter than 8 characters; choose a longer one")


class SqlHandoffStore:
    """Agents and handoffs over SQLAlchemy; ``clock`` gives the timestamps (tests pass a fixed one)."""

    def __init__(self, engine: Engine, clock: Callable[[], datetime] = utcnow) -> None:
        self.engine = engine
        self.clock = clock
        self._session = sessionmaker(engine, expire_on_commit=False)

    # --- agents ------------------------------------------------------------------------------------

    def add_agent(self, username: str, display_name: str, password: str) -> AgentRecord:
        """Create an agent; ``Conflict`` when the username is taken."""
        check_new_agent(username, password)
        row = AgentRow(
            id=uuid4().hex,
            username=username,
            display_name=display_name.strip() or username,
            password_hash=hash_password(password),
            active=True,
            created_at=self.clock(),
        )
        try:
            with self._session.begin() as session:
                session.add(row)
        except IntegrityError:
            raise Conflict(
                f"an agent named {username!r} already exists; choose another username (`kefu agent list`)"
            ) from None
        return _agent(row)

    def ensure_agent(self, username: str, display_name: str, password: str) -> AgentRecord:
        """The agent ``username``, created with this password when absent (``kefu demo``)."""
        found = self.find_agent(username)
        if found is not None:
            return found
        try:
            return self.add_agent(username, display_name, password)
        except Conflict:  # created meanwhile by another process
            found = self.find_agent(username)
            assert found is not None
            return found

    def find_agent(self, username: str) -> AgentRecord | None:
        with self._session() as session:
            row = session.scalars(select(AgentRow).where(AgentRow.username == username)).first()
        return _agent(row) if row else None

    def get_agent(self, agent_id: str) -> AgentRecord:
        with self._session() as session:
            row = session.get(AgentRow, agent_id)
        if row is None:
            raise NotFound(f"agent {agent_id!r} not found — list the agents with `kefu agent list`")
        return _agent(row)

    def list_agents(self) -> list[AgentRecord]:
        with self._session() as session:
            return [_agent(row) for row in session.scalars(select(AgentRow).order_by(AgentRow.username))]

    def authenticate(self, username: str, password: str) -> AgentRecord:
        """The agent, or ``Unauthorized`` (unknown name or wrong password) / ``Forbidden`` (deactivated)."""
        with self._session() as session:
            row = session.scalars(select(AgentRow).where(AgentRow.username == username)).first()
        stored = row.password_hash if row else _unknown_user_hash()  # the same work either way
        if not check_password(password, stored) or row is None:
            raise Unauthorized("wrong username or password — check both and sign in again")
        if not row.active:
            raise Forbidden(f"the agent account {username!r} is deactivated; ask an administrator")
        return _agent(row)

    def set_active(self, username: str, active: bool) -> AgentRecord:
        with self._session.begin() as session:
            row = session.scalars(select(AgentRow).where(AgentRow.username == username)).first()
            if row is None:
                raise NotFound(f"agent {username!r} not found — list the agents with `kefu agent list`")
            row.active = active
        return _agent(row)

    def touch_agent(self, agent_id: str) -> None:
        """Record that the agent is at the console now (requests and event-stream heartbeats)."""
        with self._session.begin() as session:
            session.execute(update(AgentRow).where(AgentRow.id == agent_id).values(last_seen_at=self.clock()))

    def agents_online(self) -> int:
        since = self.clock() - ONLINE_FOR
        query = select(func.count()).where(AgentRow.active.is_(True), AgentRow.last_seen_at >= since)
        with self._session() as session:
            return int(session.scalar(query) or 0)

    def agent_names(self, agent_ids: Iterable[str | None]) -> dict[str, str]:
        wanted = {a for a in agent_ids if a}
        if not wanted:
            return {}
        query = select(AgentRow.id, AgentRow.display_name).where(AgentRow.id.in_(wanted))
        with self._session() as session:
            return {agent_id: name for agent_id, name in session.execute(query).all()}

    # --- handoffs ----------------------------------------------------------------------------------

    def open_handoff(
        self,
        conversation_id: str,
        *,
        status: Literal["queued", "ticket"],
        priority: int,
        reason: str,
        summary: str,
        vip: bool = False,
    ) -> HandoffRecord:
        if not 1 <= priority <= 5:
            raise ValueError(f"priority must be 1..5, got {priority}")
        row = HandoffRow(
            id=uuid4().hex,
            conversation_id=conversation_id,
            status=status,
            priority=priority,
            reason=reason,
            summary=summary,
            agent_id=None,
            vip=vip,
            created_at=self.clock(),
        )
        with self._session.begin() as session:
            session.add(row)
        return _handoff(row)

    def get(self, handoff_id: str) -> HandoffRecord:
        with self._session() as session:
            row = session.get(HandoffRow, handoff_id)
        if row is None:
            raise NotFound(f"handoff {handoff_id!r} not found — reload the queue (GET /v1/agent/queue)")
        return _handoff(row)

    def current(self, conversation_id: str) -> HandoffRecord | None:
        """The conversation's open handoff (queued, active or ticket), if any."""
        query = (
            select(HandoffRow)
            .where(HandoffRow.conversation_id == conversation_id, HandoffRow.status.in_(OPEN_STATUSES))
            .order_by(HandoffRow.created_at.desc())
            .limit(1)
        )
        with self._session() as session:
            row = session.scalars(query).first()
        return _handoff(row) if row else None

    def latest(self, conversation_id: str) -> HandoffRecord | None:
        """The conversation's most recent handoff, open or over."""
        query = (
            select(HandoffRow)
            .where(HandoffRow.conversation_id == conversation_id)
            .order_by(HandoffRow.created_at.desc())
            .limit(1)
        )
        with self._session() as session:
            row = session.scalars(query).first()
        return _handoff(row) if row else None

    def queue(self) -> list[HandoffRecord]:
        """Open handoffs: queued ones by priority then age, then active ones by when they were taken."""
        queued = (
            select(HandoffRow)
            .where(HandoffRow.status == "queued")
            .order_by(HandoffRow.priority, HandoffRow.created_at, HandoffRow.id)
        )
        active = select(HandoffRow).where(HandoffRow.status == "active").order_by(HandoffRow.taken_at)
        with self._session() as session:
            return [_handoff(r) for r in [*session.scalars(queued), *session.scalars(active)]]

    def tickets(self) -> list[HandoffRecord]:
        query = select(HandoffRow).where(HandoffRow.status == "ticket").order_by(HandoffRow.created_at)
        with self._session() as session:
            return [_handoff(row) for row in session.scalars(query)]

    def position(self, handoff: HandoffRecord) -> int | None:
        """1 for the next queued handoff to be taken; None unless ``handoff`` is queued."""
        if handoff.status != "queued":
            return None
        h = HandoffRow
        ahead = select(func.count()).where(
            h.status == "queued",
            h.id != handoff.id,
            or_(
                h.priority < handoff.priority,
                and_(h.priority == handoff.priority, h.created_at < handoff.created_at),
                and_(h.priority == handoff.priority, h.created_at == handoff.created_at, h.id < handoff.id),
            ),
        )
        with self._session() as session:
            return int(session.scalar(ahead) or 0) + 1

    def take(self, handoff_id: str, agent_id: str) -> HandoffRecord:
        """Queued or ticket → active, owned by ``agent_id``; taking one's own again changes nothing.
        ``Conflict`` when another agent owns it or it is over."""
        statement = (
            update(HandoffRow)
            .where(HandoffRow.id == handoff_id, HandoffRow.status.in_(("queued", "ticket")))
            .values(status="active", agent_id=agent_id, taken_at=self.clock())
        )
        if self._changed(statement):
            return self.get(handoff_id)
        current = self.get(handoff_id)
        if current.status == "active" and current.agent_id == agent_id:
            return current
        raise self._conflict(current, "take")

    def promote(self, handoff_id: str, priority: int) -> HandoffRecord:
        """A ticket → queued (the customer asked again within working hours); it keeps its age."""
        statement = (
            update(HandoffRow)
            .where(HandoffRow.id == handoff_id, HandoffRow.status == "ticket")
            .values(status="queued", priority=priority)
        )
        self._changed(statement)
        return self.get(handoff_id)

    def finish(self, handoff_id: str, agent_id: str, status: Literal["returned", "closed"]) -> HandoffRecord:
        """Hand back to the bot ("returned") or close; the owner of an active handoff, or any agent for
        a queued one or a ticket. ``Conflict`` otherwise."""
        h = HandoffRow
        statement = (
            update(h)
            .where(
                h.id == handoff_id,
                or_(and_(h.status == "active", h.agent_id == agent_id), h.status.in_(("queued", "ticket"))),
            )
            .values(status=status, ended_at=self.clock(), agent_id=func.coalesce(h.agent_id, agent_id))
        )
        if self._changed(statement):
            return self.get(handoff_id)
        raise self._conflict(self.get(handoff_id), "release" if status == "returned" else "close")

    def check_owner(self, conversation_id: str, agent_id: str) -> HandoffRecord:
        """The conversation's active handoff when ``agent_id`` owns it, else ``Conflict``."""
        current = self.current(conversation_id)
        if current is None or current.status != "active":
            raise Conflict(
                f"conversation {conversation_id!r} has no active handoff — take it from the queue first"
            )
        if current.agent_id != agent_id:
            raise self._conflict(current, "reply in")
        return current

    def mean_handling_seconds(self, window: int, default: float) -> float:
        """Mean time from taken to closed over the last ``window`` closed handoffs (``default`` if none)."""
        query = (
            select(HandoffRow.taken_at, HandoffRow.ended_at)
            .where(
                HandoffRow.status == "closed",
                HandoffRow.taken_at.is_not(None),
                HandoffRow.ended_at.is_not(None),
            )
            .order_by(HandoffRow.ended_at.desc())
            .limit(window)
        )
        with self._session() as session:
            rows = session.execute(query).all()
        spans = [(end - start).total_seconds() for start, end in rows if start and end]
        return sum(spans) / len(spans) if spans else default

    def last_customer_messages(self, conversation_ids: Iterable[str]) -> dict[str, str]:
        """Each conversation's latest customer message (redacted, as stored)."""
        wanted = set(conversation_ids)
        if not wanted:
            return {}
        m = MessageRow
        last = (
            select(m.conversation_id, func.max(m.seq).label("seq"))
            .where(m.conversation_id.in_(wanted), m.role == "user")
            .group_by(m.conversation_id)
            .subquery()
        )
        query = select(m.conversation_id, m.content).join(
            last, and_(last.c.conversation_id == m.conversation_id, last.c.seq == m.seq)
        )
        with self._session() as session:
            return {cid: content for cid, content in session.execute(query).all()}

    def _changed(self, statement: Update) -> bool:
        with self._session.begin() as session:
            result = session.execute(statement.execution_options(synchronize_session=False))
            assert isinstance(result, CursorResult)
            return bool(result.rowcount)

    def _conflict(self, current: HandoffRecord, action: str) -> Conflict:
        if current.status == "active":
            owner = self.agent_names([current.agent_id]).get(current.agent_id or "", "another agent")
            return Conflict(f"handoff {current.id!r} is handled by {owner}; you cannot {action} it")
        return Conflict(
            f"handoff {current.id!r} is {current.status}; you cannot {action} it — reload the queue"
        )


def _agent(row: AgentRow) -> AgentRecord:
    return AgentRecord(
        id=row.id,
        username=row.username,
        display_name=row.display_name,
        active=row.active,
        created_at=row.created_at,
        last_seen_at=row.last_seen_at,
    )


def _handoff(row: HandoffRow) -> HandoffRecord:
    return HandoffRecord(
        id=row.id,
        conversation_id=row.conversation_id,
        status=row.status,  # type: ignore[arg-type]  # only HandoffStatus values are written
        priority=row.priority,
        reason=row.reason,
        summary=row.summary,
        agent_id=row.agent_id,
        vip=row.vip,
        created_at=row.created_at,
        taken_at=row.taken_at,
        ended_at=row.ended_at,
    )
