"""collection: merchant collection codes (收款码) and donation pages (网上募捐)

Revision ID: 0013
Revises: 0012
Create Date: 2026-11-30 17:40:00
"""

from __future__ import annotations

import sqlalchemy as sa  # noqa: F401  (used once the tables are added)
from alembic import op  # noqa: F401

revision = '0013'
down_revision = '0012'
branch_labels = None
depends_on = None


def upgrade() -> None:
    pass


def downgrade() -> None:
    pass
