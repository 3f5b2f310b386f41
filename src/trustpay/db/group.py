"""Group commit: concurrent short write transactions share one commit.

A commit waits for the disk (SQLite ``synchronous=FULL`` fsyncs the WAL;
PostgreSQL flushes its WAL), and the ledger's hash chain lets only one
writer append at a time on either engine, so busy servers spent most of
each request waiting for someone else's fsync. Here the requests that queue
up while one commit is in flight go together into the next transaction:

* the first waiting thread becomes the *leader*: it begins a write
  transaction and runs each queued request's work in turn, inside that
  request's own SAVEPOINT (so a request that fails is undone alone and the
  others go on) and in a copy of that request's context variables (so the
  work sees what it would see in its own thread);
* the leader commits once for the whole group, and only then does any member
  return: nobody is told "done" about work that is not yet durable;
* if the commit fails, every member gets the error (and, through
  :meth:`Database.run_grouped`, retries from the start).

The leader runs the others' work itself rather than waking each member's
thread to run it: a hand-over between threads costs a GIL switch each way,
and three per member (your turn, I ran, committed) took more of a busy
server's time than the work. Now a waiting member is woken once, when its
group has committed (or to lead the next group).

A member's work must be the same kind of function ``Database.run`` takes:
it touches the database only through its ``conn`` and may run again. It must
not itself wait for another grouped transaction (that one would wait for it).

*Riders* carry writes nobody waits for (write-behind state such as sessions'
last-use times, see ``identity/touch.py``): each group's transaction first
lets every rider write what it has pending, in a savepoint of its own (a
rider that fails is undone and logged, and the members go on), and tells it
once that transaction has committed, so it forgets only what is durable.
"""

from __future__ import annotations

import contextvars
import logging
import threading
from collections import deque
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Generic, Protocol, TypeVar

from sqlalchemy import Connection

from trustpay.db import after_commit
from trustpay.db.raw import Raw

if TYPE_CHECKING:
    from trustpay.db.engine import Database

log = logging.getLogger("trustpay.db")

T = TypeVar("T")
SAVEPOINT = "tp_group_member"
RIDER_SAVEPOINT = "tp_group_rider"
# Savepoints in one transaction, the riders' included: bounds how long one
# transaction holds the writer, and keeps PostgreSQL within the 64 subtransactions
# a backend caches (PGPROC_MAX_CACHED_SUBXIDS); past them every other session's
# snapshot has to look this transaction's up in pg_subtrans until it ends.
MAX_GROUP = 64


class _Member(Generic[T]):
    __slots__ = ("context", "error", "fn", "promoted", "result", "wake")

    def __init__(self, fn: Callable[[Connection], T]) -> None:
        self.fn = fn
        self.context = contextvars.copy_context()  # the requesting thread's, for its work
        self.promoted = False  # woken to lead the next group rather than because ours committed
        self.result: Any = None
        self.error: BaseException | None = None
        # One event per member, so each hand-over wakes exactly the thread it
        # concerns (a shared condition woke every waiting request at every step).
        self.wake = threading.Event()


class Rider(Protocol):
    def waiting(self) -> bool:
        """Whether anything is pending (cheap: asked at every group)."""

    def board(self, conn: Connection) -> Callable[[], None] | None:
        """Write what is pending on ``conn`` (nothing: return None); the callable
        returned is called once that transaction has committed."""


class GroupCommit:
    def __init__(self, db: Database, *, max_group: int = MAX_GROUP) -> None:
        self._db = db
        self._max = max_group
        self._lock = threading.Lock()
        self._queue: deque[_Member[Any]] = deque()
        self._leading = False
        self._riders: list[Rider] = []

    def add_rider(self, rider: Rider) -> None:
        self._riders.append(rider)

    def run(self, fn: Callable[[Connection], T]) -> T:
        # The member's after-commit actions: its context (copied now) collects them
        # whichever thread runs its work; they run here, in its own thread, once
        # its group has committed.
        with after_commit.collecting() as actions:
            me: _Member[T] = _Member(fn)
            with self._lock:
                lead = not self._leading
                if lead:
                    self._leading = True
                else:
                    self._queue.append(me)
            if not lead:
                me.wake.wait()
                lead = me.promoted
            if lead:
                self._lead(me)
            if me.error is not None:
                raise me.error
        after_commit.run_all(actions)
        return me.result  # type: ignore[no-any-return]

    def _lead(self, me: _Member[Any]) -> None:
        group: list[_Member[Any]] = [me]
        failure: BaseException | None = None
        landed: list[Callable[[], None]] = []
        raw: Raw | None = None
        try:
            with self._db.transaction(write=True) as conn:
                raw = Raw.of(conn)
                raw.deferring = raw.is_pg  # see db/raw.py: fewer round trips while others wait
                boarding = [rider for rider in self._riders if rider.waiting()]
                landed = [done for rider in boarding if (done := _board(conn, rider)) is not None]
                me.context.run(_run_in_savepoint, conn, me)
                while len(group) < self._max - len(boarding):
                    with self._lock:
                        if not self._queue:
                            break
                        member = self._queue.popleft()
                    group.append(member)
                    member.context.run(_run_in_savepoint, conn, member)
                raw.flush()  # the last member's RELEASE
        except BaseException as exc:  # the begin or the commit failed, or a savepoint could not be undone
            failure = exc
        finally:
            if raw is not None:
                raw.deferring = False
                raw.queued.clear()
        if failure is not None:
            for member in group:
                member.error, member.result = failure, None
        else:
            for done in landed:
                done()
        with self._lock:  # whoever queued meanwhile leads the next group
            successor = self._queue.popleft() if self._queue else None
            self._leading = successor is not None
        for member in group[1:]:
            member.wake.set()
        if successor is not None:
            successor.promoted = True
            successor.wake.set()


def _board(conn: Connection, rider: Rider) -> Callable[[], None] | None:
    raw = Raw.of(conn)
    raw.savepoint(RIDER_SAVEPOINT)
    try:
        done = rider.board(conn)
        raw.flush()
    except Exception:
        # What it had stays pending for the next group; the members are not its hostages.
        log.warning("a write-behind rider failed; it stays pending", exc_info=True)
        raw.rollback_to(RIDER_SAVEPOINT)
        done = None
    raw.release(RIDER_SAVEPOINT)
    return done


def _run_in_savepoint(conn: Connection, member: _Member[Any]) -> None:
    """The member's work in its own savepoint: on failure only its work is undone
    (if even that fails, this raises and the leader's transaction fails whole)."""
    raw = Raw.of(conn)
    raw.savepoint(SAVEPOINT)
    try:
        member.result = member.fn(conn)
        raw.flush()  # its deferred writes: their failure is this member's
    except BaseException as exc:
        member.error, member.result = exc, None
        raw.rollback_to(SAVEPOINT)
    raw.release(SAVEPOINT)
