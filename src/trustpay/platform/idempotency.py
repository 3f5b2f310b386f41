"""Idempotency keys: a retried POST takes effect once and gets the first answer.

Semantics (API.md, Conventions): same key + same request → the first
response replayed byte for byte, status included; same key + another request
→ 422 ``idempotency_key_reused``; same key while the first is running → 409
``idempotency_in_progress``; keys kept for the retention period.

How a keyed request runs (the money-safety rule: the stored response commits
in the same transaction as the effect):

1. **Claim** (own short transaction): insert the key as ``in_progress`` with
   ``locked_until`` = now + lease. That timestamp is also the claim's fencing
   token. If the key exists: different request → 422; ``done`` → replay;
   ``in_progress`` with a live lease → 409; ``in_progress`` with an expired
   lease → take it over (its effect transaction never committed, or the row
   would be ``done``) by moving ``locked_until`` forward.
2. **Effect** (one ``db.run`` transaction): check that the claim is still
   ours (locking the row on PostgreSQL), run ``effect(conn)``, render the
   response and mark the key ``done`` with it — conditional on the token, so
   a holder whose claim was taken over rolls its effect back.
3. A domain error (4xx) from the effect rolled the effect back; its error
   response is stored in a transaction of its own so that retries replay it.
   Any other exception releases the claim (the key may be used again).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from sqlalchemy import Connection, delete, or_, select, tuple_, update

from trustpay.clock import to_utc
from trustpay.db import prepared
from trustpay.db.schema import idempotency_keys as keys_t
from trustpay.errors import (
    IdempotencyInProgress,
    IdempotencyKeyReused,
    InvalidRequest,
    RateLimited,
    TrustPayError,
)
from trustpay.platform.sql import insert_or_ignore

if TYPE_CHECKING:
    from trustpay.platform.context import Platform

MAX_KEY_LENGTH = 255
MAX_SCOPE_LENGTH = 64  # the column's width
# Long enough for any effect transaction; after a crash, retries see 409 at
# most this long. The fencing token keeps a too-short lease safe, only wasteful.
CLAIM_LEASE = timedelta(minutes=2)
IN_PROGRESS, DONE = "in_progress", "done"
JSON_HEADERS = {"content-type": "application/json"}

# What an effect returns: (status, body). The body is bytes (sent as is),
# None (empty, e.g. 204), or anything JSON-encodable (dicts, Pydantic models).
EffectResult = tuple[int, Any]
Effect = Callable[[Connection], EffectResult]


class ClaimLost(Exception):
    """Our claim on the key was taken over; whatever we did has been rolled back."""


@dataclass(frozen=True)
class StoredResponse:
    status: int
    body: bytes
    headers: dict[str, str] = field(default_factory=dict)
    replayed: bool = False


@dataclass(frozen=True)
class Fingerprint:
    """What makes two requests "the same": method, path (+ query) and canonical body."""

    method: str
    path: str
    request_hash: str

    @classmethod
    def of(cls, method: str, path: str, body: bytes, query: str = "") -> Fingerprint:
        target = f"{path}?{query}" if query else path
        digest = hashlib.sha256(f"{method.upper()}\n{target}\n".encode())
        digest.update(canonical_body(body))
        # The column holds 512 characters; the hash covers the full target.
        return cls(method.upper()[:8], path[:512], digest.hexdigest())


@dataclass(frozen=True)
class Claim:
    scope: str
    key: str
    fingerprint: Fingerprint
    token: datetime  # the locked_until we wrote; only its holder may finish the key


def canonical_body(body: bytes) -> bytes:
    """JSON bodies compare by content (key order and spacing do not matter)."""
    if not body.strip():
        return b""
    try:
        parsed = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        return body
    return json.dumps(parsed, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def check_key(key: str) -> str:
    if not key or len(key) > MAX_KEY_LENGTH:
        raise InvalidRequest(
            f"Idempotency-Key must be 1 to {MAX_KEY_LENGTH} characters",
            code="invalid_idempotency_key", param="Idempotency-Key",
        )
    return key


def render(status: int, body: Any) -> StoredResponse:
    """The exact bytes we send (and store): same encoding as FastAPI's JSONResponse."""
    if body is None:
        return StoredResponse(status, b"", {})
    if isinstance(body, bytes):
        return StoredResponse(status, body, dict(JSON_HEADERS))
    try:
        # A body of JSON's own types (every API shape here) encodes as is: FastAPI's
        # encoder would hand back an equal copy of it, for ~0.3 ms a transfer.
        content = _dumps(body, default=_not_plain)
    except _NotPlain:
        from fastapi.encoders import jsonable_encoder  # only the encoder; no web types here

        content = _dumps(jsonable_encoder(body))
    return StoredResponse(status, content, dict(JSON_HEADERS))


class _NotPlain(Exception):
    pass


def _not_plain(value: Any) -> Any:
    raise _NotPlain(type(value).__name__)


def _dumps(body: Any, default: Callable[[Any], Any] | None = None) -> bytes:
    return json.dumps(body, ensure_ascii=False, allow_nan=False, indent=None, separators=(",", ":"),
                      default=default).encode("utf-8")


def error_response(exc: TrustPayError) -> StoredResponse:
    return render(exc.status, exc.to_dict())


def _replay(row: Any) -> StoredResponse:
    return StoredResponse(
        int(row.response_status), bytes(row.response_body or b""), dict(row.response_headers or {}),
        replayed=True,
    )


def _where_key(scope: str, key: str) -> Any:
    return (keys_t.c.scope == scope) & (keys_t.c.key == key)


# --------------------------------------------------------------------- steps
def claim(platform: Platform, scope: str, key: str, fp: Fingerprint) -> Claim | StoredResponse:
    """Step 1: own the key, or learn its stored response (raises 409 / 422)."""
    return platform.db.run(lambda conn: _claim_in(platform, conn, scope, key, fp))


def _claim_in(platform: Platform, conn: Connection, scope: str, key: str,
              fp: Fingerprint) -> Claim | StoredResponse:
    if not scope or len(scope) > MAX_SCOPE_LENGTH:
        raise ValueError(f"idempotency scope must be 1 to {MAX_SCOPE_LENGTH} characters")
    check_key(key)
    now = platform.clock.now()
    token = now + CLAIM_LEASE
    retention = timedelta(hours=platform.settings.idempotency_retention_hours)
    # A few rounds: the row we collided with may be released (deleted) or
    # taken over by someone else between our statements.
    for _ in range(5):
        if insert_or_ignore(conn, keys_t, {
            "scope": scope, "key": key, "method": fp.method, "path": fp.path,
            "request_hash": fp.request_hash, "status": IN_PROGRESS, "created_at": now,
            "locked_until": token, "expires_at": now + retention,
        }, ("scope", "key")):
            return Claim(scope, key, fp, token)
        row = conn.execute(select(keys_t).where(_where_key(scope, key))).first()
        if row is None:
            continue
        if (row.method, row.path, row.request_hash) != (fp.method, fp.path, fp.request_hash):
            raise IdempotencyKeyReused(
                "this Idempotency-Key was used with a different request",
                param="Idempotency-Key",
            )
        if row.status == DONE:
            return _replay(row)
        if row.locked_until is not None and to_utc(row.locked_until) > now:
            raise IdempotencyInProgress("a request with this Idempotency-Key is still running")
        took = conn.execute(
            update(keys_t)
            .where(_where_key(scope, key), keys_t.c.status == IN_PROGRESS,
                   keys_t.c.locked_until == row.locked_until)
            .values(locked_until=token)
        ).rowcount
        if took == 1:
            return Claim(scope, key, fp, token)
    raise IdempotencyInProgress("a request with this Idempotency-Key is still running")


def _finish(conn: Connection, c: Claim, resp: StoredResponse, expires_at: datetime) -> None:
    done = prepared.change(
        conn, keys_t, {"scope": c.scope, "key": c.key, "status": IN_PROGRESS, "locked_until": c.token},
        {"status": DONE, "response_status": resp.status, "response_headers": resp.headers,
         "response_body": resp.body, "locked_until": None, "expires_at": expires_at},
    )
    if done != 1:
        raise ClaimLost(f"idempotency key {c.key!r} was taken over")


def run_claimed(platform: Platform, c: Claim, effect: Effect) -> StoredResponse:
    """Step 2: the effect and the key's final response, in one transaction."""
    retention = timedelta(hours=platform.settings.idempotency_retention_hours)

    def work(conn: Connection) -> StoredResponse:
        # Locks the key row on PostgreSQL, so a takeover waits for us and then
        # finds the key done; SQLite's BEGIN IMMEDIATE already excludes it.
        owned = conn.execute(
            select(keys_t.c.key)
            .where(_where_key(c.scope, c.key), keys_t.c.status == IN_PROGRESS,
                   keys_t.c.locked_until == c.token)
            .with_for_update()
        ).first()
        if owned is None:
            raise ClaimLost(f"idempotency key {c.key!r} was taken over")
        resp = render(*effect(conn))
        _finish(conn, c, resp, platform.clock.now() + retention)
        return resp

    return platform.db.run(work)


def store_error(platform: Platform, c: Claim, exc: TrustPayError) -> StoredResponse:
    """Step 3: the effect was refused; remember the refusal so retries get it too."""
    resp = error_response(exc)
    retention = timedelta(hours=platform.settings.idempotency_retention_hours)
    platform.db.run(lambda conn: _finish(conn, c, resp, platform.clock.now() + retention))
    return resp


def release(platform: Platform, c: Claim) -> None:
    """Drop our claim so the key can be retried (nothing was committed under it)."""
    platform.db.run(lambda conn: conn.execute(
        delete(keys_t).where(_where_key(c.scope, c.key), keys_t.c.status == IN_PROGRESS,
                             keys_t.c.locked_until == c.token)
    ))


def stored(platform: Platform, scope: str, key: str) -> StoredResponse | None:
    """The key's final response, if it has one."""
    with platform.db.transaction(write=False) as conn:
        row = conn.execute(select(keys_t).where(_where_key(scope, key))).first()
    return _replay(row) if row is not None and row.status == DONE else None


def _should_store(exc: TrustPayError) -> bool:
    # A rate limit or a concurrency refusal says "not now", not "no": a retry
    # must get a fresh decision rather than a replay of the refusal.
    return 400 <= exc.status < 500 and not isinstance(exc, RateLimited | IdempotencyInProgress)


def execute(
    platform: Platform, *, scope: str, key: str, fingerprint: Fingerprint, effect: Effect,
    before: Callable[[], None] | None = None, optimistic: bool = False,
) -> StoredResponse:
    """Run ``effect`` at most once for (scope, key); return the response to send.

    ``before`` runs with no transaction open, only for a key nobody has used yet
    (never for a replay): checks that commit on their own (a payment password, a
    step-up code) and whose refusal is not stored, so the same key may be retried
    with a corrected password. Two copies of one request sent at the same moment
    may both run it; one of them takes effect, the other is replayed or refused.

    A key seen for the first time is claimed, used and finished in the effect's
    own transaction (one commit). A key already there — finished, in flight, or
    abandoned by a crashed process — goes through the separate claim step.

    ``optimistic``: the request brought nothing for ``before`` to check (no
    password, no code), so the effect is tried first without it, in one
    transaction; the caller's effect must then refuse whatever ``before`` would
    have stopped. Only a success (or a replay) counts: any refusal rolls the try
    back and the request runs again the long way, so what is refused, stored and
    counted is exactly what it would have been without the try."""
    if before is not None and optimistic:
        with contextlib.suppress(TrustPayError):
            return _claim_and_run(platform, scope, key, fingerprint, effect, keep_refusal=False)
    if before is not None:
        if _exists(platform, scope, key):
            return _execute_claimed(platform, scope, key, fingerprint, effect, before)
        before()
    return _claim_and_run(platform, scope, key, fingerprint, effect)


def _exists(platform: Platform, scope: str, key: str) -> bool:
    with platform.db.transaction(write=False) as conn:
        return prepared.first(conn, keys_t, {"scope": scope, "key": key}, columns=("status",)) is not None


def _claim_and_run(platform: Platform, scope: str, key: str, fp: Fingerprint, effect: Effect, *,
                   keep_refusal: bool = True) -> StoredResponse:
    """Claim, effect and stored response in one transaction; nothing of it commits
    unless all of it does, so a crash leaves the key unused rather than in flight.
    ``keep_refusal`` stores the effect's refusal under the key (else it is raised)."""
    retention = timedelta(hours=platform.settings.idempotency_retention_hours)
    effect_ran = False

    def work(conn: Connection) -> StoredResponse:
        nonlocal effect_ran
        effect_ran = False
        got = _claim_in(platform, conn, scope, key, fp)
        if isinstance(got, StoredResponse):
            return got
        effect_ran = True
        resp = render(*effect(conn))
        _finish(conn, got, resp, platform.clock.now() + retention)
        return resp

    try:
        return platform.db.run_grouped(work)
    except TrustPayError as exc:
        if not effect_ran or not keep_refusal or not _should_store(exc):
            raise
        refusal = error_response(exc)
    # The effect refused; its transaction (and the claim in it) rolled back.
    # Store the refusal under the key so that retries get it too — unless a
    # copy of this request got there first, whose answer is then the answer.

    def remember(conn: Connection) -> StoredResponse:
        got = _claim_in(platform, conn, scope, key, fp)
        if isinstance(got, StoredResponse):
            return got
        _finish(conn, got, refusal, platform.clock.now() + retention)
        return refusal

    return platform.db.run(remember)


def _execute_claimed(platform: Platform, scope: str, key: str, fingerprint: Fingerprint, effect: Effect,
                     before: Callable[[], None] | None) -> StoredResponse:
    got = claim(platform, scope, key, fingerprint)
    if isinstance(got, StoredResponse):
        return got
    if before is not None:
        try:
            before()
        except BaseException:
            with contextlib.suppress(Exception):
                release(platform, got)
            raise
    try:
        return run_claimed(platform, got, effect)
    except ClaimLost:
        return _after_lost_claim(platform, got)
    except TrustPayError as exc:
        if not _should_store(exc):
            release(platform, got)
            raise
        try:
            return store_error(platform, got, exc)
        except ClaimLost:
            return _after_lost_claim(platform, got)
    except BaseException:
        # If even the release fails, the lease runs out; the original error matters more.
        with contextlib.suppress(Exception):
            release(platform, got)
        raise


def _after_lost_claim(platform: Platform, c: Claim) -> StoredResponse:
    # Whoever took the key over may have finished by now: then replay theirs.
    resp = stored(platform, c.scope, c.key)
    if resp is None:
        raise IdempotencyInProgress("a request with this Idempotency-Key is still running")
    return resp


def purge_expired(conn: Connection, *, now: datetime, limit: int = 1000) -> int:
    """Delete keys past retention (bounded per call); a sweeper calls this every tick."""
    # An in_progress key past retention whose lease has also run out was abandoned.
    expired = (
        select(keys_t.c.scope, keys_t.c.key)
        .where(keys_t.c.expires_at <= now,
               or_(keys_t.c.status == DONE, keys_t.c.locked_until <= now))
        .limit(limit)
    )
    return int(conn.execute(
        delete(keys_t).where(tuple_(keys_t.c.scope, keys_t.c.key).in_(expired))
    ).rowcount)
