"""settlement: merchant settlement batches

Revision ID: 0010
Revises: 0009
Create Date: 2026-11-30 17:10:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0010'
down_revision = '0009'
branch_labels = None
depends_on = None

TS = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table('settlements',
    sa.Column('id', sa.String(length=32), nullable=False),
    sa.Column('merchant_id', sa.String(length=32), nullable=False),
    sa.Column('currency', sa.String(length=3), nullable=False),
    sa.Column('business_date', sa.String(length=10), nullable=False),
    sa.Column('cutoff', TS, nullable=False),
    sa.Column('status', sa.String(length=10), nullable=False),
    sa.Column('gross', sa.BigInteger(), nullable=False),
    sa.Column('fee', sa.BigInteger(), nullable=False),
    sa.Column('amount', sa.BigInteger(), nullable=False),
    sa.Column('trade_count', sa.Integer(), nullable=False),
    sa.Column('card_id', sa.String(length=32), nullable=False),
    sa.Column('bank', sa.String(length=32), nullable=False),
    sa.Column('hold_id', sa.String(length=32), nullable=False),
    sa.Column('bank_ref', sa.String(length=64), nullable=True),
    sa.Column('failure_reason', sa.String(length=200), nullable=True),
    sa.Column('open_key', sa.String(length=80), nullable=True),
    sa.Column('created_at', TS, nullable=False),
    sa.Column('completed_at', TS, nullable=True),
    sa.CheckConstraint('amount > 0 AND fee >= 0 AND gross = amount + fee',
                       name=op.f('ck_settlements_amounts_valid')),
    sa.ForeignKeyConstraint(['merchant_id'], ['users.id'], name=op.f('fk_settlements_merchant_id_users')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_settlements')),
    sa.UniqueConstraint('open_key', name=op.f('uq_settlements_open_key')),
    )
    with op.batch_alter_table('settlements', schema=None) as batch_op:
        batch_op.create_index('ix_settlements_merchant', ['merchant_id', 'id'], unique=False)

    op.create_table('settlement_items',
    sa.Column('settlement_id', sa.String(length=32), nullable=False),
    sa.Column('trade_id', sa.String(length=32), nullable=False),
    sa.Column('active_trade_id', sa.String(length=32), nullable=True),
    sa.Column('out_trade_no', sa.String(length=64), nullable=False),
    sa.Column('settleable_at', TS, nullable=False),
    sa.Column('amount', sa.BigInteger(), nullable=False),
    sa.Column('fee', sa.BigInteger(), nullable=False),
    sa.Column('net', sa.BigInteger(), nullable=False),
    sa.ForeignKeyConstraint(['settlement_id'], ['settlements.id'],
                            name=op.f('fk_settlement_items_settlement_id_settlements')),
    sa.ForeignKeyConstraint(['trade_id'], ['trades.id'], name=op.f('fk_settlement_items_trade_id_trades')),
    sa.PrimaryKeyConstraint('settlement_id', 'trade_id', name=op.f('pk_settlement_items')),
    sa.UniqueConstraint('active_trade_id', name=op.f('uq_settlement_items_active_trade_id')),
    )

    op.create_table('settlement_notices',
    sa.Column('merchant_id', sa.String(length=32), nullable=False),
    sa.Column('business_date', sa.String(length=10), nullable=False),
    sa.Column('kind', sa.String(length=20), nullable=False),
    sa.Column('created_at', TS, nullable=False),
    sa.ForeignKeyConstraint(['merchant_id'], ['users.id'], name=op.f('fk_settlement_notices_merchant_id_users')),
    sa.PrimaryKeyConstraint('merchant_id', 'business_date', 'kind', name=op.f('pk_settlement_notices')),
    )


def downgrade() -> None:
    op.drop_table('settlement_notices')
    op.drop_table('settlement_items')
    with op.batch_alter_table('settlements', schema=None) as batch_op:
        batch_op.drop_index('ix_settlements_merchant')
    op.drop_table('settlements')
