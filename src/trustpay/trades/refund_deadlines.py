"""What a refund does to deadlines (split from :mod:`.refunds`).

* The refund's own deadline: one job per waiting status (``TIMEOUT_OF``), keyed by
  the refund, rescheduled as the request moves on and cancelled once it is decided.
* The trade's confirm deadline while a buyer's request is open: paused (its jobs
  cancelled) and resumed with the time it had left; see :mod:`.refunds`.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Connection

from trustpay.clock import to_utc
from trustpay.errors import Conflict
from trustpay.jobs import store as jobs
from trustpay.trades import refund_store, service
from trustpay.trades.model import TradeStatus
from trustpay.trades.refund_model import TIMEOUT_OF, RefundAction, RefundParty, RefundStatus

JOB_OF = {RefundAction.AGREE_TIMEOUT: "refund.agree_timeout", RefundAction.RETURN_TIMEOUT: "refund.return_timeout",
          RefundAction.CONFIRM_GOODS_TIMEOUT: "refund.confirm_goods_timeout"}
S = TradeStatus


# ------------------------------------------------------------------ the trade's confirm deadline
def confirm_resume_key(trade_id: str, refund_id: str) -> str:
    return f"{service.CONFIRM_TIMEOUT_JOB}:{trade_id}:{refund_id}"


def cancel_trade_confirm_jobs(conn: Connection, trade_id: str, now: datetime) -> None:
    jobs.cancel(conn, service.job_key(service.CONFIRM_TIMEOUT_JOB, trade_id), now=now)
    for r in refund_store.of_trade(conn, trade_id):
        jobs.cancel(conn, confirm_resume_key(trade_id, r["id"]), now=now)


def cancel_trade_deadlines(conn: Connection, trade_id: str, now: datetime) -> None:
    jobs.cancel(conn, service.job_key(service.SHIP_TIMEOUT_JOB, trade_id), now=now)
    cancel_trade_confirm_jobs(conn, trade_id, now)


def pause_confirm(conn: Connection, trade: Any, now: datetime) -> None:
    if trade["status"] == S.WAIT_BUYER_CONFIRM_GOODS.value:
        cancel_trade_confirm_jobs(conn, trade["id"], now)


def resume_confirm(conn: Connection, trade: Any, refund: Any, now: datetime) -> None:
    """The request is decided: the buyer gets back the confirm time it paused (counted
    from the request, or from shipping if the goods went out while it was open)."""
    if refund["requested_by"] != RefundParty.BUYER.value or trade["status"] != S.WAIT_BUYER_CONFIRM_GOODS.value:
        return
    paused_since = max(to_utc(refund["created_at"]), to_utc(trade["shipped_at"]))
    confirm_by = to_utc(trade["confirm_by"]) + (now - paused_since)
    if not refund_store.set_confirm_by(conn, trade["id"], from_status=trade["status"], confirm_by=confirm_by,
                                       now=now):
        raise Conflict("the trade changed meanwhile", code="invalid_state")
    cancel_trade_confirm_jobs(conn, trade["id"], now)
    jobs.schedule(conn, service.CONFIRM_TIMEOUT_JOB, confirm_by, {"trade_id": trade["id"]},
                  confirm_resume_key(trade["id"], refund["id"]), now=now)


# ------------------------------------------------------------------ deadlines
def job_key(kind: str, refund_id: str) -> str:
    return f"{kind}:{refund_id}"


def schedule(conn: Connection, refund_id: str, action: RefundAction, at: datetime, now: datetime) -> None:
    kind = JOB_OF[action]
    jobs.schedule(conn, kind, at, {"refund_id": refund_id}, job_key(kind, refund_id), now=now)


def cancel_deadline(conn: Connection, refund: Any, now: datetime, *, running: RefundAction | None = None) -> None:
    action = TIMEOUT_OF.get(RefundStatus(refund["status"]))
    if action is not None and action is not running:  # cancelling the running job would roll it back
        jobs.cancel(conn, job_key(JOB_OF[action], refund["id"]), now=now)


def reschedule(conn: Connection, refund: Any, action: RefundAction, at: datetime, now: datetime) -> None:
    cancel_deadline(conn, refund, now)
    schedule(conn, refund["id"], action, at, now)
