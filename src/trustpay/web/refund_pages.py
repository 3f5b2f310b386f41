"""The buyer's refund page (from "my purchases"): ask for money back on an escrow
order, follow the request, ship the goods back when the merchant asks for them,
or withdraw the request.

Same services and rules as ``POST /v1/trades/{id}/refunds`` and
``/v1/refunds/{id}/…``. The form's one-time key is the request's
out_refund_no (prefixed ``web-``), so a resent form is the same request.
"""

from __future__ import annotations

import secrets
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, Response

from trustpay.clock import to_utc
from trustpay.errors import InvalidAmount, TrustPayError
from trustpay.money import Money
from trustpay.trades import disputes, refund_store, refunds, service
from trustpay.trades.model import DisputeStatus, TradeStatus
from trustpay.trades.refund_model import (
    BUYER_REQUESTABLE,
    OPEN_STATUSES,
    RefundCloseReason,
    RefundStatus,
    refundable_left,
)
from trustpay.trades.refund_views import refund_shape
from trustpay.trades.refunds import NewRefund
from trustpay.trades.views import shape
from trustpay.web import auth
from trustpay.web.account import FormText, _, form_viewer, redirect, signed_in
from trustpay.web.auth import Viewer
from trustpay.web.notfound import not_found_page
from trustpay.web.templating import gettext, render

router = APIRouter(include_in_schema=False)

REFUND_LABELS = {
    RefundStatus.WAIT_SELLER_AGREE: _("Waiting for the merchant's answer"),
    RefundStatus.WAIT_BUYER_RETURN_GOODS: _("Approved: send the goods back"),
    RefundStatus.WAIT_SELLER_CONFIRM_GOODS: _("Goods on their way back to the merchant"),
    RefundStatus.REFUND_SUCCESS: _("Refunded"),
    RefundStatus.REFUND_CLOSED: _("Closed without a refund"),
}
CLOSE_REASONS = {
    "seller_rejected": _("The merchant declined."),
    "seller_refused_goods": _("The merchant did not accept the returned goods."),
    "buyer_cancelled": _("Withdrawn."),
    "return_timeout": _("The goods were not sent back in time."),
    "trade_closed": _("The order ended another way."),
    "disputed": _("A dispute about the order took over."),
}
DECLINED = (RefundCloseReason.SELLER_REJECTED.value, RefundCloseReason.SELLER_REFUSED_GOODS.value)
NOTICES = {
    "requested": _("Your request was sent. The merchant has until the time shown to answer; "
                   "if they do not, you get the money back automatically."),
    "returned": _("Thanks: the merchant now confirms that the goods arrived."),
    "cancelled": _("Your request is withdrawn."),
}
ERRORS = {
    "refund_exceeds_paid": _("That is more than what is left to refund on this order."),
    "invalid_amount": _("Enter an amount such as 12.50."),
    "reason": _("Say in one line why you want the money back."),
    # The merchant's forms: the merchant gives money back, or turns returned goods down.
    "merchant_reason": _("Give the reason for the refund in one line; the buyer sees it."),
    "answer": _("Say in one line what is wrong with the returned goods."),
    "shipping": _("Enter the carrier and the tracking number."),
    "invalid_state": _("This cannot be done any more: the order or the request has moved on."),
    "already_exists": _("This form was already sent with other details. Reload the page and try again."),
    "unexpected": _("Something went wrong on our side. Nothing was changed; please try again."),
}


def refund_view(row: Any) -> dict[str, Any]:
    r = refund_shape(row)
    return {"r": r, "label": REFUND_LABELS[RefundStatus(row["status"])],
            "close_reason": CLOSE_REASONS.get(row["close_reason"] or ""), "open": row["status"] in OPEN_STATUSES,
            "created": to_utc(row["created_at"]),
            "respond_by": None if row["respond_by"] is None else to_utc(row["respond_by"])}


def error_text(request: Request, exc: TrustPayError, *, merchant: bool = False) -> str:
    """The message for a refused refund form; ``merchant`` for the merchant's side,
    where the reason is why they refund, not why they want money back."""
    key = exc.code
    if exc.param == "reason":
        key = "merchant_reason" if merchant else "reason"
    elif exc.param == "answer":
        key = "answer"
    elif exc.param in ("carrier", "tracking_no"):
        key = "shipping"
    return gettext(request, ERRORS.get(key, ERRORS["unexpected"]))


def parse_amount(text: str, currency: str) -> int:
    try:
        return Money.parse(text.strip(), currency).amount
    except (InvalidAmount, ValueError):
        raise InvalidAmount("not an amount", param="amount") from None


def _page(request: Request, viewer: Viewer, trade_id: str, *, info: str | None = None, error: str | None = None,
          form: dict[str, str] | None = None, status_code: int = 200) -> Response:
    p = auth.platform_of(request)
    try:
        with p.db.transaction(write=False) as conn:
            row = service.get_for(conn, trade_id, viewer.user.id)
            if row["buyer_id"] != viewer.user.id:
                return not_found_page(request)
            rows = refund_store.of_trade(conn, trade_id)
            reserved = refund_store.reserved(conn, trade_id)
            merchant = service.merchant_name(conn, row["merchant_id"])
            may_dispute = disputes.may_open(p, conn, row)
    except TrustPayError:
        return not_found_page(request)
    items = [refund_view(r) for r in rows]
    open_item = next((i for i in items if i["open"]), None)
    left = refundable_left(row["amount"], row["refunded_amount"], reserved)
    can_request = (TradeStatus(row["status"]) in BUYER_REQUESTABLE and open_item is None and left > 0
                   and row["dispute_status"] != DisputeStatus.OPEN.value)
    # A declined request (or refused returned goods) leaves a dispute as the way on.
    declined = bool(rows) and open_item is None and rows[-1]["close_reason"] in DECLINED
    return render(request, "trades/refund.html", {
        "viewer": viewer, "t": shape(row), "merchant": merchant, "items": items, "open_item": open_item,
        "left": left, "can_request": can_request, "info": info, "error": error,
        "why_not": None if can_request or open_item else _why_not(row), "may_dispute": may_dispute,
        "dispute_until": disputes.open_until(p, row) if may_dispute else None, "declined": declined,
        "form": form or {"amount": Money.of(left, row["currency"]).to_major() if left else "", "reason": ""},
        "request_key": secrets.token_urlsafe(18),
    }, status_code=status_code)


def _why_not(row: Any) -> str:
    """Why the buyer cannot ask for a refund of this trade here (the page says so and
    what to do instead), as the refund service decides it."""
    status = TradeStatus(row["status"])
    if row["dispute_status"] == DisputeStatus.OPEN.value:
        return "disputed"
    if status is TradeStatus.TRADE_SUCCESS:
        return "instant"  # the money went to the merchant at once: only the merchant refunds it
    if status is TradeStatus.TRADE_FINISHED:
        return "finished"
    if status in BUYER_REQUESTABLE:
        return "all_refunded"  # still in escrow with no request open: only nothing left stops one
    return "closed"


@router.get("/purchases/{trade_id}/refund", response_class=HTMLResponse)
def refund_page(request: Request, trade_id: str, notice: str = "") -> Response:
    viewer = signed_in(request)
    if viewer is None:
        return redirect("/login?next=%2Fpurchases")
    info = gettext(request, NOTICES[notice]) if notice in NOTICES else None
    return _page(request, viewer, trade_id, info=info)


@router.post("/purchases/{trade_id}/refund", response_class=HTMLResponse)
def request_submit(request: Request, trade_id: str, csrf_token: FormText = "", amount: FormText = "",
                   reason: FormText = "", request_key: FormText = "") -> Response:
    viewer = form_viewer(request, csrf_token)
    if not isinstance(viewer, Viewer):
        return viewer
    p = auth.platform_of(request)
    form = {"amount": amount, "reason": reason}
    try:
        with p.db.transaction(write=False) as conn:
            currency = service.get_for(conn, trade_id, viewer.user.id)["currency"]
        new = NewRefund(out_refund_no="web-" + request_key.strip()[:60], amount=parse_amount(amount, currency),
                        reason=reason)
        p.db.run(lambda conn: refunds.create(p, conn, trade_id, viewer.user.id, new))
    except TrustPayError as exc:
        if exc.code == "not_found":
            return not_found_page(request)
        return _page(request, viewer, trade_id, error=error_text(request, exc), form=form, status_code=exc.status)
    return redirect(f"/purchases/{trade_id}/refund?notice=requested")


def _act(request: Request, refund_id: str, csrf_token: str, notice: str, work: Any) -> Response:
    viewer = form_viewer(request, csrf_token)
    if not isinstance(viewer, Viewer):
        return viewer
    p = auth.platform_of(request)
    try:
        with p.db.transaction(write=False) as conn:
            trade_id = refunds.get_for(conn, refund_id, viewer.user.id)["trade_id"]
        p.db.run(lambda conn: work(p, conn, viewer.user.id))
    except TrustPayError as exc:
        if exc.code == "not_found":
            return not_found_page(request)
        return _page(request, viewer, trade_id, error=error_text(request, exc), status_code=exc.status)
    return redirect(f"/purchases/{trade_id}/refund?notice={notice}")


@router.post("/purchases/refunds/{refund_id}/return", response_class=HTMLResponse)
def return_submit(request: Request, refund_id: str, csrf_token: FormText = "", carrier: FormText = "",
                  tracking_no: FormText = "") -> Response:
    return _act(request, refund_id, csrf_token, "returned",
                lambda p, conn, me: refunds.return_goods(p, conn, refund_id, me, carrier=carrier,
                                                         tracking_no=tracking_no))


@router.post("/purchases/refunds/{refund_id}/cancel", response_class=HTMLResponse)
def cancel_submit(request: Request, refund_id: str, csrf_token: FormText = "") -> Response:
    return _act(request, refund_id, csrf_token, "cancelled",
                lambda p, conn, me: refunds.cancel(p, conn, refund_id, me))
