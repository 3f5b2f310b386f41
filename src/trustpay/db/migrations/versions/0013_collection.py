"""collection: merchant collection codes (收款码) and donation pages (网上募捐)

Revision ID: 0013
Revises: 0012
Create Date: 2026-11-30 17:40:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0013'
down_revision = '0012'
branch_labels = None
depends_on = None

TS = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table('collection_codes',
    sa.Column('id', sa.String(length=32), nullable=False),
    sa.Column('merchant_id', sa.String(length=32), nullable=False),
    sa.Column('label', sa.String(length=80), nullable=False),
    sa.Column('currency', sa.String(length=3), nullable=False),
    sa.Column('fixed_amount', sa.BigInteger(), nullable=True),
    sa.Column('status', sa.String(length=10), nullable=False),
    sa.Column('created_at', TS, nullable=False),
    sa.Column('disabled_at', TS, nullable=True),
    sa.CheckConstraint('fixed_amount IS NULL OR fixed_amount > 0',
                       name=op.f('ck_collection_codes_fixed_amount_positive')),
    sa.ForeignKeyConstraint(['merchant_id'], ['users.id'], name=op.f('fk_collection_codes_merchant_id_users')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_collection_codes')),
    )
    with op.batch_alter_table('collection_codes', schema=None) as batch_op:
        batch_op.create_index('ix_collection_codes_merchant_id', ['merchant_id'], unique=False)

    op.create_table('donation_pages',
    sa.Column('id', sa.String(length=32), nullable=False),
    sa.Column('merchant_id', sa.String(length=32), nullable=False),
    sa.Column('title', sa.String(length=120), nullable=False),
    sa.Column('story', sa.String(length=4000), nullable=False),
    sa.Column('currency', sa.String(length=3), nullable=False),
    sa.Column('goal', sa.BigInteger(), nullable=True),
    sa.Column('suggested_amounts', sa.String(length=200), nullable=False),
    sa.Column('public', sa.Boolean(), nullable=False),
    sa.Column('status', sa.String(length=10), nullable=False),
    sa.Column('created_at', TS, nullable=False),
    sa.Column('disabled_at', TS, nullable=True),
    sa.CheckConstraint('goal IS NULL OR goal > 0', name=op.f('ck_donation_pages_goal_positive')),
    sa.ForeignKeyConstraint(['merchant_id'], ['users.id'], name=op.f('fk_donation_pages_merchant_id_users')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_donation_pages')),
    )
    with op.batch_alter_table('donation_pages', schema=None) as batch_op:
        batch_op.create_index('ix_donation_pages_merchant_id', ['merchant_id'], unique=False)

    op.create_table('collection_payments',
    sa.Column('trade_id', sa.String(length=32), nullable=False),
    sa.Column('source_id', sa.String(length=32), nullable=False),
    sa.Column('payer_id', sa.String(length=32), nullable=False),
    sa.Column('note', sa.String(length=200), nullable=True),
    sa.Column('anonymous', sa.Boolean(), server_default='0', nullable=False),
    sa.Column('created_at', TS, nullable=False),
    sa.ForeignKeyConstraint(['payer_id'], ['users.id'], name=op.f('fk_collection_payments_payer_id_users')),
    sa.ForeignKeyConstraint(['trade_id'], ['trades.id'], name=op.f('fk_collection_payments_trade_id_trades')),
    sa.PrimaryKeyConstraint('trade_id', name=op.f('pk_collection_payments')),
    )
    with op.batch_alter_table('collection_payments', schema=None) as batch_op:
        batch_op.create_index('ix_collection_payments_source_id_created_at', ['source_id', 'created_at'],
                              unique=False)


def downgrade() -> None:
    with op.batch_alter_table('collection_payments', schema=None) as batch_op:
        batch_op.drop_index('ix_collection_payments_source_id_created_at')
    op.drop_table('collection_payments')
    with op.batch_alter_table('donation_pages', schema=None) as batch_op:
        batch_op.drop_index('ix_donation_pages_merchant_id')
    op.drop_table('donation_pages')
    with op.batch_alter_table('collection_codes', schema=None) as batch_op:
        batch_op.drop_index('ix_collection_codes_merchant_id')
    op.drop_table('collection_codes')
