"""Small SQL helpers the platform plumbing shares across both engines."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from sqlalchemy import Connection, Table

from trustpay.db import prepared
from trustpay.db.prepared import insert_or_ignore_stmt


def insert_or_ignore(
    conn: Connection, table: Table, values: Mapping[str, Any], conflict_on: Sequence[str]
) -> bool:
    """INSERT unless a row with the same ``conflict_on`` columns exists; True if inserted.

    ``ON CONFLICT DO NOTHING`` rather than catching IntegrityError: on
    PostgreSQL a failed INSERT aborts the whole transaction, while this waits
    for a concurrent inserter of the same key to finish and then simply does
    nothing, so the caller can read the winner's row in the same transaction.
    RETURNING tells whether a row went in (an INSERT's rowcount reads -1 with
    psycopg under SQLAlchemy 2.1).
    """
    stmt = insert_or_ignore_stmt(conn, table, tuple(conflict_on))  # built once per table and key
    return prepared.row(conn, stmt, values) is not None
