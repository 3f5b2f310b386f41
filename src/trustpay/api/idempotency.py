"""The FastAPI side of idempotency keys: one call keeps a POST route thin.

    @router.post("/v1/things", status_code=201)
    def create_thing(body: ThingIn, request: Request, p: PlatformDep) -> Response:
        return idempotent(request, p, effect=lambda conn: (201, shape(service.create(conn, ...))))

``idempotent`` is for plain ``def`` routes (FastAPI runs them in a worker
thread, from which the request body can be awaited on the event loop);
``async def`` routes use ``await idempotent_async(...)``.
"""

from __future__ import annotations

import contextlib
import hashlib
from collections.abc import Callable

import anyio.from_thread
from fastapi import Request, Response
from starlette.concurrency import run_in_threadpool

from trustpay.errors import TrustPayError
from trustpay.platform.context import Platform
from trustpay.platform.idempotency import (
    Effect,
    Fingerprint,
    StoredResponse,
    check_key,
    execute,
    render,
)

HEADER = "Idempotency-Key"
REPLAYED_HEADER = "Idempotent-Replayed"
ScopeResolver = Callable[[Request, Platform], str]
_RESOLVER = "idempotency.scope_resolver"


def default_scope(request: Request, platform: Platform) -> str:
    """Until sign-in exists: callers are told apart by their credentials' hash.

    A hash, never the token itself, is stored. Identity replaces this with the
    user (or merchant) id via :func:`set_scope_resolver`, so that a new
    session token does not open a new key space.
    """
    auth = request.headers.get("authorization")
    if not auth:
        return "anonymous"
    return "auth:" + hashlib.sha256(auth.encode()).hexdigest()[:40]


def set_scope_resolver(platform: Platform, resolver: ScopeResolver) -> None:
    platform.extras[_RESOLVER] = resolver


def has_scope_resolver(platform: Platform) -> bool:
    return _RESOLVER in platform.extras


def scope_for(request: Request, platform: Platform) -> str:
    resolver: ScopeResolver = platform.extras.get(_RESOLVER, default_scope)
    return resolver(request, platform)


def to_response(resp: StoredResponse) -> Response:
    headers = dict(resp.headers)
    if resp.replayed:
        headers[REPLAYED_HEADER] = "true"
    return Response(content=resp.body, status_code=resp.status, headers=headers)


def idempotent(request: Request, platform: Platform, *, effect: Effect,
               before: Callable[[], None] | None = None, optimistic: bool = False) -> Response:
    """Run ``effect(conn) -> (status, body)`` once per Idempotency-Key (sync routes).

    ``before`` (no transaction open) runs only when the request is not a replay:
    payment password and step-up checks, whose refusals commit by themselves.
    ``optimistic``: try the effect without ``before`` first (see
    :func:`trustpay.platform.idempotency.execute`)."""
    body = _body_of(request) if HEADER in request.headers else b""
    return _respond(request, platform, body, effect, before, optimistic)


def _body_of(request: Request) -> bytes:
    """The request's body, from a worker thread. FastAPI has already read it to
    parse the route's model, and Starlette keeps what it read; asking the event
    loop for it again costs two thread hand-overs, so only a route that did not
    read its body pays them."""
    cached = getattr(request, "_body", None)
    if isinstance(cached, bytes):
        return cached
    return anyio.from_thread.run(request.body)


async def idempotent_async(request: Request, platform: Platform, *, effect: Effect) -> Response:
    """The same for ``async def`` routes; the database work runs off the event loop."""
    body = await request.body()
    return await run_in_threadpool(_respond, request, platform, body, effect, None, False)


def _respond(request: Request, platform: Platform, body: bytes, effect: Effect,
             before: Callable[[], None] | None, optimistic: bool) -> Response:
    key = request.headers.get(HEADER)
    if key is None:
        # No key: still one transaction; domain errors go to the normal handler.
        def run() -> Response:
            return to_response(platform.db.run_grouped(lambda conn: render(*effect(conn))))

        if before is None:
            return run()
        if optimistic:  # as execute does: only a success counts, a refusal asks again the long way
            with contextlib.suppress(TrustPayError):
                return run()
        before()
        return run()
    fp = Fingerprint.of(request.method, request.url.path, body, request.url.query)
    return to_response(execute(
        platform, scope=scope_for(request, platform), key=check_key(key), fingerprint=fp,
        effect=effect, before=before, optimistic=optimistic,
    ))
