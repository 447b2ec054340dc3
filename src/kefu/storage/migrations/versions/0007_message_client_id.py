"""A customer message's id given by the client (``Idempotency-Key`` / ``client_message_id``).

``messages.client_id`` with a unique index per conversation: a client that sends a message again
(its request was cut by a restart, a proxy or a flaky network) gets the stored reply instead of a
second copy of the message. NULL for messages sent without an id (older clients, agents, the bot).

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-04
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007"
down_revision: str | Sequence[str] | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("messages") as batch:
        batch.add_column(sa.Column("client_id", sa.String(64), nullable=True))
        batch.create_unique_constraint("uq_messages_conversation_client", ["conversation_id", "client_id"])


def downgrade() -> None:
    with op.batch_alter_table("messages") as batch:
        batch.drop_constraint("uq_messages_conversation_client", type_="unique")
        batch.drop_column("client_id")
