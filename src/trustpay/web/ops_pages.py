"""Ops console: the reconciliation exceptions queue, with a resolve form per finding.

Same service and rules as ``/v1/ops/reconciliation`` (ops role only: anyone
else gets the ordinary 404 page, so the console does not advertise itself).
The adjusting amount is the one the finding says is off; a finding that names
no user asks for the user id when money is to move.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, Response

from trustpay.api.deps import get_origin
from trustpay.banks import recon_resolve
from trustpay.banks.recon_model import ExceptionKind
from trustpay.banks.recon_resolve import Resolution
from trustpay.errors import Conflict, NotFound, PaymentFailed, TrustPayError
from trustpay.identity.model import UserKind
from trustpay.web import auth
from trustpay.web.account import FormText, _, form_viewer, login_redirect, redirect, signed_in, signed_in_ops
from trustpay.web.auth import Viewer
from trustpay.web.notfound import not_found_page
from trustpay.web.templating import gettext, render

router = APIRouter(include_in_schema=False)
PAGE = "/ops/reconciliation"
SHOWN = 100

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
MESSAGES = {
    "resolved": _("The exception is resolved and the decision is in the audit log."),
    "note": _("Say why in the note: it is kept with the decision."),
    "user": _("This finding names no user: enter the user id whose wallet changes."),
    "already": _("Someone already resolved this exception. Nothing was changed."),
    "funds": _("The wallet does not hold enough for this debit. Nothing was changed."),
    "unexpected": _("Something went wrong on our side. Nothing was changed; please try again."),
}


def _page(request: Request, viewer: Viewer, *, info: str | None = None, error: str | None = None,
          failed_id: str | None = None, status_code: int = 200) -> Response:
    p = auth.platform_of(request)
    with p.db.transaction(write=False) as conn:
        rows, more = recon_resolve.list_exceptions(conn, limit=SHOWN)
        done, _more = recon_resolve.list_exceptions(conn, status=recon_resolve.RESOLVED, limit=SHOWN)
    findings: list[dict[str, Any]] = [
        {**dict(r), "label": KIND_LABELS.get(ExceptionKind(r["kind"]), r["kind"]),
         "amount": recon_resolve.default_amount(r)} for r in rows]
    resolved = [{**dict(r), "label": KIND_LABELS.get(ExceptionKind(r["kind"]), r["kind"])}
                for r in reversed(done[-20:])]
    return render(request, "ops_reconciliation.html", {
        "viewer": viewer, "findings": findings, "more": more, "resolved": resolved, "actions": ACTION_LABELS,
        "info": info, "error": error, "failed_id": failed_id}, status_code=status_code)


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
    try:
        p.db.run(lambda conn: recon_resolve.resolve(p, conn, exception_id, actor=viewer.user, action=action,
                                                    note=note, origin=origin, user_id=user_id.strip() or None))
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
            key = "user"
        else:
            key = "unexpected"
        return _page(request, viewer, error=gettext(request, MESSAGES[key]), failed_id=exception_id,
                     status_code=exc.status)
    return redirect(PAGE + "?notice=resolved")
