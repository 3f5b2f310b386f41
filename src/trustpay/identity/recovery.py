"""Password recovery by e-mail: a one-time 6-digit code (15 minutes, 5 tries), then a new
password; every session is revoked. No enumeration: the request looks the same
whether or not the address has an account."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from sqlalchemy import Connection

from trustpay.errors import InvalidRequest
from trustpay.events import notify
from trustpay.identity import audit, crypto, store
from trustpay.identity.audit import Origin
from trustpay.identity.model import (
    CODE_MAX_ATTEMPTS,
    CODE_TTL,
    Lockout,
    Outcome,
    check_password_strength,
    is_code_shaped,
    normalize_email,
)

if TYPE_CHECKING:
    from trustpay.platform.context import Platform

RESET_PURPOSE = "reset"


def _hash(p: Platform, user_id: str, code: str) -> str:
    return crypto.keyed_hash(p.settings.secret_key, f"reset:{user_id}", code)


def request_reset(p: Platform, conn: Connection, email: str, origin: Origin = Origin()) -> None:
    """Mail a reset code if the address has an account; say nothing either way."""
    now = p.clock.now()
    try:
        row = store.user_row(conn, email=normalize_email(email))
    except InvalidRequest:
        row = None
    if row is None:
        audit.record(conn, event="password.reset_requested", outcome=Outcome.FAILURE, user_id=None,
                     origin=origin, now=now, resource="unknown_email")
        return
    code = crypto.new_code()
    store.replace_purpose_code(conn, user_id=row.id, purpose=RESET_PURPOSE, code_hash=_hash(p, row.id, code),
                               now=now, expires_at=now + CODE_TTL)
    audit.record(conn, event="password.reset_requested", outcome=Outcome.SUCCESS, user_id=row.id,
                 origin=origin, now=now, resource=row.id)
    notify.send_after_commit(p.settings.notify_sink, notify.Notification(
        "email", row.email, "Reset your TrustPay password",
        f"Your TrustPay password reset code is {code}. It expires in 15 minutes. "
        "If you did not ask for it, ignore this message.", code))


def hash_if_code_right(p: Platform, *, email: str, code: str, new_password: str) -> str | None:
    """The new password's argon2 hash (~0.3 s), made before :func:`confirm_reset`'s
    transaction when the code is right as things stand; inside it, the hash held
    SQLite's one writer, and every payment, that long. None for a wrong code or a
    weak password (no hash is wasted on them: the transaction refuses them, and
    counts a wrong code's try)."""
    try:
        check_password_strength(new_password, param="new_password")
    except InvalidRequest:
        return None
    right = p.db.run(lambda conn: _code_row(p, conn, email, code)[2], write=False)
    return crypto.hash_password(new_password) if right else None


def _code_row(p: Platform, conn: Connection, email: str, code: str, *,
              for_update: bool = False) -> tuple[Any, Any, bool]:
    """The account, its live reset code (None, None if either is missing) and whether ``code`` is it."""
    try:
        user_row = store.user_row(conn, email=normalize_email(email), for_update=for_update)
    except InvalidRequest:
        user_row = None
    if user_row is None:
        return None, None, False
    row = store.live_purpose_code(conn, user_row.id, RESET_PURPOSE, p.clock.now())
    if row is None:
        return None, None, False
    return user_row, row, is_code_shaped(code) and crypto.same(_hash(p, user_row.id, code), row.code_hash)


def confirm_reset(p: Platform, conn: Connection, *, email: str, code: str, new_password: str,
                  origin: Origin = Origin(), password_hash: str | None = None) -> None:
    """400 ``invalid_code`` for a wrong, spent or expired code (a wrong one uses up one of
    five tries); refusals must commit. Success revokes every session. ``password_hash``:
    ``new_password``'s, from :func:`hash_if_code_right` (else it is made here)."""
    check_password_strength(new_password, param="new_password")
    now = p.clock.now()
    wrong = InvalidRequest("the code is wrong or has expired", code="invalid_code", param="code")
    user_row, row, right = _code_row(p, conn, email, code, for_update=True)
    if row is None:
        raise wrong
    if not right:
        attempts = int(row.attempts) + 1
        store.set_code_fields(conn, row.seq, attempts=attempts,
                              **({"expires_at": now} if attempts >= CODE_MAX_ATTEMPTS else {}))
        audit.record(conn, event="password.reset", outcome=Outcome.FAILURE, user_id=user_row.id,
                     origin=origin, now=now, resource="wrong_code")
        raise wrong
    store.set_code_fields(conn, row.seq, used_at=now)
    store.set_user_fields(conn, user_row.id, password_hash=password_hash or crypto.hash_password(new_password))
    store.save_login_lockout(conn, user_row.id, Lockout.cleared())
    revoked = store.revoke_sessions(conn, user_row.id, now)
    audit.record(conn, event="password.reset", outcome=Outcome.SUCCESS, user_id=user_row.id, origin=origin,
                 now=now, resource=f"sessions_revoked:{revoked}")
    notify.send_after_commit(p.settings.notify_sink, notify.Notification(
        "email", user_row.email, "Your TrustPay password was changed",
        "Your password was just reset and every session was signed out. "
        "If this was not you, contact support and freeze your account."))
