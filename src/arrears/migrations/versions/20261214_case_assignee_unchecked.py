"""case.assignee_id: no database foreign key to app_user

Revision ID: 20261214_case_assignee_unchecked
Revises: 20261213_decision_key
Create Date: 2026-12-14 09:00:00

A portfolio's first daily allocation gives every case its collector in one update (861,291 cases in the
run benchmark), and PostgreSQL checked the foreign key with a trigger call per case: 3.2 of the 5.8 s of
that update. The allocation and a supervisor's reassignment give cases only to users with an active
collector profile, users are deactivated rather than deleted, and
`arrears.portfolios.service.verify_references` checks the column with the other references the database
does not check.
"""

from __future__ import annotations

from alembic import op

revision = "20261214_case_assignee_unchecked"
down_revision = "20261213_decision_key"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("case") as batch:
        batch.drop_constraint("fk_case_assignee_id_app_user", type_="foreignkey")


def downgrade() -> None:
    with op.batch_alter_table("case") as batch:
        batch.create_foreign_key("fk_case_assignee_id_app_user", "app_user", ["assignee_id"], ["id"])
