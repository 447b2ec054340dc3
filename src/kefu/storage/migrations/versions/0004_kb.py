"""Knowledge base under version control: documents, document versions, KB versions and their snapshots.

The tables as ``kefu.kb.store`` defines them (written out here, so later changes to the module never
change what this revision creates):

    kb_documents          one row per doc_id ever stored
    kb_document_versions  each stored content of a document
    kb_versions           v1, v2, …: message, author, parent, stats; the head is the highest number
    kb_version_entries    (version, doc_id) → document version: the full snapshot of each KB version

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-24
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | Sequence[str] | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_DOC_ID = sa.String(1024)


def upgrade() -> None:
    op.create_table(
        "kb_documents",
        sa.Column("doc_id", _DOC_ID, primary_key=True),
        sa.Column("created_at", sa.String(32), nullable=False),
    )
    op.create_table(
        "kb_document_versions",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("doc_id", _DOC_ID, sa.ForeignKey("kb_documents.doc_id"), nullable=False),
        sa.Column("content_hash", sa.String(64), nullable=False),
        sa.Column("kind", sa.String(8), nullable=False),
        sa.Column("title", sa.Text, nullable=False),
        sa.Column("body", sa.JSON, nullable=False),
        sa.Column("faq_count", sa.Integer, nullable=False),
        sa.Column("source", sa.Text, nullable=False),
        sa.Column("updated_at", sa.String(64), nullable=True),
        sa.Column("created_at", sa.String(32), nullable=False),
    )
    op.create_index("ix_kb_document_versions_doc_id", "kb_document_versions", ["doc_id"])
    op.create_table(
        "kb_versions",
        sa.Column("number", sa.Integer, primary_key=True, autoincrement=False),
        sa.Column("created_at", sa.String(32), nullable=False),
        sa.Column("message", sa.Text, nullable=False),
        sa.Column("author", sa.String(255), nullable=False),
        sa.Column("parent", sa.Integer, nullable=True),
        sa.Column("stats", sa.JSON, nullable=False),
    )
    op.create_table(
        "kb_version_entries",
        sa.Column("version", sa.Integer, sa.ForeignKey("kb_versions.number"), primary_key=True),
        sa.Column("doc_id", _DOC_ID, sa.ForeignKey("kb_documents.doc_id"), primary_key=True),
        sa.Column(
            "document_version_id",
            sa.Integer,
            sa.ForeignKey("kb_document_versions.id"),
            nullable=False,
        ),
    )
    op.create_index(
        "ix_kb_version_entries_document_version_id", "kb_version_entries", ["document_version_id"]
    )


def downgrade() -> None:
    op.drop_index("ix_kb_version_entries_document_version_id", table_name="kb_version_entries")
    op.drop_table("kb_version_entries")
    op.drop_table("kb_versions")
    op.drop_index("ix_kb_document_versions_doc_id", table_name="kb_document_versions")
    op.drop_table("kb_document_versions")
    op.drop_table("kb_documents")
