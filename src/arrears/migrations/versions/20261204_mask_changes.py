"""import_change: ID numbers and bank accounts masked in the record of changes

Revision ID: 20261204_mask_changes
Revises: 20261203_bank
Create Date: 2026-12-04 09:00:00

The record of changes of re-imports kept an added ID number and a changed repayment bank account in full.
It now keeps them masked as every view shows them (PI-6: ID number, region and last 4; bank account, last
4); this masks the rows written before. Masking a masked value gives it back unchanged, so the update can
run on any database. The downgrade leaves the rows masked: the numbers in full are on the debtor and the
account, never again in the record of changes.
"""

from __future__ import annotations

from alembic import op

from arrears.users.masking import sql_mask_bank_account, sql_mask_national_id

revision = "20261204_mask_changes"
down_revision = "20261203_bank"
branch_labels = None
depends_on = None


def upgrade() -> None:
    for field, mask in (("national_id", sql_mask_national_id), ("bank_account", sql_mask_bank_account)):
        op.execute(
            f"UPDATE import_change SET old_value = {mask('old_value')}, new_value = {mask('new_value')}"
            f" WHERE field = '{field}'"
        )


def downgrade() -> None:
    pass  # masked values cannot be restored
