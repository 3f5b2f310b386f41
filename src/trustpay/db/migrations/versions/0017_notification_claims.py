"""notification_queue.claimed_until: messages are sent outside any transaction

The worker used to read, send and mark queued messages inside one write
transaction, so a slow mail server held the database's writer (and every
payment behind it) for the whole send. Now it claims a batch (this lease),
sends with no transaction open, then marks what went out; a runner that dies
mid-send leaves a claim that runs out, and the batch is sent again (at least
once, as before).

Revision ID: 0017
Revises: 0016
Create Date: 2026-12-03 14:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0017'
down_revision = '0016'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('notification_queue', schema=None) as batch_op:
        batch_op.add_column(sa.Column('claimed_until', sa.DateTime(timezone=True), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('notification_queue', schema=None) as batch_op:
        batch_op.drop_column('claimed_until')
