"""Security-centre actions built on the MFA, freeze and recovery services:
two-step verification enrolment (QR), lost-phone freeze / unfreeze, and
"forgot password" (a code by e-mail, then a new password)."""

from __future__ import annotations

import base64

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, Response

from trustpay.api.deps import get_origin
from trustpay.api.identity import rate_limit
from trustpay.errors import AccountLocked, TrustPayError
from trustpay.identity import freeze, mfa, recovery
from trustpay.identity import service as identity
from trustpay.web import auth
from trustpay.web.account import (
    FormText,
    _,
    _locked_until,
    _security_context,
    check_form,
    form_viewer,
    message,
    redirect,
    signed_in,
)
from trustpay.web.auth import Viewer
from trustpay.web.templating import gettext, render

router = APIRouter(include_in_schema=False)

MESSAGES = {
    "frozen": _("Your account is frozen: no money can leave it and your other devices were signed out."),
    "unfrozen": _("Your account is unfrozen. Money can move again."),
    "unfreeze_code_sent": _("We e-mailed you a 6-digit code. Enter it below with your password."),
    "mfa_on": _("Two-step verification is on. Keep these recovery codes somewhere safe: "
                "each works once, and they are shown only now."),
    "mfa_code_wrong": _("The code is wrong or too old. Enter the code your authenticator app shows now."),
    "reset_sent": _("If an account uses this address, we e-mailed it a 6-digit code. It is valid for 15 minutes."),
    "reset_code_wrong": _("The code is wrong or has expired. Check the latest e-mail, or ask for a new code."),
}


def say(request: Request, key: str) -> str:
    return gettext(request, MESSAGES[key])


def _refusal(request: Request, exc: TrustPayError, email: str) -> str:
    if isinstance(exc, AccountLocked):
        return message(request, "locked", until=_locked_until(request, email))
    if exc.code == "invalid_code" or exc.code == "mfa_required":
        return message(request, "invalid_code")
    return message(request, "wrong_password")


# ----------------------------------------------------------- freeze
@router.post("/security/freeze", response_class=HTMLResponse)
def freeze_submit(request: Request, csrf_token: FormText = "", password: FormText = "") -> Response:
    viewer = form_viewer(request, csrf_token)
    if not isinstance(viewer, Viewer):
        return viewer
    p, origin = auth.platform_of(request), get_origin(request)
    try:
        identity.run_keeping_refusal(p, lambda conn: freeze.freeze(
            p, conn, viewer.user, viewer.session, password=password, origin=origin))
    except TrustPayError as exc:
        return render(request, "security.html", _security_context(
            request, viewer, freeze_error=_refusal(request, exc, viewer.user.email)), status_code=exc.status)
    return render(request, "security.html", _security_context(request, viewer, notice=say(request, "frozen")))


@router.post("/security/unfreeze/code", response_class=HTMLResponse)
def unfreeze_code(request: Request, csrf_token: FormText = "") -> Response:
    viewer = form_viewer(request, csrf_token)
    if not isinstance(viewer, Viewer):
        return viewer
    p = auth.platform_of(request)
    try:
        rate_limit(p, "verification", get_origin(request))
        p.db.run(lambda conn: freeze.request_unfreeze_code(p, conn, viewer.user))
    except TrustPayError as exc:
        error = message(request, "rate_limited") if exc.code == "rate_limited" else message(request, "unexpected")
        return render(request, "security.html", _security_context(request, viewer, freeze_error=error),
                      status_code=exc.status)
    return render(request, "security.html",
                  _security_context(request, viewer, freeze_info=say(request, "unfreeze_code_sent")))


@router.post("/security/unfreeze", response_class=HTMLResponse)
def unfreeze_submit(request: Request, csrf_token: FormText = "", password: FormText = "",
                    code: FormText = "") -> Response:
    viewer = form_viewer(request, csrf_token)
    if not isinstance(viewer, Viewer):
        return viewer
    p, origin = auth.platform_of(request), get_origin(request)
    code = code.strip()
    uses_app = viewer.user.mfa_enabled
    totp_code = code if uses_app and code.isdigit() else None
    recovery_code = code if uses_app and not code.isdigit() else None
    try:
        identity.run_keeping_refusal(p, lambda conn: freeze.unfreeze(
            p, conn, viewer.user, password=password, totp_code=totp_code, recovery_code=recovery_code,
            code=None if uses_app else code, origin=origin))
    except TrustPayError as exc:
        return render(request, "security.html", _security_context(
            request, viewer, freeze_error=_refusal(request, exc, viewer.user.email)), status_code=exc.status)
    return render(request, "security.html", _security_context(request, viewer, notice=say(request, "unfrozen")))


# ------------------------------------------------- two-step verification
@router.post("/security/mfa/start", response_class=HTMLResponse)
def mfa_start(request: Request, csrf_token: FormText = "") -> Response:
    viewer = form_viewer(request, csrf_token)
    if not isinstance(viewer, Viewer):
        return viewer
    p, origin = auth.platform_of(request), get_origin(request)

    def work(conn: object) -> tuple[str, bytes]:
        enrolment = mfa.start_enrolment(p, conn, viewer.user, origin)
        return enrolment.secret, mfa.qr_svg(p, conn, viewer.user)

    try:
        secret, svg = p.db.run(work)
    except TrustPayError:
        return redirect("/security#mfa")  # already on
    qr = "data:image/svg+xml;base64," + base64.b64encode(svg).decode()
    return render(request, "security.html", _security_context(
        request, viewer, enrol={"secret": secret, "qr": qr}))


@router.post("/security/mfa/confirm", response_class=HTMLResponse)
def mfa_confirm(request: Request, csrf_token: FormText = "", code: FormText = "") -> Response:
    viewer = form_viewer(request, csrf_token)
    if not isinstance(viewer, Viewer):
        return viewer
    p, origin = auth.platform_of(request), get_origin(request)
    try:
        codes = identity.run_keeping_refusal(p, lambda conn: mfa.confirm_enrolment(
            p, conn, viewer.user, code.strip(), origin))
    except TrustPayError as exc:
        return render(request, "security.html", _security_context(
            request, viewer, mfa_error=say(request, "mfa_code_wrong")), status_code=exc.status)
    return render(request, "security.html", _security_context(
        request, viewer, recovery_codes=codes, mfa_info=say(request, "mfa_on")))


# ------------------------------------------------------ forgot password
@router.get("/forgot-password", response_class=HTMLResponse)
def forgot_page(request: Request) -> Response:
    return render(request, "forgot.html", {"step": "email", "email": "", "error": None, "info": None,
                                           "errors": {}})


@router.post("/forgot-password", response_class=HTMLResponse)
def forgot_submit(request: Request, csrf_token: FormText = "", email: FormText = "") -> Response:
    viewer = signed_in(request)
    refused = check_form(request, viewer, csrf_token)
    if refused is not None:
        return refused
    p, origin = auth.platform_of(request), get_origin(request)
    try:
        rate_limit(p, "password-reset", origin)
        p.db.run(lambda conn: recovery.request_reset(p, conn, email, origin))
    except TrustPayError as exc:
        return render(request, "forgot.html", {"step": "email", "email": email, "info": None, "errors": {},
                                               "error": message(request, "rate_limited")},
                      status_code=exc.status)
    return render(request, "forgot.html", {"step": "code", "email": email, "error": None, "errors": {},
                                           "info": say(request, "reset_sent")})


@router.post("/forgot-password/reset", response_class=HTMLResponse)
def reset_submit(request: Request, csrf_token: FormText = "", email: FormText = "", code: FormText = "",
                 new_password: FormText = "") -> Response:
    viewer = signed_in(request)
    refused = check_form(request, viewer, csrf_token)
    if refused is not None:
        return refused
    p, origin = auth.platform_of(request), get_origin(request)
    try:
        rate_limit(p, "password-reset", origin)
        password_hash = recovery.hash_if_code_right(p, email=email, code=code.strip(), new_password=new_password)
        identity.run_keeping_refusal(p, lambda conn: recovery.confirm_reset(
            p, conn, email=email, code=code.strip(), new_password=new_password, origin=origin,
            password_hash=password_hash))
    except TrustPayError as exc:
        errors, error = {}, None
        if exc.code == "weak_password":
            errors["new_password"] = message(request, "weak_password")
        elif exc.code == "rate_limited":
            error = message(request, "rate_limited")
        else:
            error = say(request, "reset_code_wrong")
        return render(request, "forgot.html", {"step": "code", "email": email, "error": error, "info": None,
                                               "errors": errors}, status_code=exc.status)
    response = redirect("/login?notice=reset_done")
    auth.clear_session_cookie(request, response)
    return response
