"""The trades table. A state change reads the row ``FOR UPDATE`` (PostgreSQL; on
SQLite the writer's ``BEGIN IMMEDIATE`` already serialises) and then moves it
with ``UPDATE … WHERE status = :from``: a change that lost a race is seen
(rowcount 0) instead of being applied twice."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, func, or_, select, update

from trustpay.db.schema import trades
from trustpay.platform.sql import insert_or_ignore
from trustpay.trades.model import DisputeStatus, TradeStatus, not_found


def insert_new(conn: Connection, values: Mapping[str, Any]) -> bool:
    """Insert unless the merchant already has this out_trade_no; True if inserted.
    A concurrent creator of the same number waits for the first and then inserts nothing."""
    return insert_or_ignore(conn, trades, values, ("merchant_id", "out_trade_no"))


def get(conn: Connection, trade_id: str, *, for_update: bool = False) -> Any:
    q = select(trades).where(trades.c.id == trade_id)
    if for_update:
        q = q.with_for_update()
    row = conn.execute(q).mappings().first()
    if row is None:
        raise not_found(trade_id)
    return row


def by_out_trade_no(conn: Connection, merchant_id: str, out_trade_no: str) -> Any | None:
    return conn.execute(select(trades).where(trades.c.merchant_id == merchant_id,
                                             trades.c.out_trade_no == out_trade_no)).mappings().first()


def move(conn: Connection, trade_id: str, *, from_status: str, **values: Any) -> bool:
    """Apply ``values`` only if the trade is still ``from_status``; False if it was not."""
    res = conn.execute(update(trades).where(trades.c.id == trade_id, trades.c.status == from_status)
                       .values(**values))
    return bool(res.rowcount)


def page(conn: Connection, user_id: str, *, limit: int, starting_after: str | None) -> tuple[list[Any], bool]:
    """The trades the user sold (as merchant) or bought, newest first."""
    mine = or_(trades.c.merchant_id == user_id, trades.c.buyer_id == user_id)
    q = select(trades).where(mine)
    if starting_after:
        if conn.execute(select(trades.c.id).where(trades.c.id == starting_after, mine)).first() is None:
            raise not_found(starting_after)
        q = q.where(trades.c.id < starting_after)
    rows = list(conn.execute(q.order_by(trades.c.id.desc()).limit(limit + 1)).mappings())
    return rows[:limit], len(rows) > limit


def bought_by(conn: Connection, buyer_id: str, *, limit: int) -> list[Any]:
    """The buyer's trades, newest first (for "my purchases")."""
    return list(conn.execute(select(trades).where(trades.c.buyer_id == buyer_id)
                             .order_by(trades.c.id.desc()).limit(limit)).mappings())


def sold_by(conn: Connection, merchant_id: str, *, status: str | None, limit: int) -> list[Any]:
    """The merchant's trades, newest first, optionally in one status (the dashboard's list)."""
    q = select(trades).where(trades.c.merchant_id == merchant_id)
    if status is not None:
        q = q.where(trades.c.status == status)
    return list(conn.execute(q.order_by(trades.c.id.desc()).limit(limit)).mappings())


def merchant_to_do(conn: Connection, merchant_id: str) -> dict[str, int]:
    """What waits on the merchant: paid escrow trades to ship (a disputed one is on hold,
    not to ship) and trades with an open dispute to answer. One pass over their trades."""
    open_dispute = trades.c.dispute_status == DisputeStatus.OPEN.value
    to_ship = (trades.c.status == TradeStatus.WAIT_SELLER_SEND_GOODS.value) & ~open_dispute
    q = select(func.count().filter(to_ship), func.count().filter(open_dispute)).where(
        trades.c.merchant_id == merchant_id, or_(to_ship, open_dispute))
    ship, disputed = conn.execute(q).one()
    return {"to_ship": int(ship or 0), "disputes": int(disputed or 0)}


def paid_between(conn: Connection, merchant_id: str, start: datetime, end: datetime) -> list[dict[str, Any]]:
    """Per currency, the count and sum (minor units) of the merchant's trades paid in [start, end)."""
    q = (select(trades.c.currency, func.count().label("count"), func.sum(trades.c.amount).label("amount"))
         .where(trades.c.merchant_id == merchant_id, trades.c.paid_at >= start, trades.c.paid_at < end)
         .group_by(trades.c.currency).order_by(trades.c.currency))
    # PostgreSQL sums a bigint as numeric (a Decimal here); money is an int of minor units.
    # r[1]: a row is a tuple, and r.count is its count() method.
    return [{"currency": r.currency, "count": int(r[1]), "amount": int(r.amount)} for r in conn.execute(q)]
