"""trades: escrow and instant trades

Revision ID: 0009
Revises: 0008
Create Date: 2026-11-30 16:40:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0009'
down_revision = '0008'
branch_labels = None
depends_on = None

TS = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table('trades',
    sa.Column('id', sa.String(length=32), nullable=False),
    sa.Column('merchant_id', sa.String(length=32), nullable=False),
    sa.Column('out_trade_no', sa.String(length=64), nullable=False),
    sa.Column('buyer_id', sa.String(length=32), nullable=True),
    sa.Column('mode', sa.String(length=10), nullable=False),
    sa.Column('status', sa.String(length=32), nullable=False),
    sa.Column('amount', sa.BigInteger(), nullable=False),
    sa.Column('currency', sa.String(length=3), nullable=False),
    sa.Column('subject', sa.String(length=256), nullable=False),
    sa.Column('fee', sa.BigInteger(), nullable=False),
    sa.Column('refunded_amount', sa.BigInteger(), server_default='0', nullable=False),
    sa.Column('dispute_status', sa.String(length=10), server_default='none', nullable=False),
    sa.Column('pay_within_minutes', sa.Integer(), nullable=False),
    sa.Column('ship_within_hours', sa.Integer(), nullable=False),
    sa.Column('confirm_within_hours', sa.Integer(), nullable=False),
    sa.Column('pay_by', TS, nullable=False),
    sa.Column('ship_by', TS, nullable=True),
    sa.Column('confirm_by', TS, nullable=True),
    sa.Column('carrier', sa.String(length=64), nullable=True),
    sa.Column('tracking_no', sa.String(length=64), nullable=True),
    sa.Column('request_hash', sa.String(length=64), nullable=False),
    sa.Column('pay_entry_id', sa.String(length=32), nullable=True),
    sa.Column('release_entry_id', sa.String(length=32), nullable=True),
    sa.Column('close_reason', sa.String(length=20), nullable=True),
    sa.Column('created_at', TS, nullable=False),
    sa.Column('paid_at', TS, nullable=True),
    sa.Column('shipped_at', TS, nullable=True),
    sa.Column('finished_at', TS, nullable=True),
    sa.Column('closed_at', TS, nullable=True),
    sa.Column('updated_at', TS, nullable=False),
    sa.CheckConstraint('amount > 0 AND fee >= 0 AND fee <= amount', name=op.f('ck_trades_amounts_valid')),
    sa.CheckConstraint('refunded_amount >= 0 AND refunded_amount <= amount',
                       name=op.f('ck_trades_refunds_within_amount')),
    sa.ForeignKeyConstraint(['buyer_id'], ['users.id'], name=op.f('fk_trades_buyer_id_users')),
    sa.ForeignKeyConstraint(['merchant_id'], ['users.id'], name=op.f('fk_trades_merchant_id_users')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_trades')),
    sa.UniqueConstraint('merchant_id', 'out_trade_no', name='uq_trades_merchant_out_trade_no'),
    )
    with op.batch_alter_table('trades', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_trades_buyer_id'), ['buyer_id'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('trades', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_trades_buyer_id'))

    op.drop_table('trades')
