"""open work items indexed by kind: the expiry of calls and visits skips the legal referrals

Revision ID: 20261211_open_items_by_kind
Revises: 20261210_case_assigned_on
Create Date: 2026-12-11 09:00:00

The daily run expires yesterday's open calls and visits, and gives today's open calls to their case's
collector; both look up the open items of a portfolio by kind. Legal referrals stay open until a
supervisor approves them, so in a portfolio with many cases in the legal stage they are most of the open
items, and the index on ``(portfolio_id, as_of_date)`` handed every one of them to the expiry to be read
and filtered out. ``ix_work_item_open`` becomes ``(portfolio_id, kind, as_of_date)``: the calls and visits
of earlier dates are one range of it, and the lookups by portfolio alone read it as before.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "20261211_open_items_by_kind"
down_revision = "20261210_case_assigned_on"
branch_labels = None
depends_on = None

OPEN = "status = 'open'"


def _open_index(columns: list[str]) -> None:
    op.drop_index("ix_work_item_open", table_name="work_item")
    op.create_index(
        "ix_work_item_open",
        "work_item",
        columns,
        postgresql_where=sa.text(OPEN),
        sqlite_where=sa.text(OPEN),
    )


def upgrade() -> None:
    _open_index(["portfolio_id", "kind", "as_of_date"])


def downgrade() -> None:
    _open_index(["portfolio_id", "as_of_date"])
