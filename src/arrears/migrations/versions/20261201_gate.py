"""gate: anchors of the contact record's hash chains (per-case heads and their digest)

Revision ID: 20261201_gate
Revises: 20261201_import
Create Date: 2026-12-01 06:50:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import arrears.models.base

revision = "20261201_gate"
down_revision = "20261201_import"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "chain_anchor",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("anchored_at", arrears.models.base.UTCDateTime(timezone=True), nullable=False),
        sa.Column("cases", sa.Integer(), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("digest", sa.String(length=64), nullable=False),
        sa.Column(
            "created_at",
            arrears.models.base.UTCDateTime(timezone=True),
            server_default=sa.text("(CURRENT_TIMESTAMP)"),
            nullable=False,
        ),
        sa.Column(
            "updated_at",
            arrears.models.base.UTCDateTime(timezone=True),
            server_default=sa.text("(CURRENT_TIMESTAMP)"),
            nullable=False,
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_chain_anchor")),
    )
    with op.batch_alter_table("chain_anchor", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_chain_anchor_digest"), ["digest"], unique=False)
    op.create_table(
        "chain_anchor_head",
        sa.Column("anchor_id", sa.Integer(), nullable=False),
        sa.Column("case_id", sa.Integer(), nullable=False),
        sa.Column("seq", sa.Integer(), nullable=False),
        sa.Column("hash", sa.String(length=64), nullable=False),
        sa.ForeignKeyConstraint(
            ["anchor_id"], ["chain_anchor.id"], name=op.f("fk_chain_anchor_head_anchor_id_chain_anchor")
        ),
        sa.PrimaryKeyConstraint("anchor_id", "case_id", name=op.f("pk_chain_anchor_head")),
    )


def downgrade() -> None:
    op.drop_table("chain_anchor_head")
    with op.batch_alter_table("chain_anchor", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_chain_anchor_digest"))
    op.drop_table("chain_anchor")
