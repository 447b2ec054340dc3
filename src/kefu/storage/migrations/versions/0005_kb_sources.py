"""Knowledge-base sources that sync on a schedule (``kefu.kb.sources``).

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-24
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

from kefu.kb.sources import kb_sources

revision: str = "0005"
down_revision: str | Sequence[str] | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    kb_sources.create(op.get_bind(), checkfirst=True)


def downgrade() -> None:
    op.drop_table(kb_sources.name)
