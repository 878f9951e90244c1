"""desk pages: indexes for the supervisor's reports

Revision ID: 20261201_desk_pages
Revises: 20261201_bundle
Create Date: 2026-12-01 06:30:00
"""

from __future__ import annotations

from alembic import op

revision = "20261201_desk_pages"
down_revision = "20261201_bundle"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index("ix_payment_received_on", "payment", ["received_on"])
    op.create_index("ix_contact_attempt_started_at", "contact_attempt", ["started_at"])
    op.create_index("ix_strategy_decision_as_of_date", "strategy_decision", ["as_of_date"])
    op.create_index("ix_promise_status_promised_on", "promise", ["status", "promised_on"])


def downgrade() -> None:
    op.drop_index("ix_promise_status_promised_on", table_name="promise")
    op.drop_index("ix_strategy_decision_as_of_date", table_name="strategy_decision")
    op.drop_index("ix_contact_attempt_started_at", table_name="contact_attempt")
    op.drop_index("ix_payment_received_on", table_name="payment")
