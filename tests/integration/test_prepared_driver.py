"""Statements run on the driver (``db/prepared.py``: ``row``, ``mapping``, ``run``,
``insert``) read and write exactly what SQLAlchemy's own execution does: the
same stored values (timestamps, JSON, booleans, NULLs) and the same Python
values back, on both engines, inside the caller's transaction."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import bindparam, func, select, text

from trustpay.db import prepared
from trustpay.db.schema import jobs, ledger_accounts
from trustpay.platform.context import Platform

WHEN = datetime(2026, 11, 30, 12, 34, 56, 789012, tzinfo=UTC)


def job_row(job_id: str, **overrides: object) -> dict[str, object]:
    row: dict[str, object] = {
        "id": job_id, "kind": "test.kind", "run_at": WHEN, "payload": {"n": 1, "text": "汇款", "none": None},
        "status": "pending", "attempts": 0, "max_attempts": 3, "last_error": None, "locked_until": None,
        "dedupe_key": None, "created_at": WHEN, "finished_at": None,
    }
    row.update(overrides)
    return row


def stored(platform: Platform, job_id: str) -> tuple[object, ...]:
    """The row as the database holds it (raw text on SQLite), read without SQLAlchemy's types."""
    with platform.db.transaction(write=False) as conn:
        return tuple(conn.execute(text("SELECT run_at, payload, created_at, last_error FROM jobs WHERE id = :i"),
                                  {"i": job_id}).one())


def test_a_driver_insert_stores_what_sqlalchemy_stores(platform: Platform) -> None:
    with platform.db.transaction() as conn:
        conn.execute(jobs.insert(), job_row("job_by_sqlalchemy"))
        prepared.insert(conn, jobs, job_row("job_on_the_driver"))
    assert stored(platform, "job_on_the_driver") == stored(platform, "job_by_sqlalchemy")


def test_driver_reads_convert_values_like_sqlalchemy(platform: Platform) -> None:
    with platform.db.transaction() as conn:
        prepared.insert(conn, jobs, job_row("job_a", locked_until=WHEN + timedelta(minutes=5)))
    with platform.db.transaction(write=False) as conn:
        expected = conn.execute(select(jobs).where(jobs.c.id == "job_a")).one()
        got = prepared.first(conn, jobs, {"id": "job_a"})
        as_dict = prepared.mapping(conn, prepared.select_where(jobs, "id"), prepared.where_params(id="job_a"))
        missing = prepared.first(conn, jobs, {"id": "job_none"})
    assert got is not None and tuple(got) == tuple(expected)
    assert got.payload == {"n": 1, "text": "汇款", "none": None} and got.locked_until == expected.locked_until
    assert got[0] == "job_a" and got._mapping == dict(expected._mapping) == as_dict
    assert missing is None


def test_a_driver_update_counts_rows_and_stays_in_the_transaction(platform: Platform) -> None:
    with platform.db.transaction() as conn:
        prepared.insert(conn, jobs, job_row("job_u"))
    with pytest.raises(RuntimeError), platform.db.transaction() as conn:
        assert prepared.change(conn, jobs, {"id": "job_u", "status": "pending"}, {"status": "done"}) == 1
        assert prepared.change(conn, jobs, {"id": "job_u", "status": "pending"}, {"status": "done"}) == 0
        raise RuntimeError("roll it back")
    with platform.db.transaction() as conn:  # the rollback undid the driver's update too
        assert prepared.first(conn, jobs, {"id": "job_u"}, columns=("status",)).status == "pending"
        assert prepared.change(conn, jobs, {"id": "job_u"}, {"status": "done", "finished_at": WHEN}) == 1
    with platform.db.transaction(write=False) as conn:
        done = conn.execute(select(jobs.c.status, jobs.c.finished_at).where(jobs.c.id == "job_u")).one()
    assert done.status == "done" and done.finished_at.replace(tzinfo=UTC) == WHEN


def test_booleans_and_returning_on_the_driver(platform: Platform) -> None:
    values = {"id": "acc_driver", "owner_id": None, "currency": "CNY", "kind": "test", "name": "t",
              "allow_negative": True, "balance": 0, "pending_out": 0, "pending_in": 0, "last_seq": 0,
              "created_at": WHEN, "closed_at": None}
    with platform.db.transaction() as conn:
        stmt = prepared.insert_or_ignore_stmt(conn, ledger_accounts, ("id",))
        assert prepared.row(conn, stmt, values) is not None  # RETURNING: it went in
        assert prepared.row(conn, stmt, values) is None  # the same key again: ignored
    with platform.db.transaction(write=False) as conn:
        got = prepared.first(conn, ledger_accounts, {"id": "acc_driver"}, columns=("allow_negative", "closed_at"))
    assert got.allow_negative is True and got.closed_at is None


_PENDING_SINCE = (select(func.count(), func.coalesce(func.sum(jobs.c.attempts), 0))
                  .where(jobs.c.status == "pending", jobs.c.run_at >= bindparam("since", type_=jobs.c.run_at.type)))
_LATEST = select(jobs.c.id).where(jobs.c.status == "pending").order_by(jobs.c.run_at.desc()).limit(1)


def test_a_statement_s_own_values_and_unlabelled_aggregates_run_on_the_driver(platform: Platform) -> None:
    """``status = 'pending'``, ``coalesce(…, 0)`` and ``LIMIT 1`` carry their values in
    the statement; ``count(*)`` has no column name and is read by position."""
    with platform.db.transaction() as conn:
        prepared.insert(conn, jobs, job_row("job_early", attempts=2))
        prepared.insert(conn, jobs, job_row("job_late", attempts=1, run_at=WHEN + timedelta(hours=1)))
        prepared.insert(conn, jobs, job_row("job_done", attempts=5, status="done"))
    with platform.db.transaction(write=False) as conn:
        count, attempts = prepared.one(conn, _PENDING_SINCE, {"since": WHEN})
        none_since = tuple(prepared.one(conn, _PENDING_SINCE, {"since": WHEN + timedelta(days=1)}))
        latest = prepared.row(conn, _LATEST, {})
    assert (count, attempts) == (2, 3)
    assert none_since == (0, 0)
    assert latest is not None and latest.id == "job_late"


def test_the_hot_paths_conflict_statements_are_built_once(platform: Platform) -> None:
    """Every transfer schedules its undo-window job with INSERT … ON CONFLICT DO NOTHING:
    a statement built anew each call is compiled anew each call (measured: a fifth
    fewer transfers a second when its cache was lost)."""
    with platform.db.transaction() as conn:
        first = prepared.insert_or_ignore_stmt(conn, jobs, ("dedupe_key",))
        assert prepared.insert_or_ignore_stmt(conn, jobs, ("dedupe_key",)) is first
