"""Group commit (db/group.py) on both engines: concurrent short writes share a
commit, each in its own savepoint, and none returns before its commit."""

from __future__ import annotations

import contextlib
import contextvars
import os
import threading
import time
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

import pytest
from sqlalchemy import Connection, func, select, update

from trustpay.db.schema import outbox as outbox_t
from trustpay.platform import outbox
from trustpay.platform.context import Platform


def count_events(p: Platform) -> int:
    with p.db.transaction(write=False) as c:
        return int(c.execute(select(func.count()).select_from(outbox_t)).scalar_one())


def test_concurrent_writes_share_commits_and_a_failure_is_undone_alone(platform: Platform) -> None:
    gate = threading.Barrier(20)
    seen: dict[int, Connection] = {}  # thread number -> the connection its work ran on (kept alive: ids stay unique)
    committed_before_return: list[bool] = []

    def one(i: int) -> str:
        def work(conn: Connection) -> str:
            seen[i] = conn
            if i == 0:
                time.sleep(0.2)  # the first group is slow: the others queue up behind it
            event_id = outbox.emit(conn, "group.test", {"i": i}, now=platform.clock.now())
            if i == 7:
                raise ValueError("member 7 refuses")
            return event_id

        gate.wait()
        if i != 0:
            time.sleep(0.05)
        event_id = platform.db.run_grouped(work)
        committed_before_return.append(_visible(platform, event_id))
        return event_id

    with ThreadPoolExecutor(20) as pool:
        futures = [pool.submit(one, i) for i in range(20)]
        results = []
        for i, f in enumerate(futures):
            if i == 7:
                with pytest.raises(ValueError, match="member 7"):
                    f.result()
            else:
                results.append(f.result())
    assert len(set(results)) == 19 and count_events(platform) == 19
    assert all(committed_before_return)
    assert len({id(c) for c in seen.values()}) < 20  # some members shared a transaction


def _visible(p: Platform, event_id: str) -> bool:
    with p.db.transaction(write=False) as c:
        return c.execute(select(outbox_t.c.id).where(outbox_t.c.id == event_id)).first() is not None


def test_a_lone_write_runs_at_once(platform: Platform) -> None:
    assert platform.db.run_grouped(lambda conn: outbox.emit(conn, "group.test", {}, now=platform.clock.now()))
    assert count_events(platform) == 1


REQUEST = contextvars.ContextVar[int]("request")


def test_the_leader_runs_each_members_work_in_that_members_context(platform: Platform) -> None:
    """Queued work runs in the leader's thread, but sees the context variables of
    the request that queued it (as it would in its own thread)."""
    gate = threading.Barrier(12)
    ran_in: dict[int, int] = {}

    def one(i: int) -> int:
        REQUEST.set(i)

        def work(conn: Connection) -> int:
            ran_in[i] = threading.get_ident()
            if i == 0:
                time.sleep(0.2)  # the others queue up behind the first group
            outbox.emit(conn, "group.test", {"i": i}, now=platform.clock.now())
            return REQUEST.get()

        gate.wait()
        if i != 0:
            time.sleep(0.05)
        return platform.db.run_grouped(work)

    with ThreadPoolExecutor(12) as pool:
        seen = list(pool.map(one, range(12)))
    assert seen == list(range(12))
    assert len(set(ran_in.values())) < 12  # some ran in another member's (the leader's) thread
    assert count_events(platform) == 12


class EventRider:
    """A write-behind rider: an outbox event per pending name, forgotten once stored."""

    def __init__(self, p: Platform, *, fails: bool = False) -> None:
        self.p, self.fails = p, fails
        self.pending: list[str] = []
        self.told: list[tuple[list[str], bool]] = []  # what was stored, and whether it was visible when told

    def waiting(self) -> bool:
        return bool(self.pending)

    def board(self, conn: Connection) -> Callable[[], None] | None:
        batch = list(self.pending)
        ids = [outbox.emit(conn, "rider.test", {"name": n}, now=self.p.clock.now()) for n in batch]
        if self.fails:
            raise RuntimeError("the rider's write fails")

        def stored() -> None:
            self.told.append((batch, all(_visible(self.p, i) for i in ids)))
            del self.pending[:len(batch)]

        return stored


def test_a_rider_writes_in_the_next_group_and_hears_of_it_once_committed(platform: Platform) -> None:
    rider = EventRider(platform)
    platform.db.add_rider(rider)
    platform.db.run_grouped(lambda conn: None)  # nothing pending: nothing written
    assert count_events(platform) == 0 and rider.told == []
    rider.pending += ["a", "b"]
    platform.db.run_grouped(lambda conn: outbox.emit(conn, "group.test", {}, now=platform.clock.now()))
    assert count_events(platform) == 3
    assert rider.told == [(["a", "b"], True)]  # told after the commit, which made its rows visible
    assert not rider.waiting()


def test_a_failing_rider_is_undone_alone_and_keeps_what_it_had(platform: Platform) -> None:
    rider = EventRider(platform, fails=True)
    platform.db.add_rider(rider)
    rider.pending.append("a")
    assert platform.db.run_grouped(lambda conn: outbox.emit(conn, "group.test", {}, now=platform.clock.now()))
    assert count_events(platform) == 1  # the member's event; the rider's was rolled back
    assert rider.told == [] and rider.pending == ["a"]  # still pending, for the next group
    rider.fails = False
    platform.db.run_grouped(lambda conn: None)
    assert count_events(platform) == 2 and rider.told == [(["a"], True)]


class GroupCounter(EventRider):
    """Has something to write at every group (as sessions' idle timers do on a busy
    server); it boards first in each group's transaction, so it numbers them."""

    groups = 0

    def waiting(self) -> bool:
        return True

    def board(self, conn: Connection) -> Callable[[], None] | None:
        self.groups += 1
        outbox.emit(conn, "rider.test", {}, now=self.p.clock.now())
        return lambda: None


def test_a_group_holds_at_most_max_group_savepoints_riders_included(platform: Platform) -> None:
    """64 savepoints a transaction at most (db/group.py MAX_GROUP): past 64
    subtransactions PostgreSQL's snapshots slow down for every session."""
    from trustpay.db.group import MAX_GROUP

    counter = GroupCounter(platform)
    platform.db.add_rider(counter)
    n = MAX_GROUP + 17
    gate = threading.Barrier(n)
    group_of: dict[int, int] = {}

    def one(i: int) -> None:
        def work(conn: Connection) -> None:
            group_of[i] = counter.groups
            if i == 0:
                time.sleep(0.5)  # the others all queue up while the leader runs this
            outbox.emit(conn, "group.test", {"i": i}, now=platform.clock.now())

        gate.wait()
        if i != 0:
            time.sleep(0.1)
        platform.db.run_grouped(work)

    with ThreadPoolExecutor(n) as pool:
        list(pool.map(one, range(n)))
    sizes = [size for _, size in sorted(Counter(group_of.values()).items())]
    # The leader takes in what queued, up to 64 savepoints with the rider's; the rest go next.
    assert sizes == [MAX_GROUP - 1, n - (MAX_GROUP - 1)], sizes
    assert count_events(platform) == n + counter.groups


def _sqlite_temp_files() -> list[str]:
    """SQLite's temporary files this process has open (unlinked at once, named etilqs_…)."""
    found = []
    for fd in os.listdir("/proc/self/fd"):
        with contextlib.suppress(OSError):  # closed meanwhile
            if "etilqs_" in (target := os.readlink(f"/proc/self/fd/{fd}")):
                found.append(target)
    return found


def test_a_members_savepoint_journal_stays_in_memory(platform: Platform) -> None:
    """A member's savepoint keeps the pages it may have to restore in a sub-journal,
    which SQLite spills to a temporary file past 64 KiB unless temp_store=MEMORY: a
    write call per page changed, for nothing durability needs (most of a transfer's
    write calls were these)."""
    if not platform.db.is_sqlite:
        pytest.skip("SQLite only: PostgreSQL has no savepoint sub-journal file")
    with platform.db.transaction() as conn:  # ~150 KiB of rows already there
        for i in range(150):
            outbox.emit(conn, "group.big", {"i": i, "pad": "x" * 1000}, now=platform.clock.now())
    open_during: list[list[str]] = []

    def work(conn: Connection) -> None:
        # Only pages that existed before the savepoint are journaled: change them all.
        conn.execute(update(outbox_t).values(type="group.bigger"))
        open_during.append(_sqlite_temp_files())

    platform.db.run_grouped(work)
    assert open_during == [[]]
    with platform.db.transaction(write=False) as c:
        assert c.execute(select(func.count()).where(outbox_t.c.type == "group.bigger")).scalar_one() == 150
