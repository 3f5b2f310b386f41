"""SQL for disputes and their evidence. A dispute changes only with its trade's row
locked first (trade, then dispute: the same order as every trade transition)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from sqlalchemy import Connection, case, func, select, update

from trustpay.db.schema import dispute_evidence, disputes, settlement_items
from trustpay.errors import NotFound

# Evidence without its bytes: what lists and timelines show.
_META = [c for c in dispute_evidence.c if c.name != "content"]


def not_found(dispute_id: str) -> NotFound:
    # The same words whether it is missing or only not the caller's (no oracle).
    return NotFound(f"no dispute {dispute_id[:40]}")


def insert(conn: Connection, values: Mapping[str, Any]) -> None:
    conn.execute(disputes.insert().values(**values))


def get(conn: Connection, dispute_id: str, *, for_update: bool = False) -> Any:
    q = select(disputes).where(disputes.c.id == dispute_id)
    row = conn.execute(q.with_for_update() if for_update else q).mappings().first()
    if row is None:
        raise not_found(dispute_id)
    return row


def for_trade(conn: Connection, trade_id: str) -> Any | None:
    return conn.execute(select(disputes).where(disputes.c.trade_id == trade_id)).mappings().first()


def resolve(conn: Connection, dispute_id: str, **values: Any) -> bool:
    """Only an open dispute is ruled on; False if it was not open any more."""
    res = conn.execute(update(disputes).where(disputes.c.id == dispute_id, disputes.c.status == "open")
                       .values(status="resolved", **values))
    return bool(res.rowcount)


def queue(conn: Connection, *, status: str | None, limit: int) -> list[Any]:
    """Open disputes first, oldest first (the order ops work them in); then the
    resolved ones, most recently ruled first."""
    q = select(disputes)
    if status is not None:
        q = q.where(disputes.c.status == status)
    order = case((disputes.c.status == "open", 0), else_=1)
    q = q.order_by(order, case((disputes.c.status == "open", disputes.c.created_at), else_=None),
                   disputes.c.resolved_at.desc(), disputes.c.id)
    return list(conn.execute(q.limit(limit)).mappings())


# ------------------------------------------------------------------ evidence
def add_evidence(conn: Connection, values: Mapping[str, Any]) -> None:
    conn.execute(dispute_evidence.insert().values(**values))


def evidence_count(conn: Connection, dispute_id: str) -> int:
    """How many pieces the dispute has (they are numbered 1…n, so also the last position)."""
    return int(conn.execute(select(func.count()).select_from(dispute_evidence)
                            .where(dispute_evidence.c.dispute_id == dispute_id)).scalar_one())


def evidence_of(conn: Connection, dispute_id: str) -> list[Any]:
    return list(conn.execute(select(*_META).where(dispute_evidence.c.dispute_id == dispute_id)
                             .order_by(dispute_evidence.c.position)).mappings())


def evidence_file(conn: Connection, dispute_id: str, evidence_id: str) -> Any | None:
    return conn.execute(select(dispute_evidence).where(dispute_evidence.c.id == evidence_id,
                                                       dispute_evidence.c.dispute_id == dispute_id,
                                                       dispute_evidence.c.kind == "file")).mappings().first()


# ------------------------------------------------------------------ settlement
def in_live_settlement(conn: Connection, trade_id: str) -> bool:
    """Whether a pending or paid settlement batch has taken the trade's money out of
    the merchant's pending account (then no dispute can hold or move it)."""
    return conn.execute(select(settlement_items.c.settlement_id)
                        .where(settlement_items.c.active_trade_id == trade_id)).first() is not None
