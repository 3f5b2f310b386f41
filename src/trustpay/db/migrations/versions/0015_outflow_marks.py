"""outflow marks: the daily-outflow limit reads a wallet's postings since its last mark

identity.limits keeps, per wallet, the sum of that day's posted debits up to a
journal position; a payment's check sums only the postings after it. Without
it, every payment re-read all of the wallet's postings of the day, inside the
payment's write transaction: a wallet paying all day made each payment slower.
The table starts empty; marks are made by the checks themselves.

Revision ID: 0015
Revises: 0014
Create Date: 2026-12-01 09:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0015'
down_revision = '0014'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        'outflow_marks',
        sa.Column('account_id', sa.String(length=32), nullable=False),
        sa.Column('day_start', sa.DateTime(timezone=True), nullable=False),
        sa.Column('day_end', sa.DateTime(timezone=True), nullable=False),
        sa.Column('upto_seq', sa.BigInteger(), nullable=False),
        sa.Column('posted_out', sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(['account_id'], ['ledger_accounts.id'],
                                name=op.f('fk_outflow_marks_account_id_ledger_accounts')),
        sa.PrimaryKeyConstraint('account_id', name=op.f('pk_outflow_marks')),
    )


def downgrade() -> None:
    op.drop_table('outflow_marks')
