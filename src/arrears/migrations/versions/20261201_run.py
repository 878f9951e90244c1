"""run: no per-row foreign-key checks on the daily run's bulk-written tables

Revision ID: 20261201_run
Revises: 20261201_desk_api
Create Date: 2026-12-01 06:20:00

The daily run writes a row per account (strategy state, limitation) or per planned action (action history,
work items) and per moved case (allocation events) every day, in bulk. A foreign key costs a lookup per
row written (on PostgreSQL an index probe and a row lock on the parent). Every id the run writes comes
from rows it read in the same transaction (accounts of the portfolio it locked, collectors with a queue
profile), so the checks can never fail for these writes; the run verifies its inputs once per run
instead. ``strategy_decision`` was created without them for the same reason.
"""

from __future__ import annotations

from alembic import op

revision = "20261201_run"
down_revision = "20261201_desk_api"
branch_labels = None
depends_on = None

# (table, constraint, local column, referred table)
DROPPED = (
    ("account_strategy_state", "fk_account_strategy_state_account_id_account", "account_id", "account"),
    (
        "account_strategy_state",
        "fk_account_strategy_state_portfolio_id_portfolio",
        "portfolio_id",
        "portfolio",
    ),
    ("account_action_state", "fk_account_action_state_account_id_account", "account_id", "account"),
    ("work_item", "fk_work_item_portfolio_id_portfolio", "portfolio_id", "portfolio"),
    ("work_item", "fk_work_item_collector_id_app_user", "collector_id", "app_user"),
    ("allocation_event", "fk_allocation_event_portfolio_id_portfolio", "portfolio_id", "portfolio"),
    ("account_limitation", "fk_account_limitation_account_id_account", "account_id", "account"),
    ("account_limitation", "fk_account_limitation_portfolio_id_portfolio", "portfolio_id", "portfolio"),
)


def upgrade() -> None:
    tables = dict.fromkeys(t for t, *_ in DROPPED)
    for table in tables:
        with op.batch_alter_table(table) as batch:
            for t, name, _col, _ref in DROPPED:
                if t == table:
                    batch.drop_constraint(name, type_="foreignkey")


def downgrade() -> None:
    tables = dict.fromkeys(t for t, *_ in DROPPED)
    for table in tables:
        with op.batch_alter_table(table) as batch:
            for t, name, col, ref in DROPPED:
                if t == table:
                    batch.create_foreign_key(name, ref, [col], ["id"])
