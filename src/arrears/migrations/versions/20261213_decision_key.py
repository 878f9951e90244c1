"""strategy_decision: keyed by (as_of_date, portfolio_id, account_id), its only index

Revision ID: 20261213_decision_key
Revises: 20261212_action_state_portfolio
Create Date: 2026-12-13 09:00:00

The daily run appends a decision per account and date, a million rows a day for a large portfolio, and
each of the table's three indexes (the surrogate ``id`` key, the unique ``(as_of_date, account_id)`` and
``(as_of_date, portfolio_id)``) was paid per row. Nothing refers to a decision by ``id``: every reader
asks for a date's decisions of a portfolio, or one account's on a date. The natural key serves them all
and keeps the guarantee of one decision per account and date (an account belongs to one portfolio), so
``id`` and the two other indexes go.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "20261213_decision_key"
down_revision = "20261212_action_state_portfolio"
branch_labels = None
depends_on = None

KEY = ["as_of_date", "portfolio_id", "account_id"]


def upgrade() -> None:
    with op.batch_alter_table("strategy_decision") as batch:
        batch.drop_index("ix_strategy_decision_as_of_date_portfolio_id")
        batch.drop_constraint("uq_strategy_decision_as_of_date_account_id", type_="unique")
        batch.drop_constraint("pk_strategy_decision", type_="primary")
        batch.drop_column("id")
        batch.create_primary_key("pk_strategy_decision", KEY)


def downgrade() -> None:
    # the surrogate key again: existing decisions are numbered as the table holds them
    if op.get_bind().dialect.name == "postgresql":
        op.drop_constraint("pk_strategy_decision", "strategy_decision", type_="primary")
        op.execute("ALTER TABLE strategy_decision ADD COLUMN id BIGSERIAL")
        op.create_primary_key("pk_strategy_decision", "strategy_decision", ["id"])
    else:
        with op.batch_alter_table("strategy_decision", recreate="always") as batch:
            # an INTEGER column keyed alone is SQLite's row id: the copied rows are numbered as they come
            batch.drop_constraint("pk_strategy_decision", type_="primary")
            batch.add_column(sa.Column("id", sa.Integer()))
            batch.create_primary_key("pk_strategy_decision", ["id"])
    with op.batch_alter_table("strategy_decision") as batch:
        batch.create_unique_constraint(
            "uq_strategy_decision_as_of_date_account_id", ["as_of_date", "account_id"]
        )
        batch.create_index("ix_strategy_decision_as_of_date_portfolio_id", ["as_of_date", "portfolio_id"])
