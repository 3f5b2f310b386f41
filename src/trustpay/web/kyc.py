"""Security-centre forms for identity verification (KYC tier 2) and turning two-step
verification off. Same rules as the API: refusals that count toward a lock commit."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, Response
from sqlalchemy import Connection

from trustpay.api.deps import get_origin
from trustpay.errors import AccountLocked, TrustPayError
from trustpay.identity import freeze, kyc_service, mfa
from trustpay.identity import service as identity
from trustpay.identity.kyc import IdType
from trustpay.web import auth
from trustpay.web.account import FormText, _, _locked_until, _security_context, form_viewer, message
from trustpay.web.auth import Viewer
from trustpay.web.templating import gettext, render

router = APIRouter(include_in_schema=False)

MESSAGES = {
    "identity_saved": _("Your identity is on file and your limits are raised. We show only a masked copy."),
    "identity_unverified": _("Verify your e-mail address first, then submit your identity."),
    "identity_exists": _("Your identity is already on file. Contact support to correct it."),
    "invalid_id_number": _("This ID number is not valid. Check all 18 characters, including the last one "
                           "(a digit or X)."),
    "invalid_passport": _("This passport number is not valid. Use the 6 to 9 letters and digits printed on it."),
    "invalid_legal_name": _("Enter your name exactly as on your identity document, letters only."),
    "mfa_off": _("Two-step verification is off. Signing in now needs only your password."),
    "mfa_disable_wrong": _("The password or the code is wrong, so two-step verification is still on. "
                           "Try again."),
    "mfa_not_on": _("Two-step verification is already off."),
}


def say(request: Request, key: str) -> str:
    return gettext(request, MESSAGES[key])


@router.post("/security/identity", response_class=HTMLResponse)
def identity_submit(request: Request, csrf_token: FormText = "", legal_name: FormText = "",
                    id_number: FormText = "", id_type: FormText = "prc_resident") -> Response:
    viewer = form_viewer(request, csrf_token)
    if not isinstance(viewer, Viewer):
        return viewer
    p, origin = auth.platform_of(request), get_origin(request)
    kind = IdType.PASSPORT if id_type == IdType.PASSPORT.value else IdType.PRC_RESIDENT
    try:
        p.db.run(lambda conn: kyc_service.submit_identity(p, conn, viewer.user, legal_name=legal_name,
                                                          id_number=id_number, id_type=kind, origin=origin))
    except TrustPayError as exc:
        if exc.code == "invalid_id_number":
            error = say(request, "invalid_passport" if kind is IdType.PASSPORT else "invalid_id_number")
        elif exc.code in ("invalid_legal_name", "email_unverified"):
            error = say(request, "identity_unverified" if exc.code == "email_unverified" else exc.code)
        elif exc.code == "invalid_state":
            error = say(request, "identity_exists")
        else:
            error = message(request, "unexpected")
        # The name comes back so it need not be retyped; the ID number never does.
        return render(request, "security.html", _security_context(
            request, viewer, kyc_error=error, kyc_form={"legal_name": legal_name, "id_type": kind.value}),
            status_code=exc.status)
    return render(request, "security.html", _security_context(request, viewer, kyc_info=say(request, "identity_saved")))


@router.post("/security/mfa/disable", response_class=HTMLResponse)
def mfa_disable(request: Request, csrf_token: FormText = "", password: FormText = "",
                code: FormText = "") -> Response:
    viewer = form_viewer(request, csrf_token)
    if not isinstance(viewer, Viewer):
        return viewer
    p, origin = auth.platform_of(request), get_origin(request)
    code = code.strip()
    totp_code, recovery_code = (code, None) if code.isdigit() else (None, code)

    def work(conn: Connection) -> None:
        freeze.check_password(p, conn, freeze.locked_row(conn, viewer.user.id), password, origin, clear=False)
        mfa.disable(p, conn, viewer.user, totp_code=totp_code, recovery_code=recovery_code, origin=origin)

    try:
        identity.run_keeping_refusal(p, work)
    except TrustPayError as exc:
        if isinstance(exc, AccountLocked):
            error = message(request, "locked", until=_locked_until(request, viewer.user.email))
        elif exc.code == "invalid_state":
            error = say(request, "mfa_not_on")
        else:  # the password and the code are refused alike: say both may be wrong
            error = say(request, "mfa_disable_wrong")
        return render(request, "security.html", _security_context(request, viewer, mfa_error=error),
                      status_code=exc.status)
    return render(request, "security.html", _security_context(request, viewer, mfa_info=say(request, "mfa_off")))
