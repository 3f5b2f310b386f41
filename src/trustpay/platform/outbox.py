"""The outbox: events written in the same transaction as the change they announce.

A service calls :func:`emit` with its own connection, so the event commits or
rolls back with the business rows and ledger entry (never "money moved but
nobody was told", nor "told about money that never moved"). Consumers —
webhook delivery, notifications — read :func:`unpublished` events in order,
act, and :func:`mark_published` them, which gives at-least-once delivery.

Each row's ``payload`` is the whole event in its public shape (API.md,
Webhooks): ``{"id": "evt_…", "type", "created_at", "data": {"object": …}}``,
stored once so every delivery of it sends identical bytes.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, func, select, update

from trustpay.clock import rfc3339, to_utc
from trustpay.db import prepared
from trustpay.db.schema import outbox
from trustpay.errors import NotFound
from trustpay.ids import new_id

_TYPE = re.compile(r"[a-z][a-z0-9_]*(\.[a-z][a-z0-9_]*)+")


@dataclass(frozen=True)
class Event:
    seq: int
    id: str
    type: str
    owner_id: str | None
    created_at: datetime
    published_at: datetime | None
    payload: dict[str, Any]  # the public event, as delivered

    @property
    def object(self) -> Any:
        return self.payload["data"]["object"]


def emit(
    conn: Connection,
    type: str,
    data: Mapping[str, Any],
    owner_id: str | None = None,
    *,
    now: datetime,
) -> str:
    """Record event ``type`` about ``data`` (the object, already in API shape).

    ``now`` is the caller's timestamp for the change (from the platform
    clock), so the event's ``created_at`` equals the business row's.
    ``owner_id`` is whose event it is (merchant or user): webhooks and
    notifications route by it.
    """
    if len(type) > 64 or not _TYPE.fullmatch(type):
        raise ValueError(f"event type {type!r} is not like 'trade.paid'")
    event_id = new_id("evt", now)
    payload = {
        "id": event_id, "type": type, "created_at": rfc3339(now), "data": {"object": dict(data)},
    }
    prepared.insert(conn, outbox, {
        "id": event_id, "type": type, "owner_id": owner_id, "payload": payload, "created_at": now,
        "published_at": None,
    })
    return event_id


def unpublished(conn: Connection, *, limit: int = 100, lock: bool = False) -> list[Event]:
    """The oldest events not yet published, in the order they were written.

    ``lock=True`` (for a consumer that marks them published in the same
    transaction) skips rows another consumer holds on PostgreSQL; SQLite's
    single writer needs no row locks. Order is by insertion sequence: on
    PostgreSQL a transaction that commits late can make an earlier sequence
    number appear after a later one was read, so consumers must not assume
    gap-free order across calls — delivery is at-least-once, not ordered.
    """
    q = (
        select(outbox)
        .where(outbox.c.published_at.is_(None))
        .order_by(outbox.c.seq)
        .limit(limit)
    )
    if lock:
        q = q.with_for_update(skip_locked=True)
    return [_event(r) for r in conn.execute(q)]


def mark_published(conn: Connection, event_ids: Iterable[str], *, now: datetime) -> int:
    """Mark events published; already-published ones keep their first timestamp."""
    ids = list(event_ids)
    if not ids:
        return 0
    return int(conn.execute(
        update(outbox)
        .where(outbox.c.id.in_(ids), outbox.c.published_at.is_(None))
        .values(published_at=now)
    ).rowcount)


def get(conn: Connection, event_id: str) -> Event:
    row = conn.execute(select(outbox).where(outbox.c.id == event_id)).first()
    if row is None:
        raise NotFound(f"no event {event_id}")
    return _event(row)


def count_unpublished(conn: Connection) -> int:
    return int(conn.execute(
        select(func.count()).select_from(outbox).where(outbox.c.published_at.is_(None))
    ).scalar_one())


def _event(row: Any) -> Event:
    return Event(
        seq=int(row.seq), id=row.id, type=row.type, owner_id=row.owner_id,
        created_at=to_utc(row.created_at),
        published_at=to_utc(row.published_at) if row.published_at else None,
        payload=dict(row.payload),
    )
