"""wallet: bank cards, top-ups, withdrawals, transfers, preferences, notification queue

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-30 14:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0005'
down_revision = '0004'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('notification_queue',
    sa.Column('seq', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('channel', sa.String(length=10), nullable=False),
    sa.Column('recipient', sa.String(length=320), nullable=False),
    sa.Column('subject', sa.String(length=200), nullable=False),
    sa.Column('body', sa.Text(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('sent_at', sa.DateTime(timezone=True), nullable=True),
    sa.PrimaryKeyConstraint('seq', name=op.f('pk_notification_queue'))
    )
    with op.batch_alter_table('notification_queue', schema=None) as batch_op:
        batch_op.create_index('ix_notification_queue_sent', ['sent_at', 'seq'], unique=False)

    op.create_table('bank_cards',
    sa.Column('id', sa.String(length=32), nullable=False),
    sa.Column('user_id', sa.String(length=32), nullable=False),
    sa.Column('bank', sa.String(length=32), nullable=False),
    sa.Column('token', sa.String(length=128), nullable=False),
    sa.Column('last4', sa.String(length=4), nullable=False),
    sa.Column('brand', sa.String(length=32), server_default='', nullable=False),
    sa.Column('holder_masked', sa.String(length=64), server_default='', nullable=False),
    sa.Column('status', sa.String(length=10), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('unbound_at', sa.DateTime(timezone=True), nullable=True),
    sa.ForeignKeyConstraint(['user_id'], ['users.id'], name=op.f('fk_bank_cards_user_id_users')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_bank_cards'))
    )
    with op.batch_alter_table('bank_cards', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_bank_cards_user_id'), ['user_id'], unique=False)

    op.create_table('transfers',
    sa.Column('id', sa.String(length=32), nullable=False),
    sa.Column('sender_id', sa.String(length=32), nullable=False),
    sa.Column('recipient_id', sa.String(length=32), nullable=False),
    sa.Column('currency', sa.String(length=3), nullable=False),
    sa.Column('amount', sa.BigInteger(), nullable=False),
    sa.Column('memo', sa.String(length=200), server_default='', nullable=False),
    sa.Column('status', sa.String(length=20), nullable=False),
    sa.Column('require_acceptance', sa.Boolean(), server_default='0', nullable=False),
    sa.Column('hold_id', sa.String(length=32), nullable=True),
    sa.Column('undo_until', sa.DateTime(timezone=True), nullable=True),
    sa.Column('accept_until', sa.DateTime(timezone=True), nullable=True),
    sa.Column('settled_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('resolved_at', sa.DateTime(timezone=True), nullable=True),
    sa.CheckConstraint('amount > 0', name=op.f('ck_transfers_amount_positive')),
    sa.ForeignKeyConstraint(['recipient_id'], ['users.id'], name=op.f('fk_transfers_recipient_id_users')),
    sa.ForeignKeyConstraint(['sender_id'], ['users.id'], name=op.f('fk_transfers_sender_id_users')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_transfers'))
    )
    with op.batch_alter_table('transfers', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_transfers_recipient_id'), ['recipient_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_transfers_sender_id'), ['sender_id'], unique=False)
        batch_op.create_index('ix_transfers_sender_recipient', ['sender_id', 'recipient_id'], unique=False)

    op.create_table('wallet_preferences',
    sa.Column('user_id', sa.String(length=32), nullable=False),
    sa.Column('daily_cap', sa.BigInteger(), nullable=True),
    sa.Column('password_free_cap', sa.BigInteger(), server_default='0', nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['user_id'], ['users.id'], name=op.f('fk_wallet_preferences_user_id_users')),
    sa.PrimaryKeyConstraint('user_id', name=op.f('pk_wallet_preferences'))
    )
    op.create_table('topups',
    sa.Column('id', sa.String(length=32), nullable=False),
    sa.Column('user_id', sa.String(length=32), nullable=False),
    sa.Column('card_id', sa.String(length=32), nullable=False),
    sa.Column('bank', sa.String(length=32), nullable=False),
    sa.Column('currency', sa.String(length=3), nullable=False),
    sa.Column('amount', sa.BigInteger(), nullable=False),
    sa.Column('status', sa.String(length=10), nullable=False),
    sa.Column('bank_ref', sa.String(length=64), nullable=True),
    sa.Column('failure_reason', sa.String(length=200), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('completed_at', sa.DateTime(timezone=True), nullable=True),
    sa.CheckConstraint('amount > 0', name=op.f('ck_topups_amount_positive')),
    sa.ForeignKeyConstraint(['card_id'], ['bank_cards.id'], name=op.f('fk_topups_card_id_bank_cards')),
    sa.ForeignKeyConstraint(['user_id'], ['users.id'], name=op.f('fk_topups_user_id_users')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_topups'))
    )
    with op.batch_alter_table('topups', schema=None) as batch_op:
        batch_op.create_index('ix_topups_status_created', ['status', 'created_at'], unique=False)
        batch_op.create_index(batch_op.f('ix_topups_user_id'), ['user_id'], unique=False)

    op.create_table('withdrawals',
    sa.Column('id', sa.String(length=32), nullable=False),
    sa.Column('user_id', sa.String(length=32), nullable=False),
    sa.Column('card_id', sa.String(length=32), nullable=False),
    sa.Column('bank', sa.String(length=32), nullable=False),
    sa.Column('currency', sa.String(length=3), nullable=False),
    sa.Column('amount', sa.BigInteger(), nullable=False),
    sa.Column('fee', sa.BigInteger(), nullable=False),
    sa.Column('status', sa.String(length=10), nullable=False),
    sa.Column('hold_id', sa.String(length=32), nullable=False),
    sa.Column('fee_hold_id', sa.String(length=32), nullable=True),
    sa.Column('bank_ref', sa.String(length=64), nullable=True),
    sa.Column('failure_reason', sa.String(length=200), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('completed_at', sa.DateTime(timezone=True), nullable=True),
    sa.CheckConstraint('amount > 0 AND fee >= 0', name=op.f('ck_withdrawals_amounts_valid')),
    sa.ForeignKeyConstraint(['card_id'], ['bank_cards.id'], name=op.f('fk_withdrawals_card_id_bank_cards')),
    sa.ForeignKeyConstraint(['user_id'], ['users.id'], name=op.f('fk_withdrawals_user_id_users')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_withdrawals'))
    )
    with op.batch_alter_table('withdrawals', schema=None) as batch_op:
        batch_op.create_index('ix_withdrawals_status_created', ['status', 'created_at'], unique=False)
        batch_op.create_index(batch_op.f('ix_withdrawals_user_id'), ['user_id'], unique=False)



def downgrade() -> None:
    with op.batch_alter_table('withdrawals', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_withdrawals_user_id'))
        batch_op.drop_index('ix_withdrawals_status_created')

    op.drop_table('withdrawals')
    with op.batch_alter_table('topups', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_topups_user_id'))
        batch_op.drop_index('ix_topups_status_created')

    op.drop_table('topups')
    op.drop_table('wallet_preferences')
    with op.batch_alter_table('transfers', schema=None) as batch_op:
        batch_op.drop_index('ix_transfers_sender_recipient')
        batch_op.drop_index(batch_op.f('ix_transfers_sender_id'))
        batch_op.drop_index(batch_op.f('ix_transfers_recipient_id'))

    op.drop_table('transfers')
    with op.batch_alter_table('bank_cards', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_bank_cards_user_id'))

    op.drop_table('bank_cards')
    with op.batch_alter_table('notification_queue', schema=None) as batch_op:
        batch_op.drop_index('ix_notification_queue_sent')

    op.drop_table('notification_queue')
