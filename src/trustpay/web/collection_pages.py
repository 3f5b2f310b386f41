"""The payer's pages of collection codes (/pay/{id}, 收款码) and donation pages
(/donate/{id}, 网上募捐), their QR codes, and the merchant dashboard tab that
creates and disables them (/merchant/collect).

Paying is ``POST /v1/collection-codes/{id}/pay`` as a form: the same checks in
the same order (code active, amount, payment password, risk step-up), then one
instant trade made and paid at once; a one-time form key stands in for the
Idempotency-Key. A paid code shows its trade's checkout page as the receipt; a
donation goes back to its page, where the total now includes it.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Form, Request
from fastapi.responses import HTMLResponse, Response
from sqlalchemy import Connection

from trustpay.api.deps import get_origin
from trustpay.errors import TrustPayError
from trustpay.identity.model import UserKind
from trustpay.money import Money, exponent
from trustpay.trades import collection
from trustpay.trades import service as trade_service
from trustpay.trades.collection import NewCode, NewDonationPage
from trustpay.trades.views import checkout_path
from trustpay.wallet import store as wallet_store
from trustpay.wallet.transfers import mask_email
from trustpay.web import auth
from trustpay.web.account import FormText, _, form_viewer, redirect, signed_in
from trustpay.web.auth import Viewer
from trustpay.web.checkout import _available, _new_key, qr_svg
from trustpay.web.merchant_pages import _context, _merchant
from trustpay.web.notfound import not_found_page
from trustpay.web.templating import gettext, render
from trustpay.web.wallet_home import Refusal, Refused, refusal, run_once

router = APIRouter(include_in_schema=False)
StoryText = Annotated[str, Form(max_length=8000)]
COLLECT = "/merchant/collect"
DISABLED = _("This code has been switched off by its merchant and takes no more payments. Ask the merchant "
             "for a current one.")
PAGE_DISABLED = _("This fundraiser has ended and takes no more donations. Thank you for your interest.")
THANKS = _("Thank you! Your donation has been paid to the organiser.")
MESSAGES = {
    "code_created": _("The collection code is ready. Print its QR code or share its link."),
    "page_created": _("The donation page is ready. Share its link or QR code."),
    "disabled": _("Switched off: it takes no more payments."),
}
FORM_ERRORS = {
    "label": _("Enter a label of 1 to 80 characters on one line."),
    "title": _("Enter a title of 1 to 120 characters on one line."),
    "story": _("Tell your story in 1 to 4000 characters."),
    "amount": _("Enter an amount greater than zero, or leave it empty."),
    "goal": _("Enter a goal greater than zero, or leave it empty."),
    "suggested_amounts": _("Enter up to 6 suggested amounts, separated by commas, each greater than zero."),
    "currency": _("Choose a currency."),
}
NO_DECIMALS = _("{currency} amounts have no decimals: enter a whole number, such as 100.")
NOTE_TOO_LONG = _("Keep the message to 200 characters on one line.")
OWN_CODE = _("This is your own code: you cannot pay yourself.")


# ------------------------------------------------------------------ payer side
def _source(request: Request, source_id: str) -> Any | None:
    p = auth.platform_of(request)
    try:
        with p.db.transaction(write=False) as conn:
            if source_id.startswith("qrc_"):
                return collection.code(conn, source_id)
            if source_id.startswith("don_"):
                return collection.page(conn, source_id)
    except TrustPayError:
        return None
    return None


def _donor(conn: Connection, m: collection.Message) -> str | None:
    if m.payer_id is None:
        return None
    user = wallet_store.user_by(conn, user_id=m.payer_id)
    return None if user is None else str(user.name or mask_email(user.email))


def _render(request: Request, row: Any, *, error: Refusal | None = None, info: str | None = None,
            form: dict[str, str] | None = None, status_code: int = 200) -> Response:
    p = auth.platform_of(request)
    viewer = signed_in(request)
    donation = row["id"].startswith("don_")
    with p.db.transaction(write=False) as conn:
        merchant = trade_service.merchant_name(conn, row["merchant_id"])
        available = _available(conn, viewer, row["currency"])
        totals = collection.totals(conn, row["id"]) if donation else None
        messages = ([{"name": _donor(conn, m), "amount": m.amount, "note": m.note, "at": m.at}
                     for m in collection.latest_messages(conn, row["id"])]
                    if donation and row["public"] else [])
    path = ("/donate/" if donation else "/pay/") + row["id"]
    active = row["status"] == collection.ACTIVE
    if not active and error is None:
        error = Refusal("invalid_state", gettext(request, PAGE_DISABLED if donation else DISABLED), None, None)
        status_code = 409
    return render(request, "trades/donate.html" if donation else "trades/collect.html", {
        "viewer": viewer, "c": row, "merchant": merchant, "available": available, "active": active,
        "can_pay": active and viewer is not None and viewer.user.id != row["merchant_id"],
        "own": viewer is not None and viewer.user.id == row["merchant_id"],
        "fixed": None if donation else row["fixed_amount"], "path": path, "qr_url": path + "/qr.svg",
        "login_url": "/login?next=" + path.replace("/", "%2F"), "need_totp": viewer is not None and
        viewer.user.mfa_enabled, "request_key": _new_key(), "error": error, "info": info,
        "form": form or {"amount": "", "note": ""}, "totals": totals, "messages": messages,
        "suggested": [{"amount": a, "major": Money.of(a, row["currency"]).to_major()}
                      for a in (collection.suggested(row) if donation else [])],
        "story": row["story"] if donation else None,
    }, status_code=status_code)


def _page(request: Request, source_id: str, notice: str = "") -> Response:
    row = _source(request, source_id)
    if row is None:
        return not_found_page(request)
    return _render(request, row, info=gettext(request, THANKS) if notice == "thanks" else None)


def _refusal(request: Request, code: str, param: str | None) -> Refusal:
    if param == "note":
        return Refusal(code, gettext(request, NOTE_TOO_LONG), None, None)
    if param == "id" and code == "invalid_request":
        return Refusal(code, gettext(request, OWN_CODE), None, None)
    return refusal(request, code, param)


def _no_decimals(request: Request, text: str, currency: str) -> str | None:
    """The words for "100.5" in a currency without minor units (JPY, KRW…): the generic
    "greater than zero" would send the payer or merchant looking for the wrong mistake."""
    try:
        whole = exponent(currency.upper()) == 0
    except TrustPayError:
        return None
    if whole and "." in text:
        return gettext(request, NO_DECIMALS).format(currency=currency.upper())
    return None


def _submit(request: Request, source_id: str, *, csrf_token: str, amount: str, note: str, anonymous: str,
            payment_password: str, totp_code: str, request_key: str) -> Response:
    viewer = form_viewer(request, csrf_token)
    if not isinstance(viewer, Viewer):
        return viewer
    row = _source(request, source_id)
    if row is None:
        return not_found_page(request)
    p, origin = auth.platform_of(request), get_origin(request)
    form = {"amount": amount, "note": note}
    try:
        minor: int | None = None
        if amount.strip() or row["id"].startswith("don_") or row["fixed_amount"] is None:
            minor = Money.parse(amount.strip().replace(",", ""), row["currency"],
                                max_amount=p.settings.max_amount).amount
    except (TrustPayError, ValueError):
        words = _no_decimals(request, amount, row["currency"])
        shown = refusal(request, "invalid_amount", "amount") if words is None else Refusal(
            "invalid_amount", words, None, None)
        return _render(request, row, error=shown, form=form, status_code=400)
    hidden = anonymous == "on"
    stepped_up = False

    def before() -> None:
        nonlocal stepped_up
        stepped_up = collection.authorise(p, viewer.user.id, source_id, minor,
                                          payment_password=payment_password or None,
                                          totp_code=totp_code.strip() or None, note=note, origin=origin)

    def effect(conn: Connection) -> dict[str, Any]:
        return collection.pay(p, conn, source_id, viewer.user.id, minor, note=note, anonymous=hidden,
                              stepped_up=stepped_up)

    what = {"source": source_id, "amount": minor, "note": note, "anonymous": hidden}
    try:
        done = run_once(request, viewer, request_key, what, effect, before=before)
    except TrustPayError as exc:
        if exc.code == "invalid_state":
            return _render(request, _source(request, source_id) or row, status_code=409)
        return _render(request, row, error=_refusal(request, exc.code, exc.param), form=form, status_code=exc.status)
    except Refused as exc:
        return _render(request, row, error=_refusal(request, exc.code, exc.param), form=form, status_code=exc.status)
    if source_id.startswith("don_"):
        return redirect(f"/donate/{source_id}?notice=thanks")
    return redirect(f"{checkout_path(done['trade']['id'])}?notice=paid_instant")


def _qr(request: Request, source_id: str, path: str) -> Response:
    if _source(request, source_id) is None:
        return not_found_page(request)
    return qr_svg(str(request.base_url).rstrip("/") + path)


@router.get("/pay/{code_id}", response_class=HTMLResponse)
def code_page(request: Request, code_id: str) -> Response:
    return _page(request, code_id) if code_id.startswith("qrc_") else not_found_page(request)


@router.post("/pay/{code_id}", response_class=HTMLResponse)
def code_pay(request: Request, code_id: str, csrf_token: FormText = "", amount: FormText = "", note: FormText = "",
             payment_password: FormText = "", totp_code: FormText = "", request_key: FormText = "") -> Response:
    if not code_id.startswith("qrc_"):
        return not_found_page(request)
    return _submit(request, code_id, csrf_token=csrf_token, amount=amount, note=note, anonymous="",
                   payment_password=payment_password, totp_code=totp_code, request_key=request_key)


@router.get("/pay/{code_id}/qr.svg")
def code_qr(request: Request, code_id: str) -> Response:
    """The printable 收款码: a QR code of the code's page."""
    return _qr(request, code_id, f"/pay/{code_id}") if code_id.startswith("qrc_") else not_found_page(request)


@router.get("/donate/{page_id}", response_class=HTMLResponse)
def donation_page(request: Request, page_id: str, notice: str = "") -> Response:
    return _page(request, page_id, notice) if page_id.startswith("don_") else not_found_page(request)


@router.post("/donate/{page_id}", response_class=HTMLResponse)
def donate(request: Request, page_id: str, csrf_token: FormText = "", amount: FormText = "", note: FormText = "",
           anonymous: FormText = "", payment_password: FormText = "", totp_code: FormText = "",
           request_key: FormText = "") -> Response:
    if not page_id.startswith("don_"):
        return not_found_page(request)
    return _submit(request, page_id, csrf_token=csrf_token, amount=amount, note=note, anonymous=anonymous,
                   payment_password=payment_password, totp_code=totp_code, request_key=request_key)


@router.get("/donate/{page_id}/qr.svg")
def donation_qr(request: Request, page_id: str) -> Response:
    return _qr(request, page_id, f"/donate/{page_id}") if page_id.startswith("don_") else not_found_page(request)


# ------------------------------------------------------------------ merchant tab
def _dashboard(request: Request, viewer: Viewer, *, info: str | None = None, error: str | None = None,
               status_code: int = 200) -> Response:
    p = auth.platform_of(request)
    with p.db.transaction(write=False) as conn:
        codes = collection.codes_of(conn, viewer.user.id)
        pages = [{"row": r, "totals": collection.totals(conn, r["id"])}
                 for r in collection.pages_of(conn, viewer.user.id)]
    context = _context(request, viewer, COLLECT, codes=codes, pages=pages)
    context.update(info=info, error=error)
    return render(request, "merchant/collect.html", context, status_code=status_code)


def _merchant_form(request: Request, csrf_token: str) -> Viewer | Response:
    viewer = form_viewer(request, csrf_token)
    if isinstance(viewer, Viewer) and viewer.user.kind is not UserKind.MERCHANT:
        return not_found_page(request)
    return viewer


def _optional_amount(p: Any, text: str, currency: str) -> int | None:
    text = text.strip().replace(",", "")
    return None if not text else Money.parse(text, currency, max_amount=p.settings.max_amount).amount


@router.get(COLLECT, response_class=HTMLResponse)
def collect_tab(request: Request, notice: str = "") -> Response:
    viewer = _merchant(request)
    if not isinstance(viewer, Viewer):
        return viewer
    return _dashboard(request, viewer, info=gettext(request, MESSAGES[notice]) if notice in MESSAGES else None)


@router.post(COLLECT + "/codes", response_class=HTMLResponse)
def create_code(request: Request, csrf_token: FormText = "", label: FormText = "", currency: FormText = "",
                amount: FormText = "") -> Response:
    viewer = _merchant_form(request, csrf_token)
    if not isinstance(viewer, Viewer):
        return viewer
    p = auth.platform_of(request)
    try:
        fixed = _optional_amount(p, amount, currency)
        p.db.run(lambda conn: collection.create_code(p, conn, viewer.user.id, NewCode(label, currency, fixed)))
    except (TrustPayError, ValueError) as exc:
        param = getattr(exc, "param", None) or "amount"
        words = _no_decimals(request, amount, currency) if param == "amount" else None
        return _dashboard(request, viewer, status_code=400,
                          error=words or gettext(request, FORM_ERRORS.get(param, FORM_ERRORS["amount"])))
    return redirect(COLLECT + "?notice=code_created")


@router.post(COLLECT + "/donations", response_class=HTMLResponse)
def create_donation_page(request: Request, csrf_token: FormText = "", title: FormText = "", currency: FormText = "",
                         goal: FormText = "", suggested: FormText = "", public: FormText = "",
                         story: StoryText = "") -> Response:
    viewer = _merchant_form(request, csrf_token)
    if not isinstance(viewer, Viewer):
        return viewer
    p = auth.platform_of(request)
    param = "goal"
    try:
        target = _optional_amount(p, goal, currency)
        param = "suggested_amounts"
        amounts = tuple(a for a in (_optional_amount(p, s, currency) for s in suggested.split(",")) if a is not None)
        param = "story"
        new = NewDonationPage(title=title, story=story[:collection.STORY_MAX + 1], currency=currency, goal=target,
                              suggested_amounts=amounts, public=public == "on")
        p.db.run(lambda conn: collection.create_page(p, conn, viewer.user.id, new))
    except (TrustPayError, ValueError) as exc:
        param = getattr(exc, "param", None) or param
        words = _no_decimals(request, {"goal": goal, "suggested_amounts": suggested}.get(param, ""), currency)
        return _dashboard(request, viewer, status_code=400,
                          error=words or gettext(request, FORM_ERRORS.get(param, FORM_ERRORS["story"])))
    return redirect(COLLECT + "?notice=page_created")


@router.post(COLLECT + "/{object_id}/disable", response_class=HTMLResponse)
def disable(request: Request, object_id: str, csrf_token: FormText = "") -> Response:
    viewer = _merchant_form(request, csrf_token)
    if not isinstance(viewer, Viewer):
        return viewer
    p = auth.platform_of(request)
    try:
        if object_id.startswith("qrc_"):
            p.db.run(lambda conn: collection.disable_code(p, conn, object_id, viewer.user.id))
        else:
            p.db.run(lambda conn: collection.disable_page(p, conn, object_id, viewer.user.id))
    except TrustPayError:
        return not_found_page(request)  # not theirs, or no such code
    return redirect(COLLECT + "?notice=disabled")
