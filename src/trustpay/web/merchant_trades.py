"""Merchant dashboard "Trades" tab (/merchant/trades): the merchant's trades with a
status filter; one trade's page to ship it, refund it (in part or in full) and
answer its buyer's refund requests (approve, approve once the goods are back,
decline; confirm or refuse returned goods).

Same services and rules as the API. A refund's form key becomes its
out_refund_no (``web-…``), so a resent form refunds once.
"""

from __future__ import annotations

import secrets
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, Response

from trustpay.clock import to_utc
from trustpay.errors import TrustPayError
from trustpay.identity.model import UserKind
from trustpay.merchants.settlement_model import Share, share_of
from trustpay.trades import collection, refund_store, refunds, service, store
from trustpay.trades.model import DisputeStatus, TradeStatus
from trustpay.trades.refund_model import MERCHANT_REFUNDABLE, RefundStatus, refundable_left
from trustpay.trades.refunds import NewRefund
from trustpay.trades.views import shape, times_of
from trustpay.web import auth
from trustpay.web.account import FormText, _, form_viewer, redirect
from trustpay.web.auth import Viewer
from trustpay.web.merchant_pages import _context, _merchant
from trustpay.web.notfound import not_found_page
from trustpay.web.refund_pages import error_text, parse_amount, refund_view
from trustpay.web.templating import gettext, render
from trustpay.web.trade_labels import MERCHANT_STATUS_LABELS, merchant_status_label

router = APIRouter(include_in_schema=False)
TRADES = "/merchant/trades"
TRADES_SHOWN = 100
NOTICES = {
    "shipped": _("Marked as shipped. The buyer has been told."),
    "refunded": _("Refunded: the money is back in the buyer's wallet."),
    "approved": _("Approved: the money is back in the buyer's wallet."),
    "return": _("Approved once the goods are back: the buyer has been asked to send them."),
    "rejected": _("Declined. The buyer has been told and may open a dispute."),
    "received": _("Receipt confirmed: the money is back in the buyer's wallet."),
    "refused": _("You refused the returned goods. The buyer has been told and may open a dispute."),
}
# An open request as its merchant reads it (the refund pages' labels are the buyer's words).
REFUND_LABELS = {
    RefundStatus.WAIT_SELLER_AGREE: _("The buyer asks for a refund"),
    RefundStatus.WAIT_BUYER_RETURN_GOODS: _("Approved: waiting for the buyer to send the goods back"),
    RefundStatus.WAIT_SELLER_CONFIRM_GOODS: _("The goods are on their way back to you"),
}
TIMES = ("pay_by", "paid_at", "ship_by", "shipped_at", "confirm_by", "finished_at", "closed_at")
DISPUTE_OPEN = _("A dispute about this order is open, so it cannot be shipped or refunded until TrustPay rules. "
                 "Answer the dispute instead.")


@router.get(TRADES, response_class=HTMLResponse)
def trades_page(request: Request, status: str = "") -> Response:
    viewer = _merchant(request)
    if not isinstance(viewer, Viewer):
        return viewer
    chosen = status if status in TradeStatus.__members__ else None
    p = auth.platform_of(request)
    with p.db.transaction(write=False) as conn:
        rows = store.sold_by(conn, viewer.user.id, status=chosen, limit=TRADES_SHOWN)
        waiting = refund_store.trades_with_open_requests(conn, viewer.user.id)
        collected = collection.payments_of(conn, [r["id"] for r in rows])
    items = [{"t": shape(r), "label": merchant_status_label(r["status"], r["dispute_status"]),
              "line": statement_line(r), "created": to_utc(r["created_at"]), "refund_open": r["id"] in waiting,
              "disputed": r["dispute_status"] == DisputeStatus.OPEN.value,
              "note": collected[r["id"]]["note"] if r["id"] in collected else None} for r in rows]
    return render(request, "merchant/trades.html", _context(
        request, viewer, TRADES, items=items, status=chosen or "",
        statuses=[(s.value, MERCHANT_STATUS_LABELS[s]) for s in TradeStatus]))


def statement_line(row: Any) -> Share | None:
    """The trade as its settlement report line counts it (settlement_model.share_of over the
    trade row's own fee: what is left after refunds, the fee still charged, the net), or None
    for a trade closed before anyone paid: no money moved, so no fee. An unpaid open trade
    shows what paying it would bring."""
    if row["paid_at"] is None and row["status"] == TradeStatus.TRADE_CLOSED.value:
        return None
    return share_of(row["amount"], row["fee"], row["refunded_amount"])


def _detail(request: Request, viewer: Viewer, trade_id: str, *, info: str | None = None, error: str | None = None,
            refused: str | None = None, form: dict[str, str] | None = None, status_code: int = 200) -> Response:
    p = auth.platform_of(request)
    try:
        with p.db.transaction(write=False) as conn:
            row = service.get_for(conn, trade_id, viewer.user.id)
            if row["merchant_id"] != viewer.user.id:
                return not_found_page(request)
            items = [_merchant_words(refund_view(r)) for r in refund_store.of_trade(conn, trade_id)]
            reserved = refund_store.reserved(conn, trade_id)
            buyer = service.counterparty(conn, trade_id, viewer.user.id)  # as the statement names them
            collected = collection.payments_of(conn, [trade_id]).get(trade_id)
    except TrustPayError:
        return not_found_page(request)
    status = TradeStatus(row["status"])
    left = refundable_left(row["amount"], row["refunded_amount"], reserved)
    frozen = row["dispute_status"] == DisputeStatus.OPEN.value
    if refused == "invalid_state" and frozen:
        # A form drawn before the buyer opened a dispute: the dispute is why, not "the order moved on".
        error = gettext(request, DISPUTE_OPEN)
    return render(request, "merchant/trades_detail.html", _context(
        request, viewer, TRADES, t=shape(row), label=merchant_status_label(row["status"], row["dispute_status"]),
        line=statement_line(row), items=items, left=left, disputed=frozen, buyer=buyer,
        note=collected["note"] if collected is not None else None,
        when=times_of(row, TIMES),
        can_ship=status is TradeStatus.WAIT_SELLER_SEND_GOODS and not frozen,
        can_refund=status in MERCHANT_REFUNDABLE and left > 0 and not frozen,
        shipped=status is TradeStatus.WAIT_BUYER_CONFIRM_GOODS, info=info, error=error,
        form=form or {"amount": "", "reason": ""}, request_key=secrets.token_urlsafe(18)), status_code=status_code)


def _merchant_words(item: dict[str, Any]) -> dict[str, Any]:
    status = RefundStatus(item["r"]["status"])
    if status in REFUND_LABELS:
        item["label"] = REFUND_LABELS[status]
    return item


@router.get(TRADES + "/{trade_id}", response_class=HTMLResponse)
def trade_page(request: Request, trade_id: str, notice: str = "") -> Response:
    viewer = _merchant(request)
    if not isinstance(viewer, Viewer):
        return viewer
    return _detail(request, viewer, trade_id, info=gettext(request, NOTICES[notice]) if notice in NOTICES else None)


def _merchant_form(request: Request, csrf_token: str) -> Viewer | Response:
    viewer = form_viewer(request, csrf_token)
    if isinstance(viewer, Viewer) and viewer.user.kind is not UserKind.MERCHANT:
        return not_found_page(request)
    return viewer


def _run(request: Request, viewer: Viewer, trade_id: str, notice: str, work: Any,
         form: dict[str, str] | None = None) -> Response:
    p = auth.platform_of(request)
    try:
        p.db.run(work)
    except TrustPayError as exc:
        if exc.code == "not_found":
            return not_found_page(request)
        return _detail(request, viewer, trade_id, error=error_text(request, exc, merchant=True), refused=exc.code,
                       form=form, status_code=exc.status)
    return redirect(f"{TRADES}/{trade_id}?notice={notice}")


@router.post(TRADES + "/{trade_id}/ship", response_class=HTMLResponse)
def ship_submit(request: Request, trade_id: str, csrf_token: FormText = "", carrier: FormText = "",
                tracking_no: FormText = "") -> Response:
    viewer = _merchant_form(request, csrf_token)
    if not isinstance(viewer, Viewer):
        return viewer
    p = auth.platform_of(request)
    return _run(request, viewer, trade_id, "shipped",
                lambda conn: service.ship(p, conn, trade_id, viewer.user.id, carrier=carrier,
                                          tracking_no=tracking_no))


@router.post(TRADES + "/{trade_id}/refund", response_class=HTMLResponse)
def refund_submit(request: Request, trade_id: str, csrf_token: FormText = "", amount: FormText = "",
                  reason: FormText = "", request_key: FormText = "") -> Response:
    viewer = _merchant_form(request, csrf_token)
    if not isinstance(viewer, Viewer):
        return viewer
    p = auth.platform_of(request)
    form = {"amount": amount, "reason": reason}

    def work(conn: Any) -> Any:
        currency = service.get_for(conn, trade_id, viewer.user.id)["currency"]
        new = NewRefund(out_refund_no="web-" + request_key.strip()[:60], amount=parse_amount(amount, currency),
                        reason=reason)
        return refunds.create(p, conn, trade_id, viewer.user.id, new)

    return _run(request, viewer, trade_id, "refunded", work, form)


def _answer(request: Request, refund_id: str, csrf_token: str, notice: str, work: Any) -> Response:
    viewer = _merchant_form(request, csrf_token)
    if not isinstance(viewer, Viewer):
        return viewer
    p = auth.platform_of(request)
    try:
        with p.db.transaction(write=False) as conn:
            trade_id = refunds.get_for(conn, refund_id, viewer.user.id)["trade_id"]
    except TrustPayError:
        return not_found_page(request)
    return _run(request, viewer, trade_id, notice, lambda conn: work(p, conn, viewer.user.id))


@router.post("/merchant/refunds/{refund_id}/approve", response_class=HTMLResponse)
def approve_submit(request: Request, refund_id: str, csrf_token: FormText = "",
                   return_goods: FormText = "") -> Response:
    wants_goods = return_goods == "1"
    return _answer(request, refund_id, csrf_token, "return" if wants_goods else "approved",
                   lambda p, conn, me: refunds.approve(p, conn, refund_id, me, return_goods=wants_goods))


@router.post("/merchant/refunds/{refund_id}/reject", response_class=HTMLResponse)
def reject_submit(request: Request, refund_id: str, csrf_token: FormText = "", answer: FormText = "") -> Response:
    return _answer(request, refund_id, csrf_token, "rejected",
                   lambda p, conn, me: refunds.reject(p, conn, refund_id, me, answer=answer))


@router.post("/merchant/refunds/{refund_id}/confirm-goods", response_class=HTMLResponse)
def confirm_goods_submit(request: Request, refund_id: str, csrf_token: FormText = "") -> Response:
    return _answer(request, refund_id, csrf_token, "received",
                   lambda p, conn, me: refunds.confirm_goods(p, conn, refund_id, me))


@router.post("/merchant/refunds/{refund_id}/refuse-goods", response_class=HTMLResponse)
def refuse_goods_submit(request: Request, refund_id: str, csrf_token: FormText = "",
                        answer: FormText = "") -> Response:
    return _answer(request, refund_id, csrf_token, "refused",
                   lambda p, conn, me: refunds.refuse_goods(p, conn, refund_id, me, answer=answer))
