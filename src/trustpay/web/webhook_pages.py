"""Merchant dashboard: webhooks (/merchant/webhooks).

The endpoints, a form to add one (its signing secret is rendered once, in the
response to that form, never again), and per endpoint the delivery log with
status, attempts and next retry, and a resend button. Same services and rules
as ``/v1/webhook-endpoints``; only merchant users see it.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Form, Request
from fastapi.responses import HTMLResponse, Response

from trustpay.errors import TrustPayError
from trustpay.events import webhook_store
from trustpay.events import webhooks as delivery
from trustpay.events.webhook_model import ALL_EVENTS, EVENT_TYPES
from trustpay.identity.model import UserKind
from trustpay.merchants import webhooks as endpoints
from trustpay.web import auth
from trustpay.web.account import FormText, _, form_viewer, redirect
from trustpay.web.auth import Viewer
from trustpay.web.merchant_pages import _context, _merchant
from trustpay.web.notfound import not_found_page
from trustpay.web.templating import gettext, render

router = APIRouter(include_in_schema=False)
WEBHOOKS = "/merchant/webhooks"
DELIVERIES_SHOWN = 50
FormList = Annotated[list[str], Form()]

MESSAGES = {
    "invalid_url": _("That URL cannot be used. Enter a full https:// address of your server, without a user "
                     "name, password or #fragment."),
    "url_not_allowed": _("That address points into a private network, so TrustPay will not send to it. Use your "
                         "server's public address."),
    "events": _("Choose the events to receive, or All events."),
    "limit_reached": _("You have the most webhook endpoints allowed. Delete one you no longer use first."),
    "deleted": _("The endpoint is deleted. Nothing more is sent to it."),
    "disabled": _("The endpoint is disabled. Nothing is sent to it until you enable it."),
    "enabled": _("The endpoint is enabled. New events are sent to it again."),
    "resent": _("The delivery is queued again and will be sent in event order."),
    "resend_disabled": _("Enable the endpoint before resending to it."),
    "unexpected": _("Something went wrong on our side. Nothing was changed; please try again."),
}
STATUS_LABELS = {
    "active": _("Active"), "failing": _("Failing"), "disabled": _("Disabled"),
    "pending": _("Pending"), "succeeded": _("Delivered"), "failed": _("Failed"),
}
NOTICES = ("deleted", "disabled", "enabled", "resent")
# Why an endpoint is off, as the services record it, in the reader's language.
DISABLED_REASONS = {
    "the receiver answered 410 Gone": _("Your server answered 410 Gone, so TrustPay stopped sending to it. Enable "
                                        "it again once the URL works."),
    "disabled by the merchant": _("You disabled it."),
}


def _page_context(request: Request, viewer: Viewer, **values: Any) -> dict[str, Any]:
    return _context(request, viewer, WEBHOOKS, event_types=EVENT_TYPES, all_events=ALL_EVENTS,
                    status_labels=STATUS_LABELS, disabled_reasons=DISABLED_REASONS, **values)


def _list_page(request: Request, viewer: Viewer, *, form: dict[str, Any] | None = None,
               created: dict[str, Any] | None = None, secret: str | None = None, info: str | None = None,
               error: str | None = None, status_code: int = 200) -> Response:
    p = auth.platform_of(request)
    with p.db.transaction(write=False) as conn:
        rows = endpoints.list_endpoints(conn, viewer.user.id)
    return render(request, "merchant/webhooks.html", _page_context(
        request, viewer, endpoints=rows, created=created, secret=secret,
        form=form or {"url": "", "events": [ALL_EVENTS]}, info=info, error=error), status_code=status_code)


def _error_key(exc: TrustPayError) -> str:
    if exc.code in ("invalid_url", "url_not_allowed", "limit_reached"):
        return exc.code
    return "events" if exc.param == "events" else "unexpected"


@router.get(WEBHOOKS, response_class=HTMLResponse)
def webhooks_page(request: Request, notice: str = "") -> Response:
    viewer = _merchant(request)
    if not isinstance(viewer, Viewer):
        return viewer
    return _list_page(request, viewer, info=gettext(request, MESSAGES[notice]) if notice in NOTICES else None)


@router.post(WEBHOOKS, response_class=HTMLResponse)
def create_submit(request: Request, csrf_token: FormText = "", url: FormText = "",
                  events: FormList = []) -> Response:  # noqa: B006  (FastAPI copies form defaults)
    viewer = _form_merchant(request, csrf_token)
    if not isinstance(viewer, Viewer):
        return viewer
    p = auth.platform_of(request)
    form = {"url": url, "events": events}
    try:
        endpoints.events_of(events)  # a missing choice first: it needs no DNS lookup
        checked = endpoints.check_url(p, url)
        row, secret = p.db.run(lambda conn: endpoints.create(p, conn, viewer.user.id, url=checked,
                                                             events=events))
    except TrustPayError as exc:
        return _list_page(request, viewer, form=form, error=gettext(request, MESSAGES[_error_key(exc)]),
                          status_code=exc.status)
    # Rendered, not redirected: the secret must not travel in a URL or be fetchable again.
    return _list_page(request, viewer, created=row, secret=secret, status_code=201)


def _form_merchant(request: Request, csrf_token: str) -> Viewer | Response:
    viewer = form_viewer(request, csrf_token)
    if isinstance(viewer, Viewer) and viewer.user.kind is not UserKind.MERCHANT:
        return not_found_page(request)
    return viewer


# ------------------------------------------------------------ one endpoint
def _endpoint_page(request: Request, viewer: Viewer, endpoint_id: str, *, secret: str | None = None,
                   info: str | None = None, error: str | None = None, status_code: int = 200) -> Response:
    p = auth.platform_of(request)
    try:
        with p.db.transaction(write=False) as conn:
            row = endpoints.get(conn, viewer.user.id, endpoint_id)
            rows, more = endpoints.deliveries(conn, viewer.user.id, endpoint_id, limit=DELIVERIES_SHOWN,
                                              starting_after=None)
            attempts = webhook_store.attempts_of(conn, [r["id"] for r in rows])
    except TrustPayError:
        return not_found_page(request)
    return render(request, "merchant/webhooks_endpoint.html", _page_context(
        request, viewer, endpoint=row, deliveries=rows, attempts=attempts, more=more, secret=secret, info=info,
        error=error), status_code=status_code)


@router.get(WEBHOOKS + "/{endpoint_id}", response_class=HTMLResponse)
def endpoint_page(request: Request, endpoint_id: str, notice: str = "") -> Response:
    viewer = _merchant(request)
    if not isinstance(viewer, Viewer):
        return viewer
    info = gettext(request, MESSAGES[notice]) if notice in NOTICES else None
    return _endpoint_page(request, viewer, endpoint_id, info=info)


@router.post(WEBHOOKS + "/{endpoint_id}/status", response_class=HTMLResponse)
def status_submit(request: Request, endpoint_id: str, csrf_token: FormText = "", status: FormText = "") -> Response:
    viewer = _form_merchant(request, csrf_token)
    if not isinstance(viewer, Viewer):
        return viewer
    if status not in ("active", "disabled"):
        return not_found_page(request)
    p = auth.platform_of(request)
    try:
        p.db.run(lambda conn: endpoints.update_endpoint(p, conn, viewer.user.id, endpoint_id, status=status))
    except TrustPayError:
        return not_found_page(request)
    return redirect(f"{WEBHOOKS}/{endpoint_id}?notice={'enabled' if status == 'active' else 'disabled'}")


@router.post(WEBHOOKS + "/{endpoint_id}/roll-secret", response_class=HTMLResponse)
def roll_submit(request: Request, endpoint_id: str, csrf_token: FormText = "") -> Response:
    viewer = _form_merchant(request, csrf_token)
    if not isinstance(viewer, Viewer):
        return viewer
    p = auth.platform_of(request)
    try:
        _row, secret = p.db.run(lambda conn: endpoints.roll_secret(p, conn, viewer.user.id, endpoint_id))
    except TrustPayError:
        return not_found_page(request)
    return _endpoint_page(request, viewer, endpoint_id, secret=secret)


@router.post(WEBHOOKS + "/{endpoint_id}/delete", response_class=HTMLResponse)
def delete_submit(request: Request, endpoint_id: str, csrf_token: FormText = "") -> Response:
    viewer = _form_merchant(request, csrf_token)
    if not isinstance(viewer, Viewer):
        return viewer
    p = auth.platform_of(request)
    try:
        p.db.run(lambda conn: endpoints.delete(p, conn, viewer.user.id, endpoint_id))
    except TrustPayError:
        return not_found_page(request)
    return redirect(WEBHOOKS + "?notice=deleted")


@router.post(WEBHOOKS + "/{endpoint_id}/deliveries/{delivery_id}/resend", response_class=HTMLResponse)
def resend_submit(request: Request, endpoint_id: str, delivery_id: str, csrf_token: FormText = "") -> Response:
    viewer = _form_merchant(request, csrf_token)
    if not isinstance(viewer, Viewer):
        return viewer
    p = auth.platform_of(request)
    try:
        p.db.run(lambda conn: delivery.resend(p, conn, viewer.user.id, delivery_id))
    except TrustPayError as exc:
        if exc.status == 404:
            return not_found_page(request)
        return _endpoint_page(request, viewer, endpoint_id, error=gettext(request, MESSAGES["resend_disabled"]),
                              status_code=exc.status)
    return redirect(f"{WEBHOOKS}/{endpoint_id}?notice=resent")
