"""Account pages: sign-up, e-mail verification, login/logout and the security centre.

They call the identity service directly (not over HTTP), with the same rules
as the API: refusals that record something commit (``run_keeping_refusal``),
sign-up and login share the API's per-IP rate limiter.
"""

from __future__ import annotations

import secrets
import threading
import time
from contextvars import ContextVar
from typing import Annotated, Any
from urllib.parse import quote, unquote, urlencode, urlsplit

from fastapi import APIRouter, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from sqlalchemy import Connection
from starlette.routing import Match

from trustpay.api.deps import get_origin
from trustpay.api.identity import rate_limit
from trustpay.errors import AccountLocked, TrustPayError
from trustpay.identity import audit, limits, store
from trustpay.identity import service as identity
from trustpay.identity.model import Channel, UserKind, normalize_email
from trustpay.identity.service import NewSession
from trustpay.web import auth
from trustpay.web.audit_labels import EVENT_LABELS, UNKNOWN_EVENT
from trustpay.web.auth import Viewer
from trustpay.web.templating import gettext, render, timestamp_formatter

router = APIRouter(include_in_schema=False)
FormText = Annotated[str, Form(max_length=1024)]
AUDIT_SHOWN = 20
SESSIONS_SHOWN = 50


def _(message: str) -> str:
    """Marks ``message`` for the catalogs; translated when rendered (:func:`gettext`)."""
    return message


# What each refusal means for the person, and what to do next.
MESSAGES = {
    "weak_password": _("Use 12 or more characters with both letters and digits."),
    "invalid_email": _("This doesn't look like an e-mail address. Check it and try again."),
    "invalid_phone": _("This doesn't look like a phone number. Use digits, optionally starting with +."),
    "already_exists": _("An account with these details already exists. Log in instead, or use different details."),
    "rate_limited": _("Too many attempts from your network. Wait a minute, then try again."),
    "invalid_credentials": _("The e-mail or the password is wrong. Check both and try again."),
    "locked": _("Too many failed attempts: this account is locked until {until}. Try again after that."),
    "invalid_code": _("The code is wrong or has expired. Check the latest e-mail, or send a new code."),
    "code_sent": _("We sent a new code. It is valid for 15 minutes."),
    "payment_format": _("The payment password must be exactly 6 digits."),
    "payment_mismatch": _("The two payment passwords are different. Type the same 6 digits twice."),
    "wrong_password": _("Your login password is wrong, so nothing was changed. Try again."),
    "payment_saved": _("Your payment password is set. Use it to confirm payments."),
    "session_revoked": _("The session was signed out."),
    "session_gone": _("That session has already ended."),
    "signed_out": _("You are signed out."),
    "expired": _("Your session has ended. Log in again to continue."),
    "signin": _("Please log in to continue."),
    "verified": _("Your e-mail address is verified."),
    "mfa_wrong": _("The code is wrong or too old. Enter the code your authenticator app shows now."),
    "mfa_expired": _("This step has expired. Enter your e-mail and password again."),
    "reset_done": _("Your password is changed and every session was signed out. Log in with the new password."),
    "unexpected": _("Something went wrong on our side. Nothing was changed; please try again."),
}


def message(request: Request, key: str, **values: str) -> str:
    return gettext(request, MESSAGES[key]).format(**values)


def redirect(url: str) -> RedirectResponse:
    return RedirectResponse(url, status_code=303)


def check_form(request: Request, viewer: Viewer | None, token: str) -> HTMLResponse | None:
    p = auth.platform_of(request)
    if auth.csrf_valid(p.settings.secret_key, auth.csrf_binding(request, viewer), token):
        return None
    return render(request, "csrf.html", {"viewer": viewer}, status_code=403)


# The request :func:`signed_in` found without a session, for :func:`login_redirect`.
_signed_out: ContextVar[Request | None] = ContextVar("signed_out", default=None)


def signed_in(request: Request) -> Viewer | None:
    viewer = auth.current_viewer(request)
    _signed_out.set(request if viewer is None else None)
    return viewer


def signed_in_ops(request: Request) -> Viewer | None:
    """The signed-in viewer if they are operations staff (the ops consoles), else None."""
    viewer = signed_in(request)
    return viewer if viewer is not None and viewer.user.kind is UserKind.OPS else None


def _is_page(request: Request, path: str) -> bool:
    """Whether this site answers ``GET path`` (a page one can be sent back to)."""
    scope = {"type": "http", "method": "GET", "path": unquote(path), "root_path": ""}
    return any(route.matches(scope)[0] is Match.FULL for route in request.app.routes)


def came_from(request: Request) -> str:
    """The page to return to after logging in: the one asked for, or for a form (or an HTMX
    call) the same-origin page it was sent from, if that is a page; else ``""``."""
    if request.method in ("GET", "HEAD") and not request.headers.get("hx-request"):
        query = request.url.query
        return safe_next(quote(request.scope["path"]) + (f"?{query}" if query else ""))
    ref = urlsplit(request.headers.get("referer", ""))
    if (ref.scheme, ref.netloc) != (request.url.scheme, request.url.netloc) or not _is_page(request, ref.path):
        return ""
    return safe_next(ref.path + (f"?{ref.query}" if ref.query else ""))


def login_redirect(request: Request | None = None) -> RedirectResponse:
    """To the log-in page, which sends the person back here afterwards (``next``). It says the
    session ended only if the request carried a session cookie; ``request`` defaults to the one
    :func:`signed_in` just found signed out."""
    request = request or _signed_out.get()
    if request is None:
        return redirect("/login?notice=signin")
    notice = "expired" if request.cookies.get(auth.SESSION_COOKIE) else "signin"
    return redirect(with_next(f"/login?notice={notice}", came_from(request)))


def form_viewer(request: Request, csrf_token: str) -> Viewer | Response:
    """The signed-in person behind a form POST, or the response to send instead:
    the log-in page when the session is gone, the CSRF refusal when the token is wrong."""
    viewer = signed_in(request)
    if viewer is None:
        return login_redirect(request)
    refused = check_form(request, viewer, csrf_token)
    return viewer if refused is None else refused


def home_of(user: Any) -> str:
    """Where a log-in lands with no ``next``: a person's wallet (a payment app opens
    on their money), a merchant's dashboard, operations staff's dispute queue (the
    work waiting for them; the header links their other console). Sign-up and e-mail
    verification go on to /security instead, where the payment password is set."""
    if user.kind is UserKind.MERCHANT:
        return "/merchant"
    return "/ops/disputes" if user.kind is UserKind.OPS else "/wallet"


# ------------------------------------------------------------------ sign-up
@router.get("/signup", response_class=HTMLResponse)
def signup_page(request: Request) -> Response:
    viewer = signed_in(request)
    if viewer is not None:
        return redirect(home_of(viewer.user))
    return render(request, "signup.html", {"form": {"kind": "personal", "name": "", "email": "", "phone": ""},
                                           "errors": {}, "alert": None})


@router.post("/signup", response_class=HTMLResponse)
def signup_submit(request: Request, csrf_token: FormText = "", kind: FormText = "personal",
                  name: FormText = "", email: FormText = "", password: FormText = "",
                  phone: FormText = "") -> Response:
    refused = check_form(request, None, csrf_token)
    if refused is not None:
        return refused
    p = auth.platform_of(request)
    origin = get_origin(request)
    form = {"kind": kind if kind in ("personal", "merchant") else "personal", "name": name,
            "email": email, "phone": phone}
    errors: dict[str, str] = {}
    alert: str | None = None

    def work(conn: Connection) -> NewSession:
        identity.sign_up(p, conn, email=email, password=password, name=name, kind=UserKind(form["kind"]),
                         phone=phone.strip() or None, origin=origin, password_hash=hashed)
        # The password is the one just hashed: the log-in needs no second argon2 run.
        return identity.log_in(p, conn, email=email, password=password, origin=origin,
                               verified=identity.Verified(hashed, True))

    try:
        rate_limit(p, "sign-up", origin)
        hashed = identity.hash_new_password(password)  # before the transaction (identity.Verified)
        new = p.db.run(work)
    except TrustPayError as exc:
        if exc.code == "weak_password":
            errors["password"] = message(request, "weak_password")
        elif exc.param == "email":
            errors["email"] = message(request, "invalid_email")
        elif exc.param == "phone":
            errors["phone"] = message(request, "invalid_phone")
        elif exc.code in ("already_exists", "rate_limited"):
            alert = message(request, exc.code)
        else:
            alert = message(request, "unexpected")
        return render(request, "signup.html", {"form": form, "errors": errors, "alert": alert},
                      status_code=exc.status)
    response = redirect("/verify")
    auth.set_session_cookie(request, response, new.token)
    return response


# ------------------------------------------------------------ verification
@router.get("/verify", response_class=HTMLResponse)
def verify_page(request: Request, notice: str = "", next: str = "") -> Response:
    viewer = signed_in(request)
    if viewer is None:
        return login_redirect(request)
    if viewer.user.email_verified:
        return redirect(safe_next(next) or "/security")
    info = message(request, "code_sent") if notice == "sent" else None
    return render(request, "verify.html", {"viewer": viewer, "error": None, "info": info,
                                           "next": safe_next(next)})


@router.post("/verify", response_class=HTMLResponse)
def verify_submit(request: Request, csrf_token: FormText = "", code: FormText = "",
                  next: FormText = "") -> Response:
    viewer = form_viewer(request, csrf_token)
    if not isinstance(viewer, Viewer):
        return viewer
    p = auth.platform_of(request)
    origin = get_origin(request)
    try:
        identity.run_keeping_refusal(p, lambda conn: identity.confirm_code(
            p, conn, viewer.user, Channel.EMAIL, code.strip(), origin))
    except TrustPayError as exc:
        return render(request, "verify.html", {"viewer": viewer, "info": None, "next": safe_next(next),
                                               "error": message(request, "invalid_code")},
                      status_code=exc.status)
    return redirect(safe_next(next) or "/security?notice=verified")


@router.post("/verify/resend", response_class=HTMLResponse)
def verify_resend(request: Request, csrf_token: FormText = "", next: FormText = "") -> Response:
    viewer = form_viewer(request, csrf_token)
    if not isinstance(viewer, Viewer):
        return viewer
    p = auth.platform_of(request)
    try:
        rate_limit(p, "verification", get_origin(request))
        p.db.run(lambda conn: identity.request_code(p, conn, viewer.user, Channel.EMAIL))
    except TrustPayError as exc:
        if exc.code == "rate_limited":
            return render(request, "verify.html", {"viewer": viewer, "info": None, "next": safe_next(next),
                                                   "error": message(request, "rate_limited")},
                          status_code=exc.status)
        return redirect(safe_next(next) or "/security")  # already verified
    return redirect(with_next("/verify?notice=sent", next))


# ------------------------------------------------------------------ login
def _locked_until(request: Request, email: str) -> str:
    p = auth.platform_of(request)
    try:
        with p.db.transaction(write=False) as conn:
            row = store.user_row(conn, email=normalize_email(email))
    except TrustPayError:
        row = None
    until = store.as_user(row).login.locked_until if row is not None else None
    if until is None:
        return "—"
    return timestamp_formatter(request)(until)


class PendingLogins:
    """Logins waiting for their authenticator code: a random ticket stands for the e-mail
    and password for a few minutes, so the password is never echoed back into the page."""

    TTL_SECONDS = 300

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._items: dict[str, tuple[float, str, str]] = {}

    def put(self, email: str, password: str, ticket: str | None = None) -> str:
        ticket = ticket or secrets.token_urlsafe(24)
        now = time.monotonic()
        with self._lock:
            self._items = {k: v for k, v in self._items.items() if v[0] > now}
            self._items[ticket] = (now + self.TTL_SECONDS, email, password)
        return ticket

    def take(self, ticket: str) -> tuple[str, str] | None:
        with self._lock:
            item = self._items.pop(ticket, None)
        if item is None or item[0] <= time.monotonic():
            return None
        return item[1], item[2]


_PENDING = "web.pending_logins"


def pending_logins(request: Request) -> PendingLogins:
    extras = auth.platform_of(request).extras
    found = extras.get(_PENDING)
    if not isinstance(found, PendingLogins):
        found = extras.setdefault(_PENDING, PendingLogins())
    return found


def safe_next(target: str) -> str:
    """Where to go after logging in: a path on this site only (never another host), else ``""``.
    One leading "/" (not "//"), no backslash, and printable ASCII only (no control characters)."""
    ok = target.startswith("/") and not target.startswith("//") and "\\" not in target and len(target) <= 1000
    return target if ok and all(" " < c < "\x7f" for c in target) else ""


def with_next(url: str, next: str) -> str:
    """``url`` passing a safe ``next`` on (``url`` may have a query already)."""
    target = safe_next(next)
    return f"{url}{'&' if '?' in url else '?'}{urlencode({'next': target})}" if target else url


def _login_page(request: Request, *, email: str = "", error: str | None = None, info: str | None = None,
                ticket: str | None = None, status_code: int = 200, next: str = "") -> HTMLResponse:
    return render(request, "login.html", {"email": email, "error": error, "info": info, "ticket": ticket,
                                          "next": safe_next(next)}, status_code=status_code)


@router.get("/login", response_class=HTMLResponse)
def login_page(request: Request, notice: str = "", next: str = "") -> Response:
    viewer = signed_in(request)
    if viewer is not None:
        return redirect(safe_next(next) or home_of(viewer.user))
    info = message(request, notice) if notice in ("expired", "signin", "signed_out", "reset_done") else None
    return _login_page(request, info=info, next=next)


@router.post("/login", response_class=HTMLResponse)
def login_submit(request: Request, csrf_token: FormText = "", email: FormText = "",
                 password: FormText = "", ticket: FormText = "", totp_code: FormText = "",
                 next: FormText = "") -> Response:
    refused = check_form(request, None, csrf_token)
    if refused is not None:
        return refused
    p = auth.platform_of(request)
    origin = get_origin(request)
    pending = pending_logins(request)
    if ticket:  # the second step: the authenticator code
        held = pending.take(ticket)
        if held is None:
            return _login_page(request, error=message(request, "mfa_expired"), status_code=401, next=next)
        email, password = held
    try:
        rate_limit(p, "login", origin)
        verified = identity.verify_login_outside(p, email, password)
        new = identity.run_keeping_refusal(p, lambda conn: identity.log_in(
            p, conn, email=email, password=password, origin=origin, totp_code=totp_code.strip() or None,
            verified=verified))
    except TrustPayError as exc:
        if isinstance(exc, AccountLocked):
            error = message(request, "locked", until=_locked_until(request, email))
        elif exc.code == "rate_limited":
            error = message(request, "rate_limited")
        elif exc.code == "mfa_required":
            return _login_page(request, email=email, ticket=pending.put(email, password),
                               status_code=exc.status, next=next)
        elif ticket:
            return _login_page(request, email=email, error=message(request, "mfa_wrong"),
                               ticket=pending.put(email, password, ticket), status_code=exc.status, next=next)
        else:
            error = message(request, "invalid_credentials")
        return _login_page(request, email=email, error=error, status_code=exc.status, next=next)
    # An unverified e-mail address is verified first, then on to ``next``.
    response = redirect((safe_next(next) or home_of(new.user)) if new.user.email_verified
                        else with_next("/verify", next))
    auth.set_session_cookie(request, response, new.token)
    return response


@router.post("/logout", response_class=HTMLResponse)
def logout(request: Request, csrf_token: FormText = "") -> Response:
    viewer = signed_in(request)
    if viewer is None:
        response = redirect("/login?notice=signed_out")
        auth.clear_session_cookie(request, response)
        return response
    refused = check_form(request, viewer, csrf_token)
    if refused is not None:
        return refused
    p = auth.platform_of(request)
    origin = get_origin(request)
    p.db.run(lambda conn: identity.log_out(p, conn, viewer.user, viewer.session, origin))
    response = redirect("/login?notice=signed_out")
    auth.clear_session_cookie(request, response)
    return response


# -------------------------------------------------------- security centre
def _security_context(request: Request, viewer: Viewer, **extra: Any) -> dict[str, Any]:
    p = auth.platform_of(request)
    with p.db.transaction(write=False) as conn:
        sessions, _more = identity.list_sessions(p, conn, viewer.user, limit=SESSIONS_SHOWN,
                                                 starting_after=None)
        events, _older = audit.list_for_user(conn, viewer.user.id, limit=AUDIT_SHOWN)
        row = store.user_row(conn, user_id=viewer.user.id)
        currency = p.settings.default_currency
        tier, tier_limits, spent_today = limits.user_limits(p, conn, viewer.user.id, currency)
    user = store.as_user(row) if row is not None else viewer.user
    return {"viewer": viewer, "user": user, "sessions": sessions, "events": events,
            "event_labels": EVENT_LABELS, "unknown_event": UNKNOWN_EVENT, "tier": tier,
            "limits": tier_limits if p.settings.tier_limits == "on" else None, "currency": currency,
            "spent_today": spent_today, "kyc_error": None, "kyc_info": None, "kyc_form": None,
            "pay_error": None, "pay_info": None, "notice": None, "freeze_error": None, "freeze_info": None,
            "enrol": None, "recovery_codes": None, "mfa_error": None, "mfa_info": None, **extra}


@router.get("/security", response_class=HTMLResponse)
def security_page(request: Request, notice: str = "") -> Response:
    viewer = signed_in(request)
    if viewer is None:
        return login_redirect(request)
    shown = message(request, notice) if notice in ("verified",) else None
    return render(request, "security.html", _security_context(request, viewer, notice=shown))


@router.post("/security/payment-password", response_class=HTMLResponse)
def payment_password_submit(request: Request, csrf_token: FormText = "", password: FormText = "",
                            payment_password: FormText = "", confirm: FormText = "") -> Response:
    viewer = form_viewer(request, csrf_token)
    if not isinstance(viewer, Viewer):
        return viewer
    p = auth.platform_of(request)
    origin = get_origin(request)
    status, error, info = 200, None, None
    if payment_password != confirm:
        status, error = 400, message(request, "payment_mismatch")
    else:
        try:
            identity.change_payment_password(p, viewer.user, password=password, payment_password=payment_password,
                                             origin=origin)
            info = message(request, "payment_saved")
        except TrustPayError as exc:
            status = exc.status
            if exc.param == "payment_password":
                error = message(request, "payment_format")
            elif isinstance(exc, AccountLocked):
                error = message(request, "locked", until=_locked_until(request, viewer.user.email))
            else:
                error = message(request, "wrong_password")
    return render(request, "security.html",
                  _security_context(request, viewer, pay_error=error, pay_info=info),
                  status_code=status)


@router.post("/security/sessions/{session_id}/revoke", response_class=HTMLResponse)
def revoke_session(request: Request, session_id: str, csrf_token: FormText = "") -> Response:
    viewer = form_viewer(request, csrf_token)
    if not isinstance(viewer, Viewer):
        return viewer
    p = auth.platform_of(request)
    origin = get_origin(request)
    try:
        p.db.run(lambda conn: identity.revoke_session(p, conn, viewer.user, session_id, origin))
        notice = message(request, "session_revoked")
    except TrustPayError:
        notice = message(request, "session_gone")
    if session_id == viewer.session.id:
        response: Response = redirect("/login?notice=signed_out")
        auth.clear_session_cookie(request, response)
        if request.headers.get("hx-request"):
            response = Response(status_code=200, headers={"HX-Redirect": "/login?notice=signed_out"})
            auth.clear_session_cookie(request, response)
        return response
    context = _security_context(request, viewer, notice=notice)
    if request.headers.get("hx-request"):
        return render(request, "fragments/sessions.html", context)
    return render(request, "security.html", context)
