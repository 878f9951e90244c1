"""import_change: added contact points' values masked in the record of changes

Revision ID: 20261205_mask_contacts
Revises: 20261204_mask_changes
Create Date: 2026-12-05 09:00:00

A re-import that adds a contact point records it as ``kind:relation:value``; the value (a phone number,
an e-mail address, a street address) was kept in full. It is now kept masked as the desk shows it (PI-6);
this masks the rows written before. Values already masked (holding ``*``) are left alone. The downgrade
leaves the rows masked: the values in full are on the contact points.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from arrears.users.masking import mask_contact_value

revision = "20261205_mask_contacts"
down_revision = "20261204_mask_changes"
branch_labels = None
depends_on = None


def upgrade() -> None:
    conn = op.get_bind()
    rows = conn.execute(
        sa.text(
            "SELECT id, new_value FROM import_change WHERE field = 'contact_point'"
            " AND new_value IS NOT NULL AND new_value NOT LIKE '%*%'"
        )
    ).all()
    masked = []
    for row_id, recorded in rows:
        kind, sep, rest = str(recorded).partition(":")
        relation, sep2, value = rest.partition(":")
        if sep and sep2:
            masked.append({"id": row_id, "v": f"{kind}:{relation}:{mask_contact_value(kind, value)}"})
    if masked:
        conn.execute(sa.text("UPDATE import_change SET new_value = :v WHERE id = :id"), masked)


def downgrade() -> None:
    pass  # masked values cannot be restored
