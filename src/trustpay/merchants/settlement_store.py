"""SQL for settlement batches: which trades are due and not yet in a live batch,
the batch rows and their items."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Connection, and_, case, func, or_, select, update

from trustpay.db.schema import settlement_items, settlements, trades
from trustpay.errors import NotFound
from trustpay.trades.model import DisputeStatus, TradeStatus

# When a trade's money reached the merchant's pending account: an escrow trade on
# finish, an instant one on payment.
settleable_at = case((trades.c.status == TradeStatus.TRADE_FINISHED.value, trades.c.finished_at),
                     else_=trades.c.paid_at)
_IN_LIVE_BATCH = select(settlement_items.c.active_trade_id).where(settlement_items.c.active_trade_id.is_not(None))


def _unbatched() -> Any:
    return and_(
        or_(and_(trades.c.status == TradeStatus.TRADE_FINISHED.value, trades.c.finished_at.is_not(None)),
            trades.c.status == TradeStatus.TRADE_SUCCESS.value),
        # Money an open dispute has frozen waits for its ruling.
        trades.c.dispute_status != DisputeStatus.OPEN.value,
        trades.c.amount > trades.c.refunded_amount,
        trades.c.id.not_in(_IN_LIVE_BATCH),
    )


def merchants_with_money_before(conn: Connection, latest_cutoff: datetime) -> list[tuple[str, str]]:
    """(merchant, currency) pairs with unbatched money settleable before ``latest_cutoff``
    (the loosest cutoff any merchant can have; each one's own is applied when batching)."""
    rows = conn.execute(select(trades.c.merchant_id, trades.c.currency).distinct()
                        .where(_unbatched(), settleable_at < latest_cutoff)
                        .order_by(trades.c.merchant_id, trades.c.currency)).all()
    return [(r.merchant_id, r.currency) for r in rows]


def due_trades(conn: Connection, merchant_id: str, currency: str, before: datetime, *,
               lock: bool = False) -> list[Any]:
    q = (select(trades.c.id, trades.c.out_trade_no, trades.c.amount, trades.c.fee, trades.c.refunded_amount,
                settleable_at.label("settleable_at"))
         .where(trades.c.merchant_id == merchant_id, trades.c.currency == currency, _unbatched(),
                settleable_at < before)
         .order_by(trades.c.id))
    if lock:
        # A refund or dispute on one of these waits for the batch to commit, then sees it batched.
        q = q.with_for_update(of=trades)
    return list(conn.execute(q).mappings())


def waiting(conn: Connection, merchant_id: str) -> list[Any]:
    """The merchant's unbatched trades (due or not), for the dashboard."""
    q = (select(trades.c.id, trades.c.currency, trades.c.amount, trades.c.fee, trades.c.refunded_amount,
                settleable_at.label("settleable_at"))
         .where(trades.c.merchant_id == merchant_id, _unbatched()))
    return list(conn.execute(q).mappings())


def in_live_batch(conn: Connection, trade_id: str) -> bool:
    """Whether the trade's money is in a pending or paid settlement (then it has left, or is
    leaving, the merchant's pending account: refunds and rulings must not take it back)."""
    return conn.execute(select(settlement_items.c.settlement_id)
                        .where(settlement_items.c.active_trade_id == trade_id)).first() is not None


def get(conn: Connection, settlement_id: str, *, merchant_id: str | None = None, for_update: bool = False) -> Any:
    q = select(settlements).where(settlements.c.id == settlement_id)
    if merchant_id is not None:
        q = q.where(settlements.c.merchant_id == merchant_id)
    row = conn.execute(q.with_for_update() if for_update else q).mappings().first()
    if row is None:
        raise NotFound(f"no settlement {settlement_id[:40]}")  # another merchant's looks like none
    return row


def items(conn: Connection, settlement_id: str) -> list[Any]:
    return list(conn.execute(select(settlement_items).where(settlement_items.c.settlement_id == settlement_id)
                             .order_by(settlement_items.c.settleable_at, settlement_items.c.trade_id)).mappings())


def page(conn: Connection, merchant_id: str, *, limit: int, starting_after: str | None) -> tuple[list[Any], bool]:
    """Newest first (ids sort by creation time)."""
    q = select(settlements).where(settlements.c.merchant_id == merchant_id)
    if starting_after:
        get(conn, starting_after, merchant_id=merchant_id)
        q = q.where(settlements.c.id < starting_after)
    rows = list(conn.execute(q.order_by(settlements.c.id.desc()).limit(limit + 1)).mappings())
    return rows[:limit], len(rows) > limit


def pending_ids(conn: Connection, *, limit: int = 500) -> list[str]:
    return list(conn.execute(select(settlements.c.id).where(settlements.c.status == "pending")
                             .order_by(settlements.c.id).limit(limit)).scalars())


def move(conn: Connection, settlement_id: str, *, from_status: str, **values: Any) -> bool:
    res = conn.execute(update(settlements).where(settlements.c.id == settlement_id,
                                                 settlements.c.status == from_status).values(**values))
    return bool(res.rowcount)


def release_items(conn: Connection, settlement_id: str) -> None:
    """A failed batch lets go of its trades: they may be batched again."""
    conn.execute(update(settlement_items).where(settlement_items.c.settlement_id == settlement_id)
                 .values(active_trade_id=None))


def totals_by_status(conn: Connection, merchant_id: str) -> dict[str, int]:
    rows = conn.execute(select(settlements.c.status, func.count()).where(settlements.c.merchant_id == merchant_id)
                        .group_by(settlements.c.status)).all()
    return {str(r[0]): int(r[1]) for r in rows}
