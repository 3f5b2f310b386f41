"""Webhook delivery: outbox events → per-endpoint queues → signed HTTP POSTs.

Three steps, run by the job worker (``trustpay serve``'s, ``trustpay worker``,
and the test clock's ``run_until_idle``):

1. :func:`fan_out` (sweeper): takes unpublished outbox events, queues one
   delivery per matching endpoint of the event's owner, marks the events
   published — all in one transaction, so an event is queued exactly once.
2. :func:`dispatch` (sweeper): for each endpoint whose queue is due and that
   nobody is sending for, takes the endpoint's sending lease and schedules a
   ``webhook.deliver`` job.
3. :func:`deliver` (job run outside any transaction): sends the endpoint's
   oldest pending delivery, records the answer, and goes on to the next, in
   event order. Claiming and recording are short transactions of their own; no
   transaction is open during the HTTP call.

Order: only an endpoint's oldest pending delivery is ever sent; while it waits
for a retry the later ones wait behind it. A receiver down for a day therefore
gets everything afterwards, in the order the events were created. A delivery
that runs out of attempts fails, marks the endpoint ``failing``, and lets the
queue move on. Delivery is at least once: a crash between sending and
recording sends the same bytes again (receivers deduplicate by event id).
"""

from __future__ import annotations

import logging
import random
import time
from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import partial
from typing import TYPE_CHECKING, Any

import httpx
from sqlalchemy import Connection, or_, select, update

from trustpay.clock import to_utc
from trustpay.db.schema import webhook_deliveries, webhook_endpoints
from trustpay.errors import Conflict
from trustpay.events import webhook_store as store
from trustpay.events.webhook_guard import check_url
from trustpay.events.webhook_model import (
    SIGNATURE_HEADER,
    DeliveryStatus,
    EndpointStatus,
    disables_endpoint,
    event_body,
    is_success,
    retry_delay,
    signature_header,
    wants,
)
from trustpay.ids import new_id
from trustpay.jobs import store as jobs
from trustpay.platform import outbox
from trustpay.platform.sql import insert_or_ignore

if TYPE_CHECKING:
    from trustpay.jobs.registry import Registry
    from trustpay.jobs.store import Job
    from trustpay.platform.context import Platform

log = logging.getLogger("trustpay.webhooks")

JOB_KIND = "webhook.deliver"
FAN_OUT_BATCH = 200
DISPATCH_BATCH = 50
SEND_BATCH = 10  # deliveries one job sends before handing the endpoint back to the dispatcher
TIMEOUT = httpx.Timeout(10.0, connect=5.0)
# Longer than a whole batch can take (10 sends, each well under 30 s), so a live
# sender keeps its endpoint; a dead one's endpoint is picked up again once it runs out.
SENDING_LEASE = timedelta(minutes=5)
USER_AGENT = "TrustPay-Webhooks/1"
_rng = random.SystemRandom()


# ---------------------------------------------------------------- 1. fan-out
def fan_out(p: Platform, conn: Connection) -> int:
    """Queue unpublished events for the endpoints that want them; returns events handled."""
    events = outbox.unpublished(conn, limit=FAN_OUT_BATCH, lock=True)
    if not events:
        return 0
    now = p.clock.now()
    owners = sorted({e.owner_id for e in events if e.owner_id})
    by_owner: dict[str, list[Any]] = defaultdict(list)
    if owners:
        for ep in conn.execute(select(webhook_endpoints).where(
                webhook_endpoints.c.owner_id.in_(owners), webhook_endpoints.c.deleted_at.is_(None),
                webhook_endpoints.c.status != EndpointStatus.DISABLED.value,
        ).order_by(webhook_endpoints.c.id)).mappings():
            by_owner[ep["owner_id"]].append(ep)
    touched: set[str] = set()
    for e in events:
        for ep in by_owner.get(e.owner_id or "", []):
            # An endpoint gets the events of its own lifetime, not older ones still in the outbox.
            if to_utc(ep["created_at"]) > e.created_at or not wants(ep["events"], e.type):
                continue
            insert_or_ignore(conn, webhook_deliveries, {
                "id": new_id("whd", now), "endpoint_id": ep["id"], "event_id": e.id, "event_seq": e.seq,
                "event_type": e.type, "status": DeliveryStatus.PENDING.value, "attempts": 0,
                "next_attempt_at": now, "last_status_code": None, "last_error": None, "created_at": now,
                "completed_at": None,
            }, ("endpoint_id", "event_id"))
            touched.add(ep["id"])
    for endpoint_id in sorted(touched):  # fixed order: two fan-outs never deadlock on endpoints
        _queue_due(conn, endpoint_id, now)
    outbox.mark_published(conn, [e.id for e in events], now=now)
    return len(events)


def _queue_due(conn: Connection, endpoint_id: str, now: datetime) -> None:
    """An idle queue (nothing pending) becomes due now; a busy one keeps its own time."""
    conn.execute(update(webhook_endpoints).where(
        webhook_endpoints.c.id == endpoint_id, webhook_endpoints.c.deliver_after.is_(None),
    ).values(deliver_after=now))


# --------------------------------------------------------------- 2. dispatch
def dispatch(p: Platform, conn: Connection) -> int:
    """Hand each endpoint whose queue is due to one sender job; returns jobs scheduled."""
    now = p.clock.now()
    rows = conn.execute(
        select(webhook_endpoints.c.id)
        .where(webhook_endpoints.c.deliver_after <= now,
               or_(webhook_endpoints.c.sending_until.is_(None), webhook_endpoints.c.sending_until <= now))
        .order_by(webhook_endpoints.c.deliver_after, webhook_endpoints.c.id)
        .limit(DISPATCH_BATCH)
        .with_for_update(skip_locked=True)
    ).scalars().all()
    lease = now + SENDING_LEASE
    for endpoint_id in rows:
        store.set_endpoint(conn, endpoint_id, sending_until=lease)
        jobs.schedule(conn, JOB_KIND, now, {"endpoint": endpoint_id, "lease": lease.isoformat()}, now=now,
                      max_attempts=3)
    return len(rows)


# ------------------------------------------------------------------ 3. send
@dataclass(frozen=True)
class Claim:
    delivery_id: str
    endpoint_id: str
    attempt: int  # 1-based, in the delivery's current round
    url: str
    secret: str
    body: bytes
    # Why the delivery cannot even be attempted (the sealed secret does not open).
    refusal: str | None = None


@dataclass(frozen=True)
class Answer:
    status_code: int | None  # None: no HTTP answer
    error: str | None
    duration_ms: int


def deliver(p: Platform, job: Job) -> None:
    """Job ``webhook.deliver``: send the endpoint's queue in order while it is due."""
    endpoint_id = str(job.payload["endpoint"])
    lease = datetime.fromisoformat(str(job.payload["lease"]))
    for _ in range(SEND_BATCH):
        claim = p.db.run(lambda conn: _claim(p, conn, endpoint_id, lease))
        if claim is None:
            return
        answer = send(p, claim) if claim.refusal is None else Answer(None, claim.refusal, 0)
        p.db.run(partial(_record, p, claim=claim, answer=answer))
    # More is due: hand the endpoint back; the dispatcher schedules the next job.
    p.db.run(lambda conn: _release(conn, endpoint_id, lease))


def _release(conn: Connection, endpoint_id: str, lease: datetime) -> None:
    conn.execute(update(webhook_endpoints).where(
        webhook_endpoints.c.id == endpoint_id, webhook_endpoints.c.sending_until == lease,
    ).values(sending_until=None))


def _claim(p: Platform, conn: Connection, endpoint_id: str, lease: datetime) -> Claim | None:
    """The next delivery to send, or None (queue empty or not yet due, or lease lost)."""
    ep = store.endpoint(conn, endpoint_id, lock=True)
    if ep is None or ep["sending_until"] is None or to_utc(ep["sending_until"]) != lease:
        return None  # another sender holds the endpoint now
    now = p.clock.now()
    if ep["status"] == EndpointStatus.DISABLED or ep["deleted_at"] is not None:
        store.fail_pending(conn, endpoint_id, "the endpoint is disabled", now=now)
        store.set_endpoint(conn, endpoint_id, deliver_after=None, sending_until=None)
        return None
    d = store.head(conn, endpoint_id)
    if d is None:
        store.set_endpoint(conn, endpoint_id, deliver_after=None, sending_until=None)
        return None
    due = to_utc(d["next_attempt_at"]) if d["next_attempt_at"] is not None else now
    if due > now:
        store.set_endpoint(conn, endpoint_id, deliver_after=due, sending_until=None)
        return None
    secret, refusal = "", None
    try:
        secret = store.open_secret(p.settings.secret_key, ep)
    except store.SecretUnreadable as exc:
        refusal = str(exc)
    attempt = int(d["attempts"]) + 1
    # Counted before sending, like jobs: a sender that dies mid-request still uses up the attempt.
    store.set_delivery(conn, d["id"], attempts=attempt)
    body = event_body(outbox.get(conn, d["event_id"]).payload)
    return Claim(d["id"], endpoint_id, attempt, ep["url"], secret, body, refusal)


def send(p: Platform, claim: Claim) -> Answer:
    """POST the event; never raises for the receiver's faults (they are the answer)."""
    started = time.monotonic()

    def took() -> int:
        return int((time.monotonic() - started) * 1000)

    try:
        # Checked again now (DNS may have changed since registration), and the
        # request goes to the address just checked, not to a second lookup.
        target = check_url(claim.url, allow_private=p.settings.webhook_allow_private)
    except Exception as exc:
        return Answer(None, _clip(getattr(exc, "message", str(exc))), took())
    headers = {
        "Content-Type": "application/json",
        "User-Agent": USER_AGENT,
        SIGNATURE_HEADER: signature_header(claim.secret, p.clock.now(), claim.body),
        "Host": _host_header(target.host, target.port, claim.url),
    }
    try:
        url = httpx.URL(claim.url).copy_with(host=target.address)
        extensions: dict[str, Any] = {"sni_hostname": target.host} if url.scheme == "https" else {}
        # trust_env=False: no proxy from the environment, which would bypass the address check.
        with httpx.Client(timeout=TIMEOUT, follow_redirects=False, trust_env=False) as client:
            request = client.build_request("POST", url, content=claim.body, headers=headers, extensions=extensions)
            response = client.send(request, stream=True)
            response.close()  # the body is not ours to read
    except Exception as exc:  # any failure to get an answer is this attempt's result, never a crash
        if not isinstance(exc, httpx.HTTPError):
            log.warning("webhook %s: unexpected error sending", claim.delivery_id, exc_info=True)
        return Answer(None, _clip(f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__), took())
    code = response.status_code
    error = None if is_success(code) else (
        f"redirect to {response.headers.get('location', '?')[:200]} not followed" if 300 <= code < 400
        else f"HTTP {code}")
    return Answer(code, error, took())


def _record(p: Platform, conn: Connection, *, claim: Claim, answer: Answer) -> None:
    now = p.clock.now()
    ok = answer.status_code is not None and is_success(answer.status_code)
    # Locks in one order everywhere: the endpoint, then its delivery.
    ep = store.endpoint(conn, claim.endpoint_id, lock=True)
    d = store.delivery(conn, claim.delivery_id, lock=True)
    store.add_attempt(conn, claim.delivery_id, at=now, status_code=answer.status_code, error=answer.error,
                      duration_ms=answer.duration_ms, succeeded=ok)
    if d is None or ep is None or d["status"] != DeliveryStatus.PENDING or int(d["attempts"]) != claim.attempt:
        return  # resent or given up meanwhile: the attempt is logged, the delivery's state is newer
    log.info("webhook %s to %s attempt %d: %s", claim.delivery_id, claim.endpoint_id, claim.attempt,
             answer.status_code if answer.status_code is not None else answer.error)
    common = {"last_status_code": answer.status_code, "last_error": answer.error}
    if ok:
        store.set_delivery(conn, d["id"], status=DeliveryStatus.SUCCEEDED.value, next_attempt_at=None,
                           completed_at=now, **common)
        if ep["status"] == EndpointStatus.FAILING:
            store.set_endpoint(conn, ep["id"], status=EndpointStatus.ACTIVE.value, disabled_reason=None)
        return
    if answer.status_code is not None and disables_endpoint(answer.status_code):
        store.set_delivery(conn, d["id"], status=DeliveryStatus.FAILED.value, next_attempt_at=None,
                           completed_at=now, **common)
        store.fail_pending(conn, ep["id"], "the endpoint was disabled: the receiver answered 410 Gone", now=now)
        store.set_endpoint(conn, ep["id"], status=EndpointStatus.DISABLED.value, updated_at=now,
                           disabled_reason="the receiver answered 410 Gone")
        return
    delay = retry_delay(claim.attempt, _rng)
    if delay is None:
        store.set_delivery(conn, d["id"], status=DeliveryStatus.FAILED.value, next_attempt_at=None,
                           completed_at=now, **common)
        if ep["status"] == EndpointStatus.ACTIVE:
            store.set_endpoint(conn, ep["id"], status=EndpointStatus.FAILING.value, updated_at=now,
                               disabled_reason=None)
        return
    store.set_delivery(conn, d["id"], next_attempt_at=now + delay, **common)


# ------------------------------------------------------------------ resend
def resend(p: Platform, conn: Connection, owner_id: str, delivery_id: str) -> Any:
    """Queue a delivery again with a fresh round of attempts (it keeps its place in event order)."""
    _, ep = store.owned_delivery(conn, owner_id, delivery_id, lock=True)
    if ep["status"] == EndpointStatus.DISABLED:
        raise Conflict("the endpoint is disabled; enable it before resending")
    now = p.clock.now()
    store.set_delivery(conn, delivery_id, status=DeliveryStatus.PENDING.value, attempts=0, next_attempt_at=now,
                       completed_at=None)
    conn.execute(update(webhook_endpoints).where(
        webhook_endpoints.c.id == ep["id"],
        or_(webhook_endpoints.c.deliver_after.is_(None), webhook_endpoints.c.deliver_after > now),
    ).values(deliver_after=now))
    return store.delivery(conn, delivery_id)


def register_jobs(registry: Registry) -> None:
    registry.add_sweeper("webhook-fan-out", fan_out)
    registry.add_sweeper("webhook-dispatch", dispatch)
    registry.register_outside(JOB_KIND, deliver)


def _host_header(host: str, port: int, url: str) -> str:
    default = 443 if url.lower().startswith("https:") else 80
    shown = f"[{host}]" if ":" in host else host
    return shown if port == default else f"{shown}:{port}"


def _clip(text: str) -> str:
    return text[:500]


