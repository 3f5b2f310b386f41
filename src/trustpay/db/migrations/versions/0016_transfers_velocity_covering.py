"""transfers velocity index covers the check: status and amount join (sender, time)

Risk velocity (risk.service) counts a sender's transfers of the last hour that
were not undone and sums their amounts. With only (sender_id, created_at) in
the index, each of those transfers cost a read of its table row; a sender of
thousands an hour made every payment's check (inside its write transaction)
slower. The new index holds what the check reads and replaces the old one.

Revision ID: 0016
Revises: 0015
Create Date: 2026-12-01 09:30:00
"""

from __future__ import annotations

from alembic import op

revision = '0016'
down_revision = '0015'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index('ix_transfers_sender_created_covering', 'transfers',
                    ['sender_id', 'created_at', 'status', 'amount'], unique=False)
    op.drop_index('ix_transfers_sender_created', table_name='transfers')


def downgrade() -> None:
    op.create_index('ix_transfers_sender_created', 'transfers', ['sender_id', 'created_at'], unique=False)
    op.drop_index('ix_transfers_sender_created_covering', table_name='transfers')
