"""Wallet pages: the statement (交易管理) with filters and CSV export, and a
line's receipt with its "verify" view.

Same data and rules as ``GET /v1/transactions`` and its receipts (the
statement and receipt modules are called directly); the verify view checks
the receipt with the very function ``trustpay receipt verify`` uses, then
compares its root with the digest published right now.
"""

from __future__ import annotations

import json
from datetime import UTC, date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, Response

from trustpay.api.transactions import csv_response
from trustpay.errors import TrustPayError
from trustpay.ledger.model import AccountKind
from trustpay.wallet import receipt as receipts
from trustpay.wallet import statement
from trustpay.wallet.statement import Filters, LineType
from trustpay.web import auth, wallet_home
from trustpay.web.account import _, login_redirect, signed_in
from trustpay.web.auth import Viewer
from trustpay.web.i18n import zone_label
from trustpay.web.notfound import not_found_page
from trustpay.web.templating import gettext, render

router = APIRouter(include_in_schema=False)
# Wallet home, top-up, withdraw, transfer and settings live in their own module.
router.include_router(wallet_home.router)
PAGE_SIZE = 20


TYPE_LABELS = {
    LineType.TOPUP: _("Top-up"),
    LineType.WITHDRAWAL: _("Withdrawal"),
    LineType.WITHDRAWAL_FEE: _("Withdrawal fee"),
    LineType.TRANSFER_IN: _("Transfer received"),
    LineType.TRANSFER_OUT: _("Transfer sent"),
    LineType.PAYMENT: _("Payment"),
    LineType.SALE: _("Sale"),
    LineType.REFUND: _("Refund"),
    LineType.REVERSAL: _("Reversal"),
    LineType.ADJUSTMENT: _("Adjustment"),
}

# What each receipt check proves, in words (trustpay.wallet.receipt names them).
CHECK_LABELS = {
    "entry hash": _("The entry's hash matches its contents and the entry before it"),
    "line id": _("The line belongs to this entry and your wallet"),
    "amount": _("The amount is exactly what the entry moved in your wallet"),
    "reference": _("The reference is the entry's"),
    "memo": _("The note is the entry's"),
    "created_at": _("The time is the entry's"),
    "type": _("The type fits the entry"),
    "leaf index": _("The entry sits at its place in the journal"),
    "inclusion proof": _("The inclusion proof leads to the ledger's Merkle root"),
    "published digest": _("That root is the one published now"),
    "receipt format": _("The receipt is complete and well-formed"),
}


# Memos the platform itself writes into the journal (every ``memo=`` under src/ that can land
# on a wallet's balance), shown to people as labels in their language. The journal keeps the
# text it hashed (the API and the receipt file carry it unchanged); a memo someone typed — a
# transfer's, a trade's subject — is shown as typed, so only the line types the platform
# writes these on are matched, and never a transfer or a payment.
_EXACT_MEMOS: dict[tuple[LineType, str], str] = {
    (LineType.TOPUP, "top-up"): _("Top-up from your bank card"),
    (LineType.WITHDRAWAL, "withdrawal"): _("Withdrawal to your bank card"),
    (LineType.WITHDRAWAL, "paid out by the bank"): _("Paid out to your bank card"),
    (LineType.WITHDRAWAL, "bank payout failed"): _("The bank could not pay this out"),
    (LineType.WITHDRAWAL_FEE, "withdrawal fee"): _("Withdrawal fee"),
    (LineType.WITHDRAWAL_FEE, "paid out by the bank"): _("Fee for a withdrawal paid out to your bank card"),
    (LineType.WITHDRAWAL_FEE, "bank payout failed"): _("The bank could not pay this out"),
}
# (line type, reference prefix or None, memo prefix, label): the rest of the memo (a trade's
# subject, as its merchant typed it) fills the label's %(subject)s.
_PREFIXED_MEMOS: tuple[tuple[LineType, str | None, str, str], ...] = (
    (LineType.ADJUSTMENT, "demo:opening:", "demo opening balance", _("Opening balance (demo data)")),
    (LineType.ADJUSTMENT, "rex_", "reconciliation adjustment (",
     _("Correction after reconciliation with the bank")),
    (LineType.REVERSAL, None, "reversal of txn_", _("Reversal of an earlier entry")),
    (LineType.REFUND, "trd_", "refund: not shipped in time — ", _("Refund: not shipped in time — %(subject)s")),
    (LineType.REFUND, "trd_", "refund: ", _("Refund: %(subject)s")),
    (LineType.REFUND, "trd_", "dispute ruling — ", _("Refund after a dispute decision — %(subject)s")),
)


def shown_memo(request: Request, type: LineType, reference: str | None, memo: str) -> str:
    """The memo of a line as a person reads it: a platform-written one translated, any other as typed."""
    label = _EXACT_MEMOS.get((type, memo))
    if label is not None:
        return gettext(request, label)
    for line_type, ref_prefix, memo_prefix, text in _PREFIXED_MEMOS:
        if type is line_type and memo.startswith(memo_prefix) and (
                ref_prefix is None or (reference or "").startswith(ref_prefix)):
            if "%(subject)s" not in text:
                return gettext(request, text)
            return gettext(request, text) % {"subject": memo[len(memo_prefix):]}
    return memo


def _day(value: str) -> date | None:
    try:
        return date.fromisoformat(value) if value else None
    except ValueError:
        return None


def _filters(type: str, start: str, end: str, zone: str) -> tuple[Filters, dict[str, str]]:
    """Filters from the form (``end`` is inclusive); unusable values are dropped and shown as
    dropped, never an error page.

    The days are days in the display time zone ``zone``, midnight to midnight there: the
    page shows each line's time in that zone, so "from 4 Dec" keeps exactly the lines the
    page dates 4 Dec (and the daily limits count the same days). The page's CSV link takes
    the same days; the CSV's own timestamps, like the API's ``created_gte``/``created_lt``
    (instants), stay UTC."""
    kind = type if type in {t.value for t in LineType} else ""
    first, last = _day(start), _day(end)
    tz = ZoneInfo(zone)
    return Filters(
        type=LineType(kind) if kind else None,
        created_gte=_midnight(first, tz) if first else None,
        created_lt=_midnight(last + timedelta(days=1), tz) if last else None,
    ), {"type": kind, "start": first.isoformat() if first else "", "end": last.isoformat() if last else ""}


def _midnight(day: date, tz: ZoneInfo) -> datetime:
    """The instant (UTC) ``day`` begins in ``tz``."""
    return datetime.combine(day, time(), tz).astimezone(UTC)


def _query(form: dict[str, str], **extra: str) -> str:
    from urllib.parse import urlencode

    return urlencode({k: v for k, v in {**form, **extra}.items() if v})


def _balances(request: Request, viewer: Viewer) -> list[dict[str, Any]]:
    p = auth.platform_of(request)
    with p.db.transaction(write=False) as conn:
        accounts = [a for a in p.book.accounts_of(conn, viewer.user.id) if a.kind == AccountKind.WALLET]
    return [{"currency": a.currency, "available": a.available, "held": a.pending_out,
             "pending_in": a.pending_in} for a in accounts]


@router.get("/wallet/statement", response_class=HTMLResponse)
def statement_page(request: Request, type: str = "", start: str = "", end: str = "",
                   after: str = "") -> Response:
    viewer = signed_in(request)
    if viewer is None:
        return login_redirect()
    p = auth.platform_of(request)
    filters, form = _filters(type, start, end, p.settings.display_timezone)
    try:
        with p.db.transaction(write=False) as conn:
            lines, more = statement.list_lines(conn, viewer.user.id, filters, limit=PAGE_SIZE,
                                               starting_after=after or None)
    except TrustPayError:  # a stale or foreign "older" link: start from the newest
        after = ""
        with p.db.transaction(write=False) as conn:
            lines, more = statement.list_lines(conn, viewer.user.id, filters, limit=PAGE_SIZE)
    return render(request, "statement.html", {
        "viewer": viewer, "lines": lines, "more": more, "form": form,
        "notes": {ln.id: shown_memo(request, ln.type, ln.reference, ln.memo) for ln in lines},
        "types": TYPE_LABELS, "balances": _balances(request, viewer),
        # The filter's days are days in the display zone; its offset today labels them.
        "day_zone": zone_label(p.clock.now().astimezone(ZoneInfo(p.settings.display_timezone)).utcoffset()),
        "csv_url": "/wallet/statement.csv?" + _query(form),
        "older_url": "/wallet/statement?" + _query(form, after=lines[-1].id) if more and lines else None,
        "first_page_url": "/wallet/statement?" + _query(form) if after else None,
    })


@router.get("/wallet/statement.csv")
def statement_csv(request: Request, type: str = "", start: str = "", end: str = "") -> Response:
    viewer = signed_in(request)
    if viewer is None:
        return login_redirect()
    p = auth.platform_of(request)
    filters, _form = _filters(type, start, end, p.settings.display_timezone)
    return csv_response(p, viewer.user.id, filters, f"trustpay-statement-{p.clock.now().date().isoformat()}.csv")


def _receipt(request: Request, viewer: Viewer, line_id: str) -> dict[str, Any] | None:
    p = auth.platform_of(request)
    try:
        with p.db.transaction(write=False) as conn:
            return receipts.make_receipt(p, conn, viewer.user.id, line_id)
    except TrustPayError:
        return None


@router.get("/wallet/transactions/{line_id}", response_class=HTMLResponse)
def receipt_page(request: Request, line_id: str) -> Response:
    viewer = signed_in(request)
    if viewer is None:
        return login_redirect()
    doc = _receipt(request, viewer, line_id)
    if doc is None:
        return not_found_page(request)
    return render(request, "receipt.html", _receipt_context(request, viewer, doc, verification=None))


@router.get("/wallet/transactions/{line_id}/verify", response_class=HTMLResponse)
def verify_page(request: Request, line_id: str) -> Response:
    viewer = signed_in(request)
    if viewer is None:
        return login_redirect()
    doc = _receipt(request, viewer, line_id)
    if doc is None:
        return not_found_page(request)
    p = auth.platform_of(request)
    with p.db.transaction(write=False) as conn:
        now = p.digest.current(conn)
    result = receipts.verify(doc, published={"height": now.height, "root": now.root})
    return render(request, "receipt.html", _receipt_context(request, viewer, doc, verification=result))


@router.get("/wallet/transactions/{line_id}/receipt.json")
def receipt_download(request: Request, line_id: str) -> Response:
    viewer = signed_in(request)
    if viewer is None:
        return login_redirect()
    doc = _receipt(request, viewer, line_id)
    if doc is None:
        return not_found_page(request)
    return Response(json.dumps(doc, ensure_ascii=False, indent=2), media_type="application/json",
                    headers={"Content-Disposition": f'attachment; filename="{receipt_filename(line_id)}"',
                             "Cache-Control": "no-store"})


def receipt_filename(line_id: str) -> str:
    """The name a downloaded receipt is saved under (the page's verify command names it too)."""
    return f"receipt-{line_id}.json"


def _receipt_context(request: Request, viewer: Viewer, doc: dict[str, Any],
                     verification: receipts.Verification | None) -> dict[str, Any]:
    checks = None
    if verification is not None:
        checks = [{"label": CHECK_LABELS.get(c.name, c.name), "ok": c.ok, "name": c.name}
                  for c in verification.checks]
    line_type = LineType(doc["type"])
    return {
        "viewer": viewer, "doc": doc, "type_label": TYPE_LABELS[line_type],
        "memo": shown_memo(request, line_type, doc["reference"], doc["memo"]),
        "filename": receipt_filename(doc["id"]),
        "created": datetime.fromisoformat(doc["created_at"]),
        "verification": verification, "checks": checks, "not_covered": receipts.NOT_COVERED,
    }
