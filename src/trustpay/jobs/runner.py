"""Running what is due: claimed jobs, each in its own transaction, and the sweepers."""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import timedelta
from enum import StrEnum
from functools import partial
from typing import TYPE_CHECKING

from sqlalchemy import Connection

from trustpay.db.engine import is_retryable
from trustpay.db.raw import Raw
from trustpay.jobs.registry import Registration, Sweeper, TogetherHandler, registry_of
from trustpay.jobs.store import Claimed, claim_due, mark_all_done, mark_done, mark_failed_attempt, still_ours

if TYPE_CHECKING:
    from trustpay.platform.context import Platform

log = logging.getLogger("trustpay.jobs")

# How long a claimed job is reserved for its runner. Handlers are short
# database transactions; a runner that outlives this loses the job to another
# (its own work then rolls back), so it only needs to beat a stalled worker.
JOB_LEASE = timedelta(minutes=5)


class Outcome(StrEnum):
    DONE = "done"
    RETRY = "retry"  # failed, will run again after the back-off
    FAILED = "failed"  # out of attempts
    LOST = "lost"  # someone else holds the job now (lease expired, or cancelled)


class _ClaimGone(Exception):
    pass


def run_due(platform: Platform, limit: int = 50) -> int:
    """Claim up to ``limit`` due jobs and run them; returns how many were claimed."""
    kinds = registry_of(platform).kinds
    if not kinds:
        return 0
    # Grouped: a busy server claims every tick, and a claim in a transaction of its
    # own held the writer through an fsync of its own.
    claimed = platform.db.run_grouped(lambda conn: claim_due(
        conn, kinds=kinds, now=platform.clock.now(), limit=limit, lease=JOB_LEASE,
    ))
    registry = registry_of(platform)
    # Split in one pass: ``c not in inline`` compared each job with the list field
    # by field, ~n²/2 dataclass comparisons a tick (18k for a tick's 192 jobs).
    inline: list[Claimed] = []
    apart: list[Claimed] = []
    for c in claimed:
        reg = registry.handler_for(c.job.kind)
        (inline if reg is not None and reg.outside is None else apart).append(c)
    _run_together(platform, inline)
    for c in apart:
        run_claimed(platform, c)
    return len(claimed)


# Jobs per shared transaction. The transaction holds the database's write
# lock (SQLite) and the ledger's append lock while it runs; fifty undo-window
# closes took ~50 ms, and every request behind them waited that long. So a few
# due jobs go 8 at a time; a backlog goes in bigger chunks, up to 48. The
# worker waits for one group commit per chunk, and a busy server commits
# groups of 10-20 transfers, each with an undo window to close later: at 8 a
# chunk the closes fell behind the transfers (measured: 140 a second behind
# at 250 transfers a second, the pending money piling up for minutes).
TOGETHER = 8
MOST_TOGETHER = 48


def chunk_size(due: int) -> int:
    """Jobs per transaction for ``due`` claimed jobs: at most four chunks a tick."""
    return min(MOST_TOGETHER, max(TOGETHER, -(-due // 4)))


def _run_together(platform: Platform, claimed: list[Claimed]) -> None:
    """Jobs that are pure database work, several at a time in one transaction, each in
    its own savepoint: one commit for several jobs instead of one per job (a burst of
    transfers closes its undo windows together), and a job that fails is undone and
    recorded alone. A kind with a together-handler runs its jobs of a chunk in one
    call instead (see :func:`_run_kind_together`). Each chunk joins the requests'
    group commit (``run_grouped``), so requests and jobs take turns at the write
    lock in the order they came."""
    if len(claimed) <= 1:
        for c in claimed:
            run_claimed(platform, c)
        return
    size = chunk_size(len(claimed))
    for start in range(0, len(claimed), size):
        _run_chunk(platform, claimed[start:start + size])


def _run_chunk(platform: Platform, claimed: list[Claimed]) -> None:
    registry = registry_of(platform)
    by_kind: dict[str, list[int]] = {}  # positions in ``claimed``, in order
    for i, c in enumerate(claimed):
        by_kind.setdefault(c.job.kind, []).append(i)

    def each(conn: Connection) -> list[Exception | None]:
        raw = Raw.of(conn)
        errors: list[Exception | None] = [None] * len(claimed)
        for kind, positions in by_kind.items():
            reg = registry.handler_for(kind)
            together = reg.together if reg is not None else None
            if together is not None and len(positions) > 1 and _run_kind_together(
                    platform, conn, together, [claimed[i] for i in positions]):
                continue
            for i in positions:
                raw.savepoint("tp_job")
                try:
                    _work(platform, conn, claimed[i])
                except Exception as exc:
                    raw.rollback_to("tp_job")
                    errors[i] = exc
                raw.release("tp_job")
        return errors

    try:
        errors = platform.db.run_grouped(each)
    except Exception:
        log.warning("a batch of %d jobs could not commit together; running them one by one",
                    len(claimed), exc_info=True)
        for c in claimed:
            run_claimed(platform, c)
        return
    for c, exc in zip(claimed, errors, strict=True):
        if isinstance(exc, _ClaimGone):
            log.info("job %s (%s) was taken over or cancelled; its work rolled back", c.job.id, c.job.kind)
        elif exc is not None:
            log.warning("job %s (%s) attempt %d/%d failed", c.job.id, c.job.kind, c.job.attempts,
                        c.job.max_attempts, exc_info=exc)
            _record_failure(platform, c, f"{type(exc).__name__}: {exc}",
                            registry_of(platform).handler_for(c.job.kind))


def _run_kind_together(platform: Platform, conn: Connection, together: TogetherHandler,
                       group: list[Claimed]) -> bool:
    """Due jobs of one kind through its together-handler, with one done-mark for
    all, in a savepoint: True if they all ran; otherwise nothing of theirs is
    left and they go one by one (so a failing job is recorded alone).

    No up-front ``still_ours``: the done-mark is the fence (a cancelled or
    taken-over claim makes it match fewer rows, and the work is undone), and
    the handler then takes its business rows' locks before the jobs' rows, in
    the order a request cancelling a job takes them."""
    raw = Raw.of(conn)
    raw.savepoint("tp_jobs")
    try:
        together(platform, conn, [c.job for c in group])
        if not mark_all_done(conn, group, now=platform.clock.now()):
            raise _ClaimGone
    except Exception:
        raw.rollback_to("tp_jobs")
        raw.release("tp_jobs")
        log.info("%d %s jobs could not run together; running them one by one", len(group),
                 group[0].job.kind, exc_info=True)
        return False
    raw.release("tp_jobs")
    return True


def _work(platform: Platform, conn: Connection, c: Claimed) -> None:
    """A claimed job's handler and its done-mark, in ``conn``'s transaction."""
    reg = registry_of(platform).handler_for(c.job.kind)
    if not still_ours(conn, c):
        raise _ClaimGone
    if reg is not None and reg.outside is None:
        reg.handler(platform, conn, c.job)
    if not mark_done(conn, c, now=platform.clock.now()):
        raise _ClaimGone


def run_claimed(platform: Platform, c: Claimed) -> Outcome:
    """Run one claimed job: its handler's work and its done-mark commit together."""
    reg = registry_of(platform).handler_for(c.job.kind)
    if reg is None:  # claimed by kind, so only if a handler was unregistered meanwhile
        return _record_failure(platform, c, f"no handler for job kind {c.job.kind!r}", None)

    outside = reg.outside

    try:
        if outside is not None:
            outside(platform, c.job)
        platform.db.run(partial(_work, platform, c=c))
    except _ClaimGone:
        log.info("job %s (%s) was taken over or cancelled; its work rolled back",
                 c.job.id, c.job.kind)
        return Outcome.LOST
    except Exception as exc:
        log.warning("job %s (%s) attempt %d/%d failed", c.job.id, c.job.kind, c.job.attempts,
                    c.job.max_attempts, exc_info=True)
        return _record_failure(platform, c, f"{type(exc).__name__}: {exc}", reg)
    return Outcome.DONE


def _record_failure(
    platform: Platform, c: Claimed, error: str, reg: Registration | None
) -> Outcome:
    now = platform.clock.now()
    last = reg is None or c.job.attempts >= c.job.max_attempts
    retry_at = None if last or reg is None else now + reg.backoff.delay(c.job.attempts)
    try:
        recorded = platform.db.run(
            lambda conn: mark_failed_attempt(conn, c, error, now=now, retry_at=retry_at)
        )
    except Exception:
        # The claim's lease runs out and the job is retried; nothing is lost.
        log.exception("could not record the failure of job %s", c.job.id)
        return Outcome.LOST
    if not recorded:
        return Outcome.LOST
    return Outcome.FAILED if retry_at is None else Outcome.RETRY


def run_sweepers(platform: Platform, *, only: Callable[[str], bool] | None = None) -> dict[str, int]:
    """Every sweeper (or those ``only`` picks) once; returns how much each did.

    They share one transaction, and it joins the requests' group commit
    (``run_grouped``), each sweeper in a savepoint of its own: one failing is
    undone alone and logged, and stops no other. A busy server's worker sweeps
    every tick (each transfer queues a notification and an outbox event), and a
    transaction per sweeper held the database's writer through an fsync of its
    own each time, with every request queued behind it. If the shared
    transaction cannot commit, they go again one by one, each in its own.
    Outside sweepers run after them, with no transaction open."""
    registry = registry_of(platform)
    chosen = [(name, sweeper) for name, sweeper in registry.sweepers if only is None or only(name)]
    done = _sweep_together(platform, chosen) if chosen else {}
    for name, outside in registry.outside_sweepers:
        if only is None or only(name):
            done[name] = _logged(name, partial(outside, platform))
    return done


def _sweep_together(platform: Platform, chosen: list[tuple[str, Sweeper]]) -> dict[str, int]:
    def sweep(conn: Connection) -> dict[str, int]:
        raw = Raw.of(conn)
        done: dict[str, int] = {}
        for name, sweeper in chosen:
            raw.savepoint("tp_sweeper")
            try:
                done[name] = sweeper(platform, conn)
                raw.flush()  # its deferred writes (PostgreSQL): their failure is this sweeper's
            except Exception as exc:
                if is_retryable(exc):  # a deadlock, say: the whole sweep goes again, as run would
                    raise
                raw.rollback_to("tp_sweeper")
                log.exception("sweeper %s failed", name)
                done[name] = 0
            raw.release("tp_sweeper")
        return done

    try:
        return platform.db.run_grouped(sweep)
    except Exception:
        log.warning("the sweepers could not commit together; running them one by one", exc_info=True)
    return {name: _logged(name, partial(platform.db.run, partial(sweeper, platform)))
            for name, sweeper in chosen}


def _logged(name: str, sweep: Callable[[], int]) -> int:
    """What one sweeper did, or 0 (logged) if it failed."""
    try:
        return sweep()
    except Exception:
        log.exception("sweeper %s failed", name)
        return 0


def run_until_idle(platform: Platform, *, max_rounds: int = 100, limit: int = 500) -> int:
    """Sweep and run due jobs until nothing more is due (jobs may schedule
    jobs that are already due); bounded so a job that keeps rescheduling
    itself for "now" cannot hang the caller."""
    total = 0
    for _ in range(max_rounds):
        done = sum(run_sweepers(platform).values()) + run_due(platform, limit)
        total += done
        if done == 0:
            return total
    log.warning("stopped draining due work after %d rounds; the worker will continue", max_rounds)
    return total
