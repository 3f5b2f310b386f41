"""SQLite writers of different processes queue on one file lock (``db/engine.py``,
``SqliteWriterQueue``): ``serve --processes N``, ``trustpay worker`` and the CLI
share a database file, and must wait for each other's commit without SQLite's
sleeping busy handler."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from sqlalchemy import text

from trustpay.db import engine as engine_mod
from trustpay.db.engine import Database, SqliteWriterQueue, writer_lock_path

HOLDER = textwrap.dedent("""
    import fcntl, os, sys
    fd = os.open(sys.argv[1], os.O_RDWR | os.O_CREAT, 0o600)
    fcntl.flock(fd, fcntl.LOCK_EX)
    print("held", flush=True)
    sys.stdin.readline()  # hold until the test closes our stdin
""")

PROBE = textwrap.dedent("""
    import fcntl, os, sys
    fd = os.open(sys.argv[1], os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        print("free")
    except BlockingIOError:
        print("taken")
""")


@contextmanager
def held_by_another_process(lock: Path) -> Iterator[None]:
    child = subprocess.Popen([sys.executable, "-c", HOLDER, str(lock)], stdin=subprocess.PIPE,
                             stdout=subprocess.PIPE, text=True)
    try:
        assert child.stdout is not None and child.stdout.readline().strip() == "held"
        yield
    finally:
        assert child.stdin is not None
        child.stdin.close()
        child.wait(timeout=10)


def seen_from_another_process(lock: Path) -> str:
    return subprocess.run([sys.executable, "-c", PROBE, str(lock)], capture_output=True, text=True,
                          check=True).stdout.strip()


def test_the_lock_file_sits_beside_the_database(tmp_path: Path) -> None:
    assert writer_lock_path(str(tmp_path / "x.db")) == tmp_path / "x.db-writer.lock"
    assert writer_lock_path(":memory:") is None
    assert writer_lock_path(None) is None


def test_a_writer_waits_for_another_process_and_goes_on_when_it_lets_go(tmp_path: Path) -> None:
    lock = tmp_path / "db-writer.lock"
    queue = SqliteWriterQueue(lock)
    with held_by_another_process(lock):
        started = time.monotonic()
        assert queue.acquire(timeout=0.3) is False
        assert 0.3 <= time.monotonic() - started < 5
    assert queue.acquire(timeout=5) is True
    assert seen_from_another_process(lock) == "taken"
    queue.release()
    assert seen_from_another_process(lock) == "free"
    queue.close()


def test_a_nested_write_keeps_the_lock_until_the_outer_one_ends(tmp_path: Path) -> None:
    lock = tmp_path / "db-writer.lock"
    queue = SqliteWriterQueue(lock)
    assert queue.acquire(timeout=1) and queue.acquire(timeout=1)
    queue.release()
    assert seen_from_another_process(lock) == "taken"
    queue.release()
    assert seen_from_another_process(lock) == "free"
    queue.close()


def test_a_write_transaction_does_not_begin_while_another_process_writes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The database's write transactions go through the queue; reads do not wait."""
    monkeypatch.setattr(engine_mod, "SQLITE_WRITER_WAIT", 0.3)
    path = tmp_path / "shared.db"
    db = Database(f"sqlite:///{path}")
    try:
        with db.transaction() as conn:
            conn.execute(text("CREATE TABLE t (n INTEGER)"))
        with held_by_another_process(Path(f"{path}-writer.lock")):
            with pytest.raises(Exception, match="waited for the writer"), db.transaction() as conn:
                conn.execute(text("INSERT INTO t VALUES (1)"))
            with db.transaction(write=False) as conn:
                assert conn.execute(text("SELECT count(*) FROM t")).scalar_one() == 0
        with db.transaction() as conn:
            conn.execute(text("INSERT INTO t VALUES (2)"))
        with db.transaction(write=False) as conn:
            assert conn.execute(text("SELECT n FROM t")).scalars().all() == [2]
    finally:
        db.dispose()
