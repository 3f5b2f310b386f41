"""merchants: merchant profiles, secret API keys

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-30 16:40:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0007'
down_revision = '0006'
branch_labels = None
depends_on = None

TS = sa.DateTime(timezone=True)
Amount = sa.BigInteger()


def upgrade() -> None:
    op.create_table('merchant_profiles',
    sa.Column('merchant_id', sa.String(length=32), nullable=False),
    sa.Column('display_name', sa.String(length=120), server_default='', nullable=False),
    sa.Column('fee_bank_rate', sa.String(length=24), nullable=True),
    sa.Column('fee_margin', sa.String(length=24), nullable=True),
    sa.Column('fee_fixed', Amount, nullable=True),
    sa.Column('fee_minimum', Amount, nullable=True),
    sa.Column('settlement_card_id', sa.String(length=32), nullable=True),
    sa.Column('settlement_delay_days', sa.Integer(), nullable=True),
    sa.Column('created_at', TS, nullable=False),
    sa.Column('updated_at', TS, nullable=False),
    sa.ForeignKeyConstraint(['merchant_id'], ['users.id'], name=op.f('fk_merchant_profiles_merchant_id_users')),
    sa.ForeignKeyConstraint(['settlement_card_id'], ['bank_cards.id'],
                            name=op.f('fk_merchant_profiles_settlement_card_id_bank_cards')),
    sa.PrimaryKeyConstraint('merchant_id', name=op.f('pk_merchant_profiles')),
    )
    op.create_table('merchant_api_keys',
    sa.Column('id', sa.String(length=32), nullable=False),
    sa.Column('merchant_id', sa.String(length=32), nullable=False),
    sa.Column('prefix', sa.String(length=20), nullable=False),
    sa.Column('secret_hash', sa.String(length=64), nullable=False),
    sa.Column('label', sa.String(length=80), server_default='', nullable=False),
    sa.Column('created_at', TS, nullable=False),
    sa.Column('last_used_at', TS, nullable=True),
    sa.Column('revoked_at', TS, nullable=True),
    sa.ForeignKeyConstraint(['merchant_id'], ['users.id'], name=op.f('fk_merchant_api_keys_merchant_id_users')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_merchant_api_keys')),
    sa.UniqueConstraint('secret_hash', name=op.f('uq_merchant_api_keys_secret_hash')),
    )
    with op.batch_alter_table('merchant_api_keys', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_merchant_api_keys_merchant_id'), ['merchant_id'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('merchant_api_keys', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_merchant_api_keys_merchant_id'))
    op.drop_table('merchant_api_keys')
    op.drop_table('merchant_profiles')
