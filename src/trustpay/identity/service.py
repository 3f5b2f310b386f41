"""Identity use cases: sign-up, login/logout, sessions, codes, payment password.

Each takes the platform and a connection (the caller's unit of work).

Refusals that must be remembered — a wrong password, a wrong code — write
their bookkeeping (failure count, lock, audit row) on ``conn`` and then
raise. Rolling that back would give an attacker unlimited tries, so callers
run these in a transaction that commits even on refusal:
:func:`run_keeping_refusal` here, ``refusals_commit`` in the API layer.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, TypeVar

from sqlalchemy import Connection

from trustpay.errors import (
    AccountLocked,
    AuthenticationFailed,
    Conflict,
    InvalidRequest,
    NotFound,
    PaymentFailed,
    TrustPayError,
)
from trustpay.events import notify
from trustpay.identity import audit, crypto, mfa, store
from trustpay.identity.audit import Origin
from trustpay.identity.model import (
    CODE_MAX_ATTEMPTS,
    CODE_TTL,
    SESSION_ABSOLUTE,
    Channel,
    Lockout,
    Outcome,
    Session,
    User,
    UserKind,
    check_password_strength,
    check_payment_password_format,
    is_code_shaped,
    log_safe,
    mask_phone,
    normalize_email,
    normalize_phone,
    payment_password_missing,
    session_needs_touch,
)
from trustpay.identity.touch import touches_of
from trustpay.ids import new_id

if TYPE_CHECKING:
    from trustpay.platform.context import Platform

T = TypeVar("T")
WALLET_CURRENCY = "CNY"
PHONE_PURPOSE = "pii:phone"


@dataclass(frozen=True)
class NewSession:
    token: str  # shown once; only its hash is stored
    session: Session
    user: User


def _lock_for(p: Platform) -> timedelta:
    return timedelta(minutes=p.settings.lockout_minutes)


def _notify(p: Platform, user: User, subject: str, body: str, code: str | None = None) -> None:
    notify.send_after_commit(p.settings.notify_sink, notify.Notification("email", user.email, subject, body, code))


def run_keeping_refusal(p: Platform, fn: Callable[[Connection], T]) -> T:
    """Run ``fn`` in its own transaction; on a domain refusal, commit what it
    recorded, then raise the refusal."""
    def work(conn: Connection) -> tuple[T | None, TrustPayError | None]:
        try:
            return fn(conn), None
        except TrustPayError as exc:
            return None, exc

    result, refusal = p.db.run(work)
    if refusal is not None:
        raise refusal
    return result  # type: ignore[return-value]


# ------------------------------------------------------------------ argon2 outside transactions
# A password hash or check is argon2id, ~0.3 s on this machine. Inside a write
# transaction it held SQLite's one writer — every other payment and sign-in
# waited behind it — and on PostgreSQL the user's row, that long. So the work is
# done first, with no transaction open, against the hash as read then; the
# transaction that counts the outcome uses it if the hash is still the same
# (else, a password changed meanwhile, it checks again there).
@dataclass(frozen=True)
class Verified:
    stored_hash: str | None
    ok: bool


def verify_outside(stored_hash: str | None, password: str) -> Verified:
    return Verified(stored_hash, crypto.verify_password(stored_hash, password))


def _verify_unless_locked(p: Platform, stored_hash: str | None, lock: Lockout, password: str) -> Verified | None:
    """None while ``lock`` holds: the transaction refuses such an attempt unchecked."""
    return None if lock.is_locked(p.clock.now()) else verify_outside(stored_hash, password)


def _password_ok(verified: Verified | None, stored_hash: str | None, password: str) -> bool:
    if verified is not None and verified.stored_hash == stored_hash:
        return verified.ok
    return crypto.verify_password(stored_hash, password)


def hash_new_password(password: str) -> str:
    """The strength check, then the hash: for :func:`sign_up`, before its transaction."""
    check_password_strength(password)
    return crypto.hash_password(password)


# ------------------------------------------------------------------ sign-up
def sign_up(p: Platform, conn: Connection, *, email: str, password: str, name: str = "",
            kind: UserKind = UserKind.PERSONAL, phone: str | None = None,
            origin: Origin = Origin(), password_hash: str | None = None) -> User:
    """Create the user and its CNY wallet in one transaction, then mail the e-mail code.
    ``password_hash``: :func:`hash_new_password`'s, made before the transaction."""
    email = normalize_email(email)
    check_password_strength(password)
    now = p.clock.now()
    user_id = new_id("usr", now)
    phone_values: dict[str, str | None] = {"phone_hmac": None, "phone_masked": None, "phone_enc": None}
    if phone:
        normalized = normalize_phone(phone)
        # HMAC for uniqueness, mask for display, sealed copy so a code can be texted to it.
        phone_values = {"phone_hmac": crypto.keyed_hash(p.settings.secret_key, "phone", normalized),
                        "phone_masked": mask_phone(normalized),
                        "phone_enc": crypto.seal(p.settings.secret_key, PHONE_PURPOSE, normalized,
                                                 bound_to=user_id)}
    inserted = store.insert_user(conn, {
        "id": user_id, "email": email, "name": name.strip()[:120], "kind": kind.value,
        "password_hash": password_hash or crypto.hash_password(password), "created_at": now,
        "email_verified_at": now if kind is UserKind.OPS else None, **phone_values,
    })
    if not inserted:
        # Deliberately vague: which field collided would tell who has an account.
        raise Conflict("an account with these details already exists; sign in instead",
                       code="already_exists")
    if kind is not UserKind.OPS:
        p.book.open_account(conn, currency=WALLET_CURRENCY, kind="wallet", owner_id=user_id)
    audit.record(conn, event="user.signed_up", outcome=Outcome.SUCCESS, user_id=user_id, origin=origin,
                 now=now, resource=user_id)
    user = store.get_user(conn, user_id)
    if kind is not UserKind.OPS:  # an operator-created account is vouched for already
        _send_code(p, conn, user, Channel.EMAIL, now)
    return user


def create_ops_user(p: Platform, conn: Connection, *, email: str, password: str, name: str = "") -> User:
    return sign_up(p, conn, email=email, password=password, name=name, kind=UserKind.OPS,
                   origin=Origin(ip="", user_agent="trustpay-cli"))


# ------------------------------------------------------------------ login
def verify_login_outside(p: Platform, email: str, password: str) -> Verified | None:
    """The argon2 part of :func:`log_in`, before its transaction (none for a locked account:
    it is refused unchecked)."""
    try:
        normalized = normalize_email(email)
    except InvalidRequest:
        return verify_outside(None, password)
    row = p.db.run(lambda conn: store.user_row(conn, email=normalized), write=False)
    if row is None:
        return verify_outside(None, password)  # the same work as for a real account
    return _verify_unless_locked(p, row.password_hash, store.as_user(row).login, password)


def _check_login_password(p: Platform, conn: Connection, user: User, password_hash: str, password: str,
                          origin: Origin, now: datetime, *, clear: bool = True,
                          verified: Verified | None = None) -> None:
    """Refuses while locked (unchecked, not counted); counts a wrong password toward the lock.

    ``clear=False`` leaves the failure count alone on success: with MFA on, only a
    right password *and* a right second factor reset it (else a thief with the
    password could guess codes forever)."""
    if user.login.is_locked(now):
        audit.record(conn, event="session.login", outcome=Outcome.FAILURE, user_id=user.id,
                     origin=origin, now=now, resource="locked")
        raise AccountLocked("too many failed attempts; try again later")
    if _password_ok(verified, password_hash, password):
        if clear and user.login != Lockout.cleared():
            store.save_login_lockout(conn, user.id, Lockout.cleared())
        return
    lock = user.login.after_failure(now, max_attempts=p.settings.login_max_attempts, lock_for=_lock_for(p))
    store.save_login_lockout(conn, user.id, lock)
    audit.record(conn, event="session.login", outcome=Outcome.FAILURE, user_id=user.id, origin=origin,
                 now=now, resource="wrong_password")
    if lock.is_locked(now):
        audit.record(conn, event="user.locked", outcome=Outcome.SUCCESS, user_id=user.id, origin=origin,
                     now=now, resource="login")
        raise AccountLocked("too many failed attempts; try again later")
    raise AuthenticationFailed("e-mail or password is wrong")


def log_in(p: Platform, conn: Connection, *, email: str, password: str, origin: Origin,
           totp_code: str | None = None, verified: Verified | None = None) -> NewSession:
    """Mint a new session token (every login gets its own). Refusals must commit (module doc).

    With MFA on: no ``totp_code`` gives 401 ``mfa_required`` (nothing counted); a
    wrong one (TOTP or recovery code) counts toward the lock like a wrong password.
    ``verified``: :func:`verify_login_outside`'s, made before the transaction."""
    now = p.clock.now()
    try:
        row = store.user_row(conn, email=normalize_email(email), for_update=True)
    except InvalidRequest:
        row = None
    if row is None:
        _password_ok(verified, None, password)  # same work as for a real account (done already, if verified)
        audit.record(conn, event="session.login", outcome=Outcome.FAILURE, user_id=None, origin=origin,
                     now=now, resource="unknown_email")
        raise AuthenticationFailed("e-mail or password is wrong")
    user = store.as_user(row)
    _check_login_password(p, conn, user, row.password_hash, password, origin, now, clear=not user.mfa_enabled,
                          verified=verified)
    if user.mfa_enabled:
        if not totp_code:
            audit.record(conn, event="session.login", outcome=Outcome.FAILURE, user_id=user.id, origin=origin,
                         now=now, resource="mfa_required")
            raise AuthenticationFailed("enter the code from your authenticator app", code="mfa_required")
        if not mfa.second_factor_ok(p, conn, row, totp_code=totp_code, recovery_code=None, origin=origin):
            mfa.count_login_failure(p, conn, user, origin, now, "wrong_totp")
        if user.login != Lockout.cleared():
            store.save_login_lockout(conn, user.id, Lockout.cleared())
    token = crypto.new_session_token()
    session = Session(id=new_id("ses", now), user_id=user.id, created_at=now, last_seen_at=now,
                      expires_at=now + SESSION_ABSOLUTE, revoked_at=None,
                      ip=log_safe(origin.ip, limit=64), user_agent=log_safe(origin.user_agent))
    store.insert_session(conn, {
        "id": session.id, "user_id": user.id, "token_hash": crypto.token_hash(token),
        "created_at": now, "last_seen_at": now, "expires_at": session.expires_at, "revoked_at": None,
        "ip": session.ip, "user_agent": session.user_agent,
    })
    audit.record(conn, event="session.login", outcome=Outcome.SUCCESS, user_id=user.id, origin=origin,
                 now=now, resource=session.id)
    return NewSession(token, session, store.get_user(conn, user.id))


def authenticate(p: Platform, conn: Connection, token: str) -> tuple[User, Session]:
    """The bearer token's user and session; refreshes the idle timer (in ``conn``,
    which must then be a write transaction, when the stored last use is stale)."""
    user, session, now = _live_session(p, conn, token)
    if session_needs_touch(now, session.last_seen_at):
        store.touch_session(conn, session.id, now)
    return user, session


def authenticate_token(p: Platform, token: str) -> tuple[User, Session]:
    """:func:`authenticate` for a request: a read transaction only. The idle
    timer's refresh is noted and written behind (``identity/touch.py``), so a
    signed-in request waits for no write of its own."""
    user, session, now = p.db.run(lambda conn: _live_session(p, conn, token), write=False)
    if session_needs_touch(now, session.last_seen_at):
        touches_of(p).note(session.id, now)
    return user, session


def _live_session(p: Platform, conn: Connection, token: str) -> tuple[User, Session, datetime]:
    """The token's session (with this process's unwritten last use) and user, if alive."""
    now = p.clock.now()
    found = store.session_and_user_by_token_hash(conn, crypto.token_hash(token))
    if found is None:
        raise AuthenticationFailed("unknown token; sign in again")
    session, row = found
    session = touches_of(p).seen(session)
    if not session.alive(now):
        raise AuthenticationFailed("the session has ended; sign in again", code="session_expired")
    if row is None:
        raise AuthenticationFailed("unknown token; sign in again")
    return store.as_user(row), session, now


def token_owner(p: Platform, conn: Connection, token: str) -> str | None:
    """Whose live session this is, without touching it (idempotency scoping)."""
    session = store.session_by_token_hash(conn, crypto.token_hash(token))
    return session.user_id if session is not None and session.alive(p.clock.now()) else None


def log_out(p: Platform, conn: Connection, user: User, session: Session, origin: Origin) -> None:
    now = p.clock.now()
    store.revoke_session(conn, session.id, user.id, now)
    audit.record(conn, event="session.logout", outcome=Outcome.SUCCESS, user_id=user.id, origin=origin,
                 now=now, resource=session.id)


def revoke_session(p: Platform, conn: Connection, user: User, session_id: str, origin: Origin) -> None:
    now = p.clock.now()
    if not store.revoke_session(conn, session_id, user.id, now):
        raise NotFound(f"no session {session_id}")  # another user's session looks like none
    audit.record(conn, event="session.revoked", outcome=Outcome.SUCCESS, user_id=user.id, origin=origin,
                 now=now, resource=session_id)


def list_sessions(p: Platform, conn: Connection, user: User, *, limit: int,
                  starting_after: str | None) -> tuple[list[Session], bool]:
    rows, more = store.list_sessions(conn, user.id, now=p.clock.now(), limit=limit, starting_after=starting_after,
                                     seen=touches_of(p).seen)
    return rows, more


# ------------------------------------------------------ verification codes
def _phone_number(p: Platform, conn: Connection, user: User) -> str:
    """The user's phone in the clear, to text a code to; 400 when none can be texted
    (none given, or given before 0004 kept only its HMAC and mask)."""
    row = store.user_row(conn, user_id=user.id)
    if row is None or row.phone_enc is None:
        raise InvalidRequest("there is no phone number on this account to send a code to", param="channel")
    return crypto.unseal(p.settings.secret_key, PHONE_PURPOSE, row.phone_enc, bound_to=user.id)


def _send_code(p: Platform, conn: Connection, user: User, channel: Channel, now: datetime) -> None:
    phone = _phone_number(p, conn, user) if channel is Channel.PHONE else None
    code = crypto.new_code()
    store.replace_code(conn, user_id=user.id, channel=channel, now=now, expires_at=now + CODE_TTL,
                       code_hash=crypto.keyed_hash(p.settings.secret_key, f"code:{user.id}", code))
    # Sent once this transaction has committed: never a code that was not stored.
    text = f"Your TrustPay code is {code}. It expires in 15 minutes. Never share it."
    if phone is not None:
        notify.send_after_commit(p.settings.notify_sink,
                                 notify.Notification("sms", phone, "TrustPay code", text, code))
    else:
        _notify(p, user, "Your TrustPay verification code", text, code)


def request_code(p: Platform, conn: Connection, user: User, channel: Channel) -> None:
    if channel is Channel.PHONE:
        if user.phone_verified:
            raise Conflict("the phone number is already verified")
    elif user.email_verified:
        raise Conflict("the e-mail address is already verified")
    _send_code(p, conn, user, channel, p.clock.now())


def confirm_code(p: Platform, conn: Connection, user: User, channel: Channel, code: str,
                 origin: Origin) -> None:
    """Refusals must commit (module doc): a wrong code uses up one of five attempts.
    Either channel verified reaches KYC tier 1."""
    now = p.clock.now()
    row = store.live_code(conn, user.id, channel, now)
    wrong = InvalidRequest("the code is wrong or has expired", code="invalid_code", param="code")
    if row is None:
        raise wrong
    expected = crypto.keyed_hash(p.settings.secret_key, f"code:{user.id}", code)
    if not is_code_shaped(code) or not crypto.same(expected, row.code_hash):
        attempts = int(row.attempts) + 1
        store.set_code_fields(conn, row.seq, attempts=attempts,
                              **({"expires_at": now} if attempts >= CODE_MAX_ATTEMPTS else {}))
        audit.record(conn, event="verification.confirm", outcome=Outcome.FAILURE, user_id=user.id,
                     origin=origin, now=now, resource=channel.value)
        raise wrong
    store.set_code_fields(conn, row.seq, used_at=now)
    verified = "phone_verified_at" if channel is Channel.PHONE else "email_verified_at"
    store.set_user_fields(conn, user.id, **{verified: now}, kyc_tier=max(user.kyc_tier, 1))
    audit.record(conn, event="verification.confirm", outcome=Outcome.SUCCESS, user_id=user.id,
                 origin=origin, now=now, resource=channel.value)


# -------------------------------------------------------- payment password
def change_payment_password(p: Platform, user: User, *, password: str, payment_password: str,
                            origin: Origin) -> None:
    """:func:`set_payment_password` in its own transaction, refusals kept; its two
    argon2 runs (the login password's check, the new hash) before it (:class:`Verified`)."""
    check_payment_password_format(payment_password)
    row = p.db.run(lambda conn: store.user_row(conn, user_id=user.id), write=False)
    verified = None if row is None else _verify_unless_locked(p, row.password_hash, store.as_user(row).login,
                                                              password)
    new_hash = crypto.hash_password(payment_password)
    run_keeping_refusal(p, lambda conn: set_payment_password(
        p, conn, user, password=password, payment_password=payment_password, origin=origin,
        verified=verified, new_hash=new_hash))


def set_payment_password(p: Platform, conn: Connection, user: User, *, password: str,
                         payment_password: str, origin: Origin, verified: Verified | None = None,
                         new_hash: str | None = None) -> None:
    """Needs the login password (a wrong one counts toward the login lock; refusals must commit)."""
    check_payment_password_format(payment_password)
    now = p.clock.now()
    row = store.user_row(conn, user_id=user.id, for_update=True)
    if row is None:
        raise NotFound("no such user")
    current = store.as_user(row)
    _check_login_password(p, conn, current, row.password_hash, password, origin, now, verified=verified)
    store.set_user_fields(conn, user.id, payment_password_hash=new_hash or crypto.hash_password(payment_password))
    store.save_payment_lockout(conn, user.id, Lockout.cleared())
    audit.record(conn, event="payment_password.changed", outcome=Outcome.SUCCESS, user_id=user.id,
                 origin=origin, now=now, resource=user.id)
    _notify(p, current, "Your TrustPay payment password was changed",
            "Your payment password was just changed. If this was not you, freeze your account now.")


def check_payment_password(p: Platform, conn: Connection, user_id: str, payment_password: str,
                           origin: Origin = Origin(), *, verified: Verified | None = None) -> None:
    """402 ``payment_password_invalid`` on a wrong one, 423 once locked.

    Refusals must commit (module doc); the wallet calls :func:`require_payment_password`,
    which does that, before its money transaction.
    """
    now = p.clock.now()
    row = store.user_row(conn, user_id=user_id, for_update=True)
    if row is None:
        raise NotFound(f"no user {user_id}")
    user = store.as_user(row)
    user.payment.check(now)
    if row.payment_password_hash is None:
        raise PaymentFailed("set a payment password first", code="payment_password_invalid")
    if _password_ok(verified, row.payment_password_hash, payment_password):
        if user.payment != Lockout.cleared():
            store.save_payment_lockout(conn, user_id, Lockout.cleared())
        return
    lock = user.payment.after_failure(now, max_attempts=p.settings.login_max_attempts, lock_for=_lock_for(p))
    store.save_payment_lockout(conn, user_id, lock)
    audit.record(conn, event="payment_password.check", outcome=Outcome.FAILURE, user_id=user_id,
                 origin=origin, now=now)
    if lock.is_locked(now):
        audit.record(conn, event="user.locked", outcome=Outcome.SUCCESS, user_id=user_id, origin=origin,
                     now=now, resource="payment_password")
        raise AccountLocked("too many wrong payment passwords; try again later")
    raise PaymentFailed("the payment password is wrong", code="payment_password_invalid")


def require_payment_password(p: Platform, user_id: str, payment_password: str,
                             origin: Origin = Origin()) -> None:
    """:func:`check_payment_password` in its own transaction, failures kept; the argon2
    check first, with no transaction open (see :class:`Verified`). A blank password is
    no guess: refused unchecked, neither counted toward the lock nor logged."""
    if not payment_password:
        raise payment_password_missing()
    row = p.db.run(lambda conn: store.user_row(conn, user_id=user_id), write=False)
    verified = None
    if row is not None and row.payment_password_hash is not None:  # none set: refused unchecked
        verified = _verify_unless_locked(p, row.payment_password_hash, store.as_user(row).payment, payment_password)
    run_keeping_refusal(p, lambda conn: check_payment_password(p, conn, user_id, payment_password, origin,
                                                               verified=verified))
