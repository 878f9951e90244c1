"""account: the repayment bank account (card or account number) and its bank

Revision ID: 20261203_bank
Revises: 20261203_ledger3
Create Date: 2026-12-03 09:00:00

The lender's file names the card or bank account each loan is repaid from (还款账号 / 银行卡号) and the
bank it is held at (开户行). The number is sensitive (PI-6): views show it masked and a reveal is logged.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "20261203_bank"
down_revision = "20261203_ledger3"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("account", schema=None) as batch_op:
        batch_op.add_column(sa.Column("bank_account", sa.String(length=32), nullable=True))
        batch_op.add_column(sa.Column("bank_name", sa.String(length=100), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("account", schema=None) as batch_op:
        batch_op.drop_column("bank_name")
        batch_op.drop_column("bank_account")
