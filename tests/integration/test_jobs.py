"""The jobs table, runner, sweepers and worker on SQLite and PostgreSQL.

Handlers here write an outbox row, so "the handler's effect happened" is a
fact in the database that commits (or not) with the job's done-mark.
"""

from __future__ import annotations

import time
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import Connection, func, select

from trustpay import jobs
from trustpay.clock import FrozenClock
from trustpay.db.schema import jobs as jobs_t
from trustpay.db.schema import outbox as outbox_t
from trustpay.jobs.runner import JOB_LEASE, Outcome
from trustpay.jobs.store import claim_due
from trustpay.ledger.model import EntryDraft, HoldStatus, credit, debit
from trustpay.platform import outbox
from trustpay.platform.context import Platform

KIND = "test.mark"


def events(p: Platform) -> list[dict[str, Any]]:
    with p.db.transaction(write=False) as c:
        rows = c.execute(select(outbox_t.c.payload).order_by(outbox_t.c.seq)).scalars().all()
    return [r["data"]["object"] for r in rows]


def job_row(p: Platform, job_id: str) -> dict[str, Any]:
    with p.db.transaction(write=False) as c:
        row = jobs.store.get(c, job_id)
    assert row is not None
    return row


def schedule(p: Platform, delay: float = 0, dedupe_key: str | None = None,
             kind: str = KIND, **kw: Any) -> str:
    now = p.clock.now()
    with p.db.transaction() as c:
        return jobs.schedule(c, kind, now + timedelta(seconds=delay), {"tag": "t"}, dedupe_key,
                             now=now, **kw)


def mark(p: Platform, conn: Connection, job: jobs.Job) -> None:
    outbox.emit(conn, "job.ran", {"job": job.id, "tag": job.payload["tag"]}, now=p.clock.now())


class Failing:
    def __init__(self) -> None:
        self.calls = 0

    def __call__(self, p: Platform, conn: Connection, job: jobs.Job) -> None:
        self.calls += 1
        outbox.emit(conn, "job.ran", {"job": job.id}, now=p.clock.now())  # must roll back
        raise RuntimeError(f"boom {self.calls}")


@pytest.fixture
def reg(platform: Platform) -> jobs.Registry:
    r = jobs.registry_of(platform)
    r.register(KIND, mark)
    return r


def test_job_runs_only_when_due(platform: Platform, clock: FrozenClock, reg: jobs.Registry) -> None:
    job_id = schedule(platform, delay=60)
    assert jobs.run_due(platform) == 0
    clock.advance(59)
    assert jobs.run_due(platform) == 0 and events(platform) == []
    clock.advance(1)
    assert jobs.run_due(platform) == 1
    assert events(platform) == [{"job": job_id, "tag": "t"}]
    row = job_row(platform, job_id)
    assert (row["status"], row["attempts"], row["locked_until"]) == ("done", 1, None)
    assert jobs.run_due(platform) == 0 and len(events(platform)) == 1


def test_scheduling_the_same_timeout_twice_is_a_no_op(platform: Platform, clock: FrozenClock,
                                                     reg: jobs.Registry) -> None:
    first = schedule(platform, delay=10, dedupe_key="timeout:trd_1")
    assert schedule(platform, delay=99, dedupe_key="timeout:trd_1") == first
    clock.advance(10)
    assert jobs.run_due(platform) == 1
    assert schedule(platform, dedupe_key="timeout:trd_1") == first  # done: still a no-op
    assert jobs.run_due(platform) == 0 and len(events(platform)) == 1
    with platform.db.transaction(write=False) as c:
        assert c.execute(select(func.count()).select_from(jobs_t)).scalar_one() == 1


def test_cancel_by_dedupe_key(platform: Platform, clock: FrozenClock, reg: jobs.Registry) -> None:
    first = schedule(platform, delay=10, dedupe_key="timeout:trd_2")
    with platform.db.transaction() as c:
        assert jobs.cancel(c, "timeout:trd_2", now=clock.now())
        assert not jobs.cancel(c, "timeout:trd_2", now=clock.now())
    clock.advance(3600)
    assert jobs.run_due(platform) == 0 and events(platform) == []
    assert job_row(platform, first)["status"] == "cancelled"
    again = schedule(platform, dedupe_key="timeout:trd_2")  # the key is free again
    assert again != first and jobs.run_due(platform) == 1


def test_failures_back_off_then_fail(platform: Platform, clock: FrozenClock) -> None:
    handler = Failing()
    jobs.registry_of(platform).register("test.fail", handler)
    job_id = schedule(platform, kind="test.fail", max_attempts=3)
    t0 = clock.now()
    assert jobs.run_due(platform) == 1
    row = job_row(platform, job_id)
    assert (row["status"], row["attempts"]) == ("pending", 1)
    assert "boom 1" in row["last_error"]
    assert row["run_at"].replace(tzinfo=None) == (t0 + timedelta(seconds=10)).replace(tzinfo=None)
    assert jobs.run_due(platform) == 0
    clock.advance(9)
    assert jobs.run_due(platform) == 0
    clock.advance(1)
    assert jobs.run_due(platform) == 1 and job_row(platform, job_id)["attempts"] == 2
    clock.advance(19)  # second back-off is 20 s
    assert jobs.run_due(platform) == 0
    clock.advance(1)
    assert jobs.run_due(platform) == 1
    row = job_row(platform, job_id)
    assert (row["status"], row["attempts"]) == ("failed", 3)
    assert "boom 3" in row["last_error"] and row["finished_at"] is not None
    clock.advance(86400)
    assert jobs.run_due(platform) == 0 and handler.calls == 3
    assert events(platform) == []  # every failed attempt's writes rolled back


def test_handler_effect_and_done_mark_commit_together(platform: Platform, clock: FrozenClock,
                                                      reg: jobs.Registry) -> None:
    """A runner whose claim was taken over must not commit its handler's work."""
    job_id = schedule(platform)
    now = clock.now()
    (stale,) = platform.db.run(lambda c: claim_due(c, kinds={KIND}, now=now, limit=10,
                                                   lease=JOB_LEASE))
    clock.advance(JOB_LEASE.total_seconds())  # the first runner stalls past its lease
    (fresh,) = platform.db.run(lambda c: claim_due(c, kinds={KIND}, now=clock.now(), limit=10,
                                                   lease=JOB_LEASE))
    assert fresh.job.id == stale.job.id == job_id and fresh.job.attempts == 2
    assert jobs.run_claimed(platform, stale) is Outcome.LOST
    assert events(platform) == []
    assert jobs.run_claimed(platform, fresh) is Outcome.DONE
    assert len(events(platform)) == 1 and job_row(platform, job_id)["status"] == "done"


def test_a_crash_before_the_done_mark_undoes_the_handler(
    platform: Platform, reg: jobs.Registry, monkeypatch: pytest.MonkeyPatch
) -> None:
    import trustpay.jobs.runner as runner

    def crash(*args: Any, **kwargs: Any) -> bool:
        raise RuntimeError("connection lost before the job was marked done")

    monkeypatch.setattr(runner, "mark_done", crash)
    job_id = schedule(platform)
    assert jobs.run_due(platform) == 1
    assert events(platform) == [] and job_row(platform, job_id)["status"] == "pending"
    monkeypatch.undo()
    clock = platform.clock
    assert isinstance(clock, FrozenClock)
    clock.advance(10)  # the retry's back-off
    assert jobs.run_due(platform) == 1
    assert len(events(platform)) == 1 and job_row(platform, job_id)["status"] == "done"


def test_cancelling_a_claimed_job_rolls_its_work_back(platform: Platform, clock: FrozenClock,
                                                     reg: jobs.Registry) -> None:
    schedule(platform, dedupe_key="timeout:trd_3")
    (claimed,) = platform.db.run(lambda c: claim_due(c, kinds={KIND}, now=clock.now(), limit=10,
                                                     lease=JOB_LEASE))
    with platform.db.transaction() as c:
        assert jobs.cancel(c, "timeout:trd_3", now=clock.now())
    assert jobs.run_claimed(platform, claimed) is Outcome.LOST
    assert events(platform) == []


def test_a_job_whose_worker_died_is_retried_then_given_up(platform: Platform, clock: FrozenClock,
                                                          reg: jobs.Registry) -> None:
    job_id = schedule(platform, max_attempts=1)
    platform.db.run(lambda c: claim_due(c, kinds={KIND}, now=clock.now(), limit=10,
                                        lease=JOB_LEASE))  # ... and the worker dies
    assert jobs.run_due(platform) == 0  # the lease still stands
    clock.advance(JOB_LEASE.total_seconds())
    assert jobs.run_due(platform) == 0  # out of attempts: failed, not run again
    row = job_row(platform, job_id)
    assert row["status"] == "failed" and "stopped without finishing" in row["last_error"]
    assert events(platform) == []


def test_jobs_without_a_handler_here_are_left_alone(platform: Platform, reg: jobs.Registry) -> None:
    job_id = schedule(platform, kind="other.kind")
    assert jobs.run_due(platform) == 0
    assert job_row(platform, job_id)["status"] == "pending"


def test_expire_holds_sweeper_releases_an_expired_hold(platform: Platform,
                                                       clock: FrozenClock) -> None:
    book = platform.book
    with platform.db.transaction() as c:
        bank = book.open_account(c, currency="CNY", kind="bank", allow_negative=True)
        alice = book.open_account(c, currency="CNY", kind="wallet", owner_id="usr_alice")
        shop = book.open_account(c, currency="CNY", kind="wallet", owner_id="usr_shop")
        book.post(c, EntryDraft((debit(bank.id, 500, "CNY"), credit(alice.id, 500, "CNY"))))
        hold = book.hold(c, debit_account_id=alice.id, credit_account_id=shop.id, amount=300,
                         currency="CNY", expires_at=clock.now() + timedelta(minutes=15))
    clock.advance(15 * 60 - 1)
    jobs.run_sweepers(platform)
    with platform.db.transaction(write=False) as c:
        assert book.get_hold(c, hold.id).status is HoldStatus.PENDING
        assert book.account(c, alice.id).pending_out == 300
    clock.advance(1)
    assert jobs.run_until_idle(platform) >= 1
    with platform.db.transaction(write=False) as c:
        assert book.get_hold(c, hold.id).status is HoldStatus.EXPIRED
        a = book.account(c, alice.id)
        assert (a.balance, a.pending_out) == (500, 0)
        assert book.account(c, shop.id).pending_in == 0


def _test_sweepers(platform: Platform, *fail_first: BaseException | None) -> dict[str, int]:
    """Three sweepers that each write an outbox row; the second raises ``fail_first``'s
    errors on its first calls (after writing). Returns how often each ran."""
    calls = {"test.a": 0, "test.b": 0, "test.c": 0}
    errors = list(fail_first)

    def sweeper(name: str) -> Any:
        def sweep(p: Platform, conn: Connection) -> int:
            calls[name] += 1
            outbox.emit(conn, "job.ran", {"sweeper": name}, now=p.clock.now())
            if name == "test.b" and errors:
                error = errors.pop(0)
                if error is not None:
                    raise error
            return 1
        return sweep

    for name in calls:
        jobs.registry_of(platform).add_sweeper(name, sweeper(name))
    return calls


def _ours(name: str) -> bool:
    return name.startswith("test.")


def test_sweepers_share_one_commit_and_a_failing_one_is_undone_alone(
    platform: Platform, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A tick's sweeps are one member of the requests' group commit (one commit, one
    fsync, not one per sweeper), each in a savepoint: the failing one's writes go,
    the others' stay, and it is reported as having done nothing."""
    calls = _test_sweepers(platform, RuntimeError("boom"))
    grouped = transactions = 0
    real_grouped, real_transaction = platform.db.run_grouped, platform.db.transaction

    def counting_grouped(fn: Any, **kw: Any) -> Any:
        nonlocal grouped
        grouped += 1
        return real_grouped(fn, **kw)

    def counting_transaction(**kw: Any) -> Any:
        nonlocal transactions
        transactions += kw.get("write", True)
        return real_transaction(**kw)

    monkeypatch.setattr(platform.db, "run_grouped", counting_grouped)
    monkeypatch.setattr(platform.db, "transaction", counting_transaction)
    assert jobs.run_sweepers(platform, only=_ours) == {"test.a": 1, "test.b": 0, "test.c": 1}
    assert (grouped, transactions) == (1, 1)  # was three write transactions
    monkeypatch.undo()
    assert events(platform) == [{"sweeper": "test.a"}, {"sweeper": "test.c"}]
    assert calls == {"test.a": 1, "test.b": 1, "test.c": 1}
    assert jobs.run_sweepers(platform, only=_ours) == {"test.a": 1, "test.b": 1, "test.c": 1}


def test_a_retryable_error_in_a_sweeper_runs_the_whole_sweep_again(platform: Platform) -> None:
    """A deadlock (PostgreSQL) or a busy database (SQLite) is not the sweeper's fault:
    the sweep goes again from the start, as ``Database.run`` retried a sweeper alone,
    and what the first try wrote is gone (one row per sweeper, not two)."""
    import sqlite3

    calls = _test_sweepers(platform, sqlite3.OperationalError("database is locked"))
    assert jobs.run_sweepers(platform, only=_ours) == {"test.a": 1, "test.b": 1, "test.c": 1}
    assert calls == {"test.a": 2, "test.b": 2, "test.c": 1}
    assert sorted(e["sweeper"] for e in events(platform)) == ["test.a", "test.b", "test.c"]


def test_sweepers_go_one_by_one_when_their_shared_transaction_cannot_commit(
    platform: Platform, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls = _test_sweepers(platform)

    def broken(fn: Any, **kw: Any) -> Any:
        raise RuntimeError("the group's commit failed")

    monkeypatch.setattr(platform.db, "run_grouped", broken)
    assert jobs.run_sweepers(platform, only=_ours) == {"test.a": 1, "test.b": 1, "test.c": 1}
    assert calls == {"test.a": 1, "test.b": 1, "test.c": 1}
    assert sorted(e["sweeper"] for e in events(platform)) == ["test.a", "test.b", "test.c"]


def test_run_until_idle_follows_jobs_scheduling_due_jobs(platform: Platform,
                                                         clock: FrozenClock) -> None:
    def chain(p: Platform, conn: Connection, job: jobs.Job) -> None:
        n = int(job.payload["n"])
        outbox.emit(conn, "job.ran", {"n": n}, now=p.clock.now())
        if n < 3:
            jobs.schedule(conn, "test.chain", p.clock.now(), {"n": n + 1}, now=p.clock.now())

    jobs.registry_of(platform).register("test.chain", chain)
    with platform.db.transaction() as c:
        jobs.schedule(c, "test.chain", clock.now(), {"n": 0}, now=clock.now())
    jobs.run_until_idle(platform)
    assert [e["n"] for e in events(platform)] == [0, 1, 2, 3]


def test_a_failing_sweeper_stops_nothing_else(platform: Platform, reg: jobs.Registry) -> None:
    def broken(p: Platform, conn: Connection) -> int:
        raise RuntimeError("sweeper bug")

    reg.add_sweeper("broken", broken)
    job_id = schedule(platform)
    # Counts more than the job: the webhook fan-out sweeper also handles the event it emitted.
    assert jobs.run_until_idle(platform) >= 1
    assert job_row(platform, job_id)["status"] == "done"
    assert len(events(platform)) == 1


def test_worker_thread_runs_due_jobs_and_stops(platform: Platform, reg: jobs.Registry) -> None:
    worker = jobs.Worker(platform, interval=0.01)
    thread = worker.start()
    try:
        job_id = schedule(platform)
        deadline = time.monotonic() + 10
        while job_row(platform, job_id)["status"] != "done" and time.monotonic() < deadline:
            time.sleep(0.02)
        assert job_row(platform, job_id)["status"] == "done"
    finally:
        worker.stop()
    assert not thread.is_alive()


def test_worker_survives_a_failing_tick(platform: Platform, reg: jobs.Registry,
                                        monkeypatch: pytest.MonkeyPatch) -> None:
    worker = jobs.Worker(platform, interval=0.01)
    real_tick, calls = worker.tick, []

    def flaky_tick() -> int:
        calls.append(1)
        if len(calls) == 1:
            raise RuntimeError("database restarting")
        return real_tick()

    monkeypatch.setattr(worker, "tick", flaky_tick)
    job_id = schedule(platform)
    worker.start()
    try:
        deadline = time.monotonic() + 10
        while job_row(platform, job_id)["status"] != "done" and time.monotonic() < deadline:
            time.sleep(0.02)
    finally:
        worker.stop()
    assert len(calls) >= 2 and job_row(platform, job_id)["status"] == "done"


def test_due_jobs_commit_together_and_a_failing_one_is_undone_alone(
    platform: Platform, reg: jobs.Registry
) -> None:
    """A batch of due jobs shares one transaction, each in its own savepoint: the
    failing job's writes roll back and it is recorded for a retry, the others commit."""
    failing = Failing()
    reg.register("test.fail", failing)
    first = schedule(platform)
    broken = schedule(platform, kind="test.fail")
    last = schedule(platform)
    assert jobs.run_due(platform) == 3
    assert failing.calls == 1
    assert sorted(e["job"] for e in events(platform)) == sorted([first, last])  # not the failing one's
    assert job_row(platform, first)["status"] == job_row(platform, last)["status"] == "done"
    retry = job_row(platform, broken)
    assert (retry["status"], retry["attempts"]) == ("pending", 1)
    assert "boom 1" in retry["last_error"]


def test_a_busy_worker_sweeps_once_per_interval_unless_the_sweep_found_work(
    platform: Platform, reg: jobs.Registry
) -> None:
    """Ticks back to back (a busy server) run due jobs each time but the sweepers
    only once per interval, except while a sweeper still has a backlog."""
    backlog = [3]
    swept: list[int] = []

    def counting(_p: Platform, _conn: Any) -> int:
        swept.append(1)
        if backlog[0]:
            backlog[0] -= 1
            return 1
        return 0

    reg.add_sweeper("counting", counting)
    worker = jobs.Worker(platform, interval=3600)
    for _ in range(4):  # three ticks drain the backlog, the fourth finds it empty
        worker.tick()
    assert len(swept) == 4
    job_id = schedule(platform)
    worker.tick()
    worker.tick()
    assert len(swept) == 4, "an empty sweep waits for the interval"
    assert job_row(platform, job_id)["status"] == "done", "due jobs still run every tick"


def test_many_due_jobs_commit_a_few_at_a_time_through_the_group_commit(
    platform: Platform, reg: jobs.Registry, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A big batch of due jobs does not hold the write lock for all of them at once:
    they go in chunks of TOGETHER, each a member of the requests' group commit."""
    from trustpay.jobs import runner

    ids = [schedule(platform) for _ in range(2 * runner.TOGETHER + 3)]
    chunks: list[int] = []
    real = platform.db.run_grouped

    def counting(fn: Any, **kw: Any) -> Any:
        before = len(events(platform))
        result = real(fn, **kw)
        chunks.append(len(events(platform)) - before)  # jobs that committed in this one
        return result

    monkeypatch.setattr(platform.db, "run_grouped", counting)
    assert jobs.run_due(platform, limit=50) == len(ids)
    assert chunks == [0, runner.TOGETHER, runner.TOGETHER, 3]  # the claim (grouped too), then three chunks
    assert all(job_row(platform, i)["status"] == "done" for i in ids)


def test_a_backlog_of_due_jobs_goes_in_bigger_chunks_so_the_closes_keep_up() -> None:
    """A few due jobs go 8 to a transaction; a backlog in at most four chunks of up to 48
    (at 8 a chunk the undo-window closes fell behind a busy server's transfers)."""
    from trustpay.jobs import runner

    assert runner.chunk_size(3) == runner.chunk_size(19) == runner.TOGETHER
    assert runner.chunk_size(100) == 25
    assert runner.chunk_size(4 * runner.MOST_TOGETHER) == runner.chunk_size(10_000) == runner.MOST_TOGETHER


TOGETHER_KIND = "test.together"


class Together:
    """A kind's handler for many jobs at once: one event per job, and the calls it got."""

    def __init__(self, fail: bool = False) -> None:
        self.calls: list[list[str]] = []
        self.fail = fail

    def __call__(self, p: Platform, conn: Connection, due: list[jobs.Job]) -> None:
        self.calls.append([job.id for job in due])
        for job in due:
            mark(p, conn, job)
        if self.fail:
            raise RuntimeError("one of them cannot go")


def test_a_kinds_due_jobs_run_together_with_one_done_mark(platform: Platform, reg: jobs.Registry) -> None:
    """A kind with a together-handler gets its due jobs of a chunk in one call
    (undo-window closes: one mark and one ledger call for dozens); jobs of other
    kinds in the chunk still run one by one beside them."""
    together = Together()
    reg.register(TOGETHER_KIND, mark, together=together)
    ids = [schedule(platform, kind=TOGETHER_KIND) for _ in range(5)]
    alone = schedule(platform)
    assert jobs.run_due(platform) == 6
    assert [sorted(call) for call in together.calls] == [sorted(ids)]  # claimed by (run_at, id)
    assert sorted(e["job"] for e in events(platform)) == sorted([*ids, alone])
    assert all(job_row(platform, i)["status"] == "done" for i in [*ids, alone])


def test_a_together_run_that_fails_is_undone_and_its_jobs_go_one_by_one(
    platform: Platform, reg: jobs.Registry
) -> None:
    """Nothing of the failed call stays (its events roll back); each job then runs
    alone, so the one that really fails is retried alone and the others are done."""
    together = Together(fail=True)
    broken: list[str] = []

    def one(p: Platform, conn: Connection, job: jobs.Job) -> None:
        if job.id in broken:
            raise RuntimeError("this one")
        mark(p, conn, job)

    reg.register(TOGETHER_KIND, one, together=together)
    ids = [schedule(platform, kind=TOGETHER_KIND) for _ in range(4)]
    broken.append(ids[2])
    assert jobs.run_due(platform) == 4
    assert [sorted(call) for call in together.calls] == [sorted(ids)]  # claimed by (run_at, id)
    assert sorted(e["job"] for e in events(platform)) == sorted(ids[:2] + ids[3:])  # once each
    assert [job_row(platform, i)["status"] for i in ids] == ["done", "done", "pending", "done"]
    assert "this one" in job_row(platform, ids[2])["last_error"]


def test_a_claim_cancelled_before_its_together_run_rolls_only_its_work_back(
    platform: Platform, clock: FrozenClock, reg: jobs.Registry
) -> None:
    """The done-mark for all is the fence: a job cancelled after the claim makes it
    match fewer rows, the call is undone, and the others then run one by one."""
    from trustpay.jobs import runner

    together = Together()
    reg.register(TOGETHER_KIND, mark, together=together)
    ids = [schedule(platform, kind=TOGETHER_KIND, dedupe_key=f"close:{n}") for n in range(3)]
    claimed = platform.db.run(lambda c: claim_due(c, kinds={TOGETHER_KIND}, now=clock.now(), limit=10,
                                                  lease=JOB_LEASE))
    with platform.db.transaction() as c:
        assert jobs.cancel(c, "close:1", now=clock.now())
    runner._run_together(platform, claimed)
    assert [sorted(call) for call in together.calls] == [sorted(ids)]  # claimed by (run_at, id)
    assert sorted(e["job"] for e in events(platform)) == sorted([ids[0], ids[2]])
    assert [job_row(platform, i)["status"] for i in ids] == ["done", "cancelled", "done"]


def test_outside_sweepers_run_after_the_others_with_no_transaction_open(platform: Platform) -> None:
    """An outside sweeper (it talks to something slow) gets no connection: it runs
    after the shared sweep has committed, a failing one counts 0 and stops nothing."""
    _test_sweepers(platform)
    reg = jobs.registry_of(platform)
    seen: list[tuple[str, int, int]] = []

    def outside(name: str, fails: bool) -> Any:
        def sweep(p: Platform) -> int:
            seen.append((name, len(events(p)), p.db.engine.pool.checkedout()))  # type: ignore[attr-defined]
            if fails:
                raise ConnectionError("the far side is down")
            return 5
        return sweep

    reg.add_outside_sweeper("test.out_broken", outside("test.out_broken", True))
    reg.add_outside_sweeper("test.out", outside("test.out", False))
    with pytest.raises(ValueError, match="already registered"):
        reg.add_sweeper("test.out", lambda p, conn: 0)
    with pytest.raises(ValueError, match="already registered"):
        reg.add_outside_sweeper("test.a", lambda p: 0)
    assert jobs.run_sweepers(platform, only=_ours) == {
        "test.a": 1, "test.b": 1, "test.c": 1, "test.out_broken": 0, "test.out": 5}
    # Each saw the three rows the shared sweep committed, and held no connection.
    assert seen == [("test.out_broken", 3, 0), ("test.out", 3, 0)]
    assert jobs.run_sweepers(platform, only=lambda name: name == "test.out") == {"test.out": 5}


def test_finished_jobs_and_sent_notifications_are_deleted_after_their_retention(
    platform: Platform, clock: FrozenClock, reg: jobs.Registry
) -> None:
    """A transfer leaves a done job (its undo window) and a sent message behind, and
    nothing deleted them: the worker now does, after the retention days, keeping
    failed jobs (for an operator) and messages not yet sent (however old)."""
    from trustpay.db.schema import notification_queue as nq
    from trustpay.events.notify import Notification
    from trustpay.events.queue import enqueue, send_queued

    platform.settings = platform.settings.model_copy(update={"notify_sink": "file:/dev/null"})
    done, cancelled = schedule(platform), schedule(platform, delay=60, dedupe_key="cancel-me")
    failed = schedule(platform, kind="test.no-such-handler-here")
    with platform.db.transaction() as c:
        jobs.store.cancel(c, "cancel-me", now=clock.now())
        c.execute(jobs_t.update().where(jobs_t.c.id == failed).values(status="failed"))
        enqueue(c, Notification("email", "sent@example.com", "s", "b"), now=clock.now())
    assert jobs.run_until_idle(platform) >= 1 and job_row(platform, done)["status"] == "done"
    assert send_queued(platform) == 0  # the run sent it already
    with platform.db.transaction() as c:
        enqueue(c, Notification("email", "unsent@example.com", "s", "b"), now=clock.now())
        c.execute(nq.update().where(nq.c.recipient == "unsent@example.com").values(
            claimed_until=clock.now() + timedelta(days=30)))  # a sender holds it: it stays unsent

    def left() -> tuple[set[str], set[str]]:
        with platform.db.transaction(write=False) as c:
            return (set(c.execute(select(jobs_t.c.id)).scalars()),
                    set(c.execute(select(nq.c.recipient)).scalars()))

    clock.advance(7 * 86400 - 1)
    jobs.run_sweepers(platform)
    assert left() == ({done, cancelled, failed}, {"sent@example.com", "unsent@example.com"})
    clock.advance(2)
    jobs.run_sweepers(platform)
    assert left() == ({cancelled, failed}, {"unsent@example.com"})
    clock.advance(60)  # the cancelled job was due a minute later
    jobs.run_sweepers(platform)
    assert left() == ({failed}, {"unsent@example.com"})


def test_a_purge_deletes_a_bounded_batch_per_sweep(platform: Platform, clock: FrozenClock) -> None:
    now = clock.now()
    with platform.db.transaction() as c:
        for _ in range(5):
            jobs.schedule(c, KIND, now, {"tag": "t"}, None, now=now)
        c.execute(jobs_t.update().values(status="done", finished_at=now))
    clock.advance(8 * 86400)
    with platform.db.transaction() as c:
        assert jobs.store.purge_finished(c, due_before=clock.now(), limit=3) == 3
        assert jobs.store.purge_finished(c, due_before=clock.now(), limit=3) == 2
        assert jobs.store.purge_finished(c, due_before=clock.now(), limit=3) == 0
