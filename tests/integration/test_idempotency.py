"""Idempotency keys (API.md Conventions) on SQLite and PostgreSQL.

The effect in these tests writes an outbox row, so "exactly one effect" is
counted in the database, not in Python.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
from fastapi import APIRouter, Request, Response
from fastapi.testclient import TestClient
from pydantic import BaseModel
from sqlalchemy import Connection, func, select

from trustpay.api.idempotency import REPLAYED_HEADER, idempotent, set_scope_resolver
from trustpay.app import create_app
from trustpay.clock import FrozenClock
from trustpay.db.schema import idempotency_keys, outbox
from trustpay.errors import (
    IdempotencyInProgress,
    IdempotencyKeyReused,
    InsufficientFunds,
    InvalidRequest,
    RateLimited,
)
from trustpay.jobs import run_sweepers
from trustpay.platform import outbox as events
from trustpay.platform.context import Platform
from trustpay.platform.idempotency import (
    CLAIM_LEASE,
    Claim,
    ClaimLost,
    Fingerprint,
    StoredResponse,
    claim,
    execute,
    run_claimed,
    stored,
)

SCOPE, KEY = "usr_test", "order-42"
BODY = b'{"amount": 100, "currency": "CNY"}'


def fp(body: bytes = BODY, path: str = "/v1/things") -> Fingerprint:
    return Fingerprint.of("POST", path, body)


def event_count(p: Platform) -> int:
    with p.db.transaction(write=False) as c:
        return int(c.execute(select(func.count()).select_from(outbox)).scalar_one())


def key_rows(p: Platform) -> int:
    with p.db.transaction(write=False) as c:
        return int(c.execute(select(func.count()).select_from(idempotency_keys)).scalar_one())


class Effect:
    """Writes one outbox row per run; optionally fails after writing it."""

    def __init__(self, p: Platform, fail: Exception | None = None, delay: float = 0.0) -> None:
        self.p, self.fail, self.delay, self.calls = p, fail, delay, 0
        self._lock = threading.Lock()

    def __call__(self, conn: Connection) -> tuple[int, Any]:
        with self._lock:
            self.calls += 1
        evt = events.emit(conn, "thing.created", {"amount": 100}, now=self.p.clock.now())
        if self.delay:
            time.sleep(self.delay)
        if self.fail is not None:
            raise self.fail
        return 201, {"id": evt, "amount": 100, "note": "é ✓"}


def run(p: Platform, effect: Callable[[Connection], tuple[int, Any]], body: bytes = BODY,
        key: str = KEY, scope: str = SCOPE, path: str = "/v1/things") -> StoredResponse:
    return execute(p, scope=scope, key=key, fingerprint=fp(body, path), effect=effect)


# ------------------------------------------------------------------ core
def test_same_request_replays_first_response_byte_for_byte(platform: Platform) -> None:
    eff = Effect(platform)
    first = run(platform, eff)
    # Same JSON content, other key order and spacing: the same request.
    again = run(platform, eff, body=b'{ "currency":"CNY","amount":100 }')
    assert first.status == 201 and not first.replayed
    assert again.replayed
    assert (again.status, again.body, again.headers) == (first.status, first.body, first.headers)
    assert eff.calls == 1 and event_count(platform) == 1


def test_same_key_other_request_is_422(platform: Platform) -> None:
    eff = Effect(platform)
    run(platform, eff)
    with pytest.raises(IdempotencyKeyReused) as err:
        run(platform, eff, body=b'{"amount": 101, "currency": "CNY"}')
    assert err.value.status == 422 and err.value.code == "idempotency_key_reused"
    with pytest.raises(IdempotencyKeyReused):
        run(platform, eff, path="/v1/other")
    assert eff.calls == 1 and event_count(platform) == 1


def test_keys_are_scoped_to_the_caller(platform: Platform) -> None:
    eff = Effect(platform)
    run(platform, eff, scope="usr_a")
    other = run(platform, eff, scope="usr_b")
    assert not other.replayed and eff.calls == 2 and event_count(platform) == 2


def test_same_key_while_first_in_flight_is_409(platform: Platform) -> None:
    held = claim(platform, SCOPE, KEY, fp())  # the first request is running its effect
    assert isinstance(held, Claim)
    eff = Effect(platform)
    with pytest.raises(IdempotencyInProgress) as err:
        run(platform, eff)
    assert err.value.status == 409 and err.value.code == "idempotency_in_progress"
    assert eff.calls == 0
    # A different body is still told "reused", not "in progress".
    with pytest.raises(IdempotencyKeyReused):
        run(platform, eff, body=b"{}")


def test_expired_claim_is_taken_over_and_the_old_holder_cannot_commit(
    platform: Platform, clock: FrozenClock
) -> None:
    stale = claim(platform, SCOPE, KEY, fp())
    assert isinstance(stale, Claim)
    clock.advance(CLAIM_LEASE.total_seconds() - 1)
    with pytest.raises(IdempotencyInProgress):
        run(platform, Effect(platform))
    clock.advance(1)  # lease over: the first request's effect never committed
    eff = Effect(platform)
    resp = run(platform, eff)
    assert resp.status == 201 and not resp.replayed and eff.calls == 1
    # The original holder wakes up late: its effect must roll back, not double up.
    late = Effect(platform)
    with pytest.raises(ClaimLost):
        run_claimed(platform, stale, late)
    assert event_count(platform) == 1
    assert run(platform, eff).body == resp.body


def test_takeover_of_a_live_holder_rolls_the_holder_back(
    platform: Platform, clock: FrozenClock
) -> None:
    first = claim(platform, SCOPE, KEY, fp())
    assert isinstance(first, Claim)
    clock.advance(CLAIM_LEASE.total_seconds())
    second = claim(platform, SCOPE, KEY, fp())
    assert isinstance(second, Claim) and second.token > first.token
    with pytest.raises(ClaimLost):
        run_claimed(platform, first, Effect(platform))
    assert event_count(platform) == 0
    assert run_claimed(platform, second, Effect(platform)).status == 201
    assert event_count(platform) == 1


def test_effect_and_stored_response_commit_together(
    platform: Platform, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A crash between the effect and storing its response must undo the effect."""
    import trustpay.platform.idempotency as idem

    real_finish = idem._finish

    def crash(*args: Any, **kwargs: Any) -> None:
        raise SystemExit("killed between the effect and the stored response")

    monkeypatch.setattr(idem, "_finish", crash)
    eff = Effect(platform)
    with pytest.raises(SystemExit):
        run(platform, eff)
    assert eff.calls == 1 and event_count(platform) == 0  # nothing half-done survives
    monkeypatch.setattr(idem, "_finish", real_finish)
    resp = run(platform, eff)  # the client's retry takes effect, once
    assert resp.status == 201 and not resp.replayed and event_count(platform) == 1
    assert run(platform, eff).replayed and event_count(platform) == 1


def test_domain_error_is_stored_and_replayed(platform: Platform) -> None:
    eff = Effect(platform, fail=InsufficientFunds("wallet has 0.00"))
    first = run(platform, eff)
    assert first.status == 402 and not first.replayed
    assert b'"code":"insufficient_funds"' in first.body
    assert event_count(platform) == 0  # the effect's writes rolled back
    again = run(platform, eff)
    assert again.replayed and (again.status, again.body) == (first.status, first.body)
    assert eff.calls == 1


def test_unexpected_error_releases_the_key(platform: Platform) -> None:
    with pytest.raises(RuntimeError):
        run(platform, Effect(platform, fail=RuntimeError("bug")))
    assert key_rows(platform) == 0 and event_count(platform) == 0
    eff = Effect(platform)
    assert run(platform, eff).status == 201 and eff.calls == 1


def test_rate_limit_is_not_stored(platform: Platform) -> None:
    with pytest.raises(RateLimited):
        run(platform, Effect(platform, fail=RateLimited("slow down")))
    assert run(platform, Effect(platform)).status == 201


def test_key_length_limit(platform: Platform) -> None:
    eff = Effect(platform)
    assert run(platform, eff, key="k" * 255).status == 201
    with pytest.raises(InvalidRequest):
        run(platform, eff, key="k" * 256)
    with pytest.raises(InvalidRequest):
        run(platform, eff, key="")


def test_fifty_concurrent_requests_one_effect(platform: Platform) -> None:
    eff = Effect(platform, delay=0.05)
    gate = threading.Barrier(50)

    def one(_: int) -> StoredResponse | Exception:
        gate.wait()
        try:
            return run(platform, eff)
        except IdempotencyInProgress as exc:
            return exc

    with ThreadPoolExecutor(50) as pool:
        results = list(pool.map(one, range(50)))
    responses = [r for r in results if isinstance(r, StoredResponse)]
    refused = [r for r in results if not isinstance(r, StoredResponse)]
    assert all(isinstance(r, IdempotencyInProgress) for r in refused)
    assert len([r for r in responses if not r.replayed]) == 1
    assert len({(r.status, r.body) for r in responses}) == 1
    assert eff.calls == 1 and event_count(platform) == 1
    assert run(platform, eff).replayed


def test_keys_are_purged_after_retention(platform: Platform, clock: FrozenClock) -> None:
    retention = platform.settings.idempotency_retention_hours * 3600
    run(platform, Effect(platform))
    clock.advance(retention - 1)
    run_sweepers(platform)
    assert stored(platform, SCOPE, KEY) is not None  # ≥ 24 h, and here the full setting
    clock.advance(1)
    run_sweepers(platform)
    assert stored(platform, SCOPE, KEY) is None and key_rows(platform) == 0
    eff = Effect(platform)  # the key is free again: even another body is a new request
    assert not run(platform, eff, body=b'{"amount": 5}').replayed and eff.calls == 1


def test_abandoned_claim_is_purged_too(platform: Platform, clock: FrozenClock) -> None:
    assert isinstance(claim(platform, SCOPE, KEY, fp()), Claim)
    clock.advance(platform.settings.idempotency_retention_hours * 3600)
    run_sweepers(platform)
    assert key_rows(platform) == 0


# ------------------------------------------------------------------ optimistic
class Checks:
    """A route's ``before``: counts its runs; refuses (committing nothing) when told to."""

    def __init__(self, refuse: Exception | None = None) -> None:
        self.refuse, self.calls = refuse, 0

    def __call__(self) -> None:
        self.calls += 1
        if self.refuse is not None:
            raise self.refuse


def run_optimistic(p: Platform, effect: Callable[[Connection], tuple[int, Any]], before: Checks,
                   key: str = KEY) -> StoredResponse:
    return execute(p, scope=SCOPE, key=key, fingerprint=fp(), effect=effect, before=before, optimistic=True)


class RefusedUntilChecked(Effect):
    """An effect that refuses whatever ``before`` has not checked (as the transfer does)."""

    def __init__(self, p: Platform, checks: Checks, refusal: Exception) -> None:
        super().__init__(p)
        self.checks, self.refusal = checks, refusal

    def __call__(self, conn: Connection) -> tuple[int, Any]:
        result = super().__call__(conn)  # writes first: the refusal must roll them back
        if self.checks.calls == 0:
            raise self.refusal
        return result


def test_optimistic_success_skips_the_checks_and_is_replayed(platform: Platform) -> None:
    checks, eff = Checks(), Effect(platform)
    first = run_optimistic(platform, eff, checks)
    assert first.status == 201 and checks.calls == 0 and eff.calls == 1
    again = run_optimistic(platform, eff, checks)
    assert again.replayed and again.body == first.body
    assert checks.calls == 0 and eff.calls == 1 and event_count(platform) == 1


def test_optimistic_refusal_runs_again_the_long_way(platform: Platform) -> None:
    checks = Checks()
    eff = RefusedUntilChecked(platform, checks, InsufficientFunds("not without the checks"))
    first = run_optimistic(platform, eff, checks)
    # Tried, refused and rolled back; then the checks, then the effect again.
    assert first.status == 201 and checks.calls == 1 and eff.calls == 2
    assert event_count(platform) == 1 and key_rows(platform) == 1
    assert run_optimistic(platform, eff, checks).replayed and eff.calls == 2


def test_optimistic_refusal_is_stored_only_as_the_long_way_stores_it(platform: Platform) -> None:
    # The checks refuse: nothing is stored (the key stays free for a corrected retry).
    checks = Checks(refuse=InvalidRequest("enter your payment password", code="payment_password_invalid"))
    eff = RefusedUntilChecked(platform, checks, InsufficientFunds("not without the checks"))
    with pytest.raises(InvalidRequest):
        run_optimistic(platform, eff, checks)
    assert key_rows(platform) == 0 and event_count(platform) == 0
    # The checks pass and the effect itself refuses: that refusal is stored once and replayed.
    checks = Checks()
    eff2 = Effect(platform, fail=InsufficientFunds("wallet has 0.00"))
    first = run_optimistic(platform, eff2, checks)
    assert first.status == 402 and checks.calls == 1 and eff2.calls == 2
    again = run_optimistic(platform, eff2, checks)
    assert again.replayed and (again.status, again.body) == (first.status, first.body)
    assert checks.calls == 1 and eff2.calls == 2 and key_rows(platform) == 1 and event_count(platform) == 0


# ------------------------------------------------------------------ HTTP
class ThingIn(BaseModel):
    amount: int


def _client(p: Platform) -> TestClient:
    app = create_app(platform=p, start_worker=False)
    router = APIRouter()

    @router.post("/v1/things", status_code=201)
    def create_thing(body: ThingIn, request: Request) -> Response:
        def effect(conn: Connection) -> tuple[int, Any]:
            if body.amount <= 0:
                raise InsufficientFunds("nothing to pay with")
            evt = events.emit(conn, "thing.created", {"amount": body.amount}, now=p.clock.now())
            return 201, {"id": evt, "amount": body.amount}

        return idempotent(request, p, effect=effect)

    app.include_router(router)
    return TestClient(app)


def test_http_replay_has_same_status_bytes_and_a_replayed_header(platform: Platform) -> None:
    client = _client(platform)
    h = {"Idempotency-Key": "abc", "Authorization": "Bearer t1"}
    first = client.post("/v1/things", json={"amount": 7}, headers=h)
    again = client.post("/v1/things", content=b'{"amount":   7}',
                        headers={**h, "Content-Type": "application/json"})
    assert first.status_code == 201 and REPLAYED_HEADER not in first.headers
    assert again.status_code == 201 and again.headers[REPLAYED_HEADER] == "true"
    assert again.content == first.content
    assert again.headers["content-type"] == first.headers["content-type"] == "application/json"
    assert event_count(platform) == 1

    reused = client.post("/v1/things", json={"amount": 8}, headers=h)
    assert reused.status_code == 422
    assert reused.json()["error"]["code"] == "idempotency_key_reused"
    # Another caller's credentials are another scope: the same key is theirs to use.
    other = client.post("/v1/things", json={"amount": 8},
                        headers={"Idempotency-Key": "abc", "Authorization": "Bearer t2"})
    assert other.status_code == 201 and event_count(platform) == 2


def test_http_error_replayed_and_no_key_means_no_dedupe(platform: Platform) -> None:
    client = _client(platform)
    h = {"Idempotency-Key": "zero"}
    first = client.post("/v1/things", json={"amount": 0}, headers=h)
    again = client.post("/v1/things", json={"amount": 0}, headers=h)
    assert first.status_code == again.status_code == 402
    assert again.content == first.content and again.headers[REPLAYED_HEADER] == "true"
    assert first.json()["error"]["code"] == "insufficient_funds"
    assert client.post("/v1/things", json={"amount": 1}).status_code == 201
    assert client.post("/v1/things", json={"amount": 1}).status_code == 201
    assert event_count(platform) == 2
    too_long = client.post("/v1/things", json={"amount": 1}, headers={"Idempotency-Key": "x" * 256})
    assert too_long.status_code == 400
    assert too_long.json()["error"]["param"] == "Idempotency-Key"


def test_http_scope_resolver_is_replaceable(platform: Platform) -> None:
    set_scope_resolver(platform, lambda request, _: "usr_same")
    client = _client(platform)
    a = client.post("/v1/things", json={"amount": 3},
                    headers={"Idempotency-Key": "k", "Authorization": "Bearer old-token"})
    b = client.post("/v1/things", json={"amount": 3},
                    headers={"Idempotency-Key": "k", "Authorization": "Bearer new-token"})
    assert a.status_code == b.status_code == 201 and b.headers[REPLAYED_HEADER] == "true"
    assert event_count(platform) == 1
