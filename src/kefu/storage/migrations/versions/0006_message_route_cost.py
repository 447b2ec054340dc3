"""Every turn's model route, cost and answer-cache hit (issue #10 §3; ``kefu.llm.routing``).

(a) ``messages.route``: the scenario that chose the model ("faq", "complex", "complaint", "long_context",
    "cheap", "over_budget", "default" without a matrix), NULL for turns outside the knowledge stage.
(b) ``messages.cost``: what the turn's model calls cost, in the matrix's currency (NULL before 0006).
(c) ``messages.cache``: "exact" / "semantic" when the reply came from the answer cache.
(d) ``ix_messages_created_at``: the daily budget sums today's costs on every routed turn.

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-04
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006"
down_revision: str | Sequence[str] | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("messages") as batch:
        batch.add_column(sa.Column("route", sa.String(32), nullable=True))
        batch.add_column(sa.Column("cost", sa.Float, nullable=True))
        batch.add_column(sa.Column("cache", sa.String(16), nullable=True))
    op.create_index("ix_messages_created_at", "messages", ["created_at", "cost"])


def downgrade() -> None:
    op.drop_index("ix_messages_created_at", table_name="messages")
    with op.batch_alter_table("messages") as batch:
        batch.drop_column("cache")
        batch.drop_column("cost")
        batch.drop_column("route")
