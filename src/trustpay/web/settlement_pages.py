"""Merchant dashboard: settlements (/merchant/settlements).

The batches that paid finished trade money out to the merchant's settlement
card (status, amounts, the CSV report), and what still waits in the pending
settlement account with the date of the next payout. Same services as
``/v1/settlements``; only merchant users see it, and only their own batches.
"""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, Response

from trustpay.errors import NotFound
from trustpay.merchants import service as merchants
from trustpay.merchants import settlement
from trustpay.merchants import settlement_store as store
from trustpay.web import auth
from trustpay.web.account import _
from trustpay.web.auth import Viewer
from trustpay.web.merchant_pages import SETTLEMENT, _context, _merchant
from trustpay.web.notfound import not_found_page
from trustpay.web.templating import render

router = APIRouter(include_in_schema=False)
SETTLEMENTS = "/merchant/settlements"
SHOWN = 50
STATUS_LABELS = {"pending": _("Paying out"), "succeeded": _("Paid"), "failed": _("Failed")}


@router.get(SETTLEMENTS, response_class=HTMLResponse)
def settlements_page(request: Request) -> Response:
    viewer = _merchant(request)
    if not isinstance(viewer, Viewer):
        return viewer
    p = auth.platform_of(request)
    with p.db.transaction(write=False) as conn:
        batches, more = store.page(conn, viewer.user.id, limit=SHOWN, starting_after=None)
        waiting = settlement.outlook(p, conn, viewer.user.id)
        has_card = merchants.settlement_card_id(conn, viewer.user.id) is not None
    return render(request, "merchant/settlements.html", _context(
        request, viewer, SETTLEMENTS, batches=batches, more=more, waiting=waiting, has_card=has_card,
        status_labels=STATUS_LABELS, settings_href=SETTLEMENT))


@router.get(SETTLEMENTS + "/{settlement_id}/report.csv")
def settlement_report(request: Request, settlement_id: str) -> Response:
    viewer = _merchant(request)
    if not isinstance(viewer, Viewer):
        return viewer
    p = auth.platform_of(request)
    try:
        with p.db.transaction(write=False) as conn:
            body = settlement.report(conn, settlement_id, viewer.user.id)
    except NotFound:
        return not_found_page(request)
    return Response(body, media_type="text/csv; charset=utf-8", headers={
        "Content-Disposition": f'attachment; filename="{settlement_id}.csv"'})
