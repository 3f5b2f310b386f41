"""Work that must wait until a transaction has committed: messages, mostly.

A code or an alert sent from inside a write transaction went out while the
transaction held SQLite's one writer (on PostgreSQL, the user's locked row):
an SMTP server that answers slowly (10 s a message before it times out) kept
every payment waiting that long. And it went out whether or not the
transaction then committed: a retried transaction (a deadlock, "database is
locked") sent its message once per attempt, with codes that were never
stored, and a commit that failed left a message about something that did not
happen.

So domain code hands such work to :func:`after_commit`. The unit of work it
runs in (``Database.run``, ``Database.transaction``, ``run_grouped``) keeps
the actions in a list of its own and runs them in the caller's thread once
its transaction has committed, with no connection checked out; an attempt
that rolls back drops them. A savepoint rolled back (``Raw.rollback_to``)
drops what was added since it was taken (:func:`mark` / :func:`undo`).

An action that fails is logged and the others still run: the transaction
has committed and its outcome stands (a code that did not go out can be
asked for again). Outside any unit of work (a test driving a raw
connection) an action runs at once, as it did before.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable, Iterator
from contextvars import ContextVar

log = logging.getLogger("trustpay.db")

Action = Callable[[], None]
_pending: ContextVar[list[Action] | None] = ContextVar("trustpay_after_commit", default=None)


def after_commit(action: Action) -> None:
    """Run ``action`` once the current transaction has committed (never if it does not)."""
    pending = _pending.get()
    if pending is None:
        action()
    else:
        pending.append(action)


@contextlib.contextmanager
def collecting() -> Iterator[list[Action]]:
    """The actions added while the block runs (in this thread, or in work that runs
    in a copy of its context, as the group commit's members do)."""
    pending: list[Action] = []
    token = _pending.set(pending)
    try:
        yield pending
    finally:
        _pending.reset(token)


def run_all(actions: list[Action]) -> None:
    """Each action in order; one that fails is logged and does not stop the rest."""
    for action in actions:
        try:
            action()
        except Exception:
            log.exception("an action after commit failed (the transaction's work stands)")
    actions.clear()


Mark = tuple[list[Action], int] | None


def mark() -> Mark:
    """Where the current actions stand, for a savepoint about to be taken."""
    pending = _pending.get()
    return None if pending is None else (pending, len(pending))


def undo(at: Mark) -> None:
    """Drop the actions added since ``at``: their savepoint was rolled back."""
    if at is not None:
        pending, length = at
        del pending[length:]
