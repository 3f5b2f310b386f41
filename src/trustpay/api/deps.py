"""Annotated dependency aliases, FastAPI-template style."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Request

from trustpay.errors import AuthenticationFailed
from trustpay.identity import service as identity
from trustpay.identity.audit import Origin
from trustpay.identity.model import Session, User
from trustpay.platform.context import Platform


# Dependencies that only read the request are ``async``: FastAPI runs a plain
# ``def`` dependency in the thread pool, a hand-over to a thread and back per
# dependency per request, which costs more than these do.
async def get_platform(request: Request) -> Platform:
    platform: Platform = request.app.state.platform
    return platform


PlatformDep = Annotated[Platform, Depends(get_platform)]


def bearer_token(request: Request) -> str | None:
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    return token.strip() or None if scheme.lower() == "bearer" else None


@dataclass(frozen=True)
class Principal:
    """The signed-in user and the session their token belongs to."""

    user: User
    session: Session


def get_current_user(request: Request, p: PlatformDep) -> Principal:
    token = bearer_token(request)
    if token is None:
        raise AuthenticationFailed("send Authorization: Bearer <token> from POST /v1/sessions")
    user, session = identity.authenticate_token(p, token)
    # Kept for this request's idempotency scope (api/identity.py user_scope), which
    # would otherwise look the same token up again in a transaction of its own.
    request.state.session_owner = (token, user.id)
    return Principal(user, session)


def authenticated_owner(request: Request, token: str) -> str | None:
    """The user this request's ``CurrentUser`` dependency found for ``token``, if it ran."""
    found: tuple[str, str] | None = getattr(request.state, "session_owner", None)
    return found[1] if found is not None and found[0] == token else None


CurrentUser = Annotated[Principal, Depends(get_current_user)]


def get_origin(request: Request) -> Origin:
    return Origin(ip=request.client.host if request.client else "",
                  user_agent=request.headers.get("user-agent", ""))


async def _origin_dependency(request: Request) -> Origin:
    return get_origin(request)


OriginDep = Annotated[Origin, Depends(_origin_dependency)]
