"""case rows updated in place: no index on the collector, half of each page kept free

Revision ID: 20261207_case_hot
Revises: 20261206_run5
Create Date: 2026-12-07 09:00:00

The daily run writes each changed case's stage and collector with one update; the first run after an
import changes every case. With an index on ``assignee_id`` every such update was a new row version with
an entry in each of the table's four indexes. Nothing looks cases up by collector through that index
(the work queue reads ``work_item``; the team report counts a portfolio's cases by collector, a scan
either way), so it goes, and on PostgreSQL half of each page is kept free (fillfactor 50): the update of
stage, collector and time then stays on the row's own page and touches no index (a heap-only update).
"""

from __future__ import annotations

from alembic import op

revision = "20261207_case_hot"
down_revision = "20261206_run5"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("case") as batch:
        batch.drop_index("ix_case_assignee_id")
    if op.get_bind().dialect.name == "postgresql":
        op.execute('ALTER TABLE "case" SET (fillfactor = 50)')


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute('ALTER TABLE "case" RESET (fillfactor)')
    with op.batch_alter_table("case") as batch:
        batch.create_index("ix_case_assignee_id", ["assignee_id"], unique=False)
