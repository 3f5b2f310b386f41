"""Web pages (server-rendered, HTMX-enhanced) and the static files they use."""

from __future__ import annotations

from fastapi import APIRouter, FastAPI, Request
from fastapi.responses import HTMLResponse
from fastapi.staticfiles import StaticFiles

from trustpay.api.deps import PlatformDep
from trustpay.web import (
    account,
    checkout,
    collection_pages,
    dispute_pages,
    kyc,
    merchant_pages,
    merchant_trades,
    ops_pages,
    protection,
    refund_pages,
    settlement_pages,
    wallet_pages,
    webhook_pages,
)
from trustpay.web.templating import STATIC_DIR, render

router = APIRouter(include_in_schema=False)

# The example order on the landing page, in minor units of the default currency.
EXAMPLE_ORDER_AMOUNT = 19_900
EXAMPLE_SHIP_DAYS = 3


@router.get("/", response_class=HTMLResponse)
def landing(request: Request, p: PlatformDep) -> HTMLResponse:
    return render(request, "landing.html", {
        "currency": p.settings.default_currency,
        "example_amount": EXAMPLE_ORDER_AMOUNT,
        "ship_days": EXAMPLE_SHIP_DAYS,
    })


@router.get("/fragments/ledger-digest", response_class=HTMLResponse)
def ledger_digest_fragment(request: Request, p: PlatformDep) -> HTMLResponse:
    """The published digest as an HTML fragment (the landing page loads it with HTMX)."""
    with p.db.transaction(write=False) as conn:
        digest = p.digest.current(conn)
    return render(request, "fragments/ledger_digest.html", {
        "digest": digest,
        "at": p.clock.now(),
    })


def install(app: FastAPI) -> None:
    """Add the pages and ``/static`` to ``app``."""
    app.include_router(router)
    app.include_router(account.router)
    app.include_router(protection.router)
    app.include_router(kyc.router)
    app.include_router(wallet_pages.router)
    app.include_router(checkout.router)
    app.include_router(collection_pages.router)
    app.include_router(refund_pages.router)
    app.include_router(ops_pages.router)
    app.include_router(dispute_pages.router)
    app.include_router(merchant_pages.router)
    app.include_router(merchant_trades.router)
    app.include_router(webhook_pages.router)
    app.include_router(settlement_pages.router)
    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")
