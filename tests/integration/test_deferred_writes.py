"""Deferred writes (db/raw.py) in a group commit's members, on both engines.

On PostgreSQL a write whose result nobody reads is queued and sent with the
next statement that waits for an answer; on SQLite (in-process, no round
trips) nothing is queued. Either way each member must see its own writes,
in order, and a write that fails must fail its own member only."""

from __future__ import annotations

import sqlite3
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime

import psycopg
import pytest
from sqlalchemy import Connection, func, select

from trustpay.db import prepared
from trustpay.db.raw import Raw
from trustpay.db.schema import outbox as outbox_t
from trustpay.platform.context import Platform

# The drivers' own errors: these statements run on the driver, under SQLAlchemy.
DUPLICATE = (sqlite3.IntegrityError, psycopg.IntegrityError)


def event_row(event_id: str, now: datetime) -> dict[str, object]:
    return {"id": event_id, "type": "deferred.test", "owner_id": None, "payload": {"id": event_id},
            "created_at": now, "published_at": None}


def stored_ids(p: Platform) -> set[str]:
    with p.db.transaction(write=False) as c:
        return set(c.execute(select(outbox_t.c.id)).scalars())


def test_a_member_sees_its_queued_writes_in_order(platform: Platform) -> None:
    now = platform.clock.now()

    def work(conn: Connection) -> tuple[int, int, int]:
        raw = Raw.of(conn)
        prepared.insert(conn, outbox_t, event_row("evt_a", now))
        queued = sum(sql.startswith("INSERT") for sql, _params, _many in raw.queued)  # PostgreSQL: not sent yet
        # A read through the driver (prepared) sends the queue first, in the same round trip.
        seen_raw = prepared.one(conn, select(func.count()).select_from(outbox_t), {})[0]
        prepared.insert(conn, outbox_t, event_row("evt_b", now))
        # So does a statement SQLAlchemy runs itself (the engine's before_cursor_execute hook).
        seen_core = conn.execute(select(func.count()).select_from(outbox_t)).scalar_one()
        return queued, seen_raw, seen_core

    queued, seen_raw, seen_core = platform.db.run_grouped(work)
    assert queued == (1 if not platform.db.is_sqlite else 0)
    assert (seen_raw, seen_core) == (1, 2)
    assert stored_ids(platform) == {"evt_a", "evt_b"}


def test_a_failing_queued_write_fails_its_member_and_nothing_of_it_stays(platform: Platform) -> None:
    now = platform.clock.now()
    platform.db.run_grouped(lambda conn: prepared.insert(conn, outbox_t, event_row("evt_taken", now)))

    def clashes(conn: Connection) -> None:
        prepared.insert(conn, outbox_t, event_row("evt_mine", now))
        prepared.insert(conn, outbox_t, event_row("evt_taken", now))  # unique id: refused, on PG at the flush

    with pytest.raises(DUPLICATE):
        platform.db.run_grouped(clashes)
    assert stored_ids(platform) == {"evt_taken"}
    platform.db.run_grouped(lambda conn: prepared.insert(conn, outbox_t, event_row("evt_after", now)))
    assert stored_ids(platform) == {"evt_taken", "evt_after"}


def test_in_a_shared_group_a_failing_queued_write_undoes_only_its_member(platform: Platform) -> None:
    now = platform.clock.now()
    platform.db.run_grouped(lambda conn: prepared.insert(conn, outbox_t, event_row("evt_taken", now)))
    gate = threading.Barrier(6)

    def one(i: int) -> str:
        def work(conn: Connection) -> None:
            if i == 0:
                time.sleep(0.2)  # the first group is slow: the others queue up behind it
            prepared.insert(conn, outbox_t, event_row(f"evt_{i}", now))
            if i == 3:
                prepared.insert(conn, outbox_t, event_row("evt_taken", now))

        gate.wait()
        if i != 0:
            time.sleep(0.05)
        try:
            platform.db.run_grouped(work)
        except DUPLICATE:
            return "refused"
        return "ok"

    with ThreadPoolExecutor(6) as pool:
        outcomes = list(pool.map(one, range(6)))
    assert outcomes[3] == "refused" and outcomes.count("ok") == 5
    assert stored_ids(platform) == {"evt_taken", "evt_0", "evt_1", "evt_2", "evt_4", "evt_5"}


def test_a_rolled_back_member_leaves_no_queued_write_behind(platform: Platform) -> None:
    now = platform.clock.now()

    def refuses(conn: Connection) -> None:
        prepared.insert(conn, outbox_t, event_row("evt_gone", now))
        raise ValueError("changed my mind")  # before anything sent the queue

    with pytest.raises(ValueError):
        platform.db.run_grouped(refuses)
    platform.db.run_grouped(lambda conn: prepared.insert(conn, outbox_t, event_row("evt_kept", now)))
    assert stored_ids(platform) == {"evt_kept"}


@pytest.mark.parametrize("read_between", [False, True], ids=["savepoint-still-queued", "savepoint-sent"])
def test_rolling_back_to_a_savepoint_undoes_exactly_the_work_since(platform: Platform, read_between: bool) -> None:
    """Savepoints are queued too: undoing one that never reached the server sends
    nothing; one that did gets its ROLLBACK TO. Either way the work before stays."""
    now = platform.clock.now()

    def work(conn: Connection) -> None:
        raw = Raw.of(conn)
        raw.savepoint("tp_a")
        prepared.insert(conn, outbox_t, event_row("evt_a", now))
        raw.release("tp_a")
        raw.savepoint("tp_b")
        prepared.insert(conn, outbox_t, event_row("evt_b", now))
        if read_between:  # sends the queue, savepoint included
            prepared.one(conn, select(func.count()).select_from(outbox_t), {})
        raw.rollback_to("tp_b")
        raw.release("tp_b")
        prepared.insert(conn, outbox_t, event_row("evt_c", now))

    platform.db.run_grouped(work)
    assert stored_ids(platform) == {"evt_a", "evt_c"}
