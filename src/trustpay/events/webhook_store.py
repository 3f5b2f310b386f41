"""SQL for webhook endpoints' secrets and their delivery queues."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from cryptography.exceptions import InvalidTag
from sqlalchemy import Connection, select, update

from trustpay.clock import rfc3339
from trustpay.db.schema import webhook_attempts, webhook_deliveries, webhook_endpoints
from trustpay.errors import NotFound
from trustpay.events.webhook_model import DeliveryStatus
from trustpay.identity import crypto

SECRET_PURPOSE = "webhook-signing-secret"  # noqa: S105  (a key-derivation label)
PENDING = DeliveryStatus.PENDING.value


class SecretUnreadable(Exception):
    """The sealed secret does not open: the operator's secret key changed."""


def seal_secret(secret_key: str, endpoint_id: str, secret: str) -> str:
    return crypto.seal(secret_key, SECRET_PURPOSE, secret, bound_to=endpoint_id)


def open_secret(secret_key: str, endpoint: Any) -> str:
    try:
        return crypto.unseal(secret_key, SECRET_PURPOSE, endpoint["secret_enc"], bound_to=endpoint["id"])
    except (InvalidTag, ValueError):
        raise SecretUnreadable("the endpoint's signing secret cannot be read with the operator's "
                               "current secret key; roll the secret") from None


def endpoint(conn: Connection, endpoint_id: str, *, lock: bool = False) -> Any:
    q = select(webhook_endpoints).where(webhook_endpoints.c.id == endpoint_id)
    return conn.execute(q.with_for_update() if lock else q).mappings().first()


def set_endpoint(conn: Connection, endpoint_id: str, **values: Any) -> None:
    conn.execute(update(webhook_endpoints).where(webhook_endpoints.c.id == endpoint_id).values(**values))


def head(conn: Connection, endpoint_id: str) -> Any:
    """The endpoint's oldest pending delivery: the only one that may be sent now."""
    return conn.execute(
        select(webhook_deliveries)
        .where(webhook_deliveries.c.endpoint_id == endpoint_id, webhook_deliveries.c.status == PENDING)
        .order_by(webhook_deliveries.c.event_seq, webhook_deliveries.c.id)
        .limit(1)
        .with_for_update()
    ).mappings().first()


def delivery(conn: Connection, delivery_id: str, *, lock: bool = False) -> Any:
    q = select(webhook_deliveries).where(webhook_deliveries.c.id == delivery_id)
    return conn.execute(q.with_for_update() if lock else q).mappings().first()


def set_delivery(conn: Connection, delivery_id: str, **values: Any) -> None:
    conn.execute(update(webhook_deliveries).where(webhook_deliveries.c.id == delivery_id).values(**values))


def fail_pending(conn: Connection, endpoint_id: str, why: str, *, now: datetime) -> int:
    """Give up on everything the endpoint still had queued (it was disabled or deleted)."""
    return int(conn.execute(update(webhook_deliveries).where(
        webhook_deliveries.c.endpoint_id == endpoint_id, webhook_deliveries.c.status == PENDING,
    ).values(status=DeliveryStatus.FAILED.value, last_error=why, next_attempt_at=None, completed_at=now)).rowcount)


def add_attempt(conn: Connection, delivery_id: str, *, at: datetime, status_code: int | None, error: str | None,
                duration_ms: int, succeeded: bool) -> None:
    conn.execute(webhook_attempts.insert().values(
        delivery_id=delivery_id, attempted_at=at, status_code=status_code, error=error,
        duration_ms=duration_ms, succeeded=succeeded))


def owned_delivery(conn: Connection, owner_id: str, delivery_id: str, *, lock: bool = False) -> tuple[Any, Any]:
    """A delivery of one of the merchant's (not deleted) endpoints, and that endpoint; 404 otherwise."""
    d = delivery(conn, delivery_id)
    ep = endpoint(conn, d["endpoint_id"], lock=lock) if d is not None else None
    if lock and ep is not None:  # the endpoint first, then the delivery: the order senders lock in
        d = delivery(conn, delivery_id, lock=True)
    if d is None or ep is None or ep["owner_id"] != owner_id or ep["deleted_at"] is not None:
        raise NotFound(f"no webhook delivery {delivery_id[:40]}")
    return d, ep


def page_deliveries(conn: Connection, endpoint_id: str, *, limit: int, starting_after: str | None,
                    status: str | None = None) -> tuple[list[Any], bool]:
    """Newest first (API.md list conventions); the cursor must be a delivery of this endpoint."""
    mine = webhook_deliveries.c.endpoint_id == endpoint_id
    q = select(webhook_deliveries).where(mine)
    if status is not None:
        q = q.where(webhook_deliveries.c.status == status)
    if starting_after is not None:
        if conn.execute(select(webhook_deliveries.c.id).where(
                webhook_deliveries.c.id == starting_after, mine)).first() is None:
            raise NotFound(f"no webhook delivery {starting_after[:40]}", param="starting_after")
        q = q.where(webhook_deliveries.c.id < starting_after)
    rows = list(conn.execute(q.order_by(webhook_deliveries.c.id.desc()).limit(limit + 1)).mappings())
    return rows[:limit], len(rows) > limit


def attempts_of(conn: Connection, delivery_ids: list[str]) -> dict[str, list[Any]]:
    out: dict[str, list[Any]] = {i: [] for i in delivery_ids}
    if delivery_ids:
        for r in conn.execute(select(webhook_attempts).where(webhook_attempts.c.delivery_id.in_(delivery_ids))
                              .order_by(webhook_attempts.c.seq)).mappings():
            out[r["delivery_id"]].append(r)
    return out


def shape_delivery(row: Any) -> dict[str, Any]:
    return {
        "id": row["id"], "object": "webhook_delivery", "endpoint": row["endpoint_id"], "event": row["event_id"],
        "event_type": row["event_type"], "status": row["status"], "attempts": int(row["attempts"]),
        "next_attempt_at": rfc3339(row["next_attempt_at"]) if row["next_attempt_at"] else None,
        "last_status_code": row["last_status_code"], "last_error": row["last_error"],
        "created_at": rfc3339(row["created_at"]),
        "completed_at": rfc3339(row["completed_at"]) if row["completed_at"] else None,
    }
