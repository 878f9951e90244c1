"""strategy state: ``decided_on`` becomes ``changed_on``, the date its place last moved

Revision ID: 20261209_state_changed_on
Revises: 20261208_expired_items
Create Date: 2026-12-09 09:00:00

The daily run used to move every account's strategy state row to the run's date, a million updates a
day that changed nothing but the date. What an account was decided each day is in ``strategy_decision``
(one row per account and date, unique), so the run now tells the accounts already decided for a date
from there and writes a state row only when its strategy, stage or entry date moves. The column says so.
"""

from __future__ import annotations

from alembic import op

revision = "20261209_state_changed_on"
down_revision = "20261208_expired_items"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("account_strategy_state") as batch:
        batch.alter_column("decided_on", new_column_name="changed_on")


def downgrade() -> None:
    with op.batch_alter_table("account_strategy_state") as batch:
        batch.alter_column("changed_on", new_column_name="decided_on")
