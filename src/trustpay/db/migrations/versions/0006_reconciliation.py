"""reconciliation: runs per bank and business date, matched operations, exceptions queue

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-30 14:10:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0006'
down_revision = '0005'
branch_labels = None
depends_on = None

TS = sa.DateTime(timezone=True)
Amount = sa.BigInteger()


def upgrade() -> None:
    op.create_table('recon_runs',
    sa.Column('id', sa.String(length=32), nullable=False),
    sa.Column('bank', sa.String(length=32), nullable=False),
    sa.Column('business_date', sa.String(length=10), nullable=False),
    sa.Column('lines', sa.Integer(), server_default='0', nullable=False),
    sa.Column('matched', sa.Integer(), server_default='0', nullable=False),
    sa.Column('settled', sa.Integer(), server_default='0', nullable=False),
    sa.Column('exceptions', sa.Integer(), server_default='0', nullable=False),
    sa.Column('cleared', Amount, server_default='0', nullable=False),
    sa.Column('passes', sa.Integer(), server_default='0', nullable=False),
    sa.Column('started_at', TS, nullable=False),
    sa.Column('finished_at', TS, nullable=True),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_recon_runs')),
    sa.UniqueConstraint('bank', 'business_date', name='uq_recon_runs_bank_date'),
    )
    op.create_table('recon_matches',
    sa.Column('reference', sa.String(length=32), nullable=False),
    sa.Column('bank', sa.String(length=32), nullable=False),
    sa.Column('business_date', sa.String(length=10), nullable=False),
    sa.Column('run_id', sa.String(length=32), nullable=False),
    sa.Column('currency', sa.String(length=3), nullable=False),
    sa.Column('clearing_delta', Amount, nullable=False),
    sa.Column('cleared_entry_id', sa.String(length=32), nullable=True),
    sa.Column('matched_at', TS, nullable=False),
    sa.ForeignKeyConstraint(['run_id'], ['recon_runs.id'], name=op.f('fk_recon_matches_run_id_recon_runs')),
    sa.PrimaryKeyConstraint('reference', name=op.f('pk_recon_matches')),
    )
    with op.batch_alter_table('recon_matches', schema=None) as batch_op:
        batch_op.create_index('ix_recon_matches_uncleared', ['bank', 'business_date', 'cleared_entry_id'],
                              unique=False)

    op.create_table('recon_exceptions',
    sa.Column('id', sa.String(length=32), nullable=False),
    sa.Column('dedupe_key', sa.String(length=200), nullable=False),
    sa.Column('run_id', sa.String(length=32), nullable=False),
    sa.Column('bank', sa.String(length=32), nullable=False),
    sa.Column('business_date', sa.String(length=10), nullable=False),
    sa.Column('kind', sa.String(length=20), nullable=False),
    sa.Column('reference', sa.String(length=128), nullable=False),
    sa.Column('bank_ref', sa.String(length=64), nullable=True),
    sa.Column('user_id', sa.String(length=32), nullable=True),
    sa.Column('currency', sa.String(length=3), nullable=False),
    sa.Column('bank_amount', Amount, nullable=True),
    sa.Column('our_amount', Amount, nullable=True),
    sa.Column('bank_status', sa.String(length=10), nullable=True),
    sa.Column('our_status', sa.String(length=10), nullable=True),
    sa.Column('status', sa.String(length=10), nullable=False),
    sa.Column('created_at', TS, nullable=False),
    sa.Column('resolved_at', TS, nullable=True),
    sa.Column('resolved_by', sa.String(length=32), nullable=True),
    sa.Column('resolution', sa.String(length=20), nullable=True),
    sa.Column('resolution_amount', Amount, nullable=True),
    sa.Column('note', sa.String(length=500), nullable=True),
    sa.Column('entry_id', sa.String(length=32), nullable=True),
    sa.ForeignKeyConstraint(['run_id'], ['recon_runs.id'], name=op.f('fk_recon_exceptions_run_id_recon_runs')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_recon_exceptions')),
    sa.UniqueConstraint('dedupe_key', name=op.f('uq_recon_exceptions_dedupe_key')),
    )
    with op.batch_alter_table('recon_exceptions', schema=None) as batch_op:
        batch_op.create_index('ix_recon_exceptions_status_created', ['status', 'created_at'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('recon_exceptions', schema=None) as batch_op:
        batch_op.drop_index('ix_recon_exceptions_status_created')
    op.drop_table('recon_exceptions')
    with op.batch_alter_table('recon_matches', schema=None) as batch_op:
        batch_op.drop_index('ix_recon_matches_uncleared')
    op.drop_table('recon_matches')
    op.drop_table('recon_runs')
