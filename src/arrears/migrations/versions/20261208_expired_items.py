"""expired calls and visits leave the work items' idempotency and collector indexes

Revision ID: 20261208_expired_items
Revises: 20261207_case_hot
Create Date: 2026-12-08 09:00:00

Every call and visit nobody worked expires the next day: the daily run sets its status to ``expired``.
That change of an indexed column writes a new row version with an entry in each index it belongs to,
and expired items soon outnumber all others. Two indexes no longer hold them:

* ``uq_work_item_idempotency_key`` is unique over the items that have not expired. An item expires only
  when a run of a later date replaces it, and runs move forward (a run of an earlier date is refused),
  so no run can plan an expired item's key (its date) again: the guarantee against a duplicate is the
  same.
* ``ix_work_item_collector_id_status`` serves the team report (a collector's open, claimed and done items),
  which never reads expired ones.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "20261208_expired_items"
down_revision = "20261207_case_hot"
branch_labels = None
depends_on = None

LIVE = "status <> 'expired'"
COLLECTED_LIVE = "collector_id IS NOT NULL AND status <> 'expired'"
COLLECTED = "collector_id IS NOT NULL"


def upgrade() -> None:
    with op.batch_alter_table("work_item") as batch:
        batch.drop_constraint("uq_work_item_idempotency_key", type_="unique")
    op.create_index(
        "uq_work_item_idempotency_key",
        "work_item",
        ["idempotency_key"],
        unique=True,
        postgresql_where=sa.text(LIVE),
        sqlite_where=sa.text(LIVE),
    )
    op.drop_index("ix_work_item_collector_id_status", table_name="work_item")
    op.create_index(
        "ix_work_item_collector_id_status",
        "work_item",
        ["collector_id", "status"],
        postgresql_where=sa.text(COLLECTED_LIVE),
        sqlite_where=sa.text(COLLECTED_LIVE),
    )


def downgrade() -> None:
    op.drop_index("ix_work_item_collector_id_status", table_name="work_item")
    op.create_index(
        "ix_work_item_collector_id_status",
        "work_item",
        ["collector_id", "status"],
        postgresql_where=sa.text(COLLECTED),
        sqlite_where=sa.text(COLLECTED),
    )
    op.drop_index("uq_work_item_idempotency_key", table_name="work_item")
    with op.batch_alter_table("work_item") as batch:
        batch.create_unique_constraint("uq_work_item_idempotency_key", ["idempotency_key"])
