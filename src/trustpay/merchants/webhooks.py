"""A merchant's webhook endpoints: where events are sent and the secret they are signed with.

The signing secret (``whsec_…``) is shown once, when the endpoint is made or its
secret rolled. It is kept sealed (AES-GCM under the operator's secret key,
bound to the endpoint id) rather than hashed, because the platform must read
it back to sign every delivery; sealing means a copy of the database alone
does not let anyone forge deliveries. The operator must therefore set
``TRUSTPAY_SECRET_KEY`` for secrets to survive a restart, as for two-factor
secrets; a secret that no longer opens is reported on the delivery, and rolling
it mends the endpoint.

URLs pass :func:`trustpay.events.webhook_guard.check_url` (which resolves DNS:
call :func:`check_url` before opening the transaction).
"""

from __future__ import annotations

import secrets
from collections.abc import Sequence
from typing import Any

from sqlalchemy import Connection, select, update

from trustpay.clock import rfc3339
from trustpay.db.schema import webhook_endpoints
from trustpay.errors import Conflict, InvalidRequest, NotFound
from trustpay.events import webhook_guard, webhook_store
from trustpay.events.webhook_model import SECRET_PREFIX, EndpointStatus, normalize_events
from trustpay.ids import new_id
from trustpay.platform.context import Platform

MAX_ENDPOINTS = 16  # per merchant


def check_url(p: Platform, url: str) -> str:
    """The URL, if webhooks may be sent to it (DNS lookup: no transaction open)."""
    return webhook_guard.check_url(url.strip(), allow_private=p.settings.webhook_allow_private).url


def events_of(events: str | Sequence[str]) -> str | list[str]:
    try:
        return normalize_events(events)
    except ValueError as exc:
        raise InvalidRequest(str(exc), param="events") from None


def create(p: Platform, conn: Connection, owner_id: str, *, url: str, events: str | Sequence[str]
           ) -> tuple[Any, str]:
    """A new endpoint and its signing secret (shown to the merchant this once)."""
    wanted = events_of(events)
    if len(list_endpoints(conn, owner_id)) >= MAX_ENDPOINTS:
        raise Conflict(f"at most {MAX_ENDPOINTS} webhook endpoints per merchant; delete one first",
                       code="limit_reached")
    now = p.clock.now()
    endpoint_id = new_id("whe", now)
    secret = _new_secret()
    conn.execute(webhook_endpoints.insert().values(
        id=endpoint_id, owner_id=owner_id, url=url, events=wanted,
        secret_enc=webhook_store.seal_secret(p.settings.secret_key, endpoint_id, secret),
        status=EndpointStatus.ACTIVE.value, disabled_reason=None, created_at=now, updated_at=now,
        deleted_at=None, deliver_after=None, sending_until=None,
    ))
    return get(conn, owner_id, endpoint_id), secret


def list_endpoints(conn: Connection, owner_id: str) -> list[Any]:
    return list(conn.execute(
        select(webhook_endpoints)
        .where(webhook_endpoints.c.owner_id == owner_id, webhook_endpoints.c.deleted_at.is_(None))
        .order_by(webhook_endpoints.c.id.desc())
    ).mappings())


def page_endpoints(conn: Connection, owner_id: str, *, limit: int, starting_after: str | None
                   ) -> tuple[list[Any], bool]:
    """Newest first (API.md list conventions); the cursor must be one of the merchant's endpoints."""
    rows = list_endpoints(conn, owner_id)
    if starting_after is not None:
        ids = [r["id"] for r in rows]
        if starting_after not in ids:
            raise NotFound(f"no webhook endpoint {starting_after[:40]}", param="starting_after")
        rows = rows[ids.index(starting_after) + 1:]
    return rows[:limit], len(rows) > limit


def get(conn: Connection, owner_id: str, endpoint_id: str, *, lock: bool = False) -> Any:
    """The merchant's endpoint; another merchant's, a deleted or a missing one is the same 404."""
    q = select(webhook_endpoints).where(
        webhook_endpoints.c.id == endpoint_id, webhook_endpoints.c.owner_id == owner_id,
        webhook_endpoints.c.deleted_at.is_(None))
    row = conn.execute(q.with_for_update() if lock else q).mappings().first()
    if row is None:
        raise NotFound(f"no webhook endpoint {endpoint_id[:40]}")
    return row


def update_endpoint(p: Platform, conn: Connection, owner_id: str, endpoint_id: str, *, url: str | None = None,
                    events: str | Sequence[str] | None = None, status: str | None = None) -> Any:
    """Change the URL or the events, or turn the endpoint off (``disabled``) and on
    again (``active``). Events of the time it was off were never queued for it, as
    for an endpoint that did not exist yet; turning it on does not send them."""
    row = get(conn, owner_id, endpoint_id, lock=True)
    now = p.clock.now()
    values: dict[str, Any] = {"updated_at": now}
    if url is not None:
        values["url"] = url
    if events is not None:
        values["events"] = events_of(events)
    if status is not None:
        if status == EndpointStatus.DISABLED:
            values.update(status=status, disabled_reason="disabled by the merchant", deliver_after=None)
            webhook_store.fail_pending(conn, endpoint_id, "the endpoint was disabled", now=now)
        elif status == EndpointStatus.ACTIVE:
            if row["status"] != EndpointStatus.ACTIVE:
                values.update(status=status, disabled_reason=None)
        else:
            raise InvalidRequest("status: active or disabled", param="status")
    conn.execute(update(webhook_endpoints).where(webhook_endpoints.c.id == endpoint_id).values(**values))
    return get(conn, owner_id, endpoint_id)


def delete(p: Platform, conn: Connection, owner_id: str, endpoint_id: str) -> None:
    """Gone from the merchant's list and sent nothing more; its delivery log is kept."""
    get(conn, owner_id, endpoint_id, lock=True)
    now = p.clock.now()
    webhook_store.fail_pending(conn, endpoint_id, "the endpoint was deleted", now=now)
    conn.execute(update(webhook_endpoints).where(webhook_endpoints.c.id == endpoint_id).values(
        status=EndpointStatus.DISABLED.value, disabled_reason="deleted by the merchant", deleted_at=now,
        updated_at=now, deliver_after=None))


def roll_secret(p: Platform, conn: Connection, owner_id: str, endpoint_id: str) -> tuple[Any, str]:
    """A new signing secret, in force for the next delivery; the old one stops at once."""
    get(conn, owner_id, endpoint_id, lock=True)
    secret = _new_secret()
    conn.execute(update(webhook_endpoints).where(webhook_endpoints.c.id == endpoint_id).values(
        secret_enc=webhook_store.seal_secret(p.settings.secret_key, endpoint_id, secret),
        updated_at=p.clock.now()))
    return get(conn, owner_id, endpoint_id), secret


def deliveries(conn: Connection, owner_id: str, endpoint_id: str, *, limit: int, starting_after: str | None,
               status: str | None = None) -> tuple[list[Any], bool]:
    """The endpoint's delivery log, newest first (404 unless it is the merchant's)."""
    get(conn, owner_id, endpoint_id)
    return webhook_store.page_deliveries(conn, endpoint_id, limit=limit, starting_after=starting_after,
                                         status=status)


def shape(row: Any, *, secret: str | None = None) -> dict[str, Any]:
    out: dict[str, Any] = {
        "id": row["id"], "object": "webhook_endpoint", "url": row["url"], "events": row["events"],
        "status": row["status"], "disabled_reason": row["disabled_reason"],
        "created_at": rfc3339(row["created_at"]),
    }
    if secret is not None:
        out["secret"] = secret
    return out


def _new_secret() -> str:
    return SECRET_PREFIX + secrets.token_urlsafe(32)  # 256 bits

