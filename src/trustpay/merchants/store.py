"""SQL for merchant_profiles and merchant_api_keys; rows in, domain objects out."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Connection, func, or_, select, tuple_, update

from trustpay.clock import to_utc
from trustpay.db.schema import merchant_api_keys as keys_t
from trustpay.db.schema import merchant_profiles as profiles_t
from trustpay.db.schema import users
from trustpay.errors import NotFound
from trustpay.merchants.model import ApiKey
from trustpay.platform.sql import insert_or_ignore


def _ts(v: datetime | None) -> datetime | None:
    return to_utc(v) if v is not None else None


def _key(r: Any) -> ApiKey:
    return ApiKey(id=r.id, merchant_id=r.merchant_id, prefix=r.prefix, label=r.label,
                  created_at=to_utc(r.created_at), last_used_at=_ts(r.last_used_at),
                  revoked_at=_ts(r.revoked_at))


# ---------------------------------------------------------------- API keys
def insert_key(conn: Connection, *, key_id: str, merchant_id: str, prefix: str, secret_hash: str,
               label: str, now: datetime) -> ApiKey:
    conn.execute(keys_t.insert().values(id=key_id, merchant_id=merchant_id, prefix=prefix,
                                        secret_hash=secret_hash, label=label, created_at=now))
    return ApiKey(id=key_id, merchant_id=merchant_id, prefix=prefix, label=label, created_at=now)


def key_for_secret_hash(conn: Connection, secret_hash: str) -> tuple[ApiKey, str, str | None] | None:
    """The key with this hash, its stored hash, and its merchant's user kind
    (None when the user is gone)."""
    row = conn.execute(
        select(keys_t, users.c.kind.label("merchant_kind"))
        .select_from(keys_t.outerjoin(users, (users.c.id == keys_t.c.merchant_id)
                                      & users.c.deleted_at.is_(None)))
        .where(keys_t.c.secret_hash == secret_hash)
    ).first()
    if row is None:
        return None
    return _key(row), row.secret_hash, row.merchant_kind


def get_key(conn: Connection, merchant_id: str, key_id: str, *, for_update: bool = False) -> ApiKey:
    q = select(keys_t).where(keys_t.c.id == key_id, keys_t.c.merchant_id == merchant_id)
    row = conn.execute(q.with_for_update() if for_update else q).first()
    if row is None:
        raise NotFound(f"no API key {key_id}")  # another merchant's key looks like none
    return _key(row)


def key_is_active(conn: Connection, key_id: str) -> bool:
    """Read in the effect's own write transaction, with a share lock on PostgreSQL: a revocation
    (which locks the row for update) then waits for the effects already past this check, so
    nothing the key does commits after its revocation did. Requests sharing a key do not
    block each other; on SQLite the write transaction already excludes the revocation."""
    row = conn.execute(select(keys_t.c.revoked_at).where(keys_t.c.id == key_id)
                       .with_for_update(read=True)).first()
    return row is not None and row.revoked_at is None


def count_active_keys(conn: Connection, merchant_id: str) -> int:
    return int(conn.execute(select(func.count()).select_from(keys_t).where(
        keys_t.c.merchant_id == merchant_id, keys_t.c.revoked_at.is_(None))).scalar_one())


def list_keys(conn: Connection, merchant_id: str, *, limit: int, starting_after: str | None,
              include_revoked: bool) -> tuple[list[ApiKey], bool]:
    """Newest first (ids sort by creation time)."""
    q = select(keys_t).where(keys_t.c.merchant_id == merchant_id)
    if not include_revoked:
        q = q.where(keys_t.c.revoked_at.is_(None))
    if starting_after is not None:
        cur = conn.execute(select(keys_t.c.created_at).where(
            keys_t.c.id == starting_after, keys_t.c.merchant_id == merchant_id)).scalar()
        if cur is None:
            raise NotFound(f"no API key {starting_after}", param="starting_after")
        q = q.where(tuple_(keys_t.c.created_at, keys_t.c.id) < tuple_(cur, starting_after))
    rows = conn.execute(q.order_by(keys_t.c.created_at.desc(), keys_t.c.id.desc()).limit(limit + 1)).all()
    return [_key(r) for r in rows[:limit]], len(rows) > limit


def revoke_key(conn: Connection, key_id: str, now: datetime) -> None:
    conn.execute(update(keys_t).where(keys_t.c.id == key_id, keys_t.c.revoked_at.is_(None))
                 .values(revoked_at=now))


def touch_key(conn: Connection, key_id: str, now: datetime, *, stale_before: datetime) -> None:
    """Conditional, so many requests racing to record the same minute write once."""
    conn.execute(update(keys_t).where(
        keys_t.c.id == key_id,
        or_(keys_t.c.last_used_at.is_(None), keys_t.c.last_used_at <= stale_before),
    ).values(last_used_at=now))


# ---------------------------------------------------------------- profiles
def profile_row(conn: Connection, merchant_id: str, *, for_update: bool = False) -> Any | None:
    q = select(profiles_t).where(profiles_t.c.merchant_id == merchant_id)
    return conn.execute(q.with_for_update() if for_update else q).first()


def ensure_profile(conn: Connection, merchant_id: str, *, display_name: str, now: datetime) -> Any:
    """The merchant's row, created with defaults (all NULL) if missing; locked for update."""
    insert_or_ignore(conn, profiles_t, dict(merchant_id=merchant_id, display_name=display_name,
                                            created_at=now, updated_at=now), ["merchant_id"])
    row = profile_row(conn, merchant_id, for_update=True)
    assert row is not None
    return row


def update_profile(conn: Connection, merchant_id: str, now: datetime, **values: Any) -> None:
    conn.execute(update(profiles_t).where(profiles_t.c.merchant_id == merchant_id)
                 .values(updated_at=now, **values))
