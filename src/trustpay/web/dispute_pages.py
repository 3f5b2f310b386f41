"""Dispute pages (买家保障): one page per trade for its buyer and its merchant to
open a dispute with evidence (words and a file) and follow it; the ops queue
with each dispute's timeline and the ruling form.

Same services and rules as ``/v1/trades/{id}/disputes``, ``/v1/disputes/…`` and
``/v1/ops/disputes/…``; anyone else gets the ordinary 404 page.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, File, Request, UploadFile
from fastapi.responses import HTMLResponse, Response

from trustpay.api.deps import get_origin
from trustpay.errors import InvalidAmount, NotFound, TrustPayError
from trustpay.identity.model import UserKind
from trustpay.money import Money
from trustpay.trades import dispute_store, disputes, service
from trustpay.trades.dispute_model import check_file
from trustpay.trades.disputes import EvidenceIn
from trustpay.trades.model import Party
from trustpay.trades.views import shape
from trustpay.web import auth
from trustpay.web.account import FormText, _, form_viewer, login_redirect, redirect, signed_in, signed_in_ops
from trustpay.web.auth import Viewer
from trustpay.web.notfound import not_found_page
from trustpay.web.templating import gettext, render
from trustpay.web.trade_labels import status_label

router = APIRouter(include_in_schema=False)
OPS_PAGE = "/ops/disputes"
SHOWN = 50
Upload = Annotated[UploadFile | None, File()]

NOTICES = {
    "opened": _("The dispute is open. The money is frozen until TrustPay rules; add evidence below."),
    "added": _("Thanks: your evidence was added."),
    "resolved": _("The dispute is resolved; both sides were told and the ruling is in the audit log."),
}
ERRORS = {
    "file_too_large": _("The file is too large (at most 5 MB)."),
    "unsupported_file_type": _("Only PNG, JPEG, PDF and plain-text files are accepted."),
    "empty_file": _("The file is empty."),
    "invalid_split": _("The two amounts must add up to the disputed amount."),
    "invalid_amount": _("Enter each amount as a number such as 12.50, or 0 when that side gets nothing."),
    "invalid_state": _("This cannot be done now: the order or the dispute has moved on."),
    "words": _("Say what went wrong (one line for the reason)."),
    "evidence": _("Write what happened or choose a file: there was nothing to add."),
    "evidence_text": _("“What happened” is too long."),
    "note": _("Write the note: it is sent to the buyer and the merchant with the ruling."),
    "unexpected": _("Something went wrong on our side. Nothing was changed; please try again."),
}
EVENT_LABELS = {
    "trade.created": _("Order created"),
    "trade.paid": _("Paid"),
    "trade.shipped": _("Shipped"),
    "trade.finished": _("Finished"),
    "refund.requested": _("Refund asked for"),
    "refund.created": _("Refund issued"),
    "refund.succeeded": _("Refunded"),
    "refund.closed": _("Refund request closed"),
    "dispute.opened": _("Dispute opened"),
    "evidence.added": _("Evidence added"),
    "dispute.resolved": _("Ruling"),
}
PARTY_LABELS = {"buyer": _("Buyer"), "merchant": _("Merchant")}


def _error(request: Request, exc: TrustPayError) -> str:
    """The message naming the field that was refused: the opening form's reason, the
    evidence form's words or file, the ruling's note."""
    key, param = exc.code, exc.param or ""
    if param == "reason":
        key = "words"
    elif param == "note":
        key = "note"
    elif param == "evidence":  # neither words nor a file
        key = "evidence"
    elif param.startswith("evidence"):
        key = "evidence_text"
    return gettext(request, ERRORS.get(key, ERRORS["unexpected"]))


def _read(file: UploadFile | None, limit: int) -> tuple[str, bytes] | None:
    """The uploaded file (one byte past the limit at most), or None when none was chosen."""
    if file is None or not file.filename:
        return None
    return file.filename, file.file.read(limit + 1)


# ------------------------------------------------------------------ the parties' page
def _page(request: Request, viewer: Viewer, trade_id: str, *, info: str | None = None, error: str | None = None,
          form: dict[str, str] | None = None, status_code: int = 200) -> Response:
    """``form``: what was typed into a refused form, shown again (a file input cannot be refilled)."""
    p = auth.platform_of(request)
    try:
        with p.db.transaction(write=False) as conn:
            row = service.get_for(conn, trade_id, viewer.user.id)
            if viewer.user.id not in (row["buyer_id"], row["merchant_id"]):
                return not_found_page(request)
            dispute = dispute_store.for_trade(conn, trade_id)
            evidence = dispute_store.evidence_of(conn, dispute["id"]) if dispute is not None else []
            merchant = service.merchant_name(conn, row["merchant_id"])
            # The form only where opening would be accepted (not past the protection period).
            can_open = dispute is None and disputes.may_open(p, conn, row)
    except TrustPayError:
        return not_found_page(request)
    reader = Party.BUYER if viewer.user.id == row["buyer_id"] else Party.MERCHANT
    d = None if dispute is None else disputes.shape(dispute, evidence)
    if d is not None:
        d["opened"], d["resolved"] = _when(d["created_at"]), _when(d["resolved_at"])
        for e in d["evidence"]:
            e["added"] = _when(e["created_at"])
    return render(request, "trades/dispute.html", {
        "viewer": viewer, "t": shape(row), "merchant": merchant, "is_buyer": reader is Party.BUYER,
        "status_label": status_label(row["status"], reader), "d": d, "can_open": can_open,
        "party_labels": PARTY_LABELS, "info": info, "error": error, "form": form or {},
        "protection_days": p.settings.dispute_protection_days,
        "back": "/purchases" if viewer.user.id == row["buyer_id"] else f"/merchant/trades/{trade_id}",
    }, status_code=status_code)


@router.get("/trades/{trade_id}/dispute", response_class=HTMLResponse)
def dispute_page(request: Request, trade_id: str, notice: str = "") -> Response:
    viewer = signed_in(request)
    if viewer is None:
        return login_redirect()
    return _page(request, viewer, trade_id, info=gettext(request, NOTICES[notice]) if notice in NOTICES else None)


@router.post("/trades/{trade_id}/dispute", response_class=HTMLResponse)
def open_submit(request: Request, trade_id: str, csrf_token: FormText = "", reason: FormText = "",
                text: FormText = "", file: Upload = None) -> Response:
    viewer = form_viewer(request, csrf_token)
    if not isinstance(viewer, Viewer):
        return viewer
    p = auth.platform_of(request)
    upload = _read(file, p.settings.dispute_evidence_max_bytes)
    evidence = [EvidenceIn("text", text=text)] if text.strip() else []
    try:
        if upload is not None:
            check_file(upload[1], max_bytes=p.settings.dispute_evidence_max_bytes)  # refuse before opening

        def work(conn: Any) -> None:
            row = disputes.open_dispute(p, conn, trade_id, viewer.user.id, reason=reason, evidence=evidence)
            if upload is not None:
                disputes.add_file(p, conn, row["id"], viewer.user.id, file_name=upload[0], data=upload[1])
        p.db.run(work)
    except NotFound:
        return not_found_page(request)
    except TrustPayError as exc:
        return _page(request, viewer, trade_id, error=_error(request, exc), form={"reason": reason, "text": text},
                     status_code=exc.status)
    return redirect(f"/trades/{trade_id}/dispute?notice=opened")


@router.post("/trades/{trade_id}/dispute/evidence", response_class=HTMLResponse)
def evidence_submit(request: Request, trade_id: str, csrf_token: FormText = "", text: FormText = "",
                    file: Upload = None) -> Response:
    viewer = form_viewer(request, csrf_token)
    if not isinstance(viewer, Viewer):
        return viewer
    p = auth.platform_of(request)
    upload = _read(file, p.settings.dispute_evidence_max_bytes)

    def work(conn: Any) -> None:
        dispute = dispute_store.for_trade(conn, trade_id)
        if dispute is None:
            raise NotFound("no dispute")
        if text.strip():
            disputes.add_evidence(p, conn, dispute["id"], viewer.user.id, EvidenceIn("text", text=text))
        if upload is not None:
            disputes.add_file(p, conn, dispute["id"], viewer.user.id, file_name=upload[0], data=upload[1])
    try:
        if upload is None and not text.strip():
            raise TrustPayError("nothing to add", param="evidence")
        p.db.run(work)
    except NotFound:
        return not_found_page(request)
    except TrustPayError as exc:
        return _page(request, viewer, trade_id, error=_error(request, exc), form={"text": text},
                     status_code=exc.status)
    return redirect(f"/trades/{trade_id}/dispute?notice=added")


@router.get("/disputes/{dispute_id}/evidence/{evidence_id}")
def evidence_download(request: Request, dispute_id: str, evidence_id: str) -> Response:
    viewer = signed_in(request)
    if viewer is None:
        return login_redirect()
    p = auth.platform_of(request)
    try:
        row = p.db.run(lambda conn: disputes.evidence_file(conn, dispute_id, evidence_id, viewer.user.id),
                       write=False)
    except TrustPayError:
        return not_found_page(request)
    safe = "".join(c for c in row["file_name"] if c.isascii() and (c.isalnum() or c in "._-")) or "evidence"
    return Response(bytes(row["content"]), media_type=row["content_type"], headers={
        "Content-Disposition": f'attachment; filename="{safe}"', "X-Content-Type-Options": "nosniff",
        "Content-Security-Policy": "default-src 'none'; sandbox", "Cache-Control": "private, no-store"})


# ------------------------------------------------------------------ ops
def _ops_page(request: Request, viewer: Viewer, *, info: str | None = None, error: str | None = None,
              failed_id: str | None = None, form: dict[str, str] | None = None, status_code: int = 200) -> Response:
    p = auth.platform_of(request)
    with p.db.transaction(write=False) as conn:
        items = disputes.queue(conn, viewer.user, status=None, limit=SHOWN)
    if failed_id not in {item["id"] for item in items}:
        failed_id = None  # not on the page (past the first SHOWN): the error goes on top instead
    for item in items:
        # The shapes carry RFC 3339 text; the page formats times in the reader's language.
        item["created"] = _when(item["created_at"])
        item["trade_label"] = status_label(item["trade_detail"]["status"], None)
        for e in item["timeline"]:
            e["when"] = _when(e["at"])
    return render(request, "ops_disputes.html", {
        "viewer": viewer, "items": items, "labels": EVENT_LABELS, "party_labels": PARTY_LABELS, "info": info,
        "error": error, "failed_id": failed_id, "form": form or {}}, status_code=status_code)


@router.get(OPS_PAGE, response_class=HTMLResponse)
def ops_queue_page(request: Request, notice: str = "") -> Response:
    if signed_in(request) is None:
        return login_redirect()
    viewer = signed_in_ops(request)
    if viewer is None:
        return not_found_page(request)
    return _ops_page(request, viewer, info=gettext(request, NOTICES["resolved"]) if notice == "resolved" else None)


@router.post(OPS_PAGE + "/{dispute_id}/resolve", response_class=HTMLResponse)
def resolve_submit(request: Request, dispute_id: str, csrf_token: FormText = "", buyer_amount: FormText = "",
                   seller_amount: FormText = "", note: FormText = "") -> Response:
    viewer = form_viewer(request, csrf_token)
    if not isinstance(viewer, Viewer):
        return viewer
    if viewer.user.kind is not UserKind.OPS:
        return not_found_page(request)
    p, origin = auth.platform_of(request), get_origin(request)
    form = {"buyer_amount": buyer_amount, "seller_amount": seller_amount, "note": note}

    def work(conn: Any) -> None:
        currency = dispute_store.get(conn, dispute_id)["currency"]
        disputes.resolve(p, conn, dispute_id, viewer.user, buyer_amount=_minor(buyer_amount, currency),
                         seller_amount=_minor(seller_amount, currency), note=note, origin=origin)
    try:
        p.db.run(work)
    except NotFound:
        return not_found_page(request)
    except TrustPayError as exc:
        return _ops_page(request, viewer, error=_error(request, exc), failed_id=dispute_id, form=form,
                         status_code=exc.status)
    return redirect(OPS_PAGE + "?notice=resolved")


def _when(rfc3339: str | None) -> datetime | None:
    """An instant of a public shape (RFC 3339 text) back as a datetime, for ``timestamp()``."""
    return None if rfc3339 is None else datetime.fromisoformat(rfc3339.replace("Z", "+00:00"))


def _minor(text: str, currency: str) -> int:
    """A side of a ruling in minor units: 0 is a ruling too (all to the other side);
    whether the two add up is the service's rule."""
    try:
        return Money.parse(text.strip(), currency, allow_zero=True).amount
    except (InvalidAmount, ValueError):
        raise InvalidAmount("not an amount", param="amount") from None
