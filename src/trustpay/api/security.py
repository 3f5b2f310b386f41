"""Account security routes: TOTP two-factor, lost-phone freeze, password recovery.

Installed by :func:`trustpay.api.identity.install`.

The two responses that carry secrets (the TOTP secret, the recovery codes) are
not stored for Idempotency-Key replay: the replay store keeps response bodies
in the clear, and those secrets must only ever be shown once.
"""

from __future__ import annotations

from typing import Literal

from fastapi import APIRouter, FastAPI, Request, Response
from pydantic import BaseModel, Field
from sqlalchemy import Connection

from trustpay.api.deps import CurrentUser, OriginDep, PlatformDep
from trustpay.api.idempotency import idempotent
from trustpay.api.identity import MeOut, me_out, rate_limit, refusals_commit
from trustpay.errors import InvalidRequest
from trustpay.identity import freeze, kyc_service, mfa, recovery
from trustpay.identity import service as identity
from trustpay.identity.kyc import IdType
from trustpay.identity.model import normalize_email
from trustpay.identity.ratelimit import FixedWindowLimiter
from trustpay.platform.context import Platform
from trustpay.platform.idempotency import EffectResult

router = APIRouter(prefix="/v1", tags=["accounts"])
_RESET_LIMITER = "identity.reset_limiter"
# Per e-mail address, on top of the per-IP limit: at most this many reset mails per window.
RESET_PER_EMAIL = 5
RESET_WINDOW_SECONDS = 15 * 60


class TotpEnrolmentOut(BaseModel):
    secret: str
    otpauth_uri: str


class CodeIn(BaseModel):
    code: str = Field(max_length=16)


class RecoveryCodesOut(BaseModel):
    mfa_enabled: bool
    recovery_codes: list[str]


class MfaDisableIn(BaseModel):
    password: str = Field(max_length=1024)
    totp_code: str | None = Field(default=None, max_length=32)
    recovery_code: str | None = Field(default=None, max_length=32)


class PasswordIn(BaseModel):
    password: str = Field(max_length=1024)


class UnfreezeIn(BaseModel):
    password: str = Field(max_length=1024)
    totp_code: str | None = Field(default=None, max_length=32)
    recovery_code: str | None = Field(default=None, max_length=32)
    # Without MFA: the 6-digit code from POST /v1/users/me/unfreeze/code.
    code: str | None = Field(default=None, max_length=16)


class IdentityIn(BaseModel):
    legal_name: str = Field(max_length=120, description="As on the identity document")
    id_number: str = Field(max_length=32, description="18-character PRC resident ID number, or a passport "
                                                      "number when id_type is passport")
    id_type: Literal["prc_resident", "passport"] = "prc_resident"


class ResetIn(BaseModel):
    email: str = Field(max_length=320)


class ResetConfirmIn(BaseModel):
    email: str = Field(max_length=320)
    code: str = Field(max_length=16)
    new_password: str = Field(max_length=1024)


def install(app: FastAPI, platform: Platform) -> None:
    platform.extras[_RESET_LIMITER] = FixedWindowLimiter(RESET_PER_EMAIL, RESET_WINDOW_SECONDS)
    app.include_router(router)


# ------------------------------------------------------------------- TOTP
@router.post("/users/me/mfa/totp", response_model=TotpEnrolmentOut)
def start_totp(me: CurrentUser, p: PlatformDep, origin: OriginDep) -> TotpEnrolmentOut:
    """A new TOTP secret and otpauth:// URI; in force after /mfa/totp/verify."""
    e = p.db.run(lambda conn: mfa.start_enrolment(p, conn, me.user, origin))
    return TotpEnrolmentOut(secret=e.secret, otpauth_uri=e.otpauth_uri)


@router.get("/users/me/mfa/totp/qr.svg", response_class=Response,
            responses={200: {"content": {"image/svg+xml": {}}}})
def totp_qr(me: CurrentUser, p: PlatformDep) -> Response:
    """The pending enrolment's otpauth URI as an SVG QR code."""
    svg = p.db.run(lambda conn: mfa.qr_svg(p, conn, me.user))
    return Response(content=svg, media_type="image/svg+xml", headers={"cache-control": "no-store"})


@router.post("/users/me/mfa/totp/verify", response_model=RecoveryCodesOut)
def verify_totp(body: CodeIn, me: CurrentUser, p: PlatformDep, origin: OriginDep) -> RecoveryCodesOut:
    """Turn two-factor on; the 10 recovery codes are shown this once."""
    codes = identity.run_keeping_refusal(p, lambda conn: mfa.confirm_enrolment(p, conn, me.user, body.code,
                                                                                origin))
    return RecoveryCodesOut(mfa_enabled=True, recovery_codes=codes)


@router.post("/users/me/mfa/totp/disable", status_code=204)
def disable_totp(body: MfaDisableIn, request: Request, me: CurrentUser, p: PlatformDep,
                 origin: OriginDep) -> Response:
    """Turn two-factor off: password plus a TOTP or recovery code."""
    def effect(conn: Connection) -> EffectResult:
        freeze.check_password(p, conn, freeze.locked_row(conn, me.user.id), body.password, origin,
                              clear=False)
        mfa.disable(p, conn, me.user, totp_code=body.totp_code, recovery_code=body.recovery_code, origin=origin)
        return 204, None
    return idempotent(request, p, effect=refusals_commit(effect))


# ----------------------------------------------------------------- freeze
@router.post("/users/me/freeze", status_code=204)
def freeze_account(body: PasswordIn, request: Request, me: CurrentUser, p: PlatformDep,
                   origin: OriginDep) -> Response:
    """Lost-phone freeze: no outgoing money, cards unbound, other sessions revoked."""
    def effect(conn: Connection) -> EffectResult:
        freeze.freeze(p, conn, me.user, me.session, password=body.password, origin=origin)
        return 204, None
    return idempotent(request, p, effect=refusals_commit(effect))


@router.post("/users/me/unfreeze/code", status_code=202)
def unfreeze_code(request: Request, me: CurrentUser, p: PlatformDep) -> Response:
    """Without MFA: e-mail a 6-digit code for /users/me/unfreeze."""
    def effect(conn: Connection) -> EffectResult:
        freeze.request_unfreeze_code(p, conn, me.user)
        return 202, {"status": "sent"}
    return idempotent(request, p, effect=effect)


@router.post("/users/me/unfreeze", status_code=204)
def unfreeze_account(body: UnfreezeIn, request: Request, me: CurrentUser, p: PlatformDep,
                     origin: OriginDep) -> Response:
    """Password plus `totp_code` or `recovery_code` (MFA on) or the e-mailed `code` (MFA off)."""
    def effect(conn: Connection) -> EffectResult:
        freeze.unfreeze(p, conn, me.user, password=body.password, totp_code=body.totp_code,
                        recovery_code=body.recovery_code, code=body.code, origin=origin)
        return 204, None
    return idempotent(request, p, effect=refusals_commit(effect))


# -------------------------------------------------------------------- KYC
@router.post("/users/me/identity", response_model=MeOut, responses={
    400: {"description": "invalid_id_number or invalid_legal_name"},
    403: {"description": "email_unverified: verify the e-mail address or phone first (tier 1)"},
    409: {"description": "the identity is already on file"}})
def submit_identity(body: IdentityIn, request: Request, me: CurrentUser, p: PlatformDep,
                    origin: OriginDep) -> Response:
    """KYC tier 2: legal name and ID number, stored encrypted; the response shows them masked
    (`legal_name` "张*", `id_number` "1101**********1234") with `kyc_tier` 2."""
    def effect(conn: Connection) -> EffectResult:
        user = kyc_service.submit_identity(p, conn, me.user, legal_name=body.legal_name,
                                           id_number=body.id_number, id_type=IdType(body.id_type),
                                           origin=origin)
        return 200, me_out(user)
    return idempotent(request, p, effect=effect)


# --------------------------------------------------------- password reset
@router.post("/password-resets", status_code=202)
def request_password_reset(body: ResetIn, request: Request, p: PlatformDep, origin: OriginDep) -> Response:
    """Always 202: a code goes to the address if it has an account."""
    rate_limit(p, "password-reset", origin)
    limiter: FixedWindowLimiter = p.extras[_RESET_LIMITER]
    try:
        key = normalize_email(body.email)
    except InvalidRequest:
        key = body.email.strip().lower()
    limiter.hit("password-reset", key, p.clock.now())  # same for known and unknown addresses

    def effect(conn: Connection) -> EffectResult:
        recovery.request_reset(p, conn, body.email, origin)
        return 202, {"status": "sent"}
    return idempotent(request, p, effect=effect)


@router.post("/password-resets/confirm", status_code=204)
def confirm_password_reset(body: ResetConfirmIn, request: Request, p: PlatformDep,
                           origin: OriginDep) -> Response:
    """New password with the e-mailed code; every session is signed out."""
    rate_limit(p, "password-reset-confirm", origin)

    password_hash: str | None = None

    def before() -> None:  # argon2 with no transaction open; not for a replay
        nonlocal password_hash
        password_hash = recovery.hash_if_code_right(p, email=body.email, code=body.code,
                                                    new_password=body.new_password)

    def effect(conn: Connection) -> EffectResult:
        recovery.confirm_reset(p, conn, email=body.email, code=body.code, new_password=body.new_password,
                               origin=origin, password_hash=password_hash)
        return 204, None
    return idempotent(request, p, effect=refusals_commit(effect), before=before)
