"""The refunds table, and the one guarded change refunds make to a trade row.

Every refund change runs with its trade row locked (``FOR UPDATE`` on
PostgreSQL; SQLite's ``BEGIN IMMEDIATE`` serialises writers), trade first,
refund second, so two refunds of one trade never interleave; the UPDATEs are
still guarded by the values they were decided on, and the trades table's
CHECK (refunded_amount <= amount) is the last word."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from sqlalchemy import Connection, func, select, update

from trustpay.db.schema import refunds, trades
from trustpay.platform.sql import insert_or_ignore
from trustpay.trades.refund_model import OPEN_STATUSES, RefundStatus, refund_not_found

_OPEN = [s.value for s in OPEN_STATUSES]


def insert_new(conn: Connection, values: Mapping[str, Any]) -> bool:
    """Insert unless the requester already used this out_refund_no; True if inserted."""
    return insert_or_ignore(conn, refunds, values, ("requester_id", "out_refund_no"))


def get(conn: Connection, refund_id: str) -> Any:
    row = conn.execute(select(refunds).where(refunds.c.id == refund_id)).mappings().first()
    if row is None:
        raise refund_not_found(refund_id)
    return row


def by_out_refund_no(conn: Connection, requester_id: str, out_refund_no: str) -> Any | None:
    return conn.execute(select(refunds).where(refunds.c.requester_id == requester_id,
                                              refunds.c.out_refund_no == out_refund_no)).mappings().first()


def of_trade(conn: Connection, trade_id: str) -> list[Any]:
    """A trade's refunds, oldest first."""
    return list(conn.execute(select(refunds).where(refunds.c.trade_id == trade_id)
                             .order_by(refunds.c.id)).mappings())


def open_request(conn: Connection, trade_id: str) -> Any | None:
    """The buyer's request still waiting on someone, if any (there is at most one)."""
    return conn.execute(select(refunds).where(refunds.c.trade_id == trade_id, refunds.c.status.in_(_OPEN))
                        ).mappings().first()


def reserved(conn: Connection, trade_id: str) -> int:
    """What open requests claim of the trade: not refunded yet, but not refundable twice."""
    total = conn.execute(select(func.coalesce(func.sum(refunds.c.amount), 0))
                         .where(refunds.c.trade_id == trade_id, refunds.c.status.in_(_OPEN))).scalar()
    return int(total or 0)


def move(conn: Connection, refund_id: str, *, from_status: str, **values: Any) -> bool:
    res = conn.execute(update(refunds).where(refunds.c.id == refund_id, refunds.c.status == from_status)
                       .values(**values))
    return bool(res.rowcount)


def add_refunded(conn: Connection, trade_id: str, *, from_status: str, from_refunded: int, amount: int,
                 **values: Any) -> bool:
    """Raise the trade's refunded_amount by ``amount`` only if it is still what the
    refund was decided on and stays within what was paid; False otherwise."""
    res = conn.execute(update(trades).where(
        trades.c.id == trade_id, trades.c.status == from_status, trades.c.refunded_amount == from_refunded,
        trades.c.refunded_amount + amount <= trades.c.amount,
    ).values(refunded_amount=trades.c.refunded_amount + amount, **values))
    return bool(res.rowcount)


def set_confirm_by(conn: Connection, trade_id: str, *, from_status: str, confirm_by: Any, now: Any) -> bool:
    res = conn.execute(update(trades).where(trades.c.id == trade_id, trades.c.status == from_status)
                       .values(confirm_by=confirm_by, updated_at=now))
    return bool(res.rowcount)


def trades_with_open_requests(conn: Connection, merchant_id: str) -> set[str]:
    """The merchant's trades whose buyer is waiting on a refund decision or step."""
    return set(conn.execute(select(refunds.c.trade_id).where(refunds.c.merchant_id == merchant_id,
                                                             refunds.c.status.in_(_OPEN))).scalars())


def awaiting_merchant(conn: Connection, merchant_id: str) -> int:
    """How many of the merchant's refund requests wait on the merchant's answer: a buyer's
    request to decide on, or goods sent back to check."""
    waiting = [RefundStatus.WAIT_SELLER_AGREE.value, RefundStatus.WAIT_SELLER_CONFIRM_GOODS.value]
    q = select(func.count()).where(refunds.c.merchant_id == merchant_id, refunds.c.status.in_(waiting))
    return int(conn.execute(q).scalar_one())


def open_requests_of_buyer(conn: Connection, buyer_id: str) -> dict[str, str]:
    """The buyer's requests still waiting on someone: trade id → the request's status.

    Only a buyer's own requests are ever open (a merchant's refund succeeds at once),
    so this asks by requester: the unique index on (requester_id, out_refund_no) finds them."""
    rows = conn.execute(select(refunds.c.trade_id, refunds.c.status).where(refunds.c.requester_id == buyer_id,
                                                                           refunds.c.status.in_(_OPEN)))
    return {r.trade_id: r.status for r in rows}
