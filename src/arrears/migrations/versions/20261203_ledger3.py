"""portfolio: the day through which the daily accrual brought the portfolio's accounts

Revision ID: 20261203_ledger3
Revises: 20261202_web2
Create Date: 2026-12-03 09:00:00

The daily accrual rewrote every account row of a portfolio to move its ``accrued_through_date`` on, also
the accounts whose balances and accrual state did not change (settled, stopped, no rate): about half of a
portfolio after a payment file, each a full row version. ``portfolio.ledger_accrued_through`` now holds
that day for the whole portfolio; an account's own ``accrued_through_date`` is left empty while it follows
the portfolio, and filled only where it differs (see `arrears.models.account.Account`). Existing rows keep
their meaning: an empty day on an account of a portfolio without the new day is its opening day, as before.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "20261203_ledger3"
down_revision = "20261202_web2"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("portfolio", schema=None) as batch_op:
        batch_op.add_column(sa.Column("ledger_accrued_through", sa.Date(), nullable=True))


def downgrade() -> None:
    # accounts that followed the portfolio get the day back on their own row first
    op.execute(
        "UPDATE account SET accrued_through_date = (SELECT p.ledger_accrued_through FROM portfolio p"
        " WHERE p.id = account.portfolio_id)"
        " WHERE accrued_through_date IS NULL AND ledger_opened_on IS NOT NULL AND EXISTS (SELECT 1 FROM"
        " portfolio p WHERE p.id = account.portfolio_id AND p.ledger_accrued_through > account.ledger_opened_on)"
    )
    with op.batch_alter_table("portfolio", schema=None) as batch_op:
        batch_op.drop_column("ledger_accrued_through")
