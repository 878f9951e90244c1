"""run indexes: appends of a new date at the right edge, state updates in place

Revision ID: 20261206_run5
Revises: 20261205_mask_contacts
Create Date: 2026-12-06 09:00:00

The daily run appends a decision per account and moves every account's strategy state to the date, a
million rows each a day, and every index on those tables is paid per row:

* ``strategy_decision``: the unique key becomes ``(as_of_date, account_id)``. Led by the date, a day's
  decisions land at the right edge of the index in account order instead of one next to each account's
  earlier decisions all over it; the lookups by account and date use it the same way. The index on
  ``as_of_date`` (reports across portfolios) and the one on ``(portfolio_id, as_of_date)`` (the
  allocation) become one on ``(as_of_date, portfolio_id)``, which serves both.
* ``account_strategy_state``: the index on ``(portfolio_id, decided_on)`` becomes one on ``portfolio_id``.
  With no index on the date the run changes every day, and half of each page kept free on PostgreSQL
  (fillfactor 50), the daily update rewrites each row in place (a heap-only update) instead of adding an
  entry to each index. ``account_action_state`` keeps the same room for its daily update of
  ``last_on`` / ``times``.
* ``work_item``: the run writes a row per planned call, visit and legal referral, most of them blocked or
  without a collector, and moves yesterday's open calls to ``expired``. The index on
  ``(collector_id, status)`` keeps only items with a collector, and the one on ``(portfolio_id, status)``
  becomes one on ``(portfolio_id, as_of_date)`` of the open items only, which is all the run looks up by
  portfolio (expiry, cancellation, the collector sync). An item leaving ``open`` leaves that index.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "20261206_run5"
down_revision = "20261205_mask_contacts"
branch_labels = None
depends_on = None

COLLECTED = "collector_id IS NOT NULL"
OPEN = "status = 'open'"


def upgrade() -> None:
    with op.batch_alter_table("strategy_decision") as batch:
        batch.drop_constraint("uq_strategy_decision_account_id_as_of_date", type_="unique")
        batch.create_unique_constraint(
            "uq_strategy_decision_as_of_date_account_id", ["as_of_date", "account_id"]
        )
        batch.drop_index("ix_strategy_decision_as_of_date")
        batch.drop_index("ix_strategy_decision_portfolio_id_as_of_date")
        batch.create_index("ix_strategy_decision_as_of_date_portfolio_id", ["as_of_date", "portfolio_id"])
    with op.batch_alter_table("account_strategy_state") as batch:
        batch.drop_index("ix_account_strategy_state_portfolio_id_decided_on")
        batch.create_index("ix_account_strategy_state_portfolio_id", ["portfolio_id"])
    op.drop_index("ix_work_item_collector_id_status", table_name="work_item")
    op.drop_index("ix_work_item_portfolio_id_status", table_name="work_item")
    op.create_index(
        "ix_work_item_collector_id_status",
        "work_item",
        ["collector_id", "status"],
        postgresql_where=sa.text(COLLECTED),
        sqlite_where=sa.text(COLLECTED),
    )
    op.create_index(
        "ix_work_item_open",
        "work_item",
        ["portfolio_id", "as_of_date"],
        postgresql_where=sa.text(OPEN),
        sqlite_where=sa.text(OPEN),
    )
    if op.get_bind().dialect.name == "postgresql":
        op.execute("ALTER TABLE account_strategy_state SET (fillfactor = 50)")
        op.execute("ALTER TABLE account_action_state SET (fillfactor = 50)")


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("ALTER TABLE account_action_state RESET (fillfactor)")
        op.execute("ALTER TABLE account_strategy_state RESET (fillfactor)")
    op.drop_index("ix_work_item_open", table_name="work_item")
    op.drop_index("ix_work_item_collector_id_status", table_name="work_item")
    op.create_index("ix_work_item_portfolio_id_status", "work_item", ["portfolio_id", "status"])
    op.create_index("ix_work_item_collector_id_status", "work_item", ["collector_id", "status"])
    with op.batch_alter_table("account_strategy_state") as batch:
        batch.drop_index("ix_account_strategy_state_portfolio_id")
        batch.create_index(
            "ix_account_strategy_state_portfolio_id_decided_on", ["portfolio_id", "decided_on"]
        )
    with op.batch_alter_table("strategy_decision") as batch:
        batch.drop_index("ix_strategy_decision_as_of_date_portfolio_id")
        batch.create_index("ix_strategy_decision_portfolio_id_as_of_date", ["portfolio_id", "as_of_date"])
        batch.create_index("ix_strategy_decision_as_of_date", ["as_of_date"])
        batch.drop_constraint("uq_strategy_decision_as_of_date_account_id", type_="unique")
        batch.create_unique_constraint(
            "uq_strategy_decision_account_id_as_of_date", ["account_id", "as_of_date"]
        )
