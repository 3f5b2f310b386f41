"""Group commit: concurrent short write transactions share one commit.

A commit waits for the disk (SQLite ``synchronous=FULL`` fsyncs the WAL;
PostgreSQL flushes its WAL), and the ledger's hash chain lets only one
writer append at a time on either engine, so busy servers spent most of
each request waiting for someone else's fsync. Here the requests that queue
up while one commit is in flight go together into the next transaction:

* the first waiting thread becomes the *leader*: it begins a write
  transaction and lets each queued request run in turn — each in its own
  thread (so thread-locals and context variables are its own) and inside its
  own SAVEPOINT, so a request that fails is undone alone and the others go on;
* the leader commits once for the whole group, and only then does any member
  return: nobody is told "done" about work that is not yet durable;
* if the commit fails, every member gets the error (and, through
  :meth:`Database.run_grouped`, retries from the start).

A member's work must be the same kind of function ``Database.run`` takes:
it touches the database only through its ``conn`` and may run again. It must
not itself wait for another grouped transaction (that one would wait for it).
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Generic, TypeVar

from sqlalchemy import Connection

if TYPE_CHECKING:
    from trustpay.db.engine import Database

T = TypeVar("T")
SAVEPOINT = "tp_group_member"
MAX_GROUP = 64  # bounds how long one transaction holds the writer


class _Member(Generic[T]):
    __slots__ = ("broken", "conn", "done", "error", "fn", "promoted", "ran", "result", "wake")

    def __init__(self, fn: Callable[[Connection], T]) -> None:
        self.fn = fn
        self.conn: Connection | None = None  # the leader's transaction, once it is our turn
        self.promoted = False  # woken to lead the next group rather than to run in this one
        self.broken = False  # our savepoint could not be undone: the group must not commit
        self.result: Any = None
        self.error: BaseException | None = None
        # One event per step and member, so each hand-over wakes exactly the
        # thread it concerns (a shared condition woke every waiting request
        # at every step, and they fought over the GIL for nothing).
        self.wake = threading.Event()  # our turn in the leader's transaction, or to lead
        self.ran = threading.Event()  # our work is done (in our savepoint)
        self.done = threading.Event()  # the group's transaction has ended


class GroupCommit:
    def __init__(self, db: Database, *, max_group: int = MAX_GROUP) -> None:
        self._db = db
        self._max = max_group
        self._lock = threading.Lock()
        self._queue: deque[_Member[Any]] = deque()
        self._leading = False

    def run(self, fn: Callable[[Connection], T]) -> T:
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
        else:
            self._follow(me)
        if me.error is not None:
            raise me.error
        return me.result  # type: ignore[no-any-return]

    # ----------------------------------------------------------------- roles
    def _lead(self, me: _Member[Any]) -> None:
        group: list[_Member[Any]] = [me]
        failure: BaseException | None = None
        try:
            with self._db.transaction(write=True) as conn:
                _run_in_savepoint(conn, me)
                while len(group) < self._max:
                    with self._lock:
                        if not self._queue:
                            break
                        member = self._queue.popleft()
                    group.append(member)
                    self._hand_over(conn, member)
        except BaseException as exc:  # the begin or the commit failed: nothing of the group stayed
            failure = exc
        if failure is not None:
            for member in group:
                member.error, member.result = failure, None
        with self._lock:  # whoever queued meanwhile leads the next group
            successor = self._queue.popleft() if self._queue else None
            self._leading = successor is not None
        for member in group:
            member.done.set()
        if successor is not None:
            successor.promoted = True
            successor.wake.set()

    def _hand_over(self, conn: Connection, member: _Member[Any]) -> None:
        member.conn = conn
        member.wake.set()
        member.ran.wait()
        if member.broken:
            raise RuntimeError("a grouped transaction's savepoint could not be rolled back")

    def _follow(self, me: _Member[Any]) -> None:
        assert me.conn is not None
        try:
            _run_in_savepoint(me.conn, me)
        except BaseException:
            me.broken = True
        finally:
            me.ran.set()
            me.done.wait()


def _run_in_savepoint(conn: Connection, member: _Member[Any]) -> None:
    dbapi = conn.connection.driver_connection
    assert dbapi is not None
    dbapi.execute(f"SAVEPOINT {SAVEPOINT}")
    try:
        member.result = member.fn(conn)
    except BaseException as exc:
        member.error = exc
        # Undo this member's work only; if even that fails the leader's
        # transaction fails as a whole and every member hears of it.
        dbapi.execute(f"ROLLBACK TO SAVEPOINT {SAVEPOINT}")
    dbapi.execute(f"RELEASE SAVEPOINT {SAVEPOINT}")
