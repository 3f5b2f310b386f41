"""Ops console: the reconciliation exceptions queue, with a resolve form per finding.

Same service and rules as ``/v1/ops/reconciliation`` (ops role only: anyone
else gets the ordinary 404 page, so the console does not advertise itself).
The adjusting amount is the one the finding says is off; a finding that names
no user asks whose wallet changes when money is to move: a user id or an
e-mail address, looked up here. A refused form comes back with what was typed.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, Response
from sqlalchemy import Connection

from trustpay.api.deps import get_origin
from trustpay.banks import recon_resolve
from trustpay.banks.recon_model import ExceptionKind
from trustpay.banks.recon_resolve import Resolution
from trustpay.errors import Conflict, InvalidRequest, NotFound, PaymentFailed, TrustPayError
from trustpay.identity import store as identity_store
from trustpay.identity.model import UserKind, normalize_email
from trustpay.web import auth
from trustpay.web.account import FormText, _, form_viewer, login_redirect, redirect, signed_in, signed_in_ops
from trustpay.web.auth import Viewer
from trustpay.web.notfound import not_found_page
from trustpay.web.templating import gettext, render

router = APIRouter(include_in_schema=False)
PAGE = "/ops/reconciliation"
UNKNOWN_USER = "unknown_user"
SHOWN = 100
RESOLVED_SHOWN = 20

KIND_LABELS = {
    ExceptionKind.MISSING_OURS: _("On the bank's statement, unknown to us"),
    ExceptionKind.MISSING_BANK: _("Ours, missing from the bank's statement"),
    ExceptionKind.AMOUNT_DIFFERS: _("The amounts differ"),
    ExceptionKind.DUPLICATE: _("Duplicate statement line"),
    ExceptionKind.STATUS_DIFFERS: _("The bank's outcome differs from ours"),
    ExceptionKind.LEDGER_DIFFERS: _("The ledger differs from the record"),
}
ACTION_LABELS = {
    Resolution.NOTE_ONLY: _("No money moves (note only)"),
    Resolution.CREDIT_WALLET: _("Credit the user's wallet from bank clearing"),
    Resolution.DEBIT_WALLET: _("Debit the user's wallet back to bank clearing"),
}
# The statuses a finding shows (the bank's and ours: trustpay.banks.connector.OperationStatus).
STATUS_LABELS = {
    "pending": _("Pending"),
    "succeeded": _("Succeeded"),
    "failed": _("Failed"),
}
MESSAGES = {
    "resolved": _("The exception is resolved and the decision is in the audit log."),
    "note": _("Say why in the note: it is kept with the decision."),
    "user": _("This finding names no user: enter the user id or e-mail address of the person whose wallet changes."),
    "unknown_user": _("No user has this user id or e-mail address. Check it and try again."),
    "already": _("Someone already resolved this exception. Nothing was changed."),
    "funds": _("The wallet does not hold enough for this debit. Nothing was changed."),
    "unexpected": _("Something went wrong on our side. Nothing was changed; please try again."),
}


def _status(request: Request, value: str | None) -> str | None:
    return gettext(request, STATUS_LABELS[value]) if value in STATUS_LABELS else value


def _page(request: Request, viewer: Viewer, *, info: str | None = None, error: str | None = None,
          failed_id: str | None = None, form: dict[str, str] | None = None, status_code: int = 200) -> Response:
    p = auth.platform_of(request)
    with p.db.transaction(write=False) as conn:
        rows, more = recon_resolve.list_exceptions(conn, limit=SHOWN)
        done, _more = recon_resolve.list_exceptions(conn, status=recon_resolve.RESOLVED, limit=RESOLVED_SHOWN,
                                                    latest_resolved=True)
        # Whose wallet a finding is about, and who decided: named, not ids to look up.
        emails = identity_store.emails_of(conn, {r["user_id"] for r in (*rows, *done) if r["user_id"]}
                                          | {r["resolved_by"] for r in done if r["resolved_by"]})
    findings: list[dict[str, Any]] = [
        {**dict(r), "label": KIND_LABELS.get(ExceptionKind(r["kind"]), r["kind"]),
         "amount": recon_resolve.default_amount(r), "bank_status_label": _status(request, r["bank_status"]),
         "our_status_label": _status(request, r["our_status"]), "user_email": emails.get(r["user_id"])}
        for r in rows]
    resolved = [{**dict(r), "label": KIND_LABELS.get(ExceptionKind(r["kind"]), r["kind"]),
                 "decision": ACTION_LABELS.get(Resolution(r["resolution"])) if r["resolution"] else None,
                 "user_email": emails.get(r["user_id"]), "by_email": emails.get(r["resolved_by"])}
                for r in done]
    if form and not any(f["id"] == form["id"] for f in findings):
        form = None  # the finding is gone (resolved meanwhile): the error shows at the top
    return render(request, "ops_reconciliation.html", {
        "viewer": viewer, "findings": findings, "more": more, "resolved": resolved, "actions": ACTION_LABELS,
        "info": info, "error": error, "failed_id": failed_id, "form": form or {}}, status_code=status_code)


@router.get(PAGE, response_class=HTMLResponse)
def exceptions_page(request: Request, notice: str = "") -> Response:
    if signed_in(request) is None:
        return login_redirect()
    viewer = signed_in_ops(request)
    if viewer is None:
        return not_found_page(request)
    info = gettext(request, MESSAGES["resolved"]) if notice == "resolved" else None
    return _page(request, viewer, info=info)


@router.post(PAGE + "/{exception_id}/resolve", response_class=HTMLResponse)
def resolve_submit(request: Request, exception_id: str, csrf_token: FormText = "", action: FormText = "",
                   note: FormText = "", user_id: FormText = "") -> Response:
    viewer = form_viewer(request, csrf_token)
    if not isinstance(viewer, Viewer):
        return viewer
    if viewer.user.kind is not UserKind.OPS:
        return not_found_page(request)
    p, origin = auth.platform_of(request), get_origin(request)
    who = user_id.strip()
    moves_money = action in (Resolution.CREDIT_WALLET, Resolution.DEBIT_WALLET)

    def work(conn: Connection) -> Any:
        owner = _user_id_of(conn, who) if who and moves_money else None
        return recon_resolve.resolve(p, conn, exception_id, actor=viewer.user, action=action, note=note,
                                     origin=origin, user_id=owner)

    try:
        p.db.run(work)
    except NotFound:
        return not_found_page(request)
    except TrustPayError as exc:
        if isinstance(exc, Conflict):
            key = "already"
        elif isinstance(exc, PaymentFailed):
            key = "funds"
        elif exc.param == "note":
            key = "note"
        elif exc.param == "user_id":
            key = "unknown_user" if exc.code == UNKNOWN_USER or exc.message.startswith("no user") else "user"
        else:
            key = "unexpected"
        form = {"id": exception_id, "action": action, "user_id": user_id, "note": note}
        return _page(request, viewer, error=gettext(request, MESSAGES[key]), failed_id=exception_id,
                     form=form, status_code=exc.status)
    return redirect(PAGE + "?notice=resolved")


@router.get(PAGE + "/{exception_id}/resolve")
def resolve_url(request: Request, exception_id: str) -> Response:
    """The address a refused form is shown at, opened again (reload, history): the queue, at that finding."""
    if signed_in(request) is None:
        return login_redirect()
    if signed_in_ops(request) is None:
        return not_found_page(request)
    return redirect(f"{PAGE}#{quote(exception_id, safe='')}")


def _user_id_of(conn: Connection, typed: str) -> str:
    """The id of the live user ``typed`` names (a user id or an e-mail address); refused if nobody."""
    row = None
    if "@" in typed:
        try:
            row = identity_store.user_row(conn, email=normalize_email(typed))
        except InvalidRequest:
            row = None
    else:
        row = identity_store.user_row(conn, user_id=typed)
    if row is None:
        raise InvalidRequest(f"no user {typed[:40]}", code=UNKNOWN_USER, param="user_id")
    return str(row.id)
