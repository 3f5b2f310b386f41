"""Notifications queued in the transaction of the change they announce.

``notify.send`` writes at once, which is right for one-time codes (the user is
waiting, and a code for a rolled-back request does no harm). A message about
money — "you received ¥10" — must exist only if the money moved, so it goes
into ``notification_queue`` with the change and the worker's sweeper sends it
after commit. Delivery is at least once: a crash between sending and marking
can repeat a message, never invent one.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from sqlalchemy import Connection, select, update

from trustpay.db import prepared
from trustpay.db.schema import notification_queue
from trustpay.events.notify import Notification, send_all

if TYPE_CHECKING:
    from datetime import datetime

    from trustpay.platform.context import Platform

BATCH = 200


def enqueue(conn: Connection, note: Notification, *, now: datetime) -> None:
    if note.code is not None:
        raise ValueError("one-time codes are sent at once with notify.send, not queued")
    prepared.insert(conn, notification_queue, {
        "channel": note.channel, "recipient": note.to, "subject": note.subject[:200], "body": note.body,
        "created_at": now,
    })


def send_queued(p: Platform, conn: Connection) -> int:
    """Sweeper: send what committed transactions queued; returns how many were sent."""
    rows = conn.execute(
        select(notification_queue).where(notification_queue.c.sent_at.is_(None))
        .order_by(notification_queue.c.seq).limit(BATCH)
    ).mappings().all()
    if not rows:
        return 0
    send_all(p.settings.notify_sink,
             [Notification(r["channel"], r["recipient"], r["subject"], r["body"]) for r in rows])
    # Marked together once all went out: the marks commit together anyway, so a
    # failure part-way repeats the batch's sent messages either way (at least once).
    conn.execute(update(notification_queue).where(notification_queue.c.seq.in_([r["seq"] for r in rows]))
                 .values(sent_at=p.clock.now()))
    return len(rows)
