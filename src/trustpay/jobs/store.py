"""The jobs table: timeouts and retries as rows, so a test clock can run them.

A job is scheduled in the caller's transaction (the trade that gets a
pay-by deadline and the job enforcing it commit together). Runners *claim*
due jobs in a short transaction — ``status='running'``, ``attempts + 1``,
``locked_until`` = now + lease — then run each handler in a transaction of
its own that also marks the job done. ``locked_until`` doubles as the
claim's fencing token: a runner whose lease ran out and was reclaimed by
another finds the token changed and rolls its handler's work back.

Counting the attempt at claim time (not after) means a job that kills its
worker still runs out of attempts instead of looping forever.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Connection, and_, delete, or_, select, update

from trustpay.clock import to_utc
from trustpay.db import prepared
from trustpay.db.schema import jobs
from trustpay.ids import new_id
from trustpay.platform.sql import insert_or_ignore

PENDING, RUNNING, DONE, FAILED, CANCELLED = "pending", "running", "done", "failed", "cancelled"
DEFAULT_MAX_ATTEMPTS = 10
MAX_ERROR_CHARS = 2000


@dataclass(frozen=True)
class Job:
    id: str
    kind: str
    run_at: datetime
    payload: dict[str, Any]
    attempts: int  # including the one now running
    max_attempts: int
    dedupe_key: str | None


@dataclass(frozen=True)
class Claimed:
    job: Job
    token: datetime  # the locked_until this runner wrote


def schedule(
    conn: Connection,
    kind: str,
    run_at: datetime,
    payload: Mapping[str, Any],
    dedupe_key: str | None = None,
    *,
    now: datetime,
    max_attempts: int = DEFAULT_MAX_ATTEMPTS,
) -> str:
    """Add a job in the caller's transaction; returns its id.

    With a ``dedupe_key`` (e.g. ``"trade-unpaid:trd_…"``) scheduling the same
    timeout again is a no-op that returns the existing job's id.
    """
    if max_attempts < 1:
        raise ValueError("a job needs at least one attempt")
    job_id = new_id("job", now)
    row = {
        "id": job_id, "kind": kind, "run_at": run_at, "payload": dict(payload), "status": PENDING,
        "attempts": 0, "max_attempts": max_attempts, "last_error": None, "locked_until": None,
        "dedupe_key": dedupe_key, "created_at": now, "finished_at": None,
    }
    if dedupe_key is None:
        prepared.insert(conn, jobs, row)
        return job_id
    if insert_or_ignore(conn, jobs, row, ("dedupe_key",)):
        return job_id
    return str(conn.execute(select(jobs.c.id).where(jobs.c.dedupe_key == dedupe_key)).scalar_one())


def cancel(conn: Connection, dedupe_key: str, *, now: datetime) -> bool:
    """Cancel the pending (or running) job with this key; True if there was one.

    Cancelling a running job changes its status, so the runner's done-mark
    finds the claim gone and rolls the handler back: once this commits, the
    job's effect has either already committed or never will. The key is
    freed (set to NULL) so the same timeout can be scheduled anew.
    """
    res = conn.execute(
        update(jobs)
        .where(jobs.c.dedupe_key == dedupe_key, jobs.c.status.in_([PENDING, RUNNING]))
        .values(status=CANCELLED, dedupe_key=None, locked_until=None, finished_at=now)
    )
    return bool(res.rowcount)


def purge_finished(conn: Connection, *, due_before: datetime, limit: int = 1000) -> int:
    """Delete up to ``limit`` done or cancelled jobs that were due before ``due_before``
    (by the due-jobs index); failed ones stay for an operator to look at."""
    old = (select(jobs.c.id).where(jobs.c.status.in_([DONE, CANCELLED]), jobs.c.run_at < due_before)
           .limit(limit))
    return int(conn.execute(delete(jobs).where(jobs.c.id.in_(old))).rowcount)


def get(conn: Connection, job_id: str) -> dict[str, Any] | None:
    row = conn.execute(select(jobs).where(jobs.c.id == job_id)).mappings().first()
    return dict(row) if row is not None else None


def status_of(conn: Connection, dedupe_key: str) -> str | None:
    """The status of the job booked under ``dedupe_key`` (None: none is, or it was cancelled)."""
    found = conn.execute(select(jobs.c.status).where(jobs.c.dedupe_key == dedupe_key)).scalar()
    return None if found is None else str(found)


def claim_due(
    conn: Connection, *, kinds: Collection[str], now: datetime, limit: int, lease: timedelta
) -> list[Claimed]:
    """Claim up to ``limit`` due jobs of ``kinds`` for this runner.

    Due: pending with ``run_at <= now``, or running with an expired lease
    (its worker died or stalled). PostgreSQL skips rows other runners are
    claiming (``FOR UPDATE SKIP LOCKED``); SQLite's ``BEGIN IMMEDIATE``
    admits one claimer at a time.
    """
    if not kinds or limit <= 0:
        return []
    due = or_(
        and_(jobs.c.status == PENDING, jobs.c.run_at <= now),
        and_(jobs.c.status == RUNNING, jobs.c.locked_until <= now),
    )
    rows = conn.execute(
        select(jobs)
        .where(due, jobs.c.kind.in_(sorted(kinds)))
        .order_by(jobs.c.run_at, jobs.c.id)
        .limit(limit)
        .with_for_update(skip_locked=True)
    ).mappings().all()
    token = now + lease
    spent = [r["id"] for r in rows if r["attempts"] >= r["max_attempts"]]
    if spent:
        # Only a stale running job can get here: its last attempt never reported back.
        conn.execute(update(jobs).where(jobs.c.id.in_(spent)).values(
            status=FAILED, locked_until=None, finished_at=now,
            last_error="the worker running the last attempt stopped without finishing it",
        ))
    claimed = [r for r in rows if r["attempts"] < r["max_attempts"]]
    if claimed:
        conn.execute(update(jobs).where(jobs.c.id.in_([r["id"] for r in claimed])).values(
            status=RUNNING, attempts=jobs.c.attempts + 1, locked_until=token,
        ))
    return [Claimed(_job(r, attempts=int(r["attempts"]) + 1), token) for r in claimed]


def still_ours(conn: Connection, c: Claimed) -> bool:
    """Lock the job row (PostgreSQL) and check our claim stands, before doing its work."""
    return prepared.first(conn, jobs, _claim_of(c), columns=("id",), for_update=True) is not None


def mark_done(conn: Connection, c: Claimed, *, now: datetime) -> bool:
    return _settle(conn, c, status=DONE, finished_at=now, last_error=None)


def mark_all_done(conn: Connection, claimed: Collection[Claimed], *, now: datetime) -> bool:
    """:func:`mark_done` for many claims in one statement; False (and the caller
    rolls back) unless every claim still stood."""
    tokens = {c.token for c in claimed}
    if len(tokens) != 1:
        return False
    res = conn.execute(
        update(jobs)
        .where(jobs.c.id.in_([c.job.id for c in claimed]), jobs.c.status == RUNNING,
               jobs.c.locked_until == tokens.pop())
        .values(status=DONE, finished_at=now, last_error=None, locked_until=None)
    )
    return res.rowcount == len(claimed)


def mark_failed_attempt(
    conn: Connection, c: Claimed, error: str, *, now: datetime, retry_at: datetime | None
) -> bool:
    """Record a failed attempt: back to pending at ``retry_at``, or failed for good."""
    error = error[:MAX_ERROR_CHARS]
    if retry_at is None:
        return _settle(conn, c, status=FAILED, finished_at=now, last_error=error)
    return _settle(conn, c, status=PENDING, run_at=retry_at, last_error=error)


def _settle(conn: Connection, c: Claimed, **values: Any) -> bool:
    return prepared.change(conn, jobs, _claim_of(c), {"locked_until": None, **values}) == 1


def _claim_of(c: Claimed) -> dict[str, Any]:
    """The row as this runner's claim left it (the WHERE that fences a stale runner out)."""
    return {"id": c.job.id, "status": RUNNING, "locked_until": c.token}


def _job(r: Any, *, attempts: int) -> Job:
    return Job(
        id=r["id"], kind=r["kind"], run_at=to_utc(r["run_at"]), payload=dict(r["payload"]),
        attempts=attempts, max_attempts=int(r["max_attempts"]), dedupe_key=r["dedupe_key"],
    )
