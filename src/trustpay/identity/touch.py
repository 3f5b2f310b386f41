"""Sessions' last-use times, written behind the requests.

Every authenticated request refreshes its session's idle timer (15 minutes,
API.md) when the stored last use is a second old or more. Written by the
request itself, that was a write transaction, and a wait for a group commit,
on nearly every request of a real server (a user sends a request now and
then, so hardly any finds its session touched within the second): a GET
waited for a disk flush, a transfer for two. Here a request only notes the
time; the next grouped transaction carries the notes (a ``db/group.py``
rider), or one a timer starts when none came within a second, and this
process reads its own unwritten notes over the stored value, so its idle
checks stay exact.

What that costs: notes not yet committed (about a second's worth at most)
are lost if the process dies. Those sessions then look idle a little longer
than they were and end that much sooner: the safe side. Another server
process sees only the stored value, which is likewise at most that much
older, and errs the same way.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import replace
from datetime import datetime
from functools import partial
from typing import TYPE_CHECKING

from sqlalchemy import Connection

from trustpay.identity import store
from trustpay.identity.model import Session

if TYPE_CHECKING:
    from trustpay.platform.context import Platform

log = logging.getLogger("trustpay.identity")

# How long a note may wait for a grouped transaction to carry it before a
# timer starts one for it: a process that only answers reads has no others,
# and another process may serve the session's next request from the stored
# value alone.
CARRY_WITHIN = 1.0  # seconds

_KEY = "identity.session_touches"


class SessionTouches:
    """This process's notes of when sessions were last used, not yet stored.

    ``carry`` starts a grouped transaction (which stores the notes); it is
    called from a timer when notes have waited :data:`CARRY_WITHIN`."""

    def __init__(self, carry: Callable[[], None] | None = None) -> None:
        self._lock = threading.Lock()
        self._notes: dict[str, datetime] = {}
        self._carry = carry
        self._armed = False  # a timer will look at the notes

    def note(self, session_id: str, at: datetime) -> None:
        """Note a use of the session at ``at`` (never backwards)."""
        with self._lock:
            noted = self._notes.get(session_id)
            if noted is None or at > noted:
                self._notes[session_id] = at
            arm, self._armed = not self._armed, True
        if arm and self._carry is not None:
            timer = threading.Timer(CARRY_WITHIN, self._due)
            timer.daemon = True
            timer.start()

    def _due(self) -> None:
        with self._lock:
            self._armed = False  # a later note arms the next timer
            waiting = bool(self._notes)
        if waiting and self._carry is not None:
            self._carry()

    def seen(self, session: Session) -> Session:
        """``session`` with this process's unwritten last use, when that is later."""
        noted = self._notes.get(session.id)
        if noted is None or noted <= session.last_seen_at:
            return session
        return replace(session, last_seen_at=noted)

    # ------------------------------------------------ the group-commit rider
    def waiting(self) -> bool:
        return bool(self._notes)

    def board(self, conn: Connection) -> Callable[[], None] | None:
        with self._lock:
            batch = dict(self._notes)
        if not batch:
            return None
        store.touch_sessions(conn, batch)
        return partial(self._stored, batch)

    def _stored(self, batch: dict[str, datetime]) -> None:
        """Forget the notes that transaction wrote (a later note of the same session stays)."""
        with self._lock:
            for session_id, at in batch.items():
                if self._notes.get(session_id) == at:
                    del self._notes[session_id]


def touches_of(p: Platform) -> SessionTouches:
    """The platform's notes, made (and put on its grouped transactions) at first use."""
    def make() -> SessionTouches:
        touches = SessionTouches(carry=lambda: store_noted(p))
        p.db.add_rider(touches)
        return touches

    return p.shared(_KEY, make)


def store_noted(p: Platform) -> None:
    """Write every unwritten note now (notes waiting, a server stopping): one grouped transaction."""
    touches = p.extras.get(_KEY)
    if isinstance(touches, SessionTouches) and touches.waiting():
        try:
            p.db.run_grouped(_carry)
        except Exception:
            # Lost notes only make those sessions end a little sooner.
            log.warning("could not store the sessions' last uses", exc_info=True)


def _carry(_conn: Connection) -> None:
    """A grouped transaction's member with no work of its own: the riders' carrier."""
