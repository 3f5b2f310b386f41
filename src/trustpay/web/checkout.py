"""The hosted checkout page (收银台) a trade's ``checkout_url`` points to, its QR
code, and the buyer's "my purchases" with confirm receipt.

The page is the trade as its buyer sees it at every step: before paying, the
merchant, what is bought, the amount, who pays the fee, how escrow protects
the buyer and by when each side must act; then the payment (balance +
payment password, the same checks and order as ``POST /v1/trades/{id}/pay``,
a one-time form key in place of Idempotency-Key); afterwards the status and,
once shipped, the confirm-receipt form.

Visibility follows the API: an unpaid trade that names no buyer is shown to
whoever holds the link (it is a request for payment; paying needs a session);
after payment only its merchant and buyer see it, anyone else the 404 page.
"""

from __future__ import annotations

import io
import secrets
from typing import Annotated, Any
from urllib.parse import quote

import qrcode
import qrcode.image.svg
from fastapi import APIRouter, Form, Request
from fastapi.responses import HTMLResponse, Response
from sqlalchemy import Connection

from trustpay.api.deps import get_origin
from trustpay.clock import to_utc
from trustpay.errors import TrustPayError
from trustpay.merchants.settlement_model import share_of
from trustpay.trades import collection, dispute_store, refund_store, service, store
from trustpay.trades.model import Mode, Party, TradeStatus, not_found
from trustpay.trades.refund_model import RefundStatus
from trustpay.trades.views import checkout_path, shape, times_of
from trustpay.wallet import service as wallet
from trustpay.web import auth
from trustpay.web.account import form_viewer, redirect, signed_in
from trustpay.web.auth import Viewer
from trustpay.web.notfound import not_found_page
from trustpay.web.refund_pages import REFUND_LABELS
from trustpay.web.templating import gettext, render
from trustpay.web.trade_labels import BUYER_STATUS_LABELS
from trustpay.web.wallet_home import Refusal, Refused, refusal, run_once

router = APIRouter(include_in_schema=False)
FormText = Annotated[str, Form(max_length=1024)]
PURCHASES_SHOWN = 50


def _(message: str) -> str:
    """Marks ``message`` for the catalogs; translated when rendered."""
    return message


CLOSE_REASONS = {
    "merchant_closed": _("The merchant called this order off."),
    "pay_timeout": _("It was not paid in time."),
    "ship_timeout": _("The merchant did not ship in time, so all your money came back to your wallet."),
    "refunded": _("Everything paid was refunded to the buyer's TrustPay wallet."),
    "dispute_ruling": _("TrustPay ruled on the dispute and returned everything to the buyer's TrustPay wallet."),
}
# A closed trade whose money went back: say so in the status, not just "Closed".
REFUNDED_LABEL = _("Refunded")
NOTICES = {
    "paid": _("Paid. Your money is safe with TrustPay until you confirm receipt."),
    "paid_instant": _("Paid. The merchant has received your payment."),
    "confirmed": _("Receipt confirmed: the merchant has been paid. Thank you!"),
}
NOT_NOW = _("This order cannot be paid or confirmed any more: it has moved on. Here is where it stands now.")


def _row(request: Request, trade_id: str) -> Any | None:
    p = auth.platform_of(request)
    try:
        with p.db.transaction(write=False) as conn:
            return store.get(conn, trade_id)
    except TrustPayError:
        return None


def _party(row: Any, viewer: Viewer | None) -> Party | None:
    """The viewer's part, or None for a signed-out visitor (who may only look at an open,
    unnamed payment request); raises NotFound for anyone the trade is hidden from."""
    if viewer is None:
        if row["buyer_id"] is not None:
            raise not_found(row["id"])
        return None
    return service.party_of(row, viewer.user.id)


def _view(request: Request, row: Any, viewer: Viewer | None, party: Party | None) -> dict[str, Any]:
    p = auth.platform_of(request)
    t = shape(row)
    with p.db.transaction(write=False) as conn:
        merchant = service.merchant_name(conn, row["merchant_id"])
        available = _available(conn, viewer, row["currency"])
        returned = _refunds(conn, row) if party is not None else []
        # Paid through a collection code or donation page: its out_trade_no is a machine id
        # (qrc_….…), so the page names the payment by the payer's note instead.
        collected = collection.payments_of(conn, [row["id"]]).get(row["id"])
    status = TradeStatus(row["status"])
    escrow = Mode(row["mode"]) is Mode.ESCROW
    label = BUYER_STATUS_LABELS[status]
    if status is TradeStatus.TRADE_CLOSED and row["close_reason"] in ("refunded", "dispute_ruling"):
        label = REFUNDED_LABEL
    # After a refund the fee shrinks in proportion, as the merchant's statement and settlement count it.
    share = share_of(row["amount"], row["fee"], row["refunded_amount"])
    return {
        "viewer": viewer, "t": t, "merchant": merchant, "escrow": escrow, "party": party.value if party else None,
        "status_label": label, "close_reason": CLOSE_REASONS.get(row["close_reason"] or ""),
        "fee_now": share.fee, "merchant_gets": share.net, "returned": returned, "when": times_of(row, TIMES),
        "collected": collected,
        "links": buyer_links(t) if party is Party.BUYER else {"refund": False, "dispute": False},
        "can_pay": status is TradeStatus.WAIT_BUYER_PAY and party is Party.BUYER,
        "can_confirm": status is TradeStatus.WAIT_BUYER_CONFIRM_GOODS and party is Party.BUYER,
        "available": available, "short": available is not None and available < row["amount"],
        "login_url": "/login?next=" + quote(checkout_path(row["id"]), safe=""),
        "need_totp": viewer is not None and viewer.user.mfa_enabled,
        "request_key": _new_key(), "error": None, "info": None,
        "step": _step(status), "qr_url": checkout_path(row["id"]) + "/qr.svg",
    }


# Where the buyer may ask for money back (a refund page, while the money is in escrow or once
# some came back) and take the order to a dispute. One place for both the purchases list and
# the order's own page, so they never offer different things.
REFUND_LINK_STATUSES = frozenset({TradeStatus.WAIT_SELLER_SEND_GOODS, TradeStatus.WAIT_BUYER_CONFIRM_GOODS})
DISPUTE_LINK_STATUSES = REFUND_LINK_STATUSES | {TradeStatus.TRADE_SUCCESS, TradeStatus.TRADE_FINISHED}


def buyer_links(t: dict[str, Any]) -> dict[str, bool]:
    """Which of the refund and dispute links a buyer gets for trade ``t`` (its public shape)."""
    status = TradeStatus(t["status"])
    return {
        "refund": (t["mode"] == Mode.ESCROW.value and status in REFUND_LINK_STATUSES) or bool(t["refunded_amount"]),
        "dispute": status in DISPUTE_LINK_STATUSES or t["dispute_status"] != "none",
    }


def _refunds(conn: Connection, row: Any) -> list[dict[str, Any]]:
    """Where money went back, oldest first: each refund paid out, and a dispute ruling's share
    for the buyer (which is counted in refunded_amount but is not a refund row)."""
    lines: list[dict[str, Any]] = [
        {"what": "refund", "amount": r["amount"], "reason": r["reason"], "at": to_utc(r["succeeded_at"])}
        for r in refund_store.of_trade(conn, row["id"]) if r["status"] == RefundStatus.REFUND_SUCCESS.value]
    dispute = dispute_store.for_trade(conn, row["id"])
    if dispute is not None and dispute["buyer_amount"]:
        lines.append({"what": "ruling", "amount": dispute["buyer_amount"], "reason": dispute["note"],
                      "at": to_utc(dispute["resolved_at"])})
    return sorted(lines, key=lambda line: line["at"])


TIMES = ("pay_by", "ship_by", "confirm_by", "created_at", "shipped_at", "finished_at")


def _available(conn: Connection, viewer: Viewer | None, currency: str) -> int | None:
    if viewer is None:
        return None
    for b in wallet.balances(conn, viewer.user.id):
        if b.currency == currency:
            return b.available
    return 0


def _step(status: TradeStatus) -> int:
    """Where an escrow trade is on the four-step path shown on the page (1-based; 5 = done)."""
    return {TradeStatus.WAIT_BUYER_PAY: 1, TradeStatus.WAIT_SELLER_SEND_GOODS: 2,
            TradeStatus.WAIT_BUYER_CONFIRM_GOODS: 3, TradeStatus.TRADE_FINISHED: 5}.get(status, 0)


def _new_key() -> str:
    return secrets.token_urlsafe(18)


def _page(request: Request, trade_id: str, *, error: Refusal | None = None, info: str | None = None,
          status_code: int = 200) -> Response:
    viewer = signed_in(request)
    row = _row(request, trade_id)
    if row is None:
        return not_found_page(request)
    try:
        party = _party(row, viewer)
    except TrustPayError:
        if viewer is None:  # a paid trade: its buyer signs in and comes back
            return redirect("/login?next=" + quote(checkout_path(trade_id), safe=""))
        return not_found_page(request)
    context = _view(request, row, viewer, party)
    context.update(error=error, info=info)
    return render(request, "trades/checkout.html", context, status_code=status_code)


@router.get("/checkout/{trade_id}", response_class=HTMLResponse)
def checkout_page(request: Request, trade_id: str, notice: str = "") -> Response:
    info = gettext(request, NOTICES[notice]) if notice in NOTICES else None
    return _page(request, trade_id, info=info)


def _refused(request: Request, trade_id: str, code: str, param: str | None, status: int) -> Response:
    if code in ("invalid_state", "not_found"):
        row = _row(request, trade_id)
        if row is None or code == "not_found":
            return not_found_page(request)
        text = gettext(request, NOT_NOW)
        return _page(request, trade_id, error=Refusal(code, text, None, None), status_code=status)
    return _page(request, trade_id, error=refusal(request, code, param), status_code=status)


@router.post("/checkout/{trade_id}/pay", response_class=HTMLResponse)
def pay_submit(request: Request, trade_id: str, csrf_token: FormText = "", payment_password: FormText = "",
               totp_code: FormText = "", request_key: FormText = "") -> Response:
    viewer = form_viewer(request, csrf_token)
    if not isinstance(viewer, Viewer):
        return viewer
    p = auth.platform_of(request)
    origin = get_origin(request)
    stepped_up = False

    def before() -> None:
        nonlocal stepped_up
        stepped_up = service.authorise_pay(p, viewer.user.id, trade_id, payment_password=payment_password or None,
                                           totp_code=totp_code.strip() or None, origin=origin)

    def effect(conn: Connection) -> dict[str, Any]:
        return shape(service.pay(p, conn, trade_id, viewer.user.id, stepped_up=stepped_up))

    try:
        done = run_once(request, viewer, request_key, {"trade": trade_id, "action": "pay"}, effect, before=before)
    except TrustPayError as exc:
        return _refused(request, trade_id, exc.code, exc.param, exc.status)
    except Refused as exc:
        return _refused(request, trade_id, exc.code, exc.param, exc.status)
    notice = "paid" if done["mode"] == Mode.ESCROW.value else "paid_instant"
    return redirect(f"{checkout_path(trade_id)}?notice={notice}")


@router.post("/checkout/{trade_id}/confirm", response_class=HTMLResponse)
def confirm_submit(request: Request, trade_id: str, csrf_token: FormText = "", payment_password: FormText = "",
                   request_key: FormText = "") -> Response:
    viewer = form_viewer(request, csrf_token)
    if not isinstance(viewer, Viewer):
        return viewer
    p = auth.platform_of(request)
    origin = get_origin(request)

    def before() -> None:
        service.authorise_confirm(p, viewer.user.id, trade_id, payment_password=payment_password, origin=origin)

    def effect(conn: Connection) -> dict[str, Any]:
        return shape(service.confirm(p, conn, trade_id, viewer.user.id))

    try:
        run_once(request, viewer, request_key, {"trade": trade_id, "action": "confirm"}, effect, before=before)
    except TrustPayError as exc:
        return _refused(request, trade_id, exc.code, exc.param, exc.status)
    except Refused as exc:
        return _refused(request, trade_id, exc.code, exc.param, exc.status)
    return redirect(f"{checkout_path(trade_id)}?notice=confirmed")


@router.get("/checkout/{trade_id}/qr.svg")
def checkout_qr(request: Request, trade_id: str) -> Response:
    """A QR code of the checkout link (收款码 for this one trade): scanning it opens the page."""
    if _row(request, trade_id) is None:
        return not_found_page(request)
    return qr_svg(str(request.base_url).rstrip("/") + checkout_path(trade_id))


def qr_svg(url: str) -> Response:
    """An SVG QR code of ``url`` (also the collection codes' and donation pages')."""
    image = qrcode.make(url, image_factory=qrcode.image.svg.SvgPathImage, border=2)
    out = io.BytesIO()
    image.save(out)
    return Response(out.getvalue(), media_type="image/svg+xml", headers={"Cache-Control": "private, max-age=3600"})


def _purchase(conn: Connection, row: Any, open_request: str | None) -> dict[str, Any]:
    """One line of "my purchases"; ``open_request``: the status of the buyer's refund
    request still waiting on someone, if any."""
    t = shape(row)
    return {"t": t, "merchant": service.merchant_name(conn, row["merchant_id"]),
            "status_label": BUYER_STATUS_LABELS[TradeStatus(row["status"])], "created": to_utc(row["created_at"]),
            "to_confirm": row["status"] == TradeStatus.WAIT_BUYER_CONFIRM_GOODS,
            "links": buyer_links(t),  # the order page offers the same
            # The buyer sees what the merchant's list shows: an open request, and where it stands.
            "refund_label": REFUND_LABELS[RefundStatus(open_request)] if open_request else None}


@router.get("/purchases", response_class=HTMLResponse)
def purchases_page(request: Request) -> Response:
    """我的购买: the viewer's trades as a buyer, newest first, those awaiting them on top."""
    viewer = signed_in(request)
    if viewer is None:
        return redirect("/login?next=%2Fpurchases")
    p = auth.platform_of(request)
    with p.db.transaction(write=False) as conn:
        rows = store.bought_by(conn, viewer.user.id, limit=PURCHASES_SHOWN)
        asked = refund_store.open_requests_of_buyer(conn, viewer.user.id)
        items = [_purchase(conn, r, asked.get(r["id"])) for r in rows]
    items.sort(key=lambda i: not i["to_confirm"])  # stable: newest first within each group
    return render(request, "trades/purchases.html", {"viewer": viewer, "items": items})
