"""refunds: trade refunds and return of goods

Revision ID: 0011
Revises: 0010
Create Date: 2026-11-30 17:10:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0011'
down_revision = '0010'
branch_labels = None
depends_on = None

TS = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table('refunds',
    sa.Column('id', sa.String(length=32), nullable=False),
    sa.Column('trade_id', sa.String(length=32), nullable=False),
    sa.Column('merchant_id', sa.String(length=32), nullable=False),
    sa.Column('buyer_id', sa.String(length=32), nullable=False),
    sa.Column('requested_by', sa.String(length=10), nullable=False),
    sa.Column('requester_id', sa.String(length=32), nullable=False),
    sa.Column('out_refund_no', sa.String(length=64), nullable=False),
    sa.Column('request_hash', sa.String(length=64), nullable=False),
    sa.Column('amount', sa.BigInteger(), nullable=False),
    sa.Column('currency', sa.String(length=3), nullable=False),
    sa.Column('reason', sa.String(length=256), nullable=False),
    sa.Column('status', sa.String(length=32), nullable=False),
    sa.Column('fee_reversed', sa.BigInteger(), server_default='0', nullable=False),
    sa.Column('return_carrier', sa.String(length=64), nullable=True),
    sa.Column('return_tracking_no', sa.String(length=64), nullable=True),
    sa.Column('answer', sa.String(length=256), nullable=True),
    sa.Column('close_reason', sa.String(length=24), nullable=True),
    sa.Column('respond_by', TS, nullable=True),
    sa.Column('entry_id', sa.String(length=32), nullable=True),
    sa.Column('created_at', TS, nullable=False),
    sa.Column('succeeded_at', TS, nullable=True),
    sa.Column('closed_at', TS, nullable=True),
    sa.Column('updated_at', TS, nullable=False),
    sa.CheckConstraint('amount > 0 AND fee_reversed >= 0 AND fee_reversed <= amount',
                       name=op.f('ck_refunds_amounts_valid')),
    sa.ForeignKeyConstraint(['buyer_id'], ['users.id'], name=op.f('fk_refunds_buyer_id_users')),
    sa.ForeignKeyConstraint(['merchant_id'], ['users.id'], name=op.f('fk_refunds_merchant_id_users')),
    sa.ForeignKeyConstraint(['trade_id'], ['trades.id'], name=op.f('fk_refunds_trade_id_trades')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_refunds')),
    sa.UniqueConstraint('requester_id', 'out_refund_no', name='uq_refunds_requester_out_refund_no'),
    )
    with op.batch_alter_table('refunds', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_refunds_trade_id'), ['trade_id'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('refunds', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_refunds_trade_id'))

    op.drop_table('refunds')
