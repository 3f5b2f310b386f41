"""Engines and the unit of work.

SQLite: WAL, ``synchronous=FULL`` (a commit survives power loss), a busy
timeout, foreign keys on; writers start with ``BEGIN IMMEDIATE`` so two
writers never both read then both write. PostgreSQL: READ COMMITTED plus row
locks taken in a fixed order (ledger accounts by id), with retry on
deadlock or serialization failure.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import random
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any, TypeVar

from sqlalchemy import Connection, Engine, create_engine, event
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError, DisconnectionError
from sqlalchemy.pool import QueuePool

from trustpay.db import after_commit
from trustpay.db.group import GroupCommit, Rider

T = TypeVar("T")

_RETRYABLE_PG = {"40001", "40P01", "55P03"}  # serialization, deadlock, lock not available
SQLITE_WRITER_WAIT = 30.0  # seconds; the same as the busy timeout


# As many pooled connections as the server has request threads (anyio's default
# limiter), so a busy server keeps its connections instead of opening and
# closing "overflow" ones per request (a PostgreSQL connection costs a backend
# process and ~1 ms to open). Idle ones cost little; the overflow is headroom
# for the job worker and the sandbox bank.
POOL_SIZE = 40
POOL_OVERFLOW = 10


# Every SQLite connection's settings (the ledger benchmark's raw reference loop uses them too).
SQLITE_PRAGMAS = (
    "PRAGMA journal_mode=WAL",
    "PRAGMA synchronous=FULL",
    "PRAGMA busy_timeout=30000",
    "PRAGMA foreign_keys=ON",
    # An 8 MiB page cache (SQLite's default is 2 MiB) holds a ledger batch's
    # dirty pages (~1.5 MiB per 1,000 entries) and the pages it keeps
    # returning to (account-index leaves, the journal's end): with 2 MiB the
    # batch spilled pages to the WAL mid-transaction, wrote them again at
    # commit, and re-read evicted pages (strace of 10 batches: ~40% fewer
    # writes, ~70% fewer reads). Pages are allocated only as used, per connection.
    "PRAGMA cache_size=-8192",
    # Checkpoint when the WAL reaches ~16 MiB (4,000 pages) instead of ~4 MiB:
    # a page changed by several commits in between (an account's index leaf,
    # say) is copied into the database once, and there are fewer checkpoint
    # fsyncs. Durability is unchanged (synchronous=FULL).
    "PRAGMA wal_autocheckpoint=4000",
    # Savepoint journals in memory. Every group-commit member and every job runs in
    # a SAVEPOINT, and SQLite keeps the pages a savepoint may have to restore in a
    # sub-journal, a temporary file past 64 KiB: ~85 of a transfer's ~129 write
    # calls went there (/proc/PID/io under bench load; 129 -> 44), ~11% of its
    # server CPU. Durability is the WAL's, unchanged. Temporary tables and sorts
    # that no index serves are held in memory too (an export's rows, say).
    "PRAGMA temp_store=MEMORY",
)


def make_engine(url: str, *, pool_size: int = POOL_SIZE) -> Engine:
    u = make_url(url)
    if u.get_backend_name() == "sqlite":
        if u.database and u.database != ":memory:":
            Path(u.database).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(
            u,
            poolclass=QueuePool,
            pool_size=pool_size,
            max_overflow=POOL_OVERFLOW,
            connect_args={"check_same_thread": False, "timeout": 30},
        )
        _configure_sqlite(engine)
        return engine
    engine = create_engine(
        u,
        pool_size=pool_size,
        max_overflow=POOL_OVERFLOW,
        isolation_level="READ COMMITTED",
    )
    _ping_when_idle(engine)
    _flush_deferred_first(engine)
    return engine


def _flush_deferred_first(engine: Engine) -> None:
    """A statement SQLAlchemy runs on a connection with deferred writes queued
    (``db/raw.py``) sends them first, so it sees them and runs after them.
    (Only the group commit queues, and it drops whatever is left when its
    transaction ends, committed or not.)"""

    @event.listens_for(engine, "before_cursor_execute")
    def _flush(conn: Connection, *_args: Any) -> None:
        raw = conn.info.get("trustpay_raw")
        if raw is not None and raw.queued:
            raw.flush()


# A pooled PostgreSQL connection idle for longer than this is pinged before
# use. SQLAlchemy's pool_pre_ping pings at every checkout: a round trip to the
# server each time, six per transfer (11% of a busy PostgreSQL server's
# samples in py-spy). A connection a request handed back a moment ago was
# alive then; one that sat idle may have been dropped by a server restart or
# an idle timeout. A drop in between is caught the optimistic way: the
# statement fails, SQLAlchemy sees a disconnect and replaces every pooled
# connection older than it, so one request per process fails, not each.
IDLE_BEFORE_PING = 1.0  # seconds


def _ping_when_idle(engine: Engine) -> None:
    dialect = engine.dialect

    @event.listens_for(engine, "checkin")
    def _idle_from(_dbapi_conn: Any, record: Any) -> None:
        record.info["idle_since"] = time.monotonic()

    @event.listens_for(engine, "checkout")
    def _ping_if_idle(dbapi_conn: Any, record: Any, _proxy: Any) -> None:
        since = record.info.pop("idle_since", None)
        if since is None or time.monotonic() - since < IDLE_BEFORE_PING:
            return  # just opened, or back in the pool a moment ago
        try:
            dialect.do_ping(dbapi_conn)
        except Exception as exc:
            # The pool drops this connection and checks out (or opens) another.
            raise DisconnectionError(f"pooled connection idle for {time.monotonic() - since:.0f} s "
                                     f"is gone: {exc}") from exc


def _configure_sqlite(engine: Engine) -> None:
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn: Any, _record: Any) -> None:
        # Take transaction control away from the sqlite3 module so that
        # BEGIN IMMEDIATE / DEFERRED is ours to choose.
        dbapi_conn.isolation_level = None
        cur = dbapi_conn.cursor()
        for pragma in SQLITE_PRAGMAS:
            cur.execute(pragma)
        cur.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Connection) -> None:
        driver: Any = conn.connection.driver_connection
        # Inside Database.transaction_on the driver has already begun (see
        # _SqliteTransaction); a statement outside one reads in a deferred one.
        if not driver.in_transaction:
            driver.execute("BEGIN DEFERRED")


class SqliteWriterQueue:
    """Where SQLite writers wait for the one write lock, instead of in its busy handler.

    SQLite's busy handler sleeps in steps of up to 100 ms, so a busy server
    spent most of its time asleep. Threads of this process queue on a lock
    that wakes the next one the moment the writer commits. Processes that
    share the file (``serve --processes N``, ``trustpay worker``, the CLI)
    queue on an ``flock`` of ``<database>-writer.lock``: its holder is the
    only process that begins a write, so a process asks for it once per
    write transaction and is handed it within a fraction of a millisecond of
    the commit. A process that dies releases it (the kernel drops the lock
    with the file descriptor).

    Re-entrant: a thread that opens a second write transaction inside its
    first one is let through both locks and meets SQLite's own busy timeout,
    as before.
    """

    # Waiting for another process: first poll fast (a commit is ~1 ms away),
    # then back off, never sleeping longer than this.
    _POLL_FIRST, _POLL_MAX = 0.0002, 0.002

    def __init__(self, lock_path: Path | None) -> None:
        self._local = threading.RLock()
        self._depth = 0  # nested acquisitions by the owning thread
        self._lock_path = lock_path
        self._fd: int | None = None
        self._fd_pid = 0

    def acquire(self, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        if not self._local.acquire(timeout=timeout):
            return False
        if self._depth == 0 and self._lock_path is not None:
            try:
                if not self._lock_file(deadline):
                    self._local.release()
                    return False
            except BaseException:
                self._local.release()
                raise
        self._depth += 1
        return True

    def release(self) -> None:
        self._depth -= 1
        if self._depth == 0 and self._fd is not None:
            fcntl.flock(self._fd, fcntl.LOCK_UN)
        self._local.release()

    def _lock_file(self, deadline: float) -> bool:
        fd = self._file()
        pause = self._POLL_FIRST
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                return True
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    return False
                time.sleep(pause)
                pause = min(pause * 2, self._POLL_MAX)

    def _file(self) -> int:
        # A forked child must not share its parent's open file description
        # (flock locks belong to it): it opens its own.
        if self._fd is None or self._fd_pid != os.getpid():
            assert self._lock_path is not None
            self._fd = os.open(self._lock_path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
            self._fd_pid = os.getpid()
        return self._fd

    def close(self) -> None:
        if self._fd is not None and self._fd_pid == os.getpid():
            os.close(self._fd)
        self._fd = None


class _SqliteTransaction:
    """:meth:`Database.transaction_on` on SQLite: BEGIN and COMMIT straight on the driver.

    SQLAlchemy's Transaction costs ~30 µs a transaction here, as much as a
    whole ledger append's statements (and a generator context manager a few
    more). SQLAlchemy sees a connection outside any transaction: its first
    statement autobegins (the begin hook finds the driver already in ours and
    issues nothing), and it is then committed or rolled back through
    SQLAlchemy, which ends the driver's transaction too.
    """

    __slots__ = ("conn", "driver", "queue", "write")

    def __init__(self, conn: Connection, write: bool, queue: SqliteWriterQueue | None) -> None:
        self.conn, self.write, self.queue = conn, write, queue

    def __enter__(self) -> Connection:
        queue = self.queue
        if queue is not None and not queue.acquire(timeout=SQLITE_WRITER_WAIT):
            raise sqlite3.OperationalError("database is locked (waited for the writer)")
        try:
            driver: Any = self.conn.connection.driver_connection
            driver.execute("BEGIN IMMEDIATE" if self.write else "BEGIN DEFERRED")
            self.driver = driver
        except BaseException:
            if queue is not None:
                queue.release()
            raise
        return self.conn

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: Any) -> None:
        conn, driver = self.conn, self.driver
        try:
            if exc_type is None:
                if conn.in_transaction():
                    conn.commit()
                else:
                    driver.commit()
        finally:
            try:
                # Not committed (the block or the commit raised): undo it all,
                # leaving both SQLAlchemy and the driver outside any transaction.
                if conn.in_transaction():
                    conn.rollback()
                if driver.in_transaction:
                    driver.rollback()
            finally:
                if self.queue is not None:
                    self.queue.release()


def is_retryable(exc: BaseException) -> bool:
    """True for errors that a fresh attempt of the same transaction may not hit.

    Covers both SQLAlchemy-wrapped errors and the driver's own (the ledger's
    hot path talks to psycopg/sqlite3 directly, see ``db/raw.py``)."""
    orig = exc.orig if isinstance(exc, DBAPIError) else exc
    if getattr(orig, "sqlstate", None) in _RETRYABLE_PG:
        return True
    return isinstance(orig, sqlite3.OperationalError) and "database is locked" in str(orig)


class Database:
    """Owns the engine; hands out transactions (the unit of work)."""

    def __init__(self, url: str, *, pool_size: int = POOL_SIZE) -> None:
        self.url = url
        self.engine = make_engine(url, pool_size=pool_size)
        self.dialect = self.engine.dialect.name
        # SQLite has one writer: writers of every process queue for it here.
        self._sqlite_writer = (
            SqliteWriterQueue(writer_lock_path(self.engine.url.database)) if self.dialect == "sqlite" else None
        )
        self._group = GroupCommit(self)

    @property
    def is_sqlite(self) -> bool:
        return self.dialect == "sqlite"

    @contextlib.contextmanager
    def transaction(self, *, write: bool = True) -> Iterator[Connection]:
        """One database transaction: commits on success, rolls back on any error.
        What the work hands to ``after_commit`` runs once it has committed and its
        connection is back in the pool."""
        with after_commit.collecting() as actions:
            with self.engine.connect() as conn, self.transaction_on(conn, write=write):
                yield conn
            after_commit.run_all(actions)

    def transaction_on(self, conn: Connection, *, write: bool = True) -> AbstractContextManager[Connection]:
        """A transaction on a connection the caller keeps (long-lived loops, benchmarks)."""
        if self._sqlite_writer is not None:
            return _SqliteTransaction(conn, write, self._sqlite_writer if write else None)
        return self._transaction_pg(conn)

    @contextlib.contextmanager
    def _transaction_pg(self, conn: Connection) -> Iterator[Connection]:
        with conn.begin():
            yield conn

    def run(self, fn: Callable[[Connection], T], *, write: bool = True, attempts: int = 8) -> T:
        """Run ``fn`` in a transaction, retrying deadlocks/serialization failures.

        ``fn`` must be safe to run again from the start: it only touches the
        database through ``conn`` (all of which the rollback undoes).
        """
        for attempt in range(1, attempts + 1):
            try:
                with self.transaction(write=write) as conn:
                    return fn(conn)
            except Exception as exc:
                if attempt == attempts or not is_retryable(exc):
                    raise
                time.sleep(random.uniform(0, 0.005 * 2**attempt))
        raise AssertionError("unreachable")

    def run_grouped(self, fn: Callable[[Connection], T], *, attempts: int = 8) -> T:
        """:meth:`run` for short write transactions on a busy path: ``fn`` runs in its
        own savepoint inside a transaction shared with whatever else is queued,
        and returns once that transaction has committed (see ``db/group.py``)."""
        for attempt in range(1, attempts + 1):
            try:
                return self._group.run(fn)
            except Exception as exc:
                if attempt == attempts or not is_retryable(exc):
                    raise
                time.sleep(random.uniform(0, 0.005 * 2**attempt))
        raise AssertionError("unreachable")

    def add_rider(self, rider: Rider) -> None:
        """Write-behind state that every grouped transaction carries (see ``db/group.py``)."""
        self._group.add_rider(rider)

    def dispose(self) -> None:
        self.engine.dispose()
        if self._sqlite_writer is not None:
            self._sqlite_writer.close()


def writer_lock_path(database: str | None) -> Path | None:
    """The file SQLite writers of all processes queue on, beside the database
    (like its ``-wal`` and ``-shm``); none for an in-memory database."""
    if not database or database == ":memory:" or database.startswith("file::memory:"):
        return None
    return Path(f"{database}-writer.lock")
