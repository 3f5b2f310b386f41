"""Merchant dashboard (/merchant): overview with the fee plan, secret API keys, settlement.

Same services and rules as ``/v1/merchant/…``. Only merchant users see it
(anyone else signed in gets the ordinary 404 page). A new key's secret is
rendered once, in the response to the form that created it, and never again.

``SECTIONS`` is the dashboard's tab bar; tabs whose page another module
provides (webhooks, trades) appear once that page is mounted. Such a page
checks its visitor with ``_merchant(request)`` and renders a template that
extends ``merchant/layout.html`` (block ``merchant_main``) with
``_context(request, viewer, "/merchant/…", **its_values)``.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, Response
from fastapi.routing import iter_route_contexts

from trustpay.api.deps import get_origin
from trustpay.errors import TrustPayError
from trustpay.identity.limits import day_bounds
from trustpay.identity.model import UserKind
from trustpay.merchants import service, settlement
from trustpay.merchants.model import ApiKey, MerchantProfile
from trustpay.trades import refund_store
from trustpay.trades import store as trade_store
from trustpay.wallet import store as wallet_store
from trustpay.wallet.model import FeePlan
from trustpay.web import auth
from trustpay.web.account import FormText, _, form_viewer, login_redirect, redirect, signed_in
from trustpay.web.auth import Viewer
from trustpay.web.i18n import format_percent as percent
from trustpay.web.notfound import not_found_page
from trustpay.web.templating import gettext, render

router = APIRouter(include_in_schema=False)
HOME, KEYS, SETTLEMENT = "/merchant", "/merchant/api-keys", "/merchant/settlement"
KEYS_SHOWN = 100

# (path, label): the dashboard's tabs, in order.
SECTIONS = [
    (HOME, _("Overview")),
    ("/merchant/trades", _("Trades")),
    (KEYS, _("API keys")),
    ("/merchant/webhooks", _("Webhooks")),
    ("/merchant/settlements", _("Settlements")),
    ("/merchant/collect", _("Collection codes")),
    (SETTLEMENT, _("Payout settings")),  # where and when money is paid out; "Settlements" lists the payouts
]
MESSAGES = {
    "revoked": _("The key is revoked. Requests that use it are refused from now on."),
    "saved": _("Your payout settings are saved."),
    "too_many_keys": _("You have the most active keys allowed. Revoke one you no longer use first."),
    "label": _("The label is too long: use at most 80 characters."),
    "display_name": _("Enter a display name of 1 to 120 characters."),
    "card": _("That card cannot receive settlements: choose one of your active cards."),
    "delay": _("The settlement delay must be a whole number of days from 0 to 30."),
    "unexpected": _("Something went wrong on our side. Nothing was changed; please try again."),
}


def fee_plan_view(plan: FeePlan, currency: str) -> dict[str, Any]:
    return {"bank_rate": percent(plan.bank_rate), "margin": percent(plan.margin), "rate": percent(plan.rate),
            "fixed": plan.fixed, "minimum": plan.minimum, "currency": currency,
            "example_amount": 10_000, "example_fee": plan.fee_for(10_000)}


def _merchant(request: Request) -> Viewer | Response:
    """The signed-in merchant, or the response to send instead (log-in page, or 404 for others)."""
    viewer = signed_in(request)
    if viewer is None:
        return login_redirect()
    if viewer.user.kind is not UserKind.MERCHANT:
        return not_found_page(request)
    return viewer


def _mounted_paths(request: Request) -> set[str]:
    # Included routers are not flattened into app.routes; walk them the way FastAPI does.
    return {ctx.path for ctx in iter_route_contexts(request.app.routes) if isinstance(ctx.path, str)}


def _tabs(request: Request, current: str) -> list[dict[str, Any]]:
    mounted = _mounted_paths(request)
    return [{"href": path, "label": label, "current": path == current} for path, label in SECTIONS
            if path in mounted]


def _context(request: Request, viewer: Viewer, current: str, **values: Any) -> dict[str, Any]:
    """What merchant/layout.html needs (profile, fee plan, tabs with ``current`` marked), plus ``values``."""
    p = auth.platform_of(request)
    with p.db.transaction(write=False) as conn:
        profile = service.get_profile(p, conn, viewer.user.id)
    return {"viewer": viewer, "tabs": _tabs(request, current), "profile": profile,
            "fees": fee_plan_view(profile.fee_plan, p.settings.default_currency),
            "currency": p.settings.default_currency, "info": None, "error": None, **values}


@router.get(HOME, response_class=HTMLResponse)
def overview(request: Request) -> Response:
    viewer = _merchant(request)
    if not isinstance(viewer, Viewer):
        return viewer
    p = auth.platform_of(request)
    with p.db.transaction(write=False) as conn:
        keys, _more = service.list_keys(conn, viewer.user.id, limit=KEYS_SHOWN)
        card = _card_of(conn, viewer.user.id, service.settlement_card_id(conn, viewer.user.id))
        # The day at a glance: what waits on them, what came in today (the platform's
        # business day, as limits and settlement count it), what waits for a payout.
        to_do = {**trade_store.merchant_to_do(conn, viewer.user.id),
                 "refunds": refund_store.awaiting_merchant(conn, viewer.user.id)}
        paid_today = trade_store.paid_between(conn, viewer.user.id,
                                              *day_bounds(p.clock.now(), p.settings.limits_timezone))
        waiting = settlement.outlook(p, conn, viewer.user.id)
    return render(request, "merchant/overview.html",
                  _context(request, viewer, HOME, active_keys=len(keys), card=card, to_do=to_do,
                           paid_today=paid_today, waiting=waiting))


# ------------------------------------------------------------------ API keys
def _keys_page(request: Request, viewer: Viewer, *, new_key: ApiKey | None = None, secret: str | None = None,
               info: str | None = None, error: str | None = None, status_code: int = 200) -> Response:
    p = auth.platform_of(request)
    with p.db.transaction(write=False) as conn:
        keys, _more = service.list_keys(conn, viewer.user.id, limit=KEYS_SHOWN, include_revoked=True)
    return render(request, "merchant/api_keys.html",
                  _context(request, viewer, KEYS, keys=keys, new_key=new_key, secret=secret, info=info,
                           error=error), status_code=status_code)


@router.get(KEYS, response_class=HTMLResponse)
def keys_page(request: Request, notice: str = "") -> Response:
    viewer = _merchant(request)
    if not isinstance(viewer, Viewer):
        return viewer
    return _keys_page(request, viewer, info=gettext(request, MESSAGES["revoked"]) if notice == "revoked" else None)


@router.post(KEYS, response_class=HTMLResponse)
def create_key_submit(request: Request, csrf_token: FormText = "", label: FormText = "") -> Response:
    viewer = form_viewer(request, csrf_token)
    if not isinstance(viewer, Viewer):
        return viewer
    if viewer.user.kind is not UserKind.MERCHANT:
        return not_found_page(request)
    p, origin = auth.platform_of(request), get_origin(request)
    try:
        key, secret = p.db.run(lambda conn: service.create_key(p, conn, viewer.user.id, label=label,
                                                               origin=origin))
    except TrustPayError as exc:
        which = "too_many_keys" if exc.code == "too_many_keys" else "label" if exc.param == "label" else "unexpected"
        return _keys_page(request, viewer, error=gettext(request, MESSAGES[which]), status_code=exc.status)
    # Rendered, not redirected: the secret must not travel in a URL or be fetchable again.
    return _keys_page(request, viewer, new_key=key, secret=secret, status_code=201)


@router.post(KEYS + "/{key_id}/revoke", response_class=HTMLResponse)
def revoke_key_submit(request: Request, key_id: str, csrf_token: FormText = "") -> Response:
    viewer = form_viewer(request, csrf_token)
    if not isinstance(viewer, Viewer):
        return viewer
    if viewer.user.kind is not UserKind.MERCHANT:
        return not_found_page(request)
    p, origin = auth.platform_of(request), get_origin(request)
    try:
        p.db.run(lambda conn: service.revoke_key(p, conn, viewer.user.id, key_id, origin=origin))
    except TrustPayError:
        return not_found_page(request)  # not theirs, or no such key
    return redirect(KEYS + "?notice=revoked")


# ------------------------------------------------------------------ settlement
def _card_of(conn: Any, user_id: str, card_id: str | None) -> dict[str, Any] | None:
    if card_id is None:
        return None
    return next((dict(c) for c in wallet_store.active_cards(conn, user_id) if c["id"] == card_id), None)


def _settlement_page(request: Request, viewer: Viewer, *, form: dict[str, str] | None = None,
                     info: str | None = None, error: str | None = None, status_code: int = 200) -> Response:
    p = auth.platform_of(request)
    with p.db.transaction(write=False) as conn:
        cards = [dict(c) for c in wallet_store.active_cards(conn, viewer.user.id)]
        profile: MerchantProfile = service.get_profile(p, conn, viewer.user.id)
    form = form or {"display_name": profile.display_name, "card": profile.settlement_card_id or "",
                    "delay": str(profile.settlement_delay_days)}
    return render(request, "merchant/settlement.html",
                  _context(request, viewer, SETTLEMENT, cards=cards, form=form, info=info, error=error,
                           default_delay=p.settings.merchant_settlement_delay_days),
                  status_code=status_code)


@router.get(SETTLEMENT, response_class=HTMLResponse)
def settlement_page(request: Request, notice: str = "") -> Response:
    viewer = _merchant(request)
    if not isinstance(viewer, Viewer):
        return viewer
    return _settlement_page(request, viewer, info=gettext(request, MESSAGES["saved"]) if notice == "saved" else None)


@router.post(SETTLEMENT, response_class=HTMLResponse)
def settlement_submit(request: Request, csrf_token: FormText = "", display_name: FormText = "",
                      card: FormText = "", delay: FormText = "") -> Response:
    viewer = form_viewer(request, csrf_token)
    if not isinstance(viewer, Viewer):
        return viewer
    if viewer.user.kind is not UserKind.MERCHANT:
        return not_found_page(request)
    form = {"display_name": display_name, "card": card, "delay": delay}
    p, origin = auth.platform_of(request), get_origin(request)
    delay = delay.strip()
    if delay and not delay.isdigit():
        return _settlement_page(request, viewer, form=form, error=gettext(request, MESSAGES["delay"]),
                                status_code=400)
    try:
        p.db.run(lambda conn: service.update_profile(
            p, conn, viewer.user.id, origin=origin, display_name=display_name,
            settlement_card_id=card.strip() or None,
            settlement_delay_days=int(delay) if delay else None))
    except TrustPayError as exc:
        which = {"display_name": "display_name", "settlement_delay_days": "delay"}.get(exc.param or "", "card")
        if exc.status >= 500:
            which = "unexpected"
        return _settlement_page(request, viewer, form=form, error=gettext(request, MESSAGES[which]),
                                status_code=exc.status)
    return redirect(SETTLEMENT + "?notice=saved")
