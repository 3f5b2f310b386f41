"""Direct driver access for the few statements on the ledger's hot path.

SQLAlchemy Core costs ~80 µs per statement here, more than SQLite's own
work; the ledger append runs its handful of fixed statements on the DBAPI
connection of the *same* SQLAlchemy transaction instead. SQL is written once
with ``:name`` parameters and translated to psycopg's ``%(name)s``.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import Connection

from trustpay.clock import to_utc

Params = dict[str, Any] | tuple[Any, ...]
_PARAM = re.compile(r"(?<!:):([a-z_][a-z0-9_]*)")


class Sql:
    """One statement in both dialects' parameter styles: ``:name`` (take a
    dict) or ``?`` (take a tuple — cheaper for bulk inserts)."""

    __slots__ = ("pg", "sqlite")

    def __init__(self, sql: str) -> None:
        self.sqlite = sql
        self.pg = _PARAM.sub(r"%(\1)s", sql.replace("%", "%%")).replace("?", "%s")


class Raw:
    """The driver connection under ``conn``, in ``conn``'s transaction."""

    __slots__ = ("dbapi", "is_pg", "pg_cursor", "sqlite_cursor")

    def __init__(self, conn: Connection) -> None:
        dbapi: Any = conn.connection.driver_connection
        self.dbapi = dbapi
        self.is_pg = conn.dialect.name == "postgresql"
        # One cursor for the connection's statements here, each read to the end
        # before the next runs: psycopg's costs ~25 µs to make; sqlite3's
        # Connection.execute makes (and drops) one per statement.
        self.pg_cursor: Any = dbapi.cursor() if self.is_pg else None
        self.sqlite_cursor: Any = None if self.is_pg else dbapi.cursor()

    @classmethod
    def of(cls, conn: Connection) -> Raw:
        """The Raw for ``conn``'s driver connection, made once and kept with it."""
        info = conn.info  # lives as long as the pooled DBAPI connection
        raw: Raw | None = info.get("trustpay_raw")
        if raw is None:
            raw = info["trustpay_raw"] = cls(conn)
        return raw

    def rows(self, sql: Sql, params: Params | None = None) -> list[tuple[Any, ...]]:
        if self.is_pg:
            cur = self.pg_cursor
            cur.execute(sql.pg, params or {})
            return list(cur.fetchall())
        return list(self.sqlite_cursor.execute(sql.sqlite, params or {}).fetchall())

    def run(self, sql: Sql, params: Params | None = None) -> None:
        if self.is_pg:
            self.pg_cursor.execute(sql.pg, params or {})
        else:
            self.sqlite_cursor.execute(sql.sqlite, params or {})

    def many(self, sql: Sql, params: Sequence[Params]) -> None:
        if self.is_pg:
            with self.dbapi.cursor() as cur:
                cur.executemany(sql.pg, params)
        else:
            self.sqlite_cursor.executemany(sql.sqlite, params)

    def ts(self, dt: datetime) -> Any:
        """A timestamp parameter, stored exactly as SQLAlchemy's DateTime would."""
        if self.is_pg:
            return dt
        t = to_utc(dt)
        return "%04d-%02d-%02d %02d:%02d:%02d.%06d" % (  # noqa: UP031 - hot path; strftime is slow
            t.year, t.month, t.day, t.hour, t.minute, t.second, t.microsecond
        )

    # On the kept cursor: the drivers' Connection.execute makes a cursor per call
    # (~25 µs on psycopg), and a group commit runs two of these per member.
    def savepoint(self, name: str) -> None:
        self._control(f"SAVEPOINT {name}")

    def release(self, name: str) -> None:
        self._control(f"RELEASE SAVEPOINT {name}")

    def rollback_to(self, name: str) -> None:
        self._control(f"ROLLBACK TO SAVEPOINT {name}")

    def _control(self, sql: str) -> None:
        (self.pg_cursor if self.is_pg else self.sqlite_cursor).execute(sql)
