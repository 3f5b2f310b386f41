"""Lost-phone freeze: stop money leaving, revoke the other sessions, unbind cards.

A frozen user may still sign in (from a new device) and unfreeze with the
password plus a second factor: TOTP or a recovery code when MFA is on, else a
fresh 6-digit code sent to the e-mail address. Operators can unfreeze from the
CLI (``trustpay ops unfreeze``), which is audited.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from sqlalchemy import Connection

from trustpay.errors import AuthenticationFailed, Conflict, InvalidRequest, NotFound, PaymentFailed
from trustpay.events import notify
from trustpay.identity import audit, crypto, mfa, store
from trustpay.identity.audit import Origin
from trustpay.identity.model import CODE_MAX_ATTEMPTS, CODE_TTL, Lockout, Outcome, Session, User, is_code_shaped

if TYPE_CHECKING:
    from trustpay.platform.context import Platform

UNFREEZE_PURPOSE = "unfreeze"

# Called as ``hook(platform, conn, user)`` inside the freeze transaction. Bank cards
# do not exist yet: when they land, the card module appends its "unbind every card
# of this user" function here. Until then the list is empty on purpose.
CardUnbindHook = Callable[["Platform", Connection, User], None]
CARD_UNBIND_HOOKS: list[CardUnbindHook] = []


def _send(p: Platform, user: User, subject: str, body: str, code: str | None = None) -> None:
    notify.send_after_commit(p.settings.notify_sink, notify.Notification("email", user.email, subject, body, code))


def locked_row(conn: Connection, user_id: str) -> Any:
    row = store.user_row(conn, user_id=user_id, for_update=True)
    if row is None:
        raise NotFound(f"no user {user_id}")
    return row


def check_password(p: Platform, conn: Connection, row: Any, password: str, origin: Origin, *,
                   clear: bool = True) -> None:
    """The login password, counted toward the login lock like a sign-in (refusals must commit).
    ``clear=False`` when a second factor follows: only both together reset the count."""
    from trustpay.identity.service import _check_login_password  # service imports this module's siblings

    _check_login_password(p, conn, store.as_user(row), row.password_hash, password, origin, p.clock.now(),
                          clear=clear)


def ensure_can_move_money(current: User) -> None:
    """The wallet calls this before any money-out action: 402 ``account_frozen``,
    403 ``email_unverified``. ``current`` must be read in the caller's (money)
    transaction, so that a freeze from another session that committed first counts."""
    if current.frozen:
        raise PaymentFailed("the account is frozen; unfreeze it to move money", code="account_frozen")
    current.require_email_verified()


def freeze(p: Platform, conn: Connection, user: User, session: Session | None, *, password: str,
           origin: Origin = Origin()) -> None:
    """Refusals must commit (a wrong password counts toward the login lock)."""
    row = locked_row(conn, user.id)
    check_password(p, conn, row, password, origin)
    now = p.clock.now()
    if row.frozen_at is None:
        store.set_user_fields(conn, user.id, frozen_at=now)
    revoked = store.revoke_sessions(conn, user.id, now, keep=session.id if session is not None else None)
    current = store.as_user(locked_row(conn, user.id))
    for hook in CARD_UNBIND_HOOKS:
        hook(p, conn, current)
    audit.record(conn, event="user.frozen", outcome=Outcome.SUCCESS, user_id=user.id, origin=origin, now=now,
                 resource=f"sessions_revoked:{revoked}")
    _send(p, current, "Your TrustPay account is frozen",
          "Your account was frozen: no money can leave it and your other sessions were signed out. "
          "Unfreeze it from your account page once you are safe.")


def request_unfreeze_code(p: Platform, conn: Connection, user: User) -> None:
    """For users without MFA: a 6-digit code to the e-mail address (15 minutes)."""
    row = locked_row(conn, user.id)
    if row.frozen_at is None:
        raise Conflict("the account is not frozen")
    if row.mfa_enabled_at is not None:
        raise Conflict("use your authenticator app (or a recovery code) to unfreeze")
    now = p.clock.now()
    code = crypto.new_code()
    store.replace_purpose_code(conn, user_id=user.id, purpose=UNFREEZE_PURPOSE, now=now, expires_at=now + CODE_TTL,
                               code_hash=crypto.keyed_hash(p.settings.secret_key, f"unfreeze:{user.id}", code))
    _send(p, store.as_user(row), "Your TrustPay unfreeze code",
          f"Your code to unfreeze your TrustPay account is {code}. It expires in 15 minutes. "
          "Never share it.", code)


def _check_email_code(p: Platform, conn: Connection, user_id: str, code: str | None, origin: Origin) -> None:
    now = p.clock.now()
    wrong = InvalidRequest("the code is wrong or has expired", code="invalid_code", param="code")
    row = store.live_purpose_code(conn, user_id, UNFREEZE_PURPOSE, now)
    if row is None:
        raise wrong
    expected = crypto.keyed_hash(p.settings.secret_key, f"unfreeze:{user_id}", code or "")
    if not code or not is_code_shaped(code) or not crypto.same(expected, row.code_hash):
        attempts = int(row.attempts) + 1
        store.set_code_fields(conn, row.seq, attempts=attempts,
                              **({"expires_at": now} if attempts >= CODE_MAX_ATTEMPTS else {}))
        audit.record(conn, event="user.unfrozen", outcome=Outcome.FAILURE, user_id=user_id, origin=origin,
                     now=now, resource="wrong_code")
        raise wrong
    store.set_code_fields(conn, row.seq, used_at=now)


def unfreeze(p: Platform, conn: Connection, user: User, *, password: str, totp_code: str | None = None,
             recovery_code: str | None = None, code: str | None = None, origin: Origin = Origin()) -> None:
    """Password plus a second factor (TOTP / recovery code with MFA on, else the e-mailed ``code``).

    Refusals must commit: wrong passwords and codes are counted."""
    row = locked_row(conn, user.id)
    if row.frozen_at is None:
        raise Conflict("the account is not frozen")
    check_password(p, conn, row, password, origin, clear=row.mfa_enabled_at is None)
    row = locked_row(conn, user.id)  # the failure count as the password check left it
    now = p.clock.now()
    if row.mfa_enabled_at is not None:
        if not totp_code and not recovery_code:
            raise AuthenticationFailed("enter a two-factor or recovery code", code="mfa_required")
        if not mfa.second_factor_ok(p, conn, row, totp_code=totp_code, recovery_code=recovery_code, origin=origin):
            mfa.count_login_failure(p, conn, store.as_user(row), origin, now, "wrong_unfreeze_code")
        store.save_login_lockout(conn, user.id, Lockout.cleared())
    else:
        _check_email_code(p, conn, user.id, code, origin)
    store.set_user_fields(conn, user.id, frozen_at=None)
    audit.record(conn, event="user.unfrozen", outcome=Outcome.SUCCESS, user_id=user.id, origin=origin, now=now,
                 resource="self")
    _send(p, store.as_user(row), "Your TrustPay account is unfrozen",
          "Your account was unfrozen. If this was not you, freeze it again and contact support.")


def ops_unfreeze(p: Platform, conn: Connection, *, email: str, reason: str) -> User:
    """Operator unfreeze (``trustpay ops unfreeze``); the reason goes into the audit row."""
    from trustpay.identity.model import normalize_email

    reason = reason.strip()
    if not reason:
        raise InvalidRequest("give a reason", param="reason")
    row = store.user_row(conn, email=normalize_email(email), for_update=True)
    if row is None:
        raise NotFound("no user with that e-mail")
    if row.frozen_at is None:
        raise Conflict("the account is not frozen")
    now = p.clock.now()
    store.set_user_fields(conn, row.id, frozen_at=None)
    audit.record(conn, event="user.unfrozen", outcome=Outcome.SUCCESS, user_id=row.id,
                 origin=Origin(ip="", user_agent="trustpay-cli"), now=now, resource=f"ops:{reason}")
    user = store.get_user(conn, row.id)
    _send(p, user, "Your TrustPay account is unfrozen",
          "Our operations team unfroze your account. If you did not ask for this, contact support.")
    return user

