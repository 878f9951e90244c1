"""ledger: lighter indexes on postings and payments, room for in-place balance updates

Postings and payments are written a million at a time, so each index they carry is paid per row:

* ``posting.payment_id`` loses its index: a payment's postings are found through its debtor's accounts
  (``ix_posting_account_id_effective_date``), which every lookup already knows;
* ``posting.reverses_posting_id`` and ``payment.idempotency_key`` become partial unique indexes, so the
  rows that leave them empty (almost all) add nothing to them;
* ``payment.import_batch_id`` loses its index (nothing looks payments up by batch).

On PostgreSQL the ``account`` table keeps half of each page free (fillfactor 50): the daily accrual and a
payment file update the cached balances of every account, and with room on the page PostgreSQL rewrites
the row in place (a heap-only update) instead of adding an entry to each of the account's indexes.

Revision ID: 20261201_ledger
Revises: 20261201_desk_pages
Create Date: 2026-12-01 06:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "20261201_ledger"
down_revision = "20261201_desk_pages"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("posting", schema=None) as batch_op:
        batch_op.drop_index("ix_posting_payment_id")
        batch_op.drop_constraint("uq_posting_reverses_posting_id", type_="unique")
    op.create_index(
        "uq_posting_reverses_posting_id",
        "posting",
        ["reverses_posting_id"],
        unique=True,
        postgresql_where=sa.text("reverses_posting_id IS NOT NULL"),
        sqlite_where=sa.text("reverses_posting_id IS NOT NULL"),
    )
    with op.batch_alter_table("payment", schema=None) as batch_op:
        batch_op.drop_index("ix_payment_import_batch_id")
        batch_op.drop_constraint("uq_payment_idempotency_key", type_="unique")
    op.create_index(
        "uq_payment_idempotency_key",
        "payment",
        ["idempotency_key"],
        unique=True,
        postgresql_where=sa.text("idempotency_key IS NOT NULL"),
        sqlite_where=sa.text("idempotency_key IS NOT NULL"),
    )
    if op.get_bind().dialect.name == "postgresql":
        op.execute("ALTER TABLE account SET (fillfactor = 50)")


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("ALTER TABLE account RESET (fillfactor)")
    op.drop_index("uq_payment_idempotency_key", table_name="payment")
    with op.batch_alter_table("payment", schema=None) as batch_op:
        batch_op.create_unique_constraint("uq_payment_idempotency_key", ["idempotency_key"])
        batch_op.create_index("ix_payment_import_batch_id", ["import_batch_id"], unique=False)
    op.drop_index("uq_posting_reverses_posting_id", table_name="posting")
    with op.batch_alter_table("posting", schema=None) as batch_op:
        batch_op.create_unique_constraint("uq_posting_reverses_posting_id", ["reverses_posting_id"])
        batch_op.create_index("ix_posting_payment_id", ["payment_id"], unique=False)
