"""Contacts: drop ix_contacts_call_center_id (uq_contacts_call_center_id_external_id starts with the column).

Every query that filters contacts by call center alone is served by the unique (call_center_id,
external_id) index as well (its leading column), so the single-column index only cost each contact
insert one more index entry (imports write tens of thousands a second).

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-26 09:20:00
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("contacts", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_contacts_call_center_id"))


def downgrade() -> None:
    with op.batch_alter_table("contacts", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_contacts_call_center_id"), ["call_center_id"], unique=False)
