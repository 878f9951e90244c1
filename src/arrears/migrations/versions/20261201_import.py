"""import: no database foreign keys on the rows the account import writes in bulk

The account import writes debtors' cases, accounts, instalments and contact points a million at a time
with COPY. On PostgreSQL each foreign key is a trigger call per written row, which made up most of the
import's time (a COPY of 100,000 accounts with their cases, instalments and contact points took 21 s with
the keys and 6 s without). The import writes these references only to rows it created or read in the same
transaction, and `arrears.portfolios.service.verify_references` checks them, as the ledger does for
postings and payments. Dropped on both databases so that the models describe one schema.

Revision ID: 20261201_import
Revises: 20261201_ledger
Create Date: 2026-12-01 06:30:00
"""

from __future__ import annotations

from alembic import op

revision = "20261201_import"
down_revision = "20261201_ledger"
branch_labels = None
depends_on = None

# table -> (column, referred table)
DROPPED = {
    "contact_point": [("debtor_id", "debtor")],
    "case": [("portfolio_id", "portfolio"), ("debtor_id", "debtor")],
    "account": [("portfolio_id", "portfolio"), ("case_id", "case"), ("debtor_id", "debtor")],
    "instalment": [("account_id", "account")],
}


def upgrade() -> None:
    for table, keys in DROPPED.items():
        with op.batch_alter_table(table) as batch:
            for column, referred in keys:
                batch.drop_constraint(f"fk_{table}_{column}_{referred}", type_="foreignkey")


def downgrade() -> None:
    for table, keys in DROPPED.items():
        with op.batch_alter_table(table) as batch:
            for column, referred in keys:
                batch.create_foreign_key(f"fk_{table}_{column}_{referred}", referred, [column], ["id"])
