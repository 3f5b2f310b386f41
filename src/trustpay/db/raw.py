"""Direct driver access for the few statements on the ledger's hot path.

SQLAlchemy Core costs ~80 µs per statement here, more than SQLite's own
work; the ledger append runs its handful of fixed statements on the DBAPI
connection of the *same* SQLAlchemy transaction instead. SQL is written once
with ``:name`` parameters and translated to psycopg's ``%(name)s``.

Deferred writes (PostgreSQL, inside a group commit's transaction): a write
whose caller wants no result back (an INSERT, the chain's advisory lock, a
SAVEPOINT or RELEASE) is queued instead of sent, and goes with the next
statement that does want one, all in one round trip (psycopg's pipeline
mode). The group
commit's leader runs every member's statements one after another, each a
round trip to a server process that shares the cores, plus the wait to get
the GIL back; it spent most of its time so (py-spy: ~80% in psycopg's wait).
The order of statements is unchanged, so is what each one sees; what changes
is *where* a failing queued write raises: at the next statement that waits
for an answer, at the latest when the member ends (``db/group.py`` flushes
there, inside the member's savepoint, so the failure is still the member's).
Anything else that runs SQL on the connection flushes first (the engine's
``before_cursor_execute`` hook, ``db/engine.py``).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import Connection

from trustpay.clock import to_utc
from trustpay.db import after_commit

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

    __slots__ = ("dbapi", "deferring", "is_pg", "marks", "pg_cursor", "pg_reader", "queued", "sqlite_cursor")

    def __init__(self, conn: Connection) -> None:
        dbapi: Any = conn.connection.driver_connection
        self.dbapi = dbapi
        self.is_pg = conn.dialect.name == "postgresql"
        # One cursor for the connection's statements here, each read to the end
        # before the next runs: psycopg's costs ~25 µs to make; sqlite3's
        # Connection.execute makes (and drops) one per statement.
        self.pg_cursor: Any = dbapi.cursor() if self.is_pg else None
        # The answer of a statement sent behind queued writes (their results land on pg_cursor).
        self.pg_reader: Any = dbapi.cursor() if self.is_pg else None
        self.sqlite_cursor: Any = None if self.is_pg else dbapi.cursor()
        self.deferring = False  # queue result-less writes (set by the group commit, PostgreSQL only)
        self.queued: list[tuple[str, Any, bool]] = []  # (sql, params, executemany)
        # Per savepoint name, where the after-commit actions stood when it was taken.
        self.marks: dict[str, after_commit.Mark] = {}

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
            return list(self.pg_execute(sql.pg, params or {}).fetchall())
        return list(self.sqlite_cursor.execute(sql.sqlite, params or {}).fetchall())

    def run(self, sql: Sql, params: Params | None = None) -> None:
        """A statement whose result nobody reads (deferred while :attr:`deferring`)."""
        if self.is_pg:
            self.pg_later(sql.pg, params or {})
        else:
            self.sqlite_cursor.execute(sql.sqlite, params or {})

    def many(self, sql: Sql, params: Sequence[Params]) -> None:
        if self.is_pg:
            if self.deferring:
                self.queued.append((sql.pg, list(params), True))
                return
            self.flush()
            with self.dbapi.cursor() as cur:
                cur.executemany(sql.pg, params)
        else:
            self.sqlite_cursor.executemany(sql.sqlite, params)

    # ------------------------------------------------ PostgreSQL: deferred writes
    def pg_later(self, sql: str, params: Any) -> None:
        """Run a statement whose result nobody reads: queued while deferring, else now."""
        if self.deferring:
            self.queued.append((sql, params, False))
        else:
            self.pg_execute(sql, params)

    def pg_execute(self, sql: str, params: Any) -> Any:
        """Run a statement and return the cursor holding its result; what is queued
        goes first, in the same round trip."""
        if not self.queued:
            self.pg_cursor.execute(sql, params)
            return self.pg_cursor
        queued, self.queued = self.queued, []
        with self.dbapi.pipeline():
            self._send(queued)
            self.pg_reader.execute(sql, params)
        return self.pg_reader

    def flush(self) -> None:
        """Send what is queued and wait for it: a queued write's failure raises here."""
        if self.queued:
            queued, self.queued = self.queued, []
            with self.dbapi.pipeline():
                self._send(queued)

    def _send(self, queued: list[tuple[str, Any, bool]]) -> None:
        cur = self.pg_cursor
        for sql, params, many in queued:
            if many:
                cur.executemany(sql, params)
            else:
                cur.execute(sql, params)

    def ts(self, dt: datetime) -> Any:
        """A timestamp parameter, stored exactly as SQLAlchemy's DateTime would."""
        if self.is_pg:
            return dt
        t = to_utc(dt)
        return "%04d-%02d-%02d %02d:%02d:%02d.%06d" % (  # noqa: UP031 - hot path; strftime is slow
            t.year, t.month, t.day, t.hour, t.minute, t.second, t.microsecond
        )

    # On the kept cursors: the drivers' Connection.execute makes a cursor per call
    # (~25 µs on psycopg), and a group commit runs two of these per member. A
    # SAVEPOINT and its RELEASE are deferred while :attr:`deferring`, like a write
    # (a RELEASE cannot fail once the work since the savepoint has).
    def savepoint(self, name: str) -> None:
        self.marks[name] = after_commit.mark()
        self._control(f"SAVEPOINT {name}", later=True)

    def release(self, name: str) -> None:
        self.marks.pop(name, None)  # its actions are the enclosing work's now
        self._control(f"RELEASE SAVEPOINT {name}", later=True)

    def rollback_to(self, name: str) -> None:
        """Undo the work since the savepoint. What is still queued came after it and
        is undone by not sending it; if the savepoint itself is still queued,
        nothing of that work reached the server, and nothing more is sent. The
        after-commit actions the work added go with it."""
        after_commit.undo(self.marks.get(name))
        mark = f"SAVEPOINT {name}"
        for i in range(len(self.queued) - 1, -1, -1):
            if self.queued[i][0] == mark:
                del self.queued[i + 1:]  # the savepoint stays, for its RELEASE
                return
        self.queued.clear()
        self._control(f"ROLLBACK TO SAVEPOINT {name}")

    def _control(self, sql: str, *, later: bool = False) -> None:
        if self.is_pg:
            if later:
                self.pg_later(sql, None)
            else:
                self.pg_execute(sql, None)
        else:
            self.sqlite_cursor.execute(sql)
