"""Who is calling a merchant route: a secret API key or a merchant user's session.

``MerchantCaller`` resolves ``Authorization: Bearer sk_…`` (a secret key) or
``Bearer <session token>`` of a user whose kind is merchant to a
:class:`MerchantPrincipal`. Unknown or revoked keys are 401
``invalid_credentials``; a personal or ops user's session is 403 ``forbidden``.

``MerchantUser`` is stricter: a merchant user's session only (minting and
revoking keys; a key must not be able to mint more keys).

A key revoked while one of its requests is already past this check is caught by
:func:`ensure_key_active`, which services that move money call inside their own
write transaction.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Request
from sqlalchemy import Connection

from trustpay.api.deps import PlatformDep, Principal, bearer_token
from trustpay.errors import AuthenticationFailed, Forbidden
from trustpay.identity import crypto
from trustpay.identity import service as identity
from trustpay.identity.model import UserKind
from trustpay.merchants import model, store
from trustpay.platform.context import Platform

_REVOKED = "this API key has been revoked or does not exist"


@dataclass(frozen=True)
class MerchantPrincipal:
    merchant_id: str  # the merchant user's usr_ id
    key_id: str | None  # the key_ that authenticated, None for a signed-in merchant user


def principal_for_key(p: Platform, conn: Connection, secret: str) -> tuple[MerchantPrincipal, bool]:
    """The key's merchant, and whether last_used_at is stale enough to record."""
    digest = model.secret_hash(secret)
    found = store.key_for_secret_hash(conn, digest)
    # The lookup is by a hash of 256 random bits, so its timing reveals nothing
    # useful; the stored hash is still compared in constant time before trusting it.
    if found is None or not crypto.same(found[1], digest):
        raise AuthenticationFailed(_REVOKED)
    key, _, merchant_kind = found
    if not key.active or merchant_kind != UserKind.MERCHANT:
        raise AuthenticationFailed(_REVOKED)
    return MerchantPrincipal(key.merchant_id, key.id), key.needs_touch(p.clock.now())


def authenticate_key(p: Platform, secret: str) -> MerchantPrincipal:
    """Read-only in the common case: last_used_at is written at most once a minute."""
    principal, stale = p.db.run(lambda conn: principal_for_key(p, conn, secret), write=False)
    if stale and principal.key_id is not None:
        key_id = principal.key_id
        now = p.clock.now()
        p.db.run(lambda conn: store.touch_key(conn, key_id, now,
                                              stale_before=now - model.LAST_USED_GRANULARITY))
    return principal


def merchant_session(p: Platform, token: str) -> Principal:
    user, session = p.db.run(lambda conn: identity.authenticate(p, conn, token))
    if user.kind != UserKind.MERCHANT:
        raise Forbidden("only merchant accounts may use merchant routes")
    return Principal(user, session)


def get_merchant_caller(request: Request, p: PlatformDep) -> MerchantPrincipal:
    token = bearer_token(request)
    if token is None:
        raise AuthenticationFailed("send Authorization: Bearer sk_… (a secret API key) "
                                   "or a merchant user's session token")
    if model.looks_like_secret_key(token):
        return authenticate_key(p, token)
    return MerchantPrincipal(merchant_session(p, token).user.id, None)


def get_merchant_user(request: Request, p: PlatformDep) -> Principal:
    token = bearer_token(request)
    if token is None:
        raise AuthenticationFailed("send Authorization: Bearer <token> from POST /v1/sessions")
    if model.looks_like_secret_key(token):
        raise Forbidden("API keys are managed by the signed-in merchant user, not with a key")
    return merchant_session(p, token)


def ensure_key_active(conn: Connection, caller: MerchantPrincipal) -> None:
    """401 if the caller's key was revoked after its request was authenticated.

    Call inside the write transaction of an effect; a session caller passes."""
    if caller.key_id is None:
        return
    if not store.key_is_active(conn, caller.key_id):
        raise AuthenticationFailed(_REVOKED)


def merchant_scope(p: Platform, token: str) -> str | None:
    """The merchant a secret key belongs to, for idempotency scoping (no touch, no checks
    beyond existence: authentication proper happens in the route's dependency)."""
    with p.db.transaction(write=False) as conn:
        found = store.key_for_secret_hash(conn, model.secret_hash(token))
    return found[0].merchant_id if found is not None else None


MerchantCaller = Annotated[MerchantPrincipal, Depends(get_merchant_caller)]
MerchantUser = Annotated[Principal, Depends(get_merchant_user)]
