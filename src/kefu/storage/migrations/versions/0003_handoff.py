"""Human handoff: the agent queue, agents, tickets and per-conversation operation counts.

(a) ``agents``: console accounts (scrypt password hashes), ``last_seen_at`` for "online".
(b) ``handoffs``: queued → active → returned | closed, or ticket (outside working hours).
(c) ``conversation_stats``: the counts behind ``kefu stats`` / GET /v1/stats/operations; existing
    conversations get a row from their messages (customer and bot message counts; "completed" when the
    last bot answer was a FAQ or grounded answer — flows and handoffs were not recorded before).
(d) ``messages.agent_id``: who wrote a message of role "agent".

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-24
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | Sequence[str] | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_TIME = sa.DateTime(timezone=True)
_MESSAGES = sa.table(
    "messages",
    sa.column("conversation_id", sa.String),
    sa.column("seq", sa.Integer),
    sa.column("role", sa.String),
    sa.column("answer_kind", sa.String),
)
_COUNTERS = (
    "user_messages",
    "bot_replies",
    "agent_replies",
    "handoffs",
    "low_confidence_streak",
    "flows_started",
    "flows_completed",
    "flows_failed",
)


def upgrade() -> None:
    op.create_table(
        "agents",
        sa.Column("id", sa.String(32), primary_key=True),
        sa.Column("username", sa.String(64), nullable=False),
        sa.Column("display_name", sa.String(128), nullable=False),
        sa.Column("password_hash", sa.String(255), nullable=False),
        sa.Column("active", sa.Boolean, nullable=False),
        sa.Column("created_at", _TIME, nullable=False),
        sa.Column("last_seen_at", _TIME, nullable=True),
        sa.UniqueConstraint("username", name="uq_agents_username"),
    )
    op.create_table(
        "handoffs",
        sa.Column("id", sa.String(32), primary_key=True),
        sa.Column(
            "conversation_id",
            sa.String(32),
            sa.ForeignKey("conversations.id", ondelete="CASCADE"),
            nullable=False,
        ),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("priority", sa.Integer, nullable=False),
        sa.Column("reason", sa.String(32), nullable=False),
        sa.Column("summary", sa.Text, nullable=False),
        sa.Column("agent_id", sa.String(32), sa.ForeignKey("agents.id"), nullable=True),
        sa.Column("vip", sa.Boolean, nullable=False),
        sa.Column("created_at", _TIME, nullable=False),
        sa.Column("taken_at", _TIME, nullable=True),
        sa.Column("ended_at", _TIME, nullable=True),
    )
    op.create_index("ix_handoffs_status", "handoffs", ["status"])
    op.create_index("ix_handoffs_conversation_id", "handoffs", ["conversation_id"])
    stats = op.create_table(
        "conversation_stats",
        sa.Column(
            "conversation_id",
            sa.String(32),
            sa.ForeignKey("conversations.id", ondelete="CASCADE"),
            primary_key=True,
        ),
        *[sa.Column(name, sa.Integer, nullable=False) for name in _COUNTERS],
        sa.Column("resolved_by", sa.String(16), nullable=True),
        sa.Column("completed", sa.Boolean, nullable=False),
        sa.Column("updated_at", _TIME, nullable=False),
    )
    op.add_column("messages", sa.Column("agent_id", sa.String(32), nullable=True))
    _backfill_stats(stats)


def _backfill_stats(stats: sa.Table) -> None:
    bind = op.get_bind()
    m = _MESSAGES.c
    counts = bind.execute(
        sa.select(
            m.conversation_id,
            sa.func.sum(sa.case((m.role == "user", 1), else_=0)),
            sa.func.sum(sa.case((m.role == "assistant", 1), else_=0)),
        ).group_by(m.conversation_id)
    ).all()
    if not counts:
        return
    last_seq = (
        sa.select(m.conversation_id, sa.func.max(m.seq).label("seq"))
        .where(m.role == "assistant")
        .group_by(m.conversation_id)
        .subquery()
    )
    last_kind: dict[str, str | None] = dict(
        bind.execute(
            sa.select(m.conversation_id, m.answer_kind).join(
                last_seq, sa.and_(last_seq.c.conversation_id == m.conversation_id, last_seq.c.seq == m.seq)
            )
        ).all()
    )
    now = datetime.now(UTC)
    if bind.dialect.name == "sqlite":
        now = now.replace(tzinfo=None)  # as kefu.storage.models.UTCDateTime stores it
    rows = []
    for conversation_id, users, bots in counts:
        completed = last_kind.get(conversation_id) in ("faq", "grounded")
        row: dict[str, object] = {name: 0 for name in _COUNTERS}
        row.update(
            conversation_id=conversation_id,
            user_messages=int(users or 0),
            bot_replies=int(bots or 0),
            completed=completed,
            resolved_by="bot" if completed else None,
            updated_at=now,
        )
        rows.append(row)
    op.bulk_insert(stats, rows)


def downgrade() -> None:
    op.drop_column("messages", "agent_id")
    op.drop_table("conversation_stats")
    op.drop_index("ix_handoffs_conversation_id", table_name="handoffs")
    op.drop_index("ix_handoffs_status", table_name="handoffs")
    op.drop_table("handoffs")
    op.drop_table("agents")
