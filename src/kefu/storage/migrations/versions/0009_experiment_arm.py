"""A/B tests of dialog strategies (issue #13 part 2): the experiment and arm of each bot answer.

``messages.experiment`` and ``messages.experiment_arm`` name the experiment (``kefu.experiments``) a
conversation was assigned to and its arm, on every assistant message of that conversation while the
experiment runs; NULL outside an experiment. Indexed by (experiment, experiment_arm) for ``kefu ab report``.

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-04
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0009"
down_revision: str | Sequence[str] | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("messages") as batch:
        batch.add_column(sa.Column("experiment", sa.String(64), nullable=True))
        batch.add_column(sa.Column("experiment_arm", sa.String(64), nullable=True))
    op.create_index("ix_messages_experiment", "messages", ["experiment", "experiment_arm"])


def downgrade() -> None:
    op.drop_index("ix_messages_experiment", table_name="messages")
    with op.batch_alter_table("messages") as batch:
        batch.drop_column("experiment_arm")
        batch.drop_column("experiment")
