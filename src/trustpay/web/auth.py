"""Web sessions and CSRF for the server-rendered pages.

The session cookie (``tp_session``) carries the same opaque token the API
issues from ``POST /v1/sessions``: HttpOnly, SameSite=Lax, Secure over https.
The service's idle and absolute expiry apply because every page looks the
token up through :func:`trustpay.identity.service.authenticate`.

CSRF: every POST form carries ``csrf_token`` = HMAC(secret_key, binding),
where the binding is the session id once signed in, or a random nonce kept
in the ``tp_csrf`` cookie before that. The server recomputes and compares.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass

from fastapi import Request, Response

from trustpay.errors import TrustPayError
from trustpay.identity import crypto, store
from trustpay.identity import service as identity
from trustpay.identity.model import Session, User
from trustpay.identity.touch import touches_of
from trustpay.platform.context import Platform

SESSION_COOKIE = "tp_session"
NONCE_COOKIE = "tp_csrf"
CSRF_FIELD = "csrf_token"
SESSION_COOKIE_MAX_AGE = 12 * 3600  # the service's absolute session lifetime


@dataclass(frozen=True)
class Viewer:
    """The signed-in person of a page request."""

    user: User
    session: Session


def platform_of(request: Request) -> Platform:
    p: Platform = request.app.state.platform
    return p


def is_https(request: Request) -> bool:
    return request.url.scheme == "https"


def csrf_token(secret_key: str, binding: str) -> str:
    return hmac.new(secret_key.encode(), f"csrf:{binding}".encode(), hashlib.sha256).hexdigest()


def csrf_valid(secret_key: str, binding: str | None, token: str | None) -> bool:
    if not binding or not token:
        return False
    return hmac.compare_digest(csrf_token(secret_key, binding), token)


def csrf_binding(request: Request, viewer: Viewer | None) -> str | None:
    if viewer is not None:
        return viewer.session.id
    return request.cookies.get(NONCE_COOKIE)


def current_viewer(request: Request, *, touch: bool = True) -> Viewer | None:
    """The live session of the cookie's token, or ``None``. ``touch`` refreshes the idle timer."""
    cached: Viewer | None = getattr(request.state, "viewer", None)
    if cached is not None:
        return cached
    token = request.cookies.get(SESSION_COOKIE)
    if not token:
        return None
    p = platform_of(request)
    viewer: Viewer | None = None
    try:
        if touch:
            user, session = identity.authenticate_token(p, token)
            viewer = Viewer(user, session)
        else:
            with p.db.transaction(write=False) as conn:
                found = store.session_by_token_hash(conn, crypto.token_hash(token))
                found = None if found is None else touches_of(p).seen(found)
                row = None if found is None or not found.alive(p.clock.now()) else \
                    store.user_row(conn, user_id=found.user_id)
                if found is not None and row is not None:
                    viewer = Viewer(store.as_user(row), found)
    except TrustPayError:
        viewer = None
    if viewer is not None:
        request.state.viewer = viewer
    return viewer


def form_token(request: Request, viewer: Viewer | None, response_cookies: dict[str, str]) -> str:
    """The CSRF token for a form on this page; mints a pre-session nonce when needed."""
    p = platform_of(request)
    binding = csrf_binding(request, viewer) or response_cookies.get(NONCE_COOKIE)
    if binding is None:
        binding = secrets.token_urlsafe(24)
        response_cookies[NONCE_COOKIE] = binding
    return csrf_token(p.settings.secret_key, binding)


def set_session_cookie(request: Request, response: Response, token: str) -> None:
    response.set_cookie(SESSION_COOKIE, token, max_age=SESSION_COOKIE_MAX_AGE, path="/",
                        httponly=True, samesite="lax", secure=is_https(request))


def set_nonce_cookie(request: Request, response: Response, nonce: str) -> None:
    response.set_cookie(NONCE_COOKIE, nonce, path="/", httponly=True, samesite="lax",
                        secure=is_https(request))


def clear_session_cookie(request: Request, response: Response) -> None:
    response.delete_cookie(SESSION_COOKIE, path="/", httponly=True, samesite="lax",
                           secure=is_https(request))
