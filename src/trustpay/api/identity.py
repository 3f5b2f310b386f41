"""Accounts and security routes (API.md): sign-up, sessions, codes, payment password, audit log."""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Literal

from fastapi import APIRouter, FastAPI, Query, Request, Response
from pydantic import BaseModel, Field
from sqlalchemy import Connection

from trustpay.api.deps import CurrentUser, OriginDep, PlatformDep, authenticated_owner, bearer_token
from trustpay.api.idempotency import default_scope, has_scope_resolver, idempotent, set_scope_resolver
from trustpay.clock import rfc3339
from trustpay.errors import TrustPayError
from trustpay.identity import audit
from trustpay.identity import service as identity
from trustpay.identity.model import Channel, Session, User, UserKind
from trustpay.identity.ratelimit import FixedWindowLimiter
from trustpay.platform.context import Platform
from trustpay.platform.idempotency import Effect, EffectResult

router = APIRouter(prefix="/v1", tags=["accounts"])
_LIMITER = "identity.rate_limiter"
Limit = Annotated[int, Query(ge=1, le=100)]


# ---------------------------------------------------------------- shapes
class SignUpIn(BaseModel):
    email: str = Field(max_length=320)
    password: str = Field(max_length=1024)
    name: str = Field(default="", max_length=120)
    kind: Literal["personal", "merchant"] = "personal"
    phone: str | None = Field(default=None, max_length=32)


class LoginIn(BaseModel):
    email: str = Field(max_length=320)
    password: str = Field(max_length=1024)
    # Required once MFA is on (401 mfa_required without it); a recovery code may stand in.
    totp_code: str | None = Field(default=None, max_length=32)


class VerificationIn(BaseModel):
    channel: Literal["email", "phone"]


class ConfirmIn(BaseModel):
    channel: Literal["email", "phone"]
    code: str = Field(max_length=16)


class PaymentPasswordIn(BaseModel):
    password: str = Field(max_length=1024)
    payment_password: str = Field(max_length=16)


class UserOut(BaseModel):
    id: str
    email: str
    name: str
    kind: str
    kyc_tier: int
    created_at: str


class MeOut(UserOut):
    email_verified: bool
    phone_verified: bool
    phone: str | None  # masked
    mfa_enabled: bool
    frozen: bool
    # KYC tier 2, masked: "张*", "1101**********1234"; the full values are never returned.
    legal_name: str | None
    id_type: str | None
    id_number: str | None


class NewSessionOut(BaseModel):
    token: str
    expires_at: str
    user: UserOut


class SessionOut(BaseModel):
    id: str
    created_at: str
    last_seen_at: str
    expires_at: str
    ip: str
    user_agent: str
    current: bool


class AuditOut(BaseModel):
    id: str
    event: str
    outcome: str
    at: str
    ip: str
    user_agent: str
    resource: str | None


class SessionList(BaseModel):
    object: Literal["list"] = "list"
    data: list[SessionOut]
    has_more: bool


class AuditList(BaseModel):
    object: Literal["list"] = "list"
    data: list[AuditOut]
    has_more: bool


def user_out(u: User) -> UserOut:
    return UserOut(id=u.id, email=u.email, name=u.name, kind=u.kind.value, kyc_tier=u.kyc_tier,
                   created_at=rfc3339(u.created_at))


def me_out(u: User) -> MeOut:
    return MeOut(**user_out(u).model_dump(), email_verified=u.email_verified,
                 phone_verified=u.phone_verified_at is not None, phone=u.phone_masked,
                 mfa_enabled=u.mfa_enabled, frozen=u.frozen, legal_name=u.legal_name_masked,
                 id_type=u.id_type, id_number=u.id_number_masked)


def session_out(s: Session, current_id: str) -> SessionOut:
    return SessionOut(id=s.id, created_at=rfc3339(s.created_at), last_seen_at=rfc3339(s.last_seen_at),
                      expires_at=rfc3339(s.expires_at), ip=s.ip, user_agent=s.user_agent,
                      current=s.id == current_id)


# --------------------------------------------------------------- helpers
def refusals_commit(fn: Callable[[Connection], EffectResult]) -> Effect:
    """For effects whose refusals record something (failure counts, audit rows):
    the refusal becomes the response instead of an exception, so the
    transaction commits (see identity.service)."""
    def effect(conn: Connection) -> EffectResult:
        try:
            return fn(conn)
        except TrustPayError as exc:
            return exc.status, exc.to_dict()
    return effect


def rate_limit(p: Platform, action: str, origin: audit.Origin) -> None:
    limiter: FixedWindowLimiter = p.extras[_LIMITER]
    limiter.hit(action, origin.ip, p.clock.now())


def user_scope(request: Request, p: Platform) -> str:
    """Idempotency keys belong to the user, whichever of their sessions sends them."""
    token = bearer_token(request)
    if token is not None:
        owner = authenticated_owner(request, token)
        if owner is None:  # a route without CurrentUser: look the session up
            with p.db.transaction(write=False) as conn:
                owner = identity.token_owner(p, conn, token)
        if owner is not None:
            return owner
    return default_scope(request, p)


def install(app: FastAPI, platform: Platform) -> None:
    platform.extras[_LIMITER] = FixedWindowLimiter(platform.settings.auth_rate_limit,
                                                   platform.settings.auth_rate_window_seconds)
    if not has_scope_resolver(platform):  # a caller (a test, an embedding app) may have chosen one
        set_scope_resolver(platform, user_scope)
    app.include_router(router)
    from trustpay.api import security  # imports this module's helpers

    security.install(app, platform)


# ---------------------------------------------------------------- routes
@router.post("/users", status_code=201, response_model=UserOut)
def sign_up(body: SignUpIn, request: Request, p: PlatformDep, origin: OriginDep) -> Response:
    """Create a personal or merchant account; a 6-digit code goes to the e-mail address."""
    rate_limit(p, "sign-up", origin)
    hashed = identity.hash_new_password(body.password)  # before the transaction (identity.Verified)
    return idempotent(request, p, effect=lambda conn: (201, user_out(identity.sign_up(
        p, conn, email=body.email, password=body.password, name=body.name, kind=UserKind(body.kind),
        phone=body.phone, origin=origin, password_hash=hashed))))


@router.post("/sessions", status_code=201, response_model=NewSessionOut)
def log_in(body: LoginIn, request: Request, p: PlatformDep, origin: OriginDep) -> Response:
    """Sign in: a new token every time; 423 after repeated failures."""
    rate_limit(p, "login", origin)
    verified = identity.verify_login_outside(p, body.email, body.password)  # argon2 before the transaction

    def effect(conn: Connection) -> EffectResult:
        s = identity.log_in(p, conn, email=body.email, password=body.password, origin=origin,
                            totp_code=body.totp_code, verified=verified)
        return 201, NewSessionOut(token=s.token, expires_at=rfc3339(s.session.expires_at),
                                  user=user_out(s.user))
    return idempotent(request, p, effect=refusals_commit(effect))


@router.delete("/sessions/current", status_code=204)
def log_out(me: CurrentUser, p: PlatformDep, origin: OriginDep) -> Response:
    p.db.run(lambda conn: identity.log_out(p, conn, me.user, me.session, origin))
    return Response(status_code=204)


@router.get("/users/me", response_model=MeOut)
def get_me(me: CurrentUser) -> MeOut:
    return me_out(me.user)


@router.post("/users/me/verifications", status_code=202)
def request_verification(body: VerificationIn, request: Request, me: CurrentUser,
                         p: PlatformDep) -> Response:
    channel = Channel(body.channel)

    def effect(conn: Connection) -> EffectResult:
        identity.request_code(p, conn, me.user, channel)
        return 202, {"channel": channel.value, "status": "sent"}
    return idempotent(request, p, effect=effect)


@router.post("/users/me/verifications/confirm", status_code=204)
def confirm_verification(body: ConfirmIn, request: Request, me: CurrentUser, p: PlatformDep,
                         origin: OriginDep) -> Response:
    def effect(conn: Connection) -> EffectResult:
        identity.confirm_code(p, conn, me.user, Channel(body.channel), body.code, origin)
        return 204, None
    return idempotent(request, p, effect=refusals_commit(effect))


@router.put("/users/me/payment-password", status_code=204)
def set_payment_password(body: PaymentPasswordIn, me: CurrentUser, p: PlatformDep,
                         origin: OriginDep) -> Response:
    identity.change_payment_password(p, me.user, password=body.password, payment_password=body.payment_password,
                                     origin=origin)
    return Response(status_code=204)


@router.get("/users/me/sessions", response_model=SessionList)
def list_sessions(me: CurrentUser, p: PlatformDep, limit: Limit = 20,
                  starting_after: str | None = None) -> SessionList:
    with p.db.transaction(write=False) as conn:
        rows, more = identity.list_sessions(p, conn, me.user, limit=limit, starting_after=starting_after)
    return SessionList(data=[session_out(s, me.session.id) for s in rows], has_more=more)


@router.delete("/users/me/sessions/{session_id}", status_code=204)
def revoke_session(session_id: str, me: CurrentUser, p: PlatformDep, origin: OriginDep) -> Response:
    p.db.run(lambda conn: identity.revoke_session(p, conn, me.user, session_id, origin))
    return Response(status_code=204)


@router.get("/users/me/audit-log", response_model=AuditList)
def audit_log(me: CurrentUser, p: PlatformDep, limit: Limit = 20,
              starting_after: str | None = None) -> AuditList:
    with p.db.transaction(write=False) as conn:
        rows, more = audit.list_for_user(conn, me.user.id, limit=limit, starting_after=starting_after)
    return AuditList(data=[
        AuditOut(id=r.id, event=r.event, outcome=r.outcome, at=rfc3339(r.at), ip=r.ip,
                 user_agent=r.user_agent, resource=r.resource) for r in rows
    ], has_more=more)
