"""TOTP two-factor authentication (RFC 6238) and one-time recovery codes.

TOTP runs on real time (``time.time()``), never the platform clock: the
user's authenticator app cannot see the test clock. Every accepted code
stores its time step; a code for that step or an earlier one is refused, so
a code works once. One step of drift either way is allowed (so a code two
steps old is refused).

Refusals that count toward the login lock write on ``conn`` and then raise;
callers commit them (see :mod:`trustpay.identity.service`).
"""

from __future__ import annotations

import io
import secrets
import time
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

import pyotp
import qrcode
import qrcode.image.svg

from trustpay.errors import AccountLocked, AuthenticationFailed, Conflict, InvalidRequest, NotFound
from trustpay.events import notify
from trustpay.identity import audit, crypto, store
from trustpay.identity.audit import Origin
from trustpay.identity.model import Lockout, Outcome, User

if TYPE_CHECKING:
    from trustpay.platform.context import Platform

ISSUER = "TrustPay"
STEP_SECONDS = 30
DRIFT_STEPS = 1
RECOVERY_CODES = 10
_PURPOSE = "totp"


@dataclass(frozen=True)
class Enrolment:
    secret: str
    otpauth_uri: str


def _key(p: Platform) -> str:
    return p.settings.secret_key


def _recovery_hash(p: Platform, user_id: str, code: str) -> str:
    normalized = code.strip().replace("-", "").replace(" ", "").lower()
    return crypto.keyed_hash(_key(p), f"recovery:{user_id}", normalized)


def _new_recovery_code() -> str:
    raw = "".join(secrets.choice("abcdefghjkmnpqrstuvwxyz23456789") for _ in range(10))  # ~49 bits
    return f"{raw[:5]}-{raw[5:]}"


def _row(conn: Any, user_id: str) -> Any:
    row = store.user_row(conn, user_id=user_id, for_update=True)
    if row is None:
        raise NotFound(f"no user {user_id}")
    return row


def _secret(p: Platform, row: Any) -> str:
    return crypto.unseal(_key(p), _PURPOSE, row.totp_secret_enc, bound_to=row.id)


def _uri(secret: str, email: str) -> str:
    return pyotp.TOTP(secret).provisioning_uri(name=email, issuer_name=ISSUER)


# ------------------------------------------------------------ enrolment
def start_enrolment(p: Platform, conn: Any, user: User, origin: Origin = Origin()) -> Enrolment:
    """A new secret, not in force until :func:`confirm_enrolment`; replaces an unconfirmed one."""
    row = _row(conn, user.id)
    if row.mfa_enabled_at is not None:
        raise Conflict("two-factor authentication is already on; turn it off first")
    secret = pyotp.random_base32()  # 160 bits
    store.set_user_fields(conn, user.id, totp_secret_enc=crypto.seal(_key(p), _PURPOSE, secret, bound_to=user.id),
                          totp_last_step=None)
    audit.record(conn, event="mfa.enrolment_started", outcome=Outcome.SUCCESS, user_id=user.id,
                 origin=origin, now=p.clock.now(), resource="totp")
    return Enrolment(secret, _uri(secret, user.email))


def qr_svg(p: Platform, conn: Any, user: User) -> bytes:
    """The pending enrolment's otpauth URI as an SVG QR code (not offered once MFA is on)."""
    row = _row(conn, user.id)
    if row.totp_secret_enc is None:
        raise NotFound("no two-factor enrolment in progress; POST /v1/users/me/mfa/totp first")
    if row.mfa_enabled_at is not None:
        raise Conflict("two-factor authentication is already on")
    img = qrcode.make(_uri(_secret(p, row), user.email), image_factory=qrcode.image.svg.SvgPathImage)
    buf = io.BytesIO()
    img.save(buf)
    return buf.getvalue()


def confirm_enrolment(p: Platform, conn: Any, user: User, code: str, origin: Origin = Origin()) -> list[str]:
    """Turn MFA on with a first valid code; returns the recovery codes (shown once, stored hashed)."""
    row = _row(conn, user.id)
    if row.mfa_enabled_at is not None:
        raise Conflict("two-factor authentication is already on")
    if row.totp_secret_enc is None:
        raise Conflict("start with POST /v1/users/me/mfa/totp")
    now = p.clock.now()
    if not _accept_totp(p, conn, row, code):
        audit.record(conn, event="mfa.enabled", outcome=Outcome.FAILURE, user_id=user.id, origin=origin,
                     now=now, resource="wrong_code")
        raise InvalidRequest("the code is wrong or has expired", code="invalid_code", param="code")
    codes = [_new_recovery_code() for _ in range(RECOVERY_CODES)]
    store.replace_recovery_codes(conn, user.id, [_recovery_hash(p, user.id, c) for c in codes], now)
    store.set_user_fields(conn, user.id, mfa_enabled_at=now)
    audit.record(conn, event="mfa.enabled", outcome=Outcome.SUCCESS, user_id=user.id, origin=origin,
                 now=now, resource="totp")
    notify.send_after_commit(p.settings.notify_sink, notify.Notification(
        "email", user.email, "Two-factor authentication is on",
        "Two-factor authentication was just turned on for your TrustPay account. "
        "If this was not you, freeze your account now."))
    return codes


def disable(p: Platform, conn: Any, user: User, *, totp_code: str | None, recovery_code: str | None,
            origin: Origin = Origin()) -> None:
    """Turn MFA off; needs a second factor, a wrong one counting toward the login lock (the
    password is checked by the caller, with ``clear=False``). Refusals must commit."""
    row = _row(conn, user.id)
    if row.mfa_enabled_at is None:
        raise Conflict("two-factor authentication is not on")
    now = p.clock.now()
    if not second_factor_ok(p, conn, row, totp_code=totp_code, recovery_code=recovery_code, origin=origin):
        audit.record(conn, event="mfa.disabled", outcome=Outcome.FAILURE, user_id=user.id, origin=origin,
                     now=now, resource="wrong_code")
        count_login_failure(p, conn, store.as_user(row), origin, now, "wrong_mfa_code")
    store.save_login_lockout(conn, user.id, Lockout.cleared())
    store.set_user_fields(conn, user.id, mfa_enabled_at=None, totp_secret_enc=None, totp_last_step=None)
    store.delete_recovery_codes(conn, user.id)
    audit.record(conn, event="mfa.disabled", outcome=Outcome.SUCCESS, user_id=user.id, origin=origin,
                 now=now, resource="totp")
    notify.send_after_commit(p.settings.notify_sink, notify.Notification(
        "email", user.email, "Two-factor authentication is off",
        "Two-factor authentication was just turned off for your TrustPay account. "
        "If this was not you, freeze your account now."))


# ---------------------------------------------------------- checking codes
def _accept_totp(p: Platform, conn: Any, row: Any, code: str | None, *, at: float | None = None) -> bool:
    """True (and the step recorded) for a code of the current step ±1 newer than the last one used."""
    if not code or row.totp_secret_enc is None:
        return False
    code = code.strip()
    if len(code) != 6 or not code.isdigit():
        return False
    totp = pyotp.TOTP(_secret(p, row))
    now_step = int((time.time() if at is None else at) // STEP_SECONDS)
    last = row.totp_last_step
    for step in range(now_step - DRIFT_STEPS, now_step + DRIFT_STEPS + 1):
        if last is not None and step <= int(last):
            continue
        if crypto.same(totp.at(step * STEP_SECONDS), code):
            store.set_user_fields(conn, row.id, totp_last_step=step)
            return True
    return False


def _accept_recovery(p: Platform, conn: Any, row: Any, code: str | None, origin: Origin) -> bool:
    if not code or len(code) > 32:
        return False
    now = p.clock.now()
    if not store.use_recovery_code(conn, row.id, _recovery_hash(p, row.id, code), now):
        return False
    audit.record(conn, event="mfa.recovery_code_used", outcome=Outcome.SUCCESS, user_id=row.id,
                 origin=origin, now=now, resource="recovery_code")
    return True


def second_factor_ok(p: Platform, conn: Any, row: Any, *, totp_code: str | None,
                     recovery_code: str | None, origin: Origin = Origin()) -> bool:
    """A TOTP code, or a recovery code standing in for one (each spent on success).

    A recovery code is also accepted in the ``totp_code`` field (clients have one box)."""
    if _accept_totp(p, conn, row, totp_code):
        return True
    return _accept_recovery(p, conn, row, recovery_code or totp_code, origin)


def count_login_failure(p: Platform, conn: Any, user: User, origin: Origin, now: datetime,
                        reason: str) -> None:
    """A wrong second factor counts toward the login lock like a wrong password; then raise."""
    lock = user.login.after_failure(now, max_attempts=p.settings.login_max_attempts,
                                    lock_for=timedelta(minutes=p.settings.lockout_minutes))
    store.save_login_lockout(conn, user.id, lock)
    audit.record(conn, event="session.login", outcome=Outcome.FAILURE, user_id=user.id, origin=origin,
                 now=now, resource=reason)
    if lock.is_locked(now):
        audit.record(conn, event="user.locked", outcome=Outcome.SUCCESS, user_id=user.id, origin=origin,
                     now=now, resource="login")
        raise AccountLocked("too many failed attempts; try again later")
    raise AuthenticationFailed("e-mail, password or two-factor code is wrong")


def require_fresh_totp(p: Platform, conn: Any, user: User, code: str | None,
                       origin: Origin = Origin()) -> None:
    """Step-up for actions the risk hook marks "challenge": a fresh TOTP (or recovery) code.

    401 ``mfa_required`` when no code is given or MFA is off (the client should
    prompt, or ask the user to turn MFA on); a wrong code counts toward the login
    lock (refusals must commit: run it with ``run_keeping_refusal``)."""
    row = _row(conn, user.id)
    if row.mfa_enabled_at is None or not code:
        raise AuthenticationFailed("this action needs a two-factor code", code="mfa_required")
    if second_factor_ok(p, conn, row, totp_code=code, recovery_code=None, origin=origin):
        return
    current = store.as_user(row)
    current.login.check(p.clock.now())
    count_login_failure(p, conn, current, origin, p.clock.now(), "wrong_step_up_code")
