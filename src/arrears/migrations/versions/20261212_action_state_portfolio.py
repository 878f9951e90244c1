"""account_action_state: ``portfolio_id``, so a run reads a portfolio's action history alone

Revision ID: 20261212_action_state_portfolio
Revises: 20261211_open_items_by_kind
Create Date: 2026-12-12 09:00:00

The daily run reads every action history row of the portfolio (when each action was last planned and how
often). The rows named only their account, so the read joined the whole account table to find the
portfolio's. They now carry the portfolio, as the strategy state does; existing rows take it from their
account, and rows of accounts that no longer exist are removed.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "20261212_action_state_portfolio"
down_revision = "20261211_open_items_by_kind"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("account_action_state") as batch:
        batch.add_column(sa.Column("portfolio_id", sa.Integer(), nullable=True))
    op.execute(
        "DELETE FROM account_action_state WHERE NOT EXISTS"
        " (SELECT 1 FROM account a WHERE a.id = account_action_state.account_id)"
    )
    op.execute(
        "UPDATE account_action_state SET portfolio_id ="
        " (SELECT a.portfolio_id FROM account a WHERE a.id = account_action_state.account_id)"
    )
    with op.batch_alter_table("account_action_state") as batch:
        batch.alter_column("portfolio_id", existing_type=sa.Integer(), nullable=False)
        batch.create_index("ix_account_action_state_portfolio_id", ["portfolio_id"])


def downgrade() -> None:
    with op.batch_alter_table("account_action_state") as batch:
        batch.drop_index("ix_account_action_state_portfolio_id")
        batch.drop_column("portfolio_id")
