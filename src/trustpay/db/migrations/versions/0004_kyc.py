"""kyc: sealed identity (legal name, ID number) with masks, sealed phone, hold lookup by debit account

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-30 13:50:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0004'
down_revision = '0003'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('users', schema=None) as batch_op:
        batch_op.add_column(sa.Column('phone_enc', sa.Text(), nullable=True))
        batch_op.add_column(sa.Column('legal_name_enc', sa.Text(), nullable=True))
        batch_op.add_column(sa.Column('legal_name_masked', sa.String(length=64), nullable=True))
        batch_op.add_column(sa.Column('id_type', sa.String(length=16), nullable=True))
        batch_op.add_column(sa.Column('id_number_enc', sa.Text(), nullable=True))
        batch_op.add_column(sa.Column('id_number_masked', sa.String(length=32), nullable=True))
        batch_op.add_column(sa.Column('identity_submitted_at', sa.DateTime(timezone=True), nullable=True))

    with op.batch_alter_table('ledger_holds', schema=None) as batch_op:
        batch_op.create_index('ix_ledger_holds_debit_status', ['debit_account_id', 'status'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('ledger_holds', schema=None) as batch_op:
        batch_op.drop_index('ix_ledger_holds_debit_status')
    with op.batch_alter_table('users', schema=None) as batch_op:
        batch_op.drop_column('identity_submitted_at')
        batch_op.drop_column('id_number_masked')
        batch_op.drop_column('id_number_enc')
        batch_op.drop_column('id_type')
        batch_op.drop_column('legal_name_masked')
        batch_op.drop_column('legal_name_enc')
        batch_op.drop_column('phone_enc')
