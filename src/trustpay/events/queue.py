"""Notifications queued in the transaction of the change they announce.

``notify.send`` writes at once, which is right for one-time codes (the user is
waiting, and a code for a rolled-back request does no harm). A message about
money — "you received ¥10" — must exist only if the money moved, so it goes
into ``notification_queue`` with the change and the worker's sweeper sends it
after commit. Delivery is at least once: a crash between sending and marking
can repeat a message, never invent one.
"""

from __future__ import annotations

from datetime import timedelta
from functools import partial
from typing import TYPE_CHECKING, Any

from sqlalchemy import Connection, or_, select, update

from trustpay.db import prepared
from trustpay.db.schema import notification_queue
from trustpay.events.notify import Notification, send_all

if TYPE_CHECKING:
    from datetime import datetime

    from trustpay.platform.context import Platform

BATCH = 200
# How long a claimed batch is the claiming sender's: longer than sending 200
# messages normally takes, short enough that a dead sender's batch goes out soon
# after. (A mail server timing out on each would outlast it; another runner may
# then send the rest again: at least once.)
CLAIM = timedelta(minutes=2)


def enqueue(conn: Connection, note: Notification, *, now: datetime) -> None:
    if note.code is not None:
        raise ValueError("one-time codes are sent at once with notify.send, not queued")
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
    sent again (at least once, never invented)."""
    rows = p.db.run_grouped(partial(_claim, p))
    if not rows:
        return 0
    sent: list[Notification] = []
    try:
        send_all(p.settings.notify_sink, [_note(r) for r in rows], sent=sent)
    finally:
        if sent:  # the first len(sent) rows, in order
            p.db.run_grouped(partial(_mark_sent, [r["seq"] for r in rows[:len(sent)]], p.clock.now()))
    return len(rows)


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


def _mark_sent(seqs: list[int], now: datetime, conn: Connection) -> None:
    conn.execute(update(notification_queue).where(notification_queue.c.seq.in_(seqs))
                 .values(sent_at=now, claimed_until=None))


def _note(row: Any) -> Notification:
    return Notification(row["channel"], row["recipient"], row["subject"], row["body"])
