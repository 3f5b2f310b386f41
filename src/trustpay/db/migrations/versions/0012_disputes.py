"""disputes: buyer-protection disputes and evidence

Revision ID: 0012
Revises: 0011
Create Date: 2026-11-30 17:10:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0012'
down_revision = '0011'
branch_labels = None
depends_on = None

TS = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table('disputes',
    sa.Column('id', sa.String(length=32), nullable=False),
    sa.Column('trade_id', sa.String(length=32), nullable=False),
    sa.Column('merchant_id', sa.String(length=32), nullable=False),
    sa.Column('buyer_id', sa.String(length=32), nullable=False),
    sa.Column('opened_by', sa.String(length=10), nullable=False),
    sa.Column('reason', sa.String(length=1000), nullable=False),
    sa.Column('status', sa.String(length=10), nullable=False),
    sa.Column('trade_status', sa.String(length=32), nullable=False),
    sa.Column('amount', sa.BigInteger(), nullable=False),
    sa.Column('currency', sa.String(length=3), nullable=False),
    sa.Column('hold_id', sa.String(length=32), nullable=True),
    sa.Column('buyer_amount', sa.BigInteger(), nullable=True),
    sa.Column('seller_amount', sa.BigInteger(), nullable=True),
    sa.Column('seller_fee', sa.BigInteger(), nullable=True),
    sa.Column('note', sa.String(length=1000), nullable=True),
    sa.Column('resolved_by', sa.String(length=32), nullable=True),
    sa.Column('entry_id', sa.String(length=32), nullable=True),
    sa.Column('created_at', TS, nullable=False),
    sa.Column('resolved_at', TS, nullable=True),
    sa.Column('updated_at', TS, nullable=False),
    sa.CheckConstraint('amount > 0', name=op.f('ck_disputes_amount_positive')),
    sa.CheckConstraint('buyer_amount IS NULL OR (buyer_amount >= 0 AND seller_amount >= 0 '
                       'AND buyer_amount + seller_amount = amount)', name=op.f('ck_disputes_split_sums')),
    sa.ForeignKeyConstraint(['buyer_id'], ['users.id'], name=op.f('fk_disputes_buyer_id_users')),
    sa.ForeignKeyConstraint(['merchant_id'], ['users.id'], name=op.f('fk_disputes_merchant_id_users')),
    sa.ForeignKeyConstraint(['resolved_by'], ['users.id'], name=op.f('fk_disputes_resolved_by_users')),
    sa.ForeignKeyConstraint(['trade_id'], ['trades.id'], name=op.f('fk_disputes_trade_id_trades')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_disputes')),
    sa.UniqueConstraint('trade_id', name='uq_disputes_trade_id'),
    )
    with op.batch_alter_table('disputes', schema=None) as batch_op:
        batch_op.create_index('ix_disputes_status_created_at', ['status', 'created_at'], unique=False)

    op.create_table('dispute_evidence',
    sa.Column('id', sa.String(length=32), nullable=False),
    sa.Column('dispute_id', sa.String(length=32), nullable=False),
    sa.Column('position', sa.Integer(), nullable=False),
    sa.Column('party', sa.String(length=10), nullable=False),
    sa.Column('kind', sa.String(length=10), nullable=False),
    sa.Column('text', sa.String(length=4000), nullable=True),
    sa.Column('url', sa.String(length=2000), nullable=True),
    sa.Column('file_name', sa.String(length=200), nullable=True),
    sa.Column('content_type', sa.String(length=100), nullable=True),
    sa.Column('size', sa.Integer(), nullable=True),
    sa.Column('sha256', sa.String(length=64), nullable=True),
    sa.Column('content', sa.LargeBinary(), nullable=True),
    sa.Column('created_at', TS, nullable=False),
    sa.ForeignKeyConstraint(['dispute_id'], ['disputes.id'], name=op.f('fk_dispute_evidence_dispute_id_disputes')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_dispute_evidence')),
    sa.UniqueConstraint('dispute_id', 'position', name='uq_dispute_evidence_dispute_id_position'),
    )


def downgrade() -> None:
    op.drop_table('dispute_evidence')
    with op.batch_alter_table('disputes', schema=None) as batch_op:
        batch_op.drop_index('ix_disputes_status_created_at')
    op.drop_table('disputes')
