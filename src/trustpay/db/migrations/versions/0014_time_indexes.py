"""time indexes: the money-out checks read today / the last hour, not a user's history

The daily outflow (identity.limits) finds where today begins in the journal
through an index on ledger_entries.created_at, and risk velocity
(risk.service) reads a user's last hour of transfers, withdrawals and trade
payments through (user, time) indexes. Each (user, time) index replaces the
user-only one it starts with.

Revision ID: 0014
Revises: 0013
Create Date: 2026-12-01 02:00:00
"""

from __future__ import annotations

from alembic import op

revision = '0014'
down_revision = '0013'
branch_labels = None
depends_on = None

# (table, the user-only index it had, the (user, time) index that replaces it, its columns)
_REPLACED = (
    ('transfers', 'ix_transfers_sender_id', 'ix_transfers_sender_created', ['sender_id', 'created_at']),
    ('withdrawals', 'ix_withdrawals_user_id', 'ix_withdrawals_user_created', ['user_id', 'created_at']),
    ('trades', 'ix_trades_buyer_id', 'ix_trades_buyer_paid', ['buyer_id', 'paid_at']),
)


def upgrade() -> None:
    op.create_index('ix_ledger_entries_created_at', 'ledger_entries', ['created_at'], unique=False)
    for table, old, new, columns in _REPLACED:
        op.create_index(new, table, columns, unique=False)
        op.drop_index(old, table_name=table)


def downgrade() -> None:
    for table, old, new, columns in _REPLACED:
        op.create_index(old, table, columns[:1], unique=False)
        op.drop_index(new, table_name=table)
    op.drop_index('ix_ledger_entries_created_at', table_name='ledger_entries')
