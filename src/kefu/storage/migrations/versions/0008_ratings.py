"""Ratings and CSAT (issue #13 part 1): ``ratings``, one row per rating a customer gives.

A rating is on one bot answer (``message_id``; kind "thumbs" 0/1 or "stars" 1-5) or on the whole
conversation (``message_id`` NULL; kind "csat" 1-5). The comment is stored redacted, like every stored
customer text. The answer's knowledge-base version, cited chunk ids, model route and model are copied
at rating time, so a later KB version or routing change does not rewrite what was rated;
``experiment_arm`` is for the A/B tests (NULL until they exist).

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-04
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

_TIME = sa.DateTime(timezone=True)

revision: str = "0008"
down_revision: str | Sequence[str] | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "ratings",
        sa.Column("id", sa.String(32), primary_key=True),
        sa.Column(
            "conversation_id",
            sa.String(32),
            sa.ForeignKey("conversations.id", ondelete="CASCADE"),
            nullable=False,
        ),
        sa.Column("message_id", sa.String(32), sa.ForeignKey("messages.id", ondelete="CASCADE")),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("score", sa.Integer, nullable=False),
        sa.Column("comment", sa.Text),
        sa.Column("kb_version", sa.String(64)),
        sa.Column("citations", sa.JSON, nullable=False),
        sa.Column("route", sa.String(32)),
        sa.Column("model", sa.String(255)),
        sa.Column("answer_kind", sa.String(32)),
        sa.Column("experiment_arm", sa.String(64)),
        sa.Column("channel", sa.String(32), nullable=False),
        sa.Column("created_at", _TIME, nullable=False),
    )
    op.create_index("ix_ratings_conversation_id", "ratings", ["conversation_id"])
    op.create_index("ix_ratings_created_at", "ratings", ["created_at"])


def downgrade() -> None:
    op.drop_index("ix_ratings_created_at", table_name="ratings")
    op.drop_index("ix_ratings_conversation_id", table_name="ratings")
    op.drop_table("ratings")
