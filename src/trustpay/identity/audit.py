"""The security audit log: who did what, when (UTC, platform clock), from where, with what outcome.

Everything a client chose (user agent, resource names) is escaped with
:func:`log_safe` on the way in, so a stored row — and any log line or export
made from it — cannot contain a forged line break.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Connection, select

from trustpay.clock import to_utc
from trustpay.db.schema import audit_log
from trustpay.errors import NotFound
from trustpay.identity.model import Outcome, log_safe
from trustpay.ids import new_id


@dataclass(frozen=True)
class Origin:
    """Where a request came from, as the API layer saw it."""

    ip: str = ""
    user_agent: str = ""


@dataclass(frozen=True)
class AuditRow:
    id: str
    user_id: str | None
    event: str
    outcome: str
    at: datetime
    ip: str
    user_agent: str
    resource: str | None


def record(conn: Connection, *, event: str, outcome: Outcome, user_id: str | None, origin: Origin,
           now: datetime, resource: str | None = None) -> str:
    row_id = new_id("aud", now)
    conn.execute(audit_log.insert().values(
        id=row_id, user_id=user_id, event=event, outcome=outcome.value, at=now,
        ip=log_safe(origin.ip, limit=64), user_agent=log_safe(origin.user_agent, limit=512),
        resource=log_safe(resource, limit=128) or None,
    ))
    return row_id


def list_for_user(conn: Connection, user_id: str, *, limit: int,
                  starting_after: str | None = None) -> tuple[list[AuditRow], bool]:
    """Newest first; ``starting_after`` is the last id of the previous page."""
    q = select(audit_log).where(audit_log.c.user_id == user_id)
    if starting_after is not None:
        cursor = conn.execute(
            select(audit_log.c.seq).where(audit_log.c.id == starting_after, audit_log.c.user_id == user_id)
        ).scalar()
        if cursor is None:
            raise NotFound(f"no audit entry {starting_after}", param="starting_after")
        q = q.where(audit_log.c.seq < cursor)
    rows = conn.execute(q.order_by(audit_log.c.seq.desc()).limit(limit + 1)).all()
    return [
        AuditRow(r.id, r.user_id, r.event, r.outcome, to_utc(r.at), r.ip, r.user_agent, r.resource)
        for r in rows[:limit]
    ], len(rows) > limit
