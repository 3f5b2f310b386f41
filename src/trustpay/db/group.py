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

import contextlib
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
    __slots__ = ("broken", "committed", "conn", "error", "fn", "ran", "result", "turn")

    def __init__(self, fn: Callable[[Connection], T]) -> None:
        self.fn = fn
        self.conn: Connection | None = None
        self.turn = False  # the leader has handed us the transaction
        self.ran = False  # our work is done (in our savepoint)
        self.broken = False  # our savepoint could not be undone: the group must not commit
        self.committed = False  # the group's transaction has ended
        self.result: Any = None
        self.error: BaseException | None = None


class GroupCommit:
    def __init__(self, db: Database, *, max_group: int = MAX_GROUP) -> None:
        self._db = db
        self._max = max_group
        self._cond = threading.Condition()
        self._queue: deque[_Member[Any]] = deque()
        self._leading = False

    def run(self, fn: Callable[[Connection], T]) -> T:
        me: _Member[T] = _Member(fn)
        with self._cond:
            self._queue.append(me)
            while not me.turn and not (not self._leading and self._queue and self._queue[0] is me):
                self._cond.wait()
            lead = not me.turn
            if lead:
                self._leading = True
        if lead:
            self._lead(me)
        else:
            self._follow(me)
        if me.error is not None:
            raise me.error
        return me.result  # type: ignore[no-any-return]

    # ----------------------------------------------------------------- roles
    def _lead(self, me: _Member[Any]) -> None:
        group: list[_Member[Any]] = []
        failure: BaseException | None = None
        try:
            with self._db.transaction(write=True) as conn:
                while len(group) < self._max:
                    with self._cond:
                        if not self._queue:
                            break
                        member = self._queue.popleft()
                    group.append(member)
                    if member is me:
                        _run_in_savepoint(conn, me)
                    else:
                        self._hand_over(conn, member)
        except BaseException as exc:  # the begin or the commit failed: nothing of the group stayed
            failure = exc
        with self._cond:
            if me not in group:  # could not even begin: only the leader knows, the queue is intact
                group.append(me)
                with contextlib.suppress(ValueError):
                    self._queue.remove(me)
            for member in group:
                if failure is not None:
                    member.error, member.result = failure, None
                member.committed = True
            self._leading = False
            self._cond.notify_all()

    def _hand_over(self, conn: Connection, member: _Member[Any]) -> None:
        with self._cond:
            member.conn, member.turn = conn, True
            self._cond.notify_all()
            while not member.ran:
                self._cond.wait()
        if member.broken:
            raise RuntimeError("a grouped transaction's savepoint could not be rolled back")

    def _follow(self, me: _Member[Any]) -> None:
        assert me.conn is not None
        try:
            _run_in_savepoint(me.conn, me)
        except BaseException:
            me.broken = True
        finally:
            with self._cond:
                me.ran = True
                self._cond.notify_all()
                while not me.committed:
                    self._cond.wait()


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
