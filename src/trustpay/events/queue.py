"""Notifications queued in the transaction of the change they announce.

One-time codes go out with ``notify.send_after_commit``, in the request's own
thread once its transaction has committed: the user is waiting for them, and
they must not rest in the database in clear. A message about money — "you
received ¥10" — must exist only if the money moved and must survive a crash,
so it goes into ``notification_queue`` with the change and the worker's
sweeper sends it after commit. Delivery is at least once: a crash between
sending and marking can repeat a message, never invent one.
"""

from __future__ import annotations

import time
from datetime import timedelta
from functools import partial
from typing import TYPE_CHECKING, Any

from sqlalchemy import Connection, delete, or_, select, update

from trustpay.db import prepared
from trustpay.db.schema import notification_queue
from trustpay.events.notify import Notification, send_all

if TYPE_CHECKING:
    from datetime import datetime

    from trustpay.platform.context import Platform

BATCH = 200
# How long a claimed batch is the claiming sender's: longer than sending 200
# messages normally takes, short enough that a dead sender's batch goes out soon
# after.
CLAIM = timedelta(minutes=2)
# A sender stops this long after it began and gives back what it has not sent,
# well within its claim: a mail server that takes its 10 s timeout on every
# message would otherwise outlast the claim, and another runner would take the
# rest of the batch and send it a second time.
SEND_BUDGET = CLAIM.total_seconds() / 2


def enqueue(conn: Connection, note: Notification, *, now: datetime) -> None:
    if note.code is not None:
        raise ValueError("one-time codes go out with notify.send_after_commit, not queued")
    prepared.insert(conn, notification_queue, {
        "channel": note.channel, "recipient": note.to, "subject": note.subject[:200], "body": note.body,
        "created_at": now,
    })


def send_queued(p: Platform) -> int:
    """Outside sweeper: send what committed transactions queued; returns how many were claimed.

    Three steps, so that no transaction is open while a message goes out (a
    slow mail server held the database's writer, and every payment behind it,
    for the whole send): claim a batch (a lease of ``CLAIM``, in the requests'
    group commit), send it, mark what went out. A sender that dies or fails
    part-way leaves the rest claimed until the lease runs out; then they are
    sent again (at least once, never invented). One still sending when its
    ``SEND_BUDGET`` is spent stops and gives the rest back, for the next sweep."""
    rows = p.db.run_grouped(partial(_claim, p))
    if not rows:
        return 0
    sent: list[Notification] = []
    failed = True
    deadline = _clock() + SEND_BUDGET
    try:
        send_all(p.settings.notify_sink, [_note(r) for r in rows], sent=sent, stop=lambda: _clock() >= deadline)
        failed = False
    finally:
        seqs = [r["seq"] for r in rows]
        # The first len(sent) rows went out, in order; after a failure the rest stay
        # claimed (a pause before the mail server is tried again), else they go back.
        unsent = [] if failed else seqs[len(sent):]
        if sent or unsent:
            p.db.run_grouped(partial(_settle, seqs[:len(sent)], unsent, p.clock.now()))
    return len(rows)


def _clock() -> float:
    return time.monotonic()


def _claim(p: Platform, conn: Connection) -> list[Any]:
    now = p.clock.now()
    q = notification_queue.c
    rows = conn.execute(
        select(notification_queue)
        .where(q.sent_at.is_(None), or_(q.claimed_until.is_(None), q.claimed_until <= now))
        .order_by(q.seq).limit(BATCH).with_for_update(skip_locked=True)
    ).mappings().all()
    if rows:
        conn.execute(update(notification_queue).where(q.seq.in_([r["seq"] for r in rows]))
                     .values(claimed_until=now + CLAIM))
    return list(rows)


def _settle(sent: list[int], unsent: list[int], now: datetime, conn: Connection) -> None:
    q = notification_queue.c
    if sent:
        conn.execute(update(notification_queue).where(q.seq.in_(sent)).values(sent_at=now, claimed_until=None))
    if unsent:
        conn.execute(update(notification_queue).where(q.seq.in_(unsent), q.sent_at.is_(None))
                     .values(claimed_until=None))


def purge_sent(conn: Connection, *, sent_before: datetime, limit: int = 1000) -> int:
    """Delete up to ``limit`` messages sent before ``sent_before``: who was told what
    about their money is kept no longer than it is needed (the ledger and the
    statement are the record); unsent ones stay however old."""
    q = notification_queue.c
    old = select(q.seq).where(q.sent_at < sent_before).limit(limit)
    return int(conn.execute(delete(notification_queue).where(q.seq.in_(old))).rowcount)


def _note(row: Any) -> Notification:
    return Notification(row["channel"], row["recipient"], row["subject"], row["body"])
