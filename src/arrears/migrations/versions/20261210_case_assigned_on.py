"""case: ``assigned_on``, since when the case has been with its collector

Revision ID: 20261210_case_assigned_on
Revises: 20261209_state_changed_on
Create Date: 2026-12-10 09:00:00

Queue rotation asks how long each case has been with its collector. The allocation used to work it out
every day from the whole allocation history (the latest event that gave the case to its present
collector), a table that grows by every move. The date is now kept on the case, written together with
the collector; existing cases take it from their history.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "20261210_case_assigned_on"
down_revision = "20261209_state_changed_on"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("case") as batch:
        batch.add_column(sa.Column("assigned_on", sa.Date(), nullable=True))
    op.execute(
        'UPDATE "case" SET assigned_on = (SELECT MAX(e.effective_on) FROM allocation_event e'
        ' WHERE e.case_id = "case".id AND e.to_collector_id = "case".assignee_id)'
        " WHERE assignee_id IS NOT NULL"
    )


def downgrade() -> None:
    with op.batch_alter_table("case") as batch:
        batch.drop_column("assigned_on")
