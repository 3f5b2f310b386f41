"""Fresh, migrated databases for tests, on SQLite and PostgreSQL.

Migrations run once per session into a template (a file for SQLite, a
template database for PostgreSQL); each test gets a cheap copy.
If ``TRUSTPAY_TEST_PG_URL`` is unset a throwaway server is started for the
session (``make test`` starts one and sets the variable).

PostgreSQL: ``CREATE DATABASE … TEMPLATE`` costs 0.1–0.7 s on this machine
(it copies every catalog page), paid by ~540 tests and by every example of the
ledger state machine. So a database a test is done with is recycled instead of
dropped: its connections are ended, it is renamed (a client still holding the
old URL can never reach it again), its schema is compared with the template's
(any difference and it is dropped after all), and every table is emptied, the
template's rows (alembic_version, platform_clock) copied back and every
sequence set back to the template's value. The next test then starts from
exactly the template's contents under a name nobody has seen, as with a copy.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

import psycopg
from psycopg import sql
from sqlalchemy.engine import make_url

from trustpay.db.migrate import upgrade

ROOT = Path(__file__).resolve().parents[1]


class SqliteFactory:
    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.template = workdir / "template.db"
        upgrade(f"sqlite:///{self.template}")

    def fresh(self) -> str:
        path = self.workdir / f"t_{uuid.uuid4().hex[:12]}.db"
        shutil.copyfile(self.template, path)
        return f"sqlite:///{path}"


# A database's shape: for each of its own system catalogs (not the statistics ANALYZE keeps), how
# many rows it has and the newest transaction that wrote one. Every DDL statement (a table, column,
# index, trigger enabled or not, function, type, schema, …) inserts, updates or deletes catalog rows,
# and rows it writes carry its transaction id, newer than any the template was built with; a copy of
# the template keeps the template's rows as they are. VACUUM and ANALYZE update pg_class in place
# (same xmin). A temporary table's rows go with its session but may leave a temporary schema row
# behind, which only costs that database a real drop.
CATALOGS_SQL = """
SELECT relname FROM pg_class WHERE relnamespace = 'pg_catalog'::regnamespace AND relkind = 'r'
   AND NOT relisshared AND relname NOT IN ('pg_statistic', 'pg_statistic_ext_data') ORDER BY relname
"""


def shape_sql(catalogs: list[str]) -> str:
    return "SELECT " + ", ".join(
        f"(SELECT count(*) || ':' || coalesce(max(xmin::text::bigint), 0) FROM pg_catalog.{c})" for c in catalogs)


@dataclass(frozen=True)
class _TemplateContents:
    """What a copy of the template holds, so a used database can be put back to it."""

    shape_sql: str
    shape: tuple[str, ...]
    tables: tuple[str, ...]  # every table, schema-qualified and quoted
    rows: tuple[tuple[str, bytes], ...]  # (table, COPY text) for the tables that are not empty
    sequences: tuple[tuple[str, int, bool], ...]  # (sequence, value, is_called) as setval takes them

    @classmethod
    def read(cls, conn: psycopg.Connection) -> _TemplateContents:
        query = shape_sql([str(r[0]) for r in conn.execute(CATALOGS_SQL)])
        tables = tuple(str(r[0]) for r in conn.execute(
            "SELECT format('%I.%I', schemaname, tablename) FROM pg_tables "
            "WHERE schemaname NOT IN ('pg_catalog', 'information_schema') ORDER BY 1"))
        rows = []
        for table in tables:
            data = bytearray()
            with conn.cursor().copy(f"COPY {table} TO STDOUT") as copy:
                for chunk in copy:
                    data += chunk
            if data:
                rows.append((table, bytes(data)))
        sequences = tuple(
            (str(name), int(value if value is not None else start), value is not None)
            for name, value, start in conn.execute(
                "SELECT format('%I.%I', schemaname, sequencename), last_value, start_value FROM pg_sequences"))
        return cls(query, cls._shape(conn, query), tables, tuple(rows), sequences)

    @staticmethod
    def _shape(conn: psycopg.Connection, query: str) -> tuple[str, ...]:
        row = conn.execute(query).fetchone()
        assert row is not None
        return tuple(str(v) for v in row)

    def same_shape(self, conn: psycopg.Connection) -> bool:
        return self._shape(conn, self.shape_sql) == self.shape

    def restore(self, conn: psycopg.Connection) -> None:
        """Empty every table and put the template's rows and sequence values back, in one transaction.
        Foreign keys are not checked meanwhile (every row goes), which needs a superuser."""
        with conn.transaction():
            conn.execute("SET LOCAL session_replication_role = replica")
            conn.execute("; ".join(f"DELETE FROM {t}" for t in self.tables))
            for table, data in self.rows:
                with conn.cursor().copy(f"COPY {table} FROM STDIN") as copy:
                    copy.write(data)
            if self.sequences:
                conn.execute(
                    sql.SQL("SELECT {}").format(sql.SQL(", ").join(
                        sql.SQL("setval({}, {}, {})").format(sql.Literal(name), sql.Literal(value),
                                                             sql.Literal(called))
                        for name, value, called in self.sequences)))


class PostgresFactory:
    def __init__(self, workdir: Path) -> None:
        self._owned: Path | None = None
        url = os.environ.get("TRUSTPAY_TEST_PG_URL")
        if not url:
            self._owned = Path(tempfile.mkdtemp(prefix="trustpay-pytest-pg-"))
            os.chmod(self._owned, 0o755)
            url = subprocess.run(
                [sys.executable, str(ROOT / "scripts" / "throwaway_pg.py"), "start", str(self._owned / "pg"),
                 "--no-fsync"],
                check=True, capture_output=True, text=True,
            ).stdout.strip()
        self.base = make_url(url)
        self._admin_conn: psycopg.Connection | None = None
        self._lent: set[str] = set()  # databases handed out by fresh() and not back yet
        self._clean: list[str] = []  # given back, emptied to the template's contents, under new names
        self.template = f"tpl_{uuid.uuid4().hex[:8]}"
        self._admin(f'CREATE DATABASE "{self.template}"')
        upgrade(self.url_for(self.template))
        # Read before it becomes a template: nobody may be connected to a template being copied.
        with self._connect(self.template) as c:
            self._contents: _TemplateContents | None = _TemplateContents.read(c)
        self._admin(f'ALTER DATABASE "{self.template}" WITH IS_TEMPLATE true')

    def url_for(self, name: str) -> str:
        return self.base.set(database=name).render_as_string(hide_password=False)

    def _connect(self, dbname: str) -> psycopg.Connection:
        u = self.base
        return psycopg.connect(host=u.host, port=u.port, user=u.username, password=u.password,
                               dbname=dbname, autocommit=True)

    def _admin(self, statement: str, *params: str) -> None:
        if self._admin_conn is None or self._admin_conn.closed:
            self._admin_conn = self._connect(str(self.base.database))
        self._admin_conn.execute(statement, params or None)

    def fresh(self) -> str:
        if self._clean:
            name = self._clean.pop()
        else:
            name = f"t_{uuid.uuid4().hex[:12]}"
            self._admin(f'CREATE DATABASE "{name}" TEMPLATE "{self.template}"')
        self._lent.add(name)
        return self.url_for(name)

    def drop(self, url: str) -> None:
        """The database at ``url`` is gone for its user. One that ``fresh`` lent is, when it
        can be, renamed and put back to the template's contents for a later ``fresh``."""
        name = str(make_url(url).database)
        if name in self._lent:
            self._lent.discard(name)
            self._recycle(name)
        else:
            self._admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

    def _recycle(self, name: str) -> None:
        """Rename the database and restore the template's contents in it, or drop it when it
        cannot be trusted to equal a fresh copy (its schema changed, a client is still on it)."""
        if self._contents is None:
            self._admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            return
        new = f"t_{uuid.uuid4().hex[:12]}"
        self._end_sessions(name)
        try:
            self._admin(f'ALTER DATABASE "{name}" RENAME TO "{new}"')
        except psycopg.errors.ObjectInUse:  # a client came back meanwhile
            self._admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            return
        try:
            with self._connect(new) as c:
                same = self._contents.same_shape(c)
                if same:
                    self._contents.restore(c)
        except psycopg.errors.InsufficientPrivilege:  # not a superuser: copies of the template only
            self._contents, same = None, False
        if same:
            self._clean.append(new)
        else:
            self._admin(f'DROP DATABASE IF EXISTS "{new}" WITH (FORCE)')

    def _end_sessions(self, name: str, timeout: float = 5.0) -> None:
        """Terminate every session on the database and wait until they are gone (polled finely:
        pg_terminate_backend's own wait sleeps in steps of 100 ms)."""
        assert self._admin_conn is not None
        ask = ("SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
               "WHERE datname = %s AND pid <> pg_backend_pid()")
        deadline = time.monotonic() + timeout
        while self._admin_conn.execute(ask, (name,)).fetchone() != (0,) and time.monotonic() < deadline:
            time.sleep(0.005)

    def close(self) -> None:
        for name in [*self._clean, *self._lent]:
            self._admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        self._admin(f'ALTER DATABASE "{self.template}" WITH IS_TEMPLATE false')
        self._admin(f'DROP DATABASE IF EXISTS "{self.template}" WITH (FORCE)')
        if self._admin_conn is not None:
            self._admin_conn.close()
        if self._owned:
            subprocess.run([sys.executable, str(ROOT / "scripts" / "throwaway_pg.py"), "stop",
                            str(self._owned / "pg")], check=False)
