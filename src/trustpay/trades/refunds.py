"""Refund use cases: a merchant refunds (at once), a buyer asks (escrow) and the
merchant answers; the return-of-goods steps; the deadlines (jobs).

Every change here, in the caller's transaction: locks the trade row, then
re-reads the refund; asks :mod:`.refund_model` whether this party may do this
now; moves at most one ledger entry (the refund's money) and the trade's
``refunded_amount`` with it (a guarded UPDATE); emits ``refund.succeeded``
(and ``trade.closed`` when everything went back) and tells the buyer. So two
refunds racing on one trade can never pay back more than was paid.

While a buyer's request is open on a shipped trade, the trade's confirm
deadline is *paused* (its job cancelled; a confirm-timeout job that runs
anyway does nothing while a request is open) and, once the request is
decided, resumed with the time it had left: the merchant is not paid money
the buyer is asking back, and the buyer does not lose inspection time to the
merchant's answer. (Extending by a fixed amount would either cut the buyer
short when the merchant is slow or hold the merchant's money for nothing
when it is quick.)
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from sqlalchemy import Connection

from trustpay.errors import Conflict, InvalidRequest, PaymentFailed, TrustPayError
from trustpay.ids import new_id
from trustpay.ledger.errors import Overdraft
from trustpay.ledger.model import EntryDraft, Posting, credit, debit
from trustpay.merchants import settlement_store
from trustpay.money import Money, check_amount
from trustpay.platform import outbox
from trustpay.trades import refund_store, service, store
from trustpay.trades.model import DisputeStatus, Mode, Party, TradeStatus
from trustpay.trades.refund_deadlines import (
    JOB_OF,
    cancel_deadline,
    cancel_trade_deadlines,
    pause_confirm,
    reschedule,
    resume_confirm,
    schedule,
)
from trustpay.trades.refund_model import (
    BUYER_REQUESTABLE,
    MERCHANT_REFUNDABLE,
    RefundAction,
    RefundCloseReason,
    RefundParty,
    RefundStatus,
    check_refund_amount,
    fee_reversal,
    refund_not_found,
    refund_transition,
    refundable_left,
)
from trustpay.trades.refund_views import refund_shape
from trustpay.trades.views import shape
from trustpay.wallet import common

if TYPE_CHECKING:
    from trustpay.jobs.registry import Registry
    from trustpay.jobs.store import Job
    from trustpay.platform.context import Platform

OUT_REFUND_NO = re.compile(r"[A-Za-z0-9_.:\-]{1,64}")
REASON_MAX = 256
TRADE_CLOSE_REASON = "refunded"  # trades.close_reason when everything went back
S, RS, RA = TradeStatus, RefundStatus, RefundAction


# ------------------------------------------------------------------ who is asking
def _party(refund: Any, user_id: str) -> RefundParty:
    if user_id == refund["merchant_id"]:
        return RefundParty.MERCHANT
    if user_id == refund["buyer_id"]:
        return RefundParty.BUYER
    raise refund_not_found(refund["id"])


def get_for(conn: Connection, refund_id: str, user_id: str) -> Any:
    refund = refund_store.get(conn, refund_id)
    _party(refund, user_id)
    return refund


def list_for(conn: Connection, trade_id: str, user_id: str) -> list[Any]:
    """The trade's refunds, for its merchant or buyer (404 for anyone else)."""
    trade = service.get_for(conn, trade_id, user_id)
    if trade["buyer_id"] is None:
        return []
    return refund_store.of_trade(conn, trade_id)


def _locked(conn: Connection, refund_id: str, user_id: str | None, action: RefundAction) -> tuple[Any, Any, Any]:
    """(trade, refund, edge) with the trade row locked; ``user_id`` None is the platform."""
    refund = refund_store.get(conn, refund_id)
    party = RefundParty.SYSTEM if user_id is None else _party(refund, user_id)
    trade = store.get(conn, refund["trade_id"], for_update=True)
    refund = refund_store.get(conn, refund_id)  # stable now: every refund change locks the trade first
    return trade, refund, refund_transition(refund_id, RefundStatus(refund["status"]), action, party)


# ------------------------------------------------------------------ create
@dataclass(frozen=True, slots=True)
class NewRefund:
    out_refund_no: str
    amount: Any
    reason: str


def create(p: Platform, conn: Connection, trade_id: str, user_id: str, new: NewRefund) -> Any:
    """The trade's merchant refunds (REFUND_SUCCESS, the money moves now); its buyer
    asks for a refund (WAIT_SELLER_AGREE). The same out_refund_no with the same body
    gives back the refund made the first time; with another body 409 already_exists."""
    if not OUT_REFUND_NO.fullmatch(new.out_refund_no or ""):
        raise InvalidRequest("out_refund_no must be 1-64 letters, digits or _ . : -", param="out_refund_no")
    amount = check_amount(new.amount, p.settings.max_amount)
    reason = _one_line("reason", new.reason, REASON_MAX)
    trade = store.get(conn, trade_id, for_update=True)
    party = service.party_of(trade, user_id)
    request_hash = hashlib.sha256(json.dumps([trade_id, amount, reason], ensure_ascii=False).encode()).hexdigest()
    existing = refund_store.by_out_refund_no(conn, user_id, new.out_refund_no)
    if existing is not None:
        return _same_or_conflict(existing, request_hash, new.out_refund_no)
    status = TradeStatus(trade["status"])
    if party is Party.BUYER and status not in BUYER_REQUESTABLE:
        raise Conflict(f"cannot ask for a refund: the trade is {status.value}"
                       + (" (an instant payment: ask the merchant)" if status is S.TRADE_SUCCESS else ""),
                       code="invalid_state")
    if party is Party.MERCHANT and status not in MERCHANT_REFUNDABLE:
        raise Conflict(f"cannot refund: the trade is {status.value}", code="invalid_state")
    if settlement_store.in_live_batch(conn, trade_id):
        # Its money is on its way to (or at) the merchant's bank: taking it from the
        # pending account would take other trades' money and jam their payout.
        raise Conflict("cannot refund: this payment is already in a settlement payout to your bank; "
                       "pay the buyer back another way (e.g. a transfer)", code="invalid_state")
    if trade["dispute_status"] == DisputeStatus.OPEN.value:
        raise Conflict("cannot refund: a dispute about this trade is open; its ruling decides the money",
                       code="invalid_state")
    if party is Party.BUYER and refund_store.open_request(conn, trade_id) is not None:
        raise Conflict("you already asked for a refund of this trade; wait for the answer or withdraw it",
                       code="invalid_state")
    check_refund_amount(amount, refundable_left(trade["amount"], trade["refunded_amount"],
                                                refund_store.reserved(conn, trade_id)))
    now = p.clock.now()
    refund_id = new_id("rf", now)
    buyer_request = party is Party.BUYER
    respond_by = now + timedelta(hours=p.settings.refund_seller_agree_within_hours) if buyer_request else None
    inserted = refund_store.insert_new(conn, {
        "id": refund_id, "trade_id": trade_id, "merchant_id": trade["merchant_id"], "buyer_id": trade["buyer_id"],
        "requested_by": party.value, "requester_id": user_id, "out_refund_no": new.out_refund_no,
        "request_hash": request_hash, "amount": amount, "currency": trade["currency"], "reason": reason,
        "status": RS.WAIT_SELLER_AGREE.value if buyer_request else RS.REFUND_SUCCESS.value, "fee_reversed": 0,
        "respond_by": respond_by, "created_at": now, "updated_at": now,
    })
    if not inserted:  # the same number on a trade we did not lock: its creator won
        raced = refund_store.by_out_refund_no(conn, user_id, new.out_refund_no)
        return _same_or_conflict(raced, request_hash, new.out_refund_no)
    refund = refund_store.get(conn, refund_id)
    if respond_by is None:
        return _pay_back(p, conn, trade, refund, from_status=RS.REFUND_SUCCESS)
    schedule(conn, refund_id, RA.AGREE_TIMEOUT, respond_by, now)
    pause_confirm(conn, trade, now)
    common.tell(p, conn, trade["merchant_id"], "A buyer asked for a refund",
                f"The buyer of {trade['subject']} ({trade['out_trade_no']}) asked for "
                f"{Money.of(amount, trade['currency']).format('en')} back: {reason}. Answer before "
                f"{respond_by:%Y-%m-%d %H:%M} UTC; unanswered requests are approved then.")
    return refund


def _same_or_conflict(existing: Any, request_hash: str, out_refund_no: str) -> Any:
    if existing is None or existing["request_hash"] != request_hash:
        raise Conflict(f"out_refund_no {out_refund_no} is already used by another refund of yours",
                       code="already_exists", param="out_refund_no")
    return existing


def _one_line(name: str, value: str | None, limit: int, *, required: bool = True) -> str:
    value = (value or "").strip()
    if (required and not value) or len(value) > limit or any(c < " " for c in value):
        raise InvalidRequest(f"{name} must be {1 if required else 0}-{limit} characters on one line", param=name)
    return value


# ------------------------------------------------------------------ the merchant answers
def approve(p: Platform, conn: Connection, refund_id: str, merchant_id: str, *, return_goods: bool = False) -> Any:
    """Approve a buyer's request: the money goes back now; or, for goods already
    shipped, once they come back (``return_goods``)."""
    action = RA.APPROVE_WITH_RETURN if return_goods else RA.APPROVE
    trade, refund, edge = _locked(conn, refund_id, merchant_id, action)
    if return_goods and trade["status"] != S.WAIT_BUYER_CONFIRM_GOODS.value:
        raise Conflict("cannot ask for the goods back: they were not shipped", code="invalid_state",
                       param="return_goods")
    _refundable_or_conflict(trade, action)
    if not return_goods:
        return _pay_back(p, conn, trade, refund, from_status=RS(refund["status"]))
    now = p.clock.now()
    respond_by = now + timedelta(hours=p.settings.refund_buyer_return_within_hours)
    updated = _move(conn, refund, edge.next, respond_by=respond_by, updated_at=now)
    reschedule(conn, refund, RA.RETURN_TIMEOUT, respond_by, now)
    common.tell(p, conn, trade["buyer_id"], "Send the goods back for your refund",
                f"The merchant agreed to refund {_money(refund)} for {trade['subject']} once the goods are back. "
                f"Ship them back and enter the tracking number before {respond_by:%Y-%m-%d %H:%M} UTC.")
    return updated


def reject(p: Platform, conn: Connection, refund_id: str, merchant_id: str, *, answer: str = "") -> Any:
    trade, refund, edge = _locked(conn, refund_id, merchant_id, RA.REJECT)
    return _close(p, conn, trade, refund, edge.next, edge.close_reason, answer=_answer(answer),
                  tell=("Your refund request was declined",
                        f"The merchant declined your request for {_money(refund)} back for {trade['subject']}"
                        + (f": {_answer(answer)}" if answer.strip() else "")
                        + ". You can open a dispute if you disagree."))


def confirm_goods(p: Platform, conn: Connection, refund_id: str, merchant_id: str) -> Any:
    """The returned goods arrived: the refund is paid."""
    trade, refund, _edge = _locked(conn, refund_id, merchant_id, RA.CONFIRM_GOODS)
    _refundable_or_conflict(trade, RA.CONFIRM_GOODS)
    return _pay_back(p, conn, trade, refund, from_status=RS(refund["status"]))


def refuse_goods(p: Platform, conn: Connection, refund_id: str, merchant_id: str, *, answer: str) -> Any:
    """The goods did not come back as sent: no refund; the buyer may open a dispute."""
    answer = _one_line("answer", answer, REASON_MAX)
    trade, refund, edge = _locked(conn, refund_id, merchant_id, RA.REFUSE_GOODS)
    return _close(p, conn, trade, refund, edge.next, edge.close_reason, answer=answer,
                  tell=("The merchant refused the returned goods",
                        f"The merchant did not accept the goods you sent back for {trade['subject']}: {answer}. "
                        "You can open a dispute if you disagree."))


def _answer(answer: str) -> str | None:
    return _one_line("answer", answer, REASON_MAX, required=False) or None


# ------------------------------------------------------------------ the buyer
def return_goods(p: Platform, conn: Connection, refund_id: str, buyer_id: str, *, carrier: str,
                 tracking_no: str) -> Any:
    carrier = _one_line("carrier", carrier, service.SHIPPING_FIELD_MAX)
    tracking_no = _one_line("tracking_no", tracking_no, service.SHIPPING_FIELD_MAX)
    trade, refund, edge = _locked(conn, refund_id, buyer_id, RA.RETURN_GOODS)
    now = p.clock.now()
    respond_by = now + timedelta(hours=p.settings.refund_seller_confirm_goods_within_hours)
    updated = _move(conn, refund, edge.next, return_carrier=carrier, return_tracking_no=tracking_no,
                    respond_by=respond_by, updated_at=now)
    reschedule(conn, refund, RA.CONFIRM_GOODS_TIMEOUT, respond_by, now)
    common.tell(p, conn, trade["merchant_id"], "Goods are on their way back",
                f"The buyer of {trade['subject']} ({trade['out_trade_no']}) shipped the goods back "
                f"({carrier} {tracking_no}). Confirm receipt before {respond_by:%Y-%m-%d %H:%M} UTC; "
                f"after that {_money(refund)} is refunded to the buyer.")
    return updated


def cancel(p: Platform, conn: Connection, refund_id: str, buyer_id: str) -> Any:
    trade, refund, edge = _locked(conn, refund_id, buyer_id, RA.CANCEL)
    return _close(p, conn, trade, refund, edge.next, edge.close_reason, answer=None,
                  tell=None, tell_merchant=("A buyer withdrew a refund request",
                                            f"The buyer of {trade['subject']} ({trade['out_trade_no']}) "
                                            "withdrew their refund request."))


# ------------------------------------------------------------------ money
def _refundable_or_conflict(trade: Any, action: RefundAction) -> None:
    if trade["status"] not in BUYER_REQUESTABLE or trade["dispute_status"] == DisputeStatus.OPEN.value:
        raise Conflict(f"cannot {action.value.replace('_', ' ')}: the trade is {trade['status']}"
                       + (" with an open dispute" if trade["dispute_status"] == DisputeStatus.OPEN.value else ""),
                       code="invalid_state")


def _pay_back(p: Platform, conn: Connection, trade: Any, refund: Any, *, from_status: RefundStatus,
              running: RefundAction | None = None) -> Any:
    """The refund's one ledger entry, the trade's refunded_amount, the events: REFUND_SUCCESS."""
    now = p.clock.now()
    amount, currency = refund["amount"], trade["currency"]
    check_refund_amount(amount, trade["amount"] - trade["refunded_amount"])  # the guard below is the backstop
    buyer_wallet = common.recipient_wallet(p, conn, trade["buyer_id"], currency)
    back = 0
    if Mode(trade["mode"]) is Mode.ESCROW:
        sources: tuple[Posting, ...] = (debit(service.escrow_account(p, conn, currency), amount, currency),)
    else:
        back = fee_reversal(trade["fee"], trade["amount"], trade["refunded_amount"], amount)
        pending = service.merchant_pending_account(p, conn, trade["merchant_id"], currency)
        sources = tuple(s for s in (debit(pending, amount - back, currency),
                                    debit(common.fee_revenue_account(p, conn, currency), back, currency))
                        if s.amount)
    try:
        entry = p.book.post(conn, EntryDraft((*sources, credit(buyer_wallet, amount, currency)),
                                             reference=trade["id"], memo=f"refund: {trade['subject']}"))
    except Overdraft:
        raise PaymentFailed("your pending settlement balance cannot cover this refund (it was paid out already)",
                            code="insufficient_funds", param="amount") from None
    full = trade["refunded_amount"] + amount == trade["amount"]
    closing: dict[str, Any] = {}
    if full:
        closing = {"status": S.TRADE_CLOSED.value, "close_reason": TRADE_CLOSE_REASON, "closed_at": now}
    if not refund_store.add_refunded(conn, trade["id"], from_status=trade["status"],
                                     from_refunded=trade["refunded_amount"], amount=amount, updated_at=now,
                                     **closing):
        raise Conflict("cannot refund: the trade changed meanwhile", code="invalid_state")
    if not refund_store.move(conn, refund["id"], from_status=from_status.value, status=RS.REFUND_SUCCESS.value,
                             entry_id=entry.id, fee_reversed=back, respond_by=None, succeeded_at=now,
                             updated_at=now):
        raise Conflict("cannot refund: the refund changed meanwhile", code="invalid_state")
    cancel_deadline(conn, refund, now, running=running)
    updated_trade = store.get(conn, trade["id"])
    done = refund_store.get(conn, refund["id"])
    outbox.emit(conn, "refund.succeeded", refund_shape(done), trade["merchant_id"], now=now)
    if full:
        cancel_trade_deadlines(conn, trade["id"], now)
        outbox.emit(conn, "trade.closed", shape(updated_trade), trade["merchant_id"], now=now)
    elif refund["requested_by"] == RefundParty.BUYER.value:
        resume_confirm(conn, updated_trade, refund, now)
    common.tell(p, conn, trade["buyer_id"], "Your refund is in your wallet",
                f"{_money(refund)} for {trade['subject']} is back in your TrustPay wallet.")
    return done


def _close(p: Platform, conn: Connection, trade: Any, refund: Any, nxt: RefundStatus,
           reason: RefundCloseReason | None, *, answer: str | None, tell: tuple[str, str] | None,
           tell_merchant: tuple[str, str] | None = None) -> Any:
    now = p.clock.now()
    done = _move(conn, refund, nxt, close_reason=None if reason is None else reason.value, answer=answer,
                 respond_by=None, closed_at=now, updated_at=now)
    cancel_deadline(conn, refund, now)
    resume_confirm(conn, trade, refund, now)
    if tell is not None:
        common.tell(p, conn, trade["buyer_id"], *tell)
    if tell_merchant is not None:
        common.tell(p, conn, trade["merchant_id"], *tell_merchant)
    return done


def _move(conn: Connection, refund: Any, nxt: RefundStatus, **values: Any) -> Any:
    if not refund_store.move(conn, refund["id"], from_status=refund["status"], status=nxt.value, **values):
        raise Conflict("the refund changed meanwhile", code="invalid_state")
    return refund_store.get(conn, refund["id"])


def _money(refund: Any) -> str:
    return Money.of(refund["amount"], refund["currency"]).format("en")


# ------------------------------------------------------------------ deadlines
def _timed_out(p: Platform, conn: Connection, job: Job, action: RefundAction) -> None:
    try:
        trade, refund, edge = _locked(conn, job.payload["refund_id"], None, action)
    except TrustPayError:
        return  # decided meanwhile: nothing to do
    now = p.clock.now()
    if edge.next is RS.REFUND_SUCCESS:
        if trade["status"] not in BUYER_REQUESTABLE:
            # The trade ended another way; nothing is left to refund by this request.
            _close_after(p, conn, trade, refund, RefundCloseReason.TRADE_CLOSED, running=action)
            return
        if trade["dispute_status"] == DisputeStatus.OPEN.value:
            # Frozen: the dispute's ruling decides the money, not this deadline.
            _close_after(p, conn, trade, refund, RefundCloseReason.DISPUTED, running=action)
            return
        _pay_back(p, conn, trade, refund, from_status=RS(refund["status"]), running=action)
        return
    done = _move(conn, refund, edge.next, close_reason=edge.close_reason.value if edge.close_reason else None,
                 respond_by=None, closed_at=now, updated_at=now)
    resume_confirm(conn, trade, refund, now)
    common.tell(p, conn, trade["buyer_id"], "Your refund request was closed",
                f"The goods for {trade['subject']} were not shipped back in time, so the request for "
                f"{_money(done)} was closed.")


def _close_after(p: Platform, conn: Connection, trade: Any, refund: Any, reason: RefundCloseReason, *,
                 running: RefundAction | None = None) -> None:
    now = p.clock.now()
    _move(conn, refund, RS.REFUND_CLOSED, close_reason=reason.value, respond_by=None, closed_at=now, updated_at=now)
    cancel_deadline(conn, refund, now, running=running)


def close_open_requests(p: Platform, conn: Connection, trade_id: str,
                        reason: RefundCloseReason = RefundCloseReason.TRADE_CLOSED) -> None:
    """The trade's money is decided another way (its ship deadline refunded everything;
    a dispute was opened: pass ``DISPUTED``): an open request is closed. Call it with
    the trade row locked."""
    refund = refund_store.open_request(conn, trade_id)
    if refund is not None:
        _close_after(p, conn, store.get(conn, trade_id), refund, reason)


def approve_unanswered(p: Platform, conn: Connection, job: Job) -> None:
    _timed_out(p, conn, job, RA.AGREE_TIMEOUT)


def close_unreturned(p: Platform, conn: Connection, job: Job) -> None:
    _timed_out(p, conn, job, RA.RETURN_TIMEOUT)


def refund_unconfirmed_return(p: Platform, conn: Connection, job: Job) -> None:
    _timed_out(p, conn, job, RA.CONFIRM_GOODS_TIMEOUT)


def register_jobs(registry: Registry) -> None:
    registry.register(JOB_OF[RA.AGREE_TIMEOUT], approve_unanswered)
    registry.register(JOB_OF[RA.RETURN_TIMEOUT], close_unreturned)
    registry.register(JOB_OF[RA.CONFIRM_GOODS_TIMEOUT], refund_unconfirmed_return)
