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


def get_platform(request: Request) -> Platform:
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
    return Principal(user, session)


CurrentUser = Annotated[Principal, Depends(get_current_user)]


def get_origin(request: Request) -> Origin:
    return Origin(ip=request.client.host if request.client else "",
                  user_agent=request.headers.get("user-agent", ""))


OriginDep = Annotated[Origin, Depends(get_origin)]
