"""The knowledge-gap loop (issue #13 part 4): ``faq_suggestions``, one row per question the bot could
not answer that a human agent then answered.

``question`` is the customer's stored (redacted) text and ``answer`` the agent's reply redacted with the
conversation's placeholders; ``question_key`` is the SHA-256 of the normalised question (dedup). The
source is the conversation and the two message ids (``answer_message_id`` is unique: a scan never
suggests one reply twice) and the agent. ``status`` is pending / conflict (``conflict_with`` names the
existing FAQ "doc_id#faq_id") / approved / rejected; an approval records who decided, when, the FAQ
document it wrote and the KB version that made.

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-04
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

_TIME = sa.DateTime(timezone=True)

revision: str = "0010"
down_revision: str | Sequence[str] | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "faq_suggestions",
        sa.Column("id", sa.String(32), primary_key=True),
        sa.Column("question", sa.Text, nullable=False),
        sa.Column("answer", sa.Text, nullable=False),
        sa.Column("question_key", sa.String(64), nullable=False),
        sa.Column("conversation_id", sa.String(32), nullable=False),
        sa.Column("question_message_id", sa.String(32), nullable=False),
        sa.Column("answer_message_id", sa.String(32), nullable=False),
        sa.Column("agent_id", sa.String(32)),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("conflict_with", sa.String(512)),
        sa.Column("created_at", _TIME, nullable=False),
        sa.Column("decided_at", _TIME),
        sa.Column("decided_by", sa.String(64)),
        sa.Column("faq_doc_id", sa.String(255)),
        sa.Column("kb_version", sa.Integer),
        sa.UniqueConstraint("answer_message_id", name="uq_faq_suggestions_answer_message"),
    )
    op.create_index("ix_faq_suggestions_status", "faq_suggestions", ["status"])
    op.create_index("ix_faq_suggestions_question_key", "faq_suggestions", ["question_key"])


def downgrade() -> None:
    op.drop_index("ix_faq_suggestions_question_key", table_name="faq_suggestions")
    op.drop_index("ix_faq_suggestions_status", table_name="faq_suggestions")
    op.drop_table("faq_suggestions")
