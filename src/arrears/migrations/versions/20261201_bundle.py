"""bundle: evidence bundles, legal costs posted to the ledger, settlement waivers as posted

Revision ID: 20261201_bundle
Revises: 20261201_desk_admin
Create Date: 2026-12-01 06:20:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import arrears.models.base

revision = "20261201_bundle"
down_revision = "20261201_desk_admin"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "evidence_bundle",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("case_id", sa.Integer(), nullable=False),
        sa.Column("legal_case_id", sa.Integer(), nullable=True),
        sa.Column("document_id", sa.Integer(), nullable=False),
        sa.Column("as_of", sa.Date(), nullable=False),
        sa.Column("generated_at", arrears.models.base.UTCDateTime(timezone=True), nullable=False),
        sa.Column("generated_by_id", sa.Integer(), nullable=True),
        sa.Column("generator_version", sa.String(length=32), nullable=False),
        sa.Column("sha256", sa.String(length=64), nullable=False),
        sa.Column("size_bytes", sa.BigInteger(), nullable=False),
        sa.Column("file_count", sa.Integer(), nullable=False),
        sa.Column("chain_ok", sa.Boolean(), nullable=False),
        sa.Column(
            "created_at",
            arrears.models.base.UTCDateTime(timezone=True),
            server_default=sa.text("(CURRENT_TIMESTAMP)"),
            nullable=False,
        ),
        sa.ForeignKeyConstraint(["case_id"], ["case.id"], name=op.f("fk_evidence_bundle_case_id_case")),
        sa.ForeignKeyConstraint(
            ["legal_case_id"], ["legal_case.id"], name=op.f("fk_evidence_bundle_legal_case_id_legal_case")
        ),
        sa.ForeignKeyConstraint(
            ["document_id"], ["document.id"], name=op.f("fk_evidence_bundle_document_id_document")
        ),
        sa.ForeignKeyConstraint(
            ["generated_by_id"], ["app_user.id"], name=op.f("fk_evidence_bundle_generated_by_id_app_user")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_evidence_bundle")),
    )
    op.create_index(op.f("ix_evidence_bundle_case_id"), "evidence_bundle", ["case_id"], unique=False)
    with op.batch_alter_table("legal_cost") as batch:
        batch.add_column(sa.Column("posting_id", sa.BigInteger(), nullable=True))
        batch.add_column(sa.Column("reversed_on", sa.Date(), nullable=True))
        batch.add_column(sa.Column("reversal_reason", sa.Text(), nullable=True))
        batch.add_column(sa.Column("recorded_by_id", sa.Integer(), nullable=True))
        batch.create_foreign_key(
            op.f("fk_legal_cost_recorded_by_id_app_user"), "app_user", ["recorded_by_id"], ["id"]
        )
    with op.batch_alter_table("arrangement_waiver") as batch:
        batch.add_column(sa.Column("posted_minor", sa.BigInteger(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("arrangement_waiver") as batch:
        batch.drop_column("posted_minor")
    with op.batch_alter_table("legal_cost") as batch:
        batch.drop_constraint(op.f("fk_legal_cost_recorded_by_id_app_user"), type_="foreignkey")
        batch.drop_column("recorded_by_id")
        batch.drop_column("reversal_reason")
        batch.drop_column("reversed_on")
        batch.drop_column("posting_id")
    op.drop_index(op.f("ix_evidence_bundle_case_id"), table_name="evidence_bundle")
    op.drop_table("evidence_bundle")
