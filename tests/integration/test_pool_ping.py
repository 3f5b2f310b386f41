"""PostgreSQL pooled connections are pinged only after sitting idle (``db/engine.py``):
a connection the server dropped while it was idle is replaced before a request
uses it, and a busy server does not pay a round trip per checkout."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import psycopg
import pytest
from sqlalchemy import text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError
from tests.dbs import PostgresFactory

from trustpay.db import engine as engine_module
from trustpay.db.engine import Database


@pytest.fixture
def pg_url(pg_factory: PostgresFactory) -> Iterator[str]:
    url = pg_factory.fresh()
    yield url
    pg_factory.drop(url)


@pytest.fixture
def db(pg_url: str) -> Iterator[Database]:
    database = Database(pg_url, pool_size=1)  # one pooled connection: every transaction reuses it
    yield database
    database.dispose()


def backend_pid(db: Database) -> int:
    with db.transaction(write=False) as conn:
        return int(conn.execute(text("SELECT pg_backend_pid()")).scalar_one())


def terminate(url: str, pid: int) -> None:
    u = make_url(url)
    with psycopg.connect(host=u.host, port=u.port, user=u.username, dbname=u.database, autocommit=True) as admin:
        admin.execute("SELECT pg_terminate_backend(%s, 5000)", (pid,))


def count_pings(db: Database, monkeypatch: pytest.MonkeyPatch) -> list[Any]:
    pings: list[Any] = []
    real = db.engine.dialect.do_ping

    def counted(dbapi_conn: Any) -> bool:
        pings.append(dbapi_conn)
        return real(dbapi_conn)

    monkeypatch.setattr(db.engine.dialect, "do_ping", counted)
    return pings


def test_a_connection_back_in_the_pool_a_moment_ago_is_used_without_a_ping(
        db: Database, monkeypatch: pytest.MonkeyPatch) -> None:
    pings = count_pings(db, monkeypatch)
    pids = {backend_pid(db) for _ in range(5)}
    assert len(pids) == 1 and pings == []


def test_a_connection_dropped_while_idle_is_pinged_and_replaced(
        db: Database, pg_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    pings = count_pings(db, monkeypatch)
    first = backend_pid(db)
    terminate(pg_url, first)
    monkeypatch.setattr(engine_module, "IDLE_BEFORE_PING", 0.0)  # as if it had sat idle past the limit
    second = backend_pid(db)  # no error: the ping found it gone and the pool opened another
    assert second != first and len(pings) == 1


def test_a_connection_dropped_within_the_idle_limit_fails_one_request_only(db: Database, pg_url: str) -> None:
    first = backend_pid(db)
    terminate(pg_url, first)
    with pytest.raises(DBAPIError) as failed:
        backend_pid(db)
    assert failed.value.connection_invalidated
    assert backend_pid(db) != first  # SQLAlchemy replaced the pool's connections after the disconnect
