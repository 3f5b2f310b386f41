"""Webhook delivery on SQLite and PostgreSQL, to a real HTTP receiver on 127.0.0.1,
with the platform clock frozen and moved by hand (``run_until_idle`` is what the
worker and the test-clock route run)."""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy import select
from tests.integration.webhook_support import Receiver, emit, endpoint, merchant, receiver

from trustpay.clock import FrozenClock
from trustpay.db.schema import webhook_attempts
from trustpay.events import webhook_store, webhooks
from trustpay.events.webhook_model import RETRY_DELAYS
from trustpay.jobs.runner import run_until_idle
from trustpay.merchants import webhooks as endpoints
from trustpay.platform import outbox
from trustpay.platform.context import Platform
from trustpay.settings import Settings

SECRET_KEY = "webhook-tests-operator-key"


@pytest.fixture
def hooks(db_url: str, clock: FrozenClock) -> Iterator[Platform]:
    p = Platform.build(Settings(database_url=db_url, webhook_allow_private=True, secret_key=SECRET_KEY,
                                notify_sink="file:/dev/null"), clock=clock)
    yield p
    p.close()


@pytest.fixture
def rx() -> Iterator[Receiver]:
    yield from receiver()


def delivery_of(p: Platform, endpoint_id: str, event_id: str) -> dict[str, Any]:
    with p.db.transaction(write=False) as conn:
        rows, _ = webhook_store.page_deliveries(conn, endpoint_id, limit=100, starting_after=None)
    (row,) = [r for r in rows if r["event_id"] == event_id]
    return webhook_store.shape_delivery(row)


def endpoint_row(p: Platform, endpoint_id: str) -> Any:
    with p.db.transaction(write=False) as conn:
        return webhook_store.endpoint(conn, endpoint_id)


def advance(p: Platform, clock: FrozenClock, seconds: float) -> None:
    clock.advance(seconds)
    run_until_idle(p)


def independent_check(header: str, body: bytes, secret: str) -> bool:
    """The receiver's check, written from API.md alone."""
    fields = dict(part.split("=", 1) for part in header.split(","))
    mac = hmac.new(secret.encode(), f"{fields['t']}.".encode() + body, hashlib.sha256).hexdigest()
    return hmac.compare_digest(mac, fields["v1"])


# ------------------------------------------------------------------- signing
def test_an_event_arrives_signed_with_the_endpoint_secret(hooks: Platform, clock: FrozenClock,
                                                          rx: Receiver) -> None:
    owner = merchant(hooks)
    ep, secret = endpoint(hooks, owner, rx.url)
    assert secret.startswith("whsec_")
    event_id = emit(hooks, owner, amount=1200)
    run_until_idle(hooks)

    (got,) = rx.received
    assert got.path == "/hooks/trustpay"
    assert got.headers["content-type"] == "application/json"
    header = got.headers["trustpay-signature"]
    assert header.startswith(f"t={int(clock.now().timestamp())},v1=")  # t from the platform clock
    assert independent_check(header, got.body, secret)
    assert not independent_check(header, got.body, secret + "x")
    with hooks.db.transaction(write=False) as conn:
        stored = outbox.get(conn, event_id).payload
    assert json.loads(got.body) == stored  # the exact public event
    assert stored["type"] == "transfer.completed" and stored["data"]["object"]["amount"] == 1200
    d = delivery_of(hooks, ep, event_id)
    assert (d["status"], d["attempts"], d["last_status_code"], d["next_attempt_at"]) == ("succeeded", 1, 200, None)
    with hooks.db.transaction(write=False) as conn:
        (attempt,) = conn.execute(select(webhook_attempts)).mappings().all()
    assert (attempt["delivery_id"], attempt["status_code"], attempt["succeeded"]) == (d["id"], 200, True)
    # Published once: another round sends nothing more.
    run_until_idle(hooks)
    assert len(rx.received) == 1


def test_a_rolled_secret_signs_the_next_delivery(hooks: Platform, rx: Receiver) -> None:
    owner = merchant(hooks)
    ep, old = endpoint(hooks, owner, rx.url)
    _, new = hooks.db.run(lambda conn: endpoints.roll_secret(hooks, conn, owner, ep))
    assert new != old
    emit(hooks, owner)
    run_until_idle(hooks)
    (got,) = rx.received
    assert independent_check(got.headers["trustpay-signature"], got.body, new)
    assert not independent_check(got.headers["trustpay-signature"], got.body, old)


# ------------------------------------------------------------------- retries
def test_a_500_is_retried_on_schedule_then_a_200_succeeds(hooks: Platform, clock: FrozenClock,
                                                          rx: Receiver) -> None:
    owner = merchant(hooks)
    ep, _ = endpoint(hooks, owner, rx.url)
    rx.script = [500, 503]
    event_id = emit(hooks, owner)
    start = clock.now()
    run_until_idle(hooks)
    assert len(rx.received) == 1  # the first attempt is immediate
    d = delivery_of(hooks, ep, event_id)
    assert (d["status"], d["attempts"], d["last_status_code"], d["last_error"]) == ("pending", 1, 500, "HTTP 500")
    first_retry = start + RETRY_DELAYS[0]
    assert first_retry.isoformat()[:19] <= d["next_attempt_at"][:19] <= (start + RETRY_DELAYS[0] * 1.1).isoformat()

    advance(hooks, clock, 4.9)  # not yet
    assert len(rx.received) == 1
    advance(hooks, clock, 0.6)  # 5.5 s: past 5 s + the longest jitter
    assert len(rx.received) == 2
    assert delivery_of(hooks, ep, event_id)["last_status_code"] == 503

    advance(hooks, clock, 4 * 60)  # the third attempt waits 5 minutes
    assert len(rx.received) == 2
    advance(hooks, clock, 2 * 60)
    assert len(rx.received) == 3
    d = delivery_of(hooks, ep, event_id)
    assert (d["status"], d["attempts"], d["last_status_code"]) == ("succeeded", 3, 200)
    assert len(set(rx.bodies())) == 1  # every attempt sent the same bytes
    assert endpoint_row(hooks, ep)["deliver_after"] is None  # queue idle


def test_a_410_disables_the_endpoint_and_gives_up_its_queue(hooks: Platform, rx: Receiver) -> None:
    owner = merchant(hooks)
    ep, _ = endpoint(hooks, owner, rx.url)
    rx.script = [410]
    first, second = emit(hooks, owner), emit(hooks, owner)
    run_until_idle(hooks)
    assert len(rx.received) == 1
    row = endpoint_row(hooks, ep)
    assert (row["status"], row["disabled_reason"]) == ("disabled", "the receiver answered 410 Gone")
    assert delivery_of(hooks, ep, first)["status"] == "failed"
    assert delivery_of(hooks, ep, second)["status"] == "failed"
    emit(hooks, owner)  # nothing more is queued for it
    run_until_idle(hooks)
    assert len(rx.received) == 1


def test_a_redirect_is_not_followed_and_counts_as_a_failure(hooks: Platform, rx: Receiver) -> None:
    owner = merchant(hooks)
    ep, _ = endpoint(hooks, owner, rx.url)
    rx.script = [(302, {"Location": "/elsewhere"}), (307, {"Location": "http://127.0.0.1:1/"})]
    event_id = emit(hooks, owner)
    run_until_idle(hooks)
    assert [r.path for r in rx.received] == ["/hooks/trustpay"]
    d = delivery_of(hooks, ep, event_id)
    assert (d["status"], d["last_status_code"]) == ("pending", 302)
    assert "redirect to /elsewhere not followed" in d["last_error"]


def test_out_of_attempts_the_delivery_fails_the_endpoint_is_failing_and_the_queue_moves_on(
        hooks: Platform, clock: FrozenClock, rx: Receiver) -> None:
    owner = merchant(hooks)
    ep, _ = endpoint(hooks, owner, rx.url)
    rx.default = 500
    first = emit(hooks, owner, n=1)
    second = emit(hooks, owner, n=2)
    run_until_idle(hooks)
    for delay in RETRY_DELAYS:
        advance(hooks, clock, delay.total_seconds() * 1.1 + 1)
    # All ten attempts of the first; the second waited, then got its first attempt as
    # soon as the first gave up (the queue moves on).
    assert [json.loads(b)["data"]["object"]["n"] for b in rx.bodies()] == [1] * 10 + [2]
    d = delivery_of(hooks, ep, first)
    assert (d["status"], d["attempts"]) == ("failed", 10)
    assert endpoint_row(hooks, ep)["status"] == "failing"
    assert delivery_of(hooks, ep, second)["attempts"] == 1

    rx.default = 200
    advance(hooks, clock, 6)
    assert delivery_of(hooks, ep, second)["status"] == "succeeded"
    assert endpoint_row(hooks, ep)["status"] == "active"  # a success mends a failing endpoint


def test_receiver_down_for_a_day_gets_everything_afterwards_in_creation_order(
        hooks: Platform, clock: FrozenClock, rx: Receiver) -> None:
    owner = merchant(hooks)
    ep, secret = endpoint(hooks, owner, rx.url)
    rx.stop()  # connections refused
    sent = []
    for n in range(6):  # an event every four hours while the receiver is down
        sent.append(emit(hooks, owner, n=n))
        run_until_idle(hooks)
        for _ in range(8):
            advance(hooks, clock, 30 * 60)
    assert rx.received == []
    head = delivery_of(hooks, ep, sent[0])
    assert head["status"] == "pending" and head["last_status_code"] is None and head["last_error"]
    assert all(delivery_of(hooks, ep, e)["attempts"] == 0 for e in sent[1:])  # waiting their turn

    rx.start()  # back after 24 h
    for _ in range(40):  # two more days, an hour at a time
        advance(hooks, clock, 3600)
    received = [json.loads(b) for b in rx.bodies()]
    assert [r["id"] for r in received] == sent  # each once, in creation order
    assert all(independent_check(r.headers["trustpay-signature"], r.body, secret) for r in rx.received)
    assert all(delivery_of(hooks, ep, e)["status"] == "succeeded" for e in sent)


# ------------------------------------------------------- routing and resend
def test_only_the_owners_matching_events_reach_an_endpoint(hooks: Platform, rx: Receiver) -> None:
    owner, other = merchant(hooks), merchant(hooks, "other@example.com")
    before = emit(hooks, owner, "topup.succeeded", n=0)  # older than the endpoint
    clock_moves = hooks.clock
    assert isinstance(clock_moves, FrozenClock)
    clock_moves.advance(1)
    endpoint(hooks, owner, rx.url, events=["topup.succeeded", "withdrawal.failed"])
    emit(hooks, owner, "topup.succeeded", n=1)
    emit(hooks, owner, "transfer.completed", n=2)
    emit(hooks, other, "topup.succeeded", n=3)
    emit(hooks, None, "withdrawal.failed", n=4)
    emit(hooks, owner, "withdrawal.failed", n=5)
    run_until_idle(hooks)
    assert [json.loads(b)["data"]["object"]["n"] for b in rx.bodies()] == [1, 5]
    assert before not in [json.loads(b)["id"] for b in rx.bodies()]


def test_resend_delivers_the_same_event_again(hooks: Platform, rx: Receiver) -> None:
    owner = merchant(hooks)
    ep, _ = endpoint(hooks, owner, rx.url)
    event_id = emit(hooks, owner)
    run_until_idle(hooks)
    d = delivery_of(hooks, ep, event_id)
    again = hooks.db.run(lambda conn: webhooks.resend(hooks, conn, owner, d["id"]))
    assert (again["status"], again["attempts"]) == ("pending", 0)
    run_until_idle(hooks)
    assert len(rx.received) == 2 and rx.bodies()[0] == rx.bodies()[1]
    assert delivery_of(hooks, ep, event_id)["status"] == "succeeded"


def test_a_deleted_endpoint_gets_nothing_more(hooks: Platform, rx: Receiver) -> None:
    owner = merchant(hooks)
    ep, _ = endpoint(hooks, owner, rx.url)
    rx.default = 500
    event_id = emit(hooks, owner)
    run_until_idle(hooks)
    hooks.db.run(lambda conn: endpoints.delete(hooks, conn, owner, ep))
    assert delivery_of(hooks, ep, event_id)["status"] == "failed"
    emit(hooks, owner)
    clock = hooks.clock
    assert isinstance(clock, FrozenClock)
    advance(hooks, clock, 3600)
    assert len(rx.received) == 1


# ----------------------------------------------------------------- SSRF guard
def test_the_address_is_checked_again_at_delivery_time(hooks: Platform, db_url: str, clock: FrozenClock,
                                                       rx: Receiver) -> None:
    """Registered while private addresses were allowed; the operator then turns that
    off: the delivery is refused before any connection is made."""
    owner = merchant(hooks)
    ep, _ = endpoint(hooks, owner, rx.url)
    strict = Platform.build(Settings(database_url=db_url, webhook_allow_private=False, secret_key=SECRET_KEY),
                            clock=clock)
    try:
        event_id = emit(strict, owner)
        run_until_idle(strict)
    finally:
        strict.close()
    assert rx.received == []
    d = delivery_of(hooks, ep, event_id)
    assert d["status"] == "pending" and d["last_status_code"] is None
    assert "non-public address" in d["last_error"] and "loopback" in d["last_error"]


def test_a_secret_sealed_under_another_operator_key_is_reported_not_sent(
        hooks: Platform, db_url: str, clock: FrozenClock, rx: Receiver) -> None:
    owner = merchant(hooks)
    ep, _ = endpoint(hooks, owner, rx.url)
    other = Platform.build(Settings(database_url=db_url, webhook_allow_private=True, secret_key="another key"),
                           clock=clock)
    try:
        event_id = emit(other, owner)
        run_until_idle(other)
    finally:
        other.close()
    assert rx.received == []
    assert "roll the secret" in delivery_of(hooks, ep, event_id)["last_error"]


def test_the_delivery_log_pages_newest_first(hooks: Platform, rx: Receiver) -> None:
    owner = merchant(hooks)
    ep, _ = endpoint(hooks, owner, rx.url)
    clock = hooks.clock
    assert isinstance(clock, FrozenClock)
    for n in range(3):
        emit(hooks, owner, n=n)
        run_until_idle(hooks)
        clock.advance(1)
    with hooks.db.transaction(write=False) as conn:
        page1, more1 = endpoints.deliveries(conn, owner, ep, limit=2, starting_after=None)
        page2, more2 = endpoints.deliveries(conn, owner, ep, limit=2, starting_after=page1[-1]["id"])
    assert more1 and not more2
    assert [r["id"] for r in page1 + page2] == sorted((r["id"] for r in page1 + page2), reverse=True)
    assert len(page1 + page2) == 3
