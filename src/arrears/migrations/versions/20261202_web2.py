"""work queue: an index in the queue's display order

Revision ID: 20261202_web2
Revises: 20261201_run
Create Date: 2026-12-02 09:00:00

A collector's work queue lists their open and claimed calls and visits by priority (highest first), then
window start and id, 200 at a time. With only ``(collector_id, status)`` to go on, every page view read
and sorted all of the collector's open items (tens of thousands with a million accounts). This partial
index holds the assigned open and claimed items in that order, so the page reads its first rows off it.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "20261202_web2"
down_revision = "20261201_run"
branch_labels = None
depends_on = None

PREDICATE = "collector_id IS NOT NULL AND status IN ('open', 'claimed')"


def upgrade() -> None:
    op.create_index(
        "ix_work_item_queue",
        "work_item",
        ["collector_id", sa.text("priority DESC"), "window_start_at", "id"],
        postgresql_where=sa.text(PREDICATE),
        sqlite_where=sa.text(PREDICATE),
    )


def downgrade() -> None:
    op.drop_index("ix_work_item_queue", table_name="work_item")
