"""SQL for the identity tables; rows in, domain objects out."""

from __future__ import annotations

from collections import namedtuple
from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, and_, bindparam, func, select, tuple_, update

from trustpay.clock import to_utc
from trustpay.db import prepared
from trustpay.db.raw import Raw, Sql
from trustpay.db.schema import recovery_codes, sessions, users, verification_codes
from trustpay.errors import NotFound
from trustpay.identity.kyc import kyc_tier
from trustpay.identity.model import Channel, Lockout, Session, User, UserKind


def _ts(v: datetime | None) -> datetime | None:
    return to_utc(v) if v is not None else None


def _user(r: Any) -> User:
    return User(
        id=r.id, email=r.email, name=r.name, kind=UserKind(r.kind),
        # Derived from what is verified, so it cannot drift from the rule (the column is a copy
        # for reporting; operator-created users are verified at birth without touching it).
        kyc_tier=kyc_tier(email_verified=r.email_verified_at is not None,
                          phone_verified=r.phone_verified_at is not None,
                          identity_submitted=r.identity_submitted_at is not None),
        created_at=to_utc(r.created_at), phone_masked=r.phone_masked,
        email_verified_at=_ts(r.email_verified_at), phone_verified_at=_ts(r.phone_verified_at),
        has_payment_password=r.payment_password_hash is not None,
        login=Lockout(int(r.failed_logins), _ts(r.login_locked_until)),
        payment=Lockout(int(r.failed_payment_passwords), _ts(r.payment_locked_until)),
        mfa_enabled_at=_ts(r.mfa_enabled_at), frozen_at=_ts(r.frozen_at),
        legal_name_masked=r.legal_name_masked, id_type=r.id_type, id_number_masked=r.id_number_masked,
        identity_submitted_at=_ts(r.identity_submitted_at),
    )


# ----------------------------------------------------------------- users
def insert_user(conn: Connection, values: Mapping[str, Any]) -> bool:
    """True if inserted; False when the e-mail or phone is taken.

    ON CONFLICT DO NOTHING (any unique column) rather than catching
    IntegrityError: on PostgreSQL a failed INSERT would abort the transaction.
    """
    stmt = prepared.dialect_insert(conn.dialect.name, users).values(**values).on_conflict_do_nothing() \
        .returning(users.c.id)
    return conn.execute(stmt).first() is not None


# Built once: this lookup runs on every authenticated request (see db/prepared.py).
_LIVE_USER_BY = {
    (col, lock): (q.with_for_update() if lock else q)
    for col in ("id", "email")
    for lock in (False, True)
    for q in [select(users).where(users.c.deleted_at.is_(None), users.c[col] == bindparam("k"))]
}


def user_row(conn: Connection, *, user_id: str | None = None, email: str | None = None,
             for_update: bool = False) -> Any | None:
    by = "id" if user_id is not None else "email"
    return prepared.row(conn, _LIVE_USER_BY[by, for_update], {"k": user_id if user_id is not None else email})


def get_user(conn: Connection, user_id: str, *, for_update: bool = False) -> User:
    row = user_row(conn, user_id=user_id, for_update=for_update)
    if row is None:
        raise NotFound(f"no user {user_id}")
    return _user(row)


def as_user(row: Any) -> User:
    return _user(row)


def save_login_lockout(conn: Connection, user_id: str, lock: Lockout) -> None:
    conn.execute(update(users).where(users.c.id == user_id)
                 .values(failed_logins=lock.failures, login_locked_until=lock.locked_until))


def save_payment_lockout(conn: Connection, user_id: str, lock: Lockout) -> None:
    conn.execute(update(users).where(users.c.id == user_id)
                 .values(failed_payment_passwords=lock.failures, payment_locked_until=lock.locked_until))


def set_user_fields(conn: Connection, user_id: str, **values: Any) -> None:
    conn.execute(update(users).where(users.c.id == user_id).values(**values))


def emails_of(conn: Connection, user_ids: set[str]) -> dict[str, str]:
    """Each known id's e-mail address, in one read (ids with no user are left out)."""
    if not user_ids:
        return {}
    q = select(users.c.id, users.c.email).where(users.c.id.in_(sorted(user_ids)))
    return {r.id: r.email for r in conn.execute(q)}


def count_users(conn: Connection) -> int:
    return int(conn.execute(select(func.count()).select_from(users)).scalar_one())


# -------------------------------------------------------------- sessions
def _session(r: Any) -> Session:
    return Session(
        id=r.id, user_id=r.user_id, created_at=to_utc(r.created_at), last_seen_at=to_utc(r.last_seen_at),
        expires_at=to_utc(r.expires_at), revoked_at=_ts(r.revoked_at), ip=r.ip, user_agent=r.user_agent,
    )


def insert_session(conn: Connection, values: Mapping[str, Any]) -> None:
    conn.execute(sessions.insert().values(**values))


def session_by_token_hash(conn: Connection, token_hash: str) -> Session | None:
    row = prepared.first(conn, sessions, {"token_hash": token_hash})
    return _session(row) if row is not None else None


# Every authenticated request reads its session and its user: one statement,
# built once. The user is outer-joined (None when deleted) so that an ended
# session still reads as ended rather than unknown.
_SESSION_PART = ("id", "user_id", "created_at", "last_seen_at", "expires_at", "revoked_at", "ip", "user_agent")
_SESSION_AND_USER = (
    select(*(sessions.c[n].label(f"session_{n}") for n in _SESSION_PART), users)
    .select_from(sessions.outerjoin(users, and_(users.c.id == sessions.c.user_id, users.c.deleted_at.is_(None))))
    .where(sessions.c.token_hash == bindparam("k"))
)


def session_and_user_by_token_hash(conn: Connection, token_hash: str) -> tuple[Session, Any | None] | None:
    """The session with this token and its live user's row (None if the user is deleted)."""
    row = prepared.row(conn, _SESSION_AND_USER, {"k": token_hash})
    if row is None:
        return None
    session = _session(_SessionPart._make(row[:len(_SESSION_PART)]))  # the session's columns come first
    return session, (row if row.id is not None else None)


_SessionPart = namedtuple("_SessionPart", _SESSION_PART)  # type: ignore[misc]


_NOW = bindparam("w_now", type_=sessions.c.last_seen_at.type)
_TOUCH = (update(sessions).where(sessions.c.id == bindparam("w_id"), sessions.c.last_seen_at < _NOW)
          .values(last_seen_at=_NOW))


def touch_session(conn: Connection, session_id: str, now: datetime) -> None:
    # Never backwards: two requests of one session may touch it out of order.
    prepared.run(conn, _TOUCH, {"w_id": session_id, "w_now": now})


_TOUCH_MANY = Sql("UPDATE sessions SET last_seen_at = :now WHERE id = :id AND last_seen_at < :now")


def touch_sessions(conn: Connection, last_used: Mapping[str, datetime]) -> None:
    """:func:`touch_session` for many sessions in one statement (write-behind notes)."""
    raw = Raw.of(conn)
    raw.many(_TOUCH_MANY, [{"id": session_id, "now": raw.ts(at)} for session_id, at in last_used.items()])


def revoke_session(conn: Connection, session_id: str, user_id: str, now: datetime) -> bool:
    """Revoke the user's session; False when it is not theirs (or does not exist)."""
    found = conn.execute(
        select(sessions.c.revoked_at).where(sessions.c.id == session_id, sessions.c.user_id == user_id)
    ).first()
    if found is None:
        return False
    conn.execute(update(sessions).where(sessions.c.id == session_id, sessions.c.revoked_at.is_(None))
                 .values(revoked_at=now))
    return True


def revoke_sessions(conn: Connection, user_id: str, now: datetime, *, keep: str | None = None) -> int:
    """Revoke every live session of the user except ``keep``; how many were revoked."""
    q = update(sessions).where(sessions.c.user_id == user_id, sessions.c.revoked_at.is_(None))
    if keep is not None:
        q = q.where(sessions.c.id != keep)
    return int(conn.execute(q.values(revoked_at=now)).rowcount or 0)


def list_sessions(conn: Connection, user_id: str, *, now: datetime, limit: int, starting_after: str | None,
                  seen: Callable[[Session], Session] = lambda s: s) -> tuple[list[Session], bool]:
    """The user's sessions that still work, newest first; ``seen`` puts in a last use
    not stored yet (``identity/touch.py``)."""
    q = select(sessions).where(sessions.c.user_id == user_id, sessions.c.revoked_at.is_(None),
                               sessions.c.expires_at > now)
    if starting_after is not None:
        cur = conn.execute(select(sessions.c.created_at).where(
            sessions.c.id == starting_after, sessions.c.user_id == user_id)).scalar()
        if cur is None:
            raise NotFound(f"no session {starting_after}", param="starting_after")
        q = q.where(tuple_(sessions.c.created_at, sessions.c.id) < tuple_(cur, starting_after))
    rows = conn.execute(q.order_by(sessions.c.created_at.desc(), sessions.c.id.desc())).all()
    # Idle expiry depends on "now", so it is filtered here rather than in SQL.
    live = [s for s in (seen(_session(r)) for r in rows) if s.alive(now)]
    return live[:limit], len(live) > limit


# ----------------------------------------------------- verification codes
def replace_code(conn: Connection, *, user_id: str, channel: Channel, code_hash: str,
                 now: datetime, expires_at: datetime) -> None:
    """A new code retires every earlier unused one for the same channel."""
    conn.execute(update(verification_codes).where(
        verification_codes.c.user_id == user_id, verification_codes.c.channel == channel.value,
        verification_codes.c.used_at.is_(None), verification_codes.c.expires_at > now,
    ).values(expires_at=now))
    conn.execute(verification_codes.insert().values(
        user_id=user_id, channel=channel.value, code_hash=code_hash, created_at=now,
        expires_at=expires_at, used_at=None, attempts=0,
    ))


def live_code(conn: Connection, user_id: str, channel: Channel, now: datetime) -> Any | None:
    return conn.execute(
        select(verification_codes)
        .where(verification_codes.c.user_id == user_id, verification_codes.c.channel == channel.value,
               verification_codes.c.used_at.is_(None), verification_codes.c.expires_at > now)
        .order_by(verification_codes.c.seq.desc()).limit(1).with_for_update()
    ).first()


def set_code_fields(conn: Connection, seq: int, **values: Any) -> None:
    conn.execute(update(verification_codes).where(verification_codes.c.seq == seq).values(**values))


def replace_purpose_code(conn: Connection, *, user_id: str, purpose: str, code_hash: str,
                         now: datetime, expires_at: datetime) -> None:
    """:func:`replace_code` for codes that are not a verification channel ("reset", "unfreeze")."""
    conn.execute(update(verification_codes).where(
        verification_codes.c.user_id == user_id, verification_codes.c.channel == purpose,
        verification_codes.c.used_at.is_(None), verification_codes.c.expires_at > now,
    ).values(expires_at=now))
    conn.execute(verification_codes.insert().values(
        user_id=user_id, channel=purpose, code_hash=code_hash, created_at=now,
        expires_at=expires_at, used_at=None, attempts=0,
    ))


def live_purpose_code(conn: Connection, user_id: str, purpose: str, now: datetime) -> Any | None:
    return conn.execute(
        select(verification_codes)
        .where(verification_codes.c.user_id == user_id, verification_codes.c.channel == purpose,
               verification_codes.c.used_at.is_(None), verification_codes.c.expires_at > now)
        .order_by(verification_codes.c.seq.desc()).limit(1).with_for_update()
    ).first()


# ------------------------------------------------------- MFA recovery codes
def replace_recovery_codes(conn: Connection, user_id: str, code_hashes: list[str], now: datetime) -> None:
    conn.execute(recovery_codes.delete().where(recovery_codes.c.user_id == user_id))
    conn.execute(recovery_codes.insert(), [
        {"user_id": user_id, "code_hash": h, "created_at": now, "used_at": None} for h in code_hashes
    ])


def use_recovery_code(conn: Connection, user_id: str, code_hash: str, now: datetime) -> bool:
    """Mark the matching unused code used; False when there is none (wrong or spent)."""
    res = conn.execute(update(recovery_codes).where(
        recovery_codes.c.user_id == user_id, recovery_codes.c.code_hash == code_hash,
        recovery_codes.c.used_at.is_(None)).values(used_at=now))
    return bool(res.rowcount)


def delete_recovery_codes(conn: Connection, user_id: str) -> None:
    conn.execute(recovery_codes.delete().where(recovery_codes.c.user_id == user_id))
