"""Wallet pages: home (balances, quick actions, cards, transfers), top-up,
withdraw (fee shown before confirming), transfer (with undo) and the user's
own caps.

The handlers call the wallet services directly, with the API's rules in the
API's order: the payment password and the risk step-up run first, each in its
own transaction (a wrong password's count commits), then the money moves in
one transaction. A form carries a one-time ``request_key`` that plays the role
of the API's Idempotency-Key, so a double click or a resent form moves money
once. Statement and receipts are in :mod:`trustpay.web.wallet_pages`.
"""

from __future__ import annotations

import json
import secrets
import unicodedata
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Annotated, Any

from fastapi import APIRouter, Form, Request
from fastapi.responses import HTMLResponse, Response
from sqlalchemy import Connection, select

from trustpay.api.deps import get_origin
from trustpay.clock import to_utc
from trustpay.errors import InvalidAmount, TrustPayError
from trustpay.identity import service as identity
from trustpay.identity import store as identity_store
from trustpay.money import Money
from trustpay.platform import idempotency
from trustpay.wallet import bank_ops, cards, common, service, store, transfers
from trustpay.wallet.model import BankOpStatus, TransferStatus
from trustpay.web import auth
from trustpay.web.account import form_viewer, login_redirect, redirect, signed_in
from trustpay.web.auth import Viewer
from trustpay.web.i18n import format_money
from trustpay.web.notfound import not_found_page
from trustpay.web.templating import gettext, language_of, render, timestamp_formatter

router = APIRouter(include_in_schema=False)
FormText = Annotated[str, Form(max_length=1024)]
RECENT_TRANSFERS = 10
MAX_WAITING_SHOWN = 50
STEP_UP_CODES = ("mfa_required", "invalid_credentials")
MAX_CURRENCY_CHOICES = 20
MAX_PENDING_TOPUPS_SHOWN = 20
# How long a pending top-up's or withdrawal's page keeps asking for its status (once
# a second); after that it stops and says the wallet page will show the answer.
POLL_FOR = timedelta(minutes=3)
# htmx stops polling an element whose poll is answered with this status.
HTMX_STOP_POLLING = 286


def _(message: str) -> str:
    """Marks ``message`` for the catalogs; translated when rendered."""
    return message


# Each refusal in words, with what to do next: (message, link, link text).
REFUSALS: dict[str, tuple[str, str | None, str | None]] = {
    "insufficient_funds": (_("Your available balance is too low for this."), "/wallet/topup", _("Top up first")),
    "limit_exceeded": (_("This is over a limit for your verification level."), "/security#identity",
                       _("Verify your identity for higher limits")),
    "own_daily_cap": (_("This would pass the daily cap you set yourself."), "/wallet/preferences",
                      _("Change your daily cap")),
    "account_frozen": (_("Your account is frozen, so no money can leave it."), "/security#freeze",
                       _("Unfreeze it in the security centre")),
    "email_unverified": (_("Verify your e-mail address before moving money."), "/verify",
                         _("Verify your e-mail")),
    "payment_password_invalid": (_("The payment password is wrong, or you have not set one yet."),
                                 "/security#payment-password", _("Set or change your payment password")),
    "payment_password_missing": (_("Enter your 6-digit payment password."), None, None),
    "payment_password_over_free_cap": (
        _("Payments over your password-free cap of {cap} need your payment password. Enter it and send again."),
        None, None),
    "payment_password_wrong": (_("The payment password is wrong. Tries left before payments are locked: {left}."),
                               "/security#payment-password", _("Set or change your payment password")),
    "payment_password_unset": (_("You have not set a payment password yet."), "/security#payment-password",
                               _("Set your payment password")),
    "account_locked": (_("Too many wrong payment passwords: payments are locked for a while. Try again later."),
                       None, None),
    "account_locked_until": (_("Too many wrong payment passwords: payments are locked until {time}."),
                             None, None),
    "withdraw_over_balance": (
        _("Your available balance, {available}, does not cover {amount} plus the {fee} fee ({total} in all). "
          "The most you can withdraw now is {most}."), "/wallet/topup", _("Top up first")),
    "withdraw_over_own_cap": (
        _("This would pass the daily cap you set yourself: {left} is left today, so the most you can withdraw "
          "today is {most}."), "/wallet/preferences", _("Change your daily cap")),
    "withdraw_over_daily_limit": (
        _("This is over the daily limit for your verification level: {left} is left today, so the most you can "
          "withdraw today is {most}."), "/security#identity", _("Verify your identity for higher limits")),
    "mfa_required": (_("This payment needs a fresh code from your authenticator app. Enter it and send again."),
                     None, None),
    "invalid_totp": (_("The authenticator code is wrong or too old. Enter the code your app shows now."),
                     None, None),
    "risk_declined": (_("Our risk control declined this payment. Try again later, or contact support."),
                      None, None),
    "not_found": (_("No TrustPay user has that e-mail, phone or user id. Check it and try again."), None, None),
    "transfer_to_self": (_("You cannot transfer money to yourself."), None, None),
    "invalid_amount": (_("Enter an amount such as 12.34, greater than zero."), None, None),
    "amount_too_large": (_("This is more than the largest amount allowed, {most}. Enter a smaller amount."),
                         None, None),
    "invalid_currency": (_("You have no wallet in this currency."), None, None),
    "invalid_card_number": (_("This card number is not valid. Check the digits and try again."), None, None),
    "already_exists": (_("This card is already bound to your account."), None, None),
    "already_bound_chosen": (_("This card is already saved in your wallet, so it is now chosen above. "
                               "Check the amount and press Top up to use it."), None, None),
    "card_gone": (_("This card is no longer bound. Choose another card or bind a new one."), None, None),
    "choose_card": (_("Choose a card, or enter the number of a new one."), None, None),
    "bank_unavailable": (_("The bank is not answering right now. Try again in a few minutes."), None, None),
    "bank_rejected": (_("The bank refused this card. Try another card."), None, None),
    "holder_name_missing": (_("Enter the name as printed on the card."), None, None),
    "too_late": (_("Too late to undo: the undo window has closed and the money has arrived."), None, None),
    "already_answered": (_("This transfer has already been answered."), None, None),
    "invalid_request": (_("Something in the form is not right. Check it and try again."), None, None),
    "rate_limited": (_("Too many attempts. Wait a minute, then try again."), None, None),
    "unexpected": (_("Something went wrong on our side. Nothing was changed; please try again."), None, None),
}

NOTICES = {
    "card_bound": _("The card is bound. Only its last four digits are kept."),
    "card_unbound": _("The card is unbound."),
    "accepted": _("You accepted the transfer; the money is in your wallet."),
    "declined": _("You declined the transfer; the money went back to the sender."),
    "undone": _("The transfer was reversed; the money is back in your wallet."),
    "prefs_saved": _("Your wallet settings are saved."),
}

STATUS_LABELS = {
    "pending": _("Pending"),
    "succeeded": _("Succeeded"),
    "failed": _("Failed"),
    "completed": _("Completed"),
    "reversed": _("Reversed"),
    "pending_acceptance": _("Awaiting acceptance"),
    "returned": _("Returned"),
}


# Transfers whose money went back to the sender (undone, declined or not accepted in time):
# their amount is shown struck through, not as money that moved.
WENT_BACK = frozenset({TransferStatus.REVERSED.value, TransferStatus.RETURNED.value})


class AmountTooLarge(InvalidAmount):
    """An amount over ``max_amount``: the page names the maximum."""

    def __init__(self, most: Money) -> None:
        super().__init__(f"amount must not exceed {most.to_major()}", param="amount")
        self.most = most


@dataclass(frozen=True)
class Refusal:
    """A refusal as the page shows it."""

    code: str
    text: str
    link: str | None
    link_text: str | None


def refusal(request: Request, code: str, param: str | None = None) -> Refusal:
    key = "own_daily_cap" if code == "limit_exceeded" and param == "own_daily_cap" else code
    if code == "missing_field" and param == "holder_name":
        key = "holder_name_missing"
    if code == "invalid_credentials":  # on a money page only the step-up code can be wrong
        key = "invalid_totp"
    if key not in REFUSALS:
        key = "invalid_request" if code.startswith("invalid") else "unexpected"
    return worded(request, code, key)


def worded(request: Request, code: str, key: str, **values: str) -> Refusal:
    """The refusal ``key`` of :data:`REFUSALS` in the request's language, its ``{names}``
    filled in; ``code`` stays the API's (the page's ``data-code``)."""
    text, link, link_text = REFUSALS[key]
    shown = gettext(request, text).format(**values) if values else gettext(request, text)
    return Refusal(code, shown, link, gettext(request, link_text) if link_text else None)


def refusal_of(request: Request, exc: TrustPayError, *, invalid_state: str = "unexpected") -> Refusal:
    if isinstance(exc, AmountTooLarge):
        return amount_too_large(request, exc)
    if exc.code == "invalid_state":
        return refusal(request, invalid_state)
    return refusal(request, exc.code, exc.param)


def amount_too_large(request: Request, exc: AmountTooLarge) -> Refusal:
    return worded(request, exc.code, "amount_too_large", most=_money(request, exc.most.amount, exc.most.currency))


def _money(request: Request, amount: int, currency: str) -> str:
    return format_money(amount, currency, language_of(request).lang)


def password_refusal(request: Request, viewer: Viewer, code: str, *, given: bool, amount: int | None = None,
                     currency: str = "", free_cap: int = 0) -> Refusal | None:
    """A payment-password refusal in words that say what to do: enter it (and why,
    when the amount is over the password-free cap), how many tries are left, or
    until when payments are locked. None for any other refusal."""
    if code not in ("payment_password_invalid", "account_locked"):
        return None
    if code == "payment_password_invalid" and not given:
        if free_cap > 0 and amount is not None and amount > free_cap and currency:
            return worded(request, code, "payment_password_over_free_cap", cap=_money(request, free_cap, currency))
        return worded(request, code, "payment_password_missing")
    p = auth.platform_of(request)
    with p.db.transaction(write=False) as conn:
        user = identity_store.get_user(conn, viewer.user.id)
    if code == "account_locked":
        until = user.payment.locked_until
        if until is None or not user.payment.is_locked(p.clock.now()):
            return refusal(request, code)
        return worded(request, code, "account_locked_until",
                      time=timestamp_formatter(request)(to_utc(until)))
    if not user.has_payment_password:
        return worded(request, code, "payment_password_unset")
    left = max(1, p.settings.login_max_attempts - user.payment.failures)
    return worded(request, code, "payment_password_wrong", left=str(left))


def card_refusal(request: Request, code: str, param: str | None) -> Refusal:
    """On a page that names a card, "not found" and "not active" both mean: pick another card."""
    return refusal(request, "card_gone" if code in ("invalid_state", "not_found") else code, param)


class Refused(Exception):
    """A stored refusal replayed for a resent form (the first answer stands)."""

    def __init__(self, code: str, param: str | None, status: int) -> None:
        super().__init__(code)
        self.code, self.param, self.status = code, param, status


def run_once(request: Request, viewer: Viewer, request_key: str, form: dict[str, Any],
             effect: Callable[[Connection], dict[str, Any]],
             before: Callable[[], None] | None = None) -> dict[str, Any]:
    """``effect`` at most once per form (the hidden ``request_key``), as the API does per
    Idempotency-Key; ``before`` (payment password, step-up) only when it is not a replay.
    Returns the object; raises :class:`TrustPayError` or :class:`Refused`."""
    p = auth.platform_of(request)
    key = request_key.strip()[:200] or secrets.token_urlsafe(16)
    body = json.dumps(form, sort_keys=True).encode()
    stored = idempotency.execute(
        p, scope=f"web:{viewer.user.id}", key=key,
        fingerprint=idempotency.Fingerprint.of("POST", request.url.path, body),
        effect=lambda conn: (201, effect(conn)), before=before)
    result: dict[str, Any] = json.loads(stored.body or b"{}")
    if stored.status >= 400:
        err = result.get("error", {})
        raise Refused(str(err.get("code", "unexpected")), err.get("param"), stored.status)
    return result


def _new_key() -> str:
    return secrets.token_urlsafe(18)


def _amount(request: Request, text: str, currency: str) -> int:
    """A typed amount in minor units. Full-width digits and separators (what Chinese
    input methods type: "１００．５０") are read as their ASCII forms (NFKC); over the
    platform's maximum raises :class:`AmountTooLarge`, which names it."""
    p = auth.platform_of(request)
    plain = unicodedata.normalize("NFKC", text).strip().replace(",", "")
    minor = Money.parse(plain, currency).amount
    if minor > p.settings.max_amount:
        raise AmountTooLarge(Money.of(p.settings.max_amount, currency))
    return minor


def _is_zero(text: str) -> bool:
    """Empty, "0", "0.00": the password-free cap is off."""
    return not text.strip().replace("0", "").replace(".", "")


def _major(amount: int, currency: str) -> str:
    return Money.of(amount, currency).to_major()


def _utc(value: datetime | None) -> datetime | None:
    return None if value is None else to_utc(value)


# ------------------------------------------------------------------ shared reads
def _wallet_view(request: Request, viewer: Viewer, *, home: bool = False) -> dict[str, Any]:
    """What the wallet pages show; ``home``: also the top-ups still waiting for the bank."""
    p = auth.platform_of(request)
    uid = viewer.user.id
    waiting_topups: list[dict[str, Any]] = []
    with p.db.transaction(write=False) as conn:
        if home:
            waiting_topups = _waiting_topups(conn, uid)
        balances = service.balances(conn, uid)
        bound = [cards.shape(r) for r in store.active_cards(conn, uid)]
        rows, _more = store.page(conn, store.transfers, ("sender_id", "recipient_id"), uid,
                                 limit=RECENT_TRANSFERS, starting_after=None)
        recent = [_transfer_view(conn, r, uid) for r in rows]
        waiting = conn.execute(select(store.transfers).where(
            store.transfers.c.recipient_id == uid,
            store.transfers.c.status == TransferStatus.PENDING_ACCEPTANCE.value,
        ).order_by(store.transfers.c.id.desc()).limit(MAX_WAITING_SHOWN)).mappings()
        incoming = [_transfer_view(conn, r, uid) for r in waiting]
        user = identity_store.get_user(conn, uid)
    currencies = [b.currency for b in balances][:MAX_CURRENCY_CHOICES] or [p.settings.default_currency]
    return {"viewer": viewer, "balances": balances, "cards": bound, "recent": recent, "incoming": incoming,
            "currencies": currencies, "user": user, "status_labels": STATUS_LABELS,
            "waiting_topups": waiting_topups}


def _waiting_topups(conn: Connection, user_id: str) -> list[dict[str, Any]]:
    """The user's top-ups the bank has not answered yet, newest first, with their card
    (bound or not: the card it was taken from is what the person recognises)."""
    t, c = store.topups.c, store.bank_cards.c
    rows = conn.execute(
        select(t.id, t.amount, t.currency, t.created_at, c.brand, c.last4)
        .select_from(store.topups.join(store.bank_cards, c.id == t.card_id))
        .where(t.user_id == user_id, t.status == BankOpStatus.PENDING.value)
        .order_by(t.id.desc()).limit(MAX_PENDING_TOPUPS_SHOWN)).mappings()
    return [{"id": r["id"], "amount": r["amount"], "currency": r["currency"], "created_at": _utc(r["created_at"]),
             "brand": r["brand"], "last4": r["last4"]} for r in rows]


def _balances(request: Request, viewer: Viewer) -> list[service.Balance]:
    p = auth.platform_of(request)
    with p.db.transaction(write=False) as conn:
        return service.balances(conn, viewer.user.id)


def _transfer_view(conn: Connection, row: Any, user_id: str) -> dict[str, Any]:
    incoming = row["recipient_id"] == user_id
    other = row["sender_id"] if incoming else row["recipient_id"]
    who = store.user_by(conn, user_id=other)
    return {"id": row["id"], "status": row["status"], "amount": row["amount"], "currency": row["currency"],
            "memo": row["memo"], "incoming": incoming, "went_back": row["status"] in WENT_BACK,
            "other": transfers.mask_email(who.email) if who is not None else other,
            "created_at": _utc(row["created_at"]), "undo_until": _utc(row["undo_until"]),
            "accept_until": _utc(row["accept_until"]), "settled": row["settled_at"] is not None}


def _notice(request: Request, notice: str) -> str | None:
    return gettext(request, NOTICES[notice]) if notice in NOTICES else None


# ------------------------------------------------------------------ home and cards
@router.get("/wallet", response_class=HTMLResponse)
def wallet_home(request: Request, notice: str = "") -> Response:
    viewer = signed_in(request)
    if viewer is None:
        return login_redirect()
    return render(request, "wallet.html", {**_wallet_view(request, viewer, home=True),
                                           "info": _notice(request, notice), "error": None})


@router.post("/wallet/cards", response_class=HTMLResponse)
def bind_card(request: Request, csrf_token: FormText = "", card_number: FormText = "",
              holder_name: FormText = "") -> Response:
    viewer = form_viewer(request, csrf_token)
    if not isinstance(viewer, Viewer):
        return viewer
    try:
        _bind(request, viewer, card_number, holder_name)
    except TrustPayError as exc:
        # The number is not put back into the form: it never leaves the request.
        return render(request, "wallet.html", {**_wallet_view(request, viewer, home=True), "info": None,
                                               "error": refusal_of(request, exc), "holder_name": holder_name},
                      status_code=exc.status)
    return redirect("/wallet?notice=card_bound#cards")


def _bind(request: Request, viewer: Viewer, card_number: str, holder_name: str) -> Any:
    p = auth.platform_of(request)
    return cards.bind(p, viewer.user.id, bank="sandbox", card_number=card_number.replace(" ", "").strip(),
                      holder_name=holder_name.strip())


@router.post("/wallet/cards/{card_id}/unbind", response_class=HTMLResponse)
def unbind_card(request: Request, card_id: str, csrf_token: FormText = "", confirm: FormText = "") -> Response:
    """Unbinds only with ``confirm=yes`` (the card row's "Yes, unbind" button); a post
    without it (an old page, a stray tap) gets the confirmation step, nothing else."""
    viewer = form_viewer(request, csrf_token)
    if not isinstance(viewer, Viewer):
        return viewer
    p = auth.platform_of(request)
    if confirm != "yes":
        view = _wallet_view(request, viewer, home=True)
        card = next((c for c in view["cards"] if c["id"] == card_id), None)
        if card is None:
            return render(request, "wallet.html", {**view, "info": None,
                                                   "error": card_refusal(request, "not_found", None)},
                          status_code=404)
        return render(request, "wallet.html", {**view, "info": None, "error": None, "confirm_unbind": card})
    try:
        row = p.db.run(lambda conn: cards.unbind(p, conn, viewer.user.id, card_id))
    except TrustPayError as exc:
        return render(request, "wallet.html", {**_wallet_view(request, viewer, home=True), "info": None,
                                               "error": card_refusal(request, exc.code, exc.param)},
                      status_code=exc.status)
    cards.revoke_at_bank(p, row)
    return redirect("/wallet?notice=card_unbound#cards")


# ------------------------------------------------------------------ top-up
def _topup_page(request: Request, viewer: Viewer, *, form: dict[str, str] | None = None,
                error: Refusal | None = None, status_code: int = 200, new_card: bool = False) -> HTMLResponse:
    """``new_card``: the person was using "Use a new card"; it stays chosen and open,
    with no saved card picked, so sending again cannot charge a card they did not choose."""
    view = _wallet_view(request, viewer)
    form = form or {"card": view["cards"][0]["id"] if view["cards"] else "", "amount": "", "holder_name": "",
                    "currency": view["currencies"][0]}
    if new_card:
        form = {**form, "card": ""}
    return render(request, "wallet_topup.html", {**view, "form": form, "error": error, "request_key": _new_key(),
                                                 "new_card": new_card}, status_code=status_code)


@router.get("/wallet/topup", response_class=HTMLResponse)
def topup_page(request: Request) -> Response:
    viewer = signed_in(request)
    if viewer is None:
        return login_redirect()
    return _topup_page(request, viewer)


@router.post("/wallet/topup", response_class=HTMLResponse)
def topup_submit(request: Request, csrf_token: FormText = "", card: FormText = "", amount: FormText = "",
                 currency: FormText = "CNY", card_number: FormText = "", holder_name: FormText = "",
                 request_key: FormText = "") -> Response:
    viewer = form_viewer(request, csrf_token)
    if not isinstance(viewer, Viewer):
        return viewer
    p = auth.platform_of(request)
    currency = currency.strip().upper()[:3]
    form = {"card": card, "amount": amount, "holder_name": holder_name, "currency": currency}
    new_card = bool(card_number.strip())  # until it is bound: then it is one of the saved cards
    try:
        minor = _amount(request, amount, currency)
        if new_card:  # bind inline first; the number goes to the bank and nowhere else
            card = _bind(request, viewer, card_number, holder_name)["id"]
            form["card"] = card
            new_card = False
        card_id = card.strip()
        if not card_id:
            return _topup_page(request, viewer, form=form, status_code=400,
                               error=refusal(request, "choose_card"))

        def effect(conn: Connection) -> dict[str, Any]:
            row = bank_ops.create_topup(p, conn, viewer.user.id, card_id=card_id, amount=minor, currency=currency)
            return bank_ops.shape_topup(row)

        done = run_once(request, viewer, request_key, {"card": card_id, "amount": minor, "currency": currency},
                        effect)
    except cards.AlreadyBound as exc:
        # The number typed is a saved card: choose it, and let the person press again
        # (nothing is charged without that press).
        return _topup_page(request, viewer, form={**form, "card": exc.card_id}, status_code=exc.status,
                           error=worded(request, exc.code, "already_bound_chosen"))
    except TrustPayError as exc:
        shown = (amount_too_large(request, exc) if isinstance(exc, AmountTooLarge)
                 else card_refusal(request, exc.code, exc.param))
        return _topup_page(request, viewer, form=form, status_code=exc.status, error=shown, new_card=new_card)
    except Refused as exc:
        return _topup_page(request, viewer, form=form, status_code=exc.status, new_card=new_card,
                           error=card_refusal(request, exc.code, exc.param))
    bank_ops.submit_quietly(p, done["id"])  # a bank that is down leaves it pending for the poll job
    return redirect(f"/wallet/topups/{done['id']}")


def _bank_op(request: Request, viewer: Viewer, obj_id: str) -> tuple[dict[str, Any], datetime] | None:
    """The operation as the API shows it, and when it was created."""
    p = auth.platform_of(request)
    table, shape = ((store.topups, bank_ops.shape_topup) if obj_id.startswith("top_")
                    else (store.withdrawals, bank_ops.shape_withdrawal))
    try:
        with p.db.transaction(write=False) as conn:
            row = store.get_row(conn, table, obj_id, owner_col="user_id", owner_id=viewer.user.id)
            return shape(row), to_utc(row["created_at"])
    except TrustPayError:
        return None


def _op_page(request: Request, obj_id: str, *, fragment: bool) -> Response:
    viewer = signed_in(request)
    if viewer is None:
        return login_redirect()
    found = _bank_op(request, viewer, obj_id)
    if found is None:
        return not_found_page(request)
    op, created_at = found
    pending = op["status"] == BankOpStatus.PENDING.value
    # The bank is slow past POLL_FOR (a pending top-up is settled by the poll job or
    # by reconciliation, maybe hours later): the page stops asking every second and
    # says so, and how to check again.
    polling = pending and auth.platform_of(request).clock.now() - created_at < POLL_FOR
    context = {"viewer": viewer, "op": op, "status_labels": STATUS_LABELS, "pending": pending,
               "polling": polling, "balances": _balances(request, viewer),
               "poll_minutes": int(POLL_FOR.total_seconds() // 60)}
    response = render(request, "fragments/bank_op_status.html" if fragment else "wallet_bank_op.html", context)
    if fragment and pending and not polling:
        # htmx stops the poll on a 286 and still swaps in this panel, which carries none.
        response.status_code = HTMX_STOP_POLLING
    return response


@router.get("/wallet/topups/{topup_id}", response_class=HTMLResponse)
def topup_result(request: Request, topup_id: str) -> Response:
    return _op_page(request, topup_id, fragment=False)


@router.get("/wallet/topups/{topup_id}/status", response_class=HTMLResponse)
def topup_status(request: Request, topup_id: str) -> Response:
    return _op_page(request, topup_id, fragment=True)


# ------------------------------------------------------------------ withdraw
def _withdraw_page(request: Request, viewer: Viewer, *, form: dict[str, str] | None = None,
                   error: Refusal | None = None, quote: dict[str, Any] | None = None,
                   status_code: int = 200, need_totp: bool = False,
                   view: dict[str, Any] | None = None) -> HTMLResponse:
    p = auth.platform_of(request)
    view = view or _wallet_view(request, viewer)
    if form is None:
        chosen = request.query_params.get("card", "")
        known = [c["id"] for c in view["cards"]]
        form = {"card": chosen if chosen in known else (known[0] if known else ""),
                "amount": request.query_params.get("amount", "")[:20], "currency": view["currencies"][0]}
    # What each balance allows: its amount + fee must fit in what is available and,
    # today, in what the daily cap (the person's own or the tier's) has left.
    rooms = _rooms_today(request, viewer, [b.currency for b in view["balances"]])
    most = {b.currency: bank_ops.most_withdrawable(p, min(b.available, rooms[b.currency].left)
                                                   if b.currency in rooms else b.available)
            for b in view["balances"]}
    quote_card = next((c for c in view["cards"] if c["id"] == form["card"]), None)
    return render(request, "wallet_withdraw.html", {
        **view, "form": form, "error": error, "quote": quote, "quote_card": quote_card, "most": most,
        "request_key": _new_key(), "need_totp": need_totp or viewer.user.mfa_enabled}, status_code=status_code)


@router.get("/wallet/withdraw", response_class=HTMLResponse)
def withdraw_page(request: Request) -> Response:
    """``?amount=&card=`` fill the form in (the confirm step's "change" link keeps them)."""
    viewer = signed_in(request)
    if viewer is None:
        return login_redirect()
    return _withdraw_page(request, viewer)


def _over_balance(request: Request, view: dict[str, Any], quote: dict[str, Any], currency: str) -> Refusal | None:
    """The refusal for a withdrawal whose amount + fee is more than is available now,
    with the most that can be withdrawn; None when it fits (the ledger still decides)."""
    available = next((b.available for b in view["balances"] if b.currency == currency), 0)
    if quote["total"] <= available:
        return None
    p = auth.platform_of(request)
    return worded(request, "insufficient_funds", "withdraw_over_balance",
                  available=_money(request, available, currency), amount=_money(request, quote["amount"], currency),
                  fee=_money(request, quote["fee"], currency), total=_money(request, quote["total"], currency),
                  most=_money(request, bank_ops.most_withdrawable(p, available), currency))


def _rooms_today(request: Request, viewer: Viewer, currencies: list[str]) -> dict[str, common.RoomToday]:
    """What may still leave each wallet today, for the currencies a daily cap applies to."""
    p = auth.platform_of(request)
    rooms: dict[str, common.RoomToday] = {}
    with p.db.transaction(write=False) as conn:
        for currency in currencies:
            found = store.payer(conn, viewer.user.id, currency)
            room = common.room_today(p, conn, found, currency) if found is not None else None
            if room is not None:
                rooms[currency] = room
    return rooms


def _over_daily(request: Request, viewer: Viewer, quote: dict[str, Any], currency: str) -> Refusal | None:
    """The refusal for a withdrawal whose amount + fee would pass a limit (the daily cap
    the person set, the tier's daily or single-payment limit), judged by the rule the
    withdrawal itself runs, with what is left today; None when it fits (the final
    check at confirm stays the guard)."""
    p = auth.platform_of(request)
    with p.db.transaction(write=False) as conn:
        found = store.payer(conn, viewer.user.id, currency)
        if found is None or found.wallet_id is None:
            return None  # no wallet: the confirm step says so
        try:
            common.enforce_daily_limits(p, conn, found, currency=currency, amount=quote["amount"],
                                        fee=quote["fee"])
            return None
        except TrustPayError as exc:
            room = common.room_today(p, conn, found, currency)
            if exc.param not in ("own_daily_cap", "daily_outflow") or room is None:
                return refusal_of(request, exc)
            key = "withdraw_over_own_cap" if exc.param == "own_daily_cap" else "withdraw_over_daily_limit"
            return worded(request, exc.code, key, left=_money(request, room.left, currency),
                          most=_money(request, bank_ops.most_withdrawable(p, room.left), currency))


@router.post("/wallet/withdraw/quote", response_class=HTMLResponse)
def withdraw_quote(request: Request, csrf_token: FormText = "", card: FormText = "", amount: FormText = "",
                   currency: FormText = "CNY") -> Response:
    """The confirm step: card, amount, fee and total, before anything moves; an amount
    whose total the balance cannot pay, or that would pass today's daily cap or limit,
    is refused here, before the payment password."""
    viewer = form_viewer(request, csrf_token)
    if not isinstance(viewer, Viewer):
        return viewer
    p = auth.platform_of(request)
    currency = currency.strip().upper()[:3]
    form = {"card": card, "amount": amount, "currency": currency}
    view = _wallet_view(request, viewer)
    try:
        quote = bank_ops.quote_withdrawal(p, _amount(request, amount, currency))
    except TrustPayError as exc:
        return _withdraw_page(request, viewer, form=form, error=refusal_of(request, exc), status_code=exc.status,
                              view=view)
    form["amount"] = _major(quote["amount"], currency)
    if not any(c["id"] == card for c in view["cards"]):
        return _withdraw_page(request, viewer, form=form, view=view, status_code=400 if not card else 409,
                              error=refusal(request, "choose_card" if not card else "card_gone"))
    short = _over_balance(request, view, quote, currency) or _over_daily(request, viewer, quote, currency)
    if short is not None:
        return _withdraw_page(request, viewer, form=form, error=short, status_code=402, view=view)
    return _withdraw_page(request, viewer, form=form, quote=quote, view=view)


@router.post("/wallet/withdraw", response_class=HTMLResponse)
def withdraw_submit(request: Request, csrf_token: FormText = "", card: FormText = "", amount: FormText = "",
                    currency: FormText = "CNY", payment_password: FormText = "", totp_code: FormText = "",
                    request_key: FormText = "") -> Response:
    viewer = form_viewer(request, csrf_token)
    if not isinstance(viewer, Viewer):
        return viewer
    p = auth.platform_of(request)
    origin = get_origin(request)
    currency = currency.strip().upper()[:3]
    form = {"card": card, "amount": amount, "currency": currency}
    quote: dict[str, Any] | None = None
    stepped_up = False
    try:
        minor = _amount(request, amount, currency)
        quote = bank_ops.quote_withdrawal(p, minor)

        def before() -> None:  # the API's order: payment password, then risk (with its step-up)
            nonlocal stepped_up
            stepped_up = bank_ops.authorise_withdrawal(p, viewer.user.id, amount=minor,
                                                       payment_password=payment_password,
                                                       totp_code=totp_code.strip() or None, origin=origin)

        def effect(conn: Connection) -> dict[str, Any]:
            row = bank_ops.create_withdrawal(p, conn, viewer.user.id, card_id=card, amount=minor, currency=currency,
                                             stepped_up=stepped_up)
            return bank_ops.shape_withdrawal(row)

        done = run_once(request, viewer, request_key, {"card": card, "amount": minor, "currency": currency},
                        effect, before)
    except (TrustPayError, Refused) as exc:
        code, param = exc.code, getattr(exc, "param", None)
        view = _wallet_view(request, viewer)
        shown = None
        if isinstance(exc, AmountTooLarge):
            shown = amount_too_large(request, exc)
        elif code == "insufficient_funds" and quote is not None:
            shown = _over_balance(request, view, quote, currency)
        shown = shown or password_refusal(request, viewer, code, given=bool(payment_password))
        shown = shown or card_refusal(request, code, param)
        if code == "insufficient_funds":  # back to the form, to change the amount
            quote = None
        return _withdraw_page(request, viewer, form=form, error=shown, quote=quote, status_code=exc.status,
                              need_totp=code in STEP_UP_CODES, view=view)
    bank_ops.submit_quietly(p, done["id"])
    return redirect(f"/wallet/withdrawals/{done['id']}")


@router.get("/wallet/withdrawals/{withdrawal_id}", response_class=HTMLResponse)
def withdrawal_result(request: Request, withdrawal_id: str) -> Response:
    return _op_page(request, withdrawal_id, fragment=False)


@router.get("/wallet/withdrawals/{withdrawal_id}/status", response_class=HTMLResponse)
def withdrawal_status(request: Request, withdrawal_id: str) -> Response:
    return _op_page(request, withdrawal_id, fragment=True)


# ------------------------------------------------------------------ transfer
def _transfer_page(request: Request, viewer: Viewer, *, form: dict[str, Any] | None = None,
                   error: Refusal | None = None, status_code: int = 200,
                   need_totp: bool = False) -> HTMLResponse:
    p = auth.platform_of(request)
    view = _wallet_view(request, viewer)
    form = form or {"to": request.query_params.get("to", "")[:320], "amount": "", "memo": "",
                    "currency": view["currencies"][0], "require_acceptance": False}
    return render(request, "wallet_transfer.html", {
        **view, "form": form, "error": error, "request_key": _new_key(),
        "free_cap": _free_cap(request, viewer), "cap_currency": p.settings.default_currency,
        "need_totp": need_totp or viewer.user.mfa_enabled}, status_code=status_code)


def _free_cap(request: Request, viewer: Viewer) -> int:
    """The user's password-free (免密) cap, 0 when it is off."""
    p = auth.platform_of(request)
    with p.db.transaction(write=False) as conn:
        return service.preferences(conn, viewer.user.id).password_free_cap


@router.get("/wallet/transfer", response_class=HTMLResponse)
def transfer_page(request: Request) -> Response:
    viewer = signed_in(request)
    if viewer is None:
        return login_redirect()
    return _transfer_page(request, viewer)


@router.post("/wallet/transfer", response_class=HTMLResponse)
def transfer_submit(request: Request, csrf_token: FormText = "", to: FormText = "", amount: FormText = "",
                    currency: FormText = "CNY", memo: FormText = "", payment_password: FormText = "",
                    require_acceptance: FormText = "", totp_code: FormText = "",
                    request_key: FormText = "") -> Response:
    viewer = form_viewer(request, csrf_token)
    if not isinstance(viewer, Viewer):
        return viewer
    p = auth.platform_of(request)
    origin = get_origin(request)
    currency = currency.strip().upper()[:3]
    wants_acceptance = require_acceptance in ("1", "on", "true")
    form = {"to": to, "amount": amount, "memo": memo, "currency": currency, "require_acceptance": wants_acceptance}
    stepped_up = False
    minor: int | None = None
    try:
        minor = _amount(request, amount, currency)

        def before() -> None:  # the API's order: payment password (or 免密), recipient, risk step-up
            nonlocal stepped_up
            stepped_up = transfers.authorise(p, viewer.user.id, to=to, amount=minor,
                                             payment_password=payment_password or None,
                                             totp_code=totp_code.strip() or None, origin=origin)

        def effect(conn: Connection) -> dict[str, Any]:
            row = transfers.send(p, conn, viewer.user.id, to=to, amount=minor, currency=currency, memo=memo,
                                 require_acceptance=wants_acceptance, stepped_up=stepped_up)
            return transfers.shape(row)

        done = run_once(request, viewer, request_key,
                        {"to": to.strip(), "amount": minor, "currency": currency, "memo": memo.strip(),
                         "require_acceptance": wants_acceptance}, effect, before)
    except (TrustPayError, Refused) as exc:
        code = exc.code
        shown = amount_too_large(request, exc) if isinstance(exc, AmountTooLarge) else None
        if shown is None and minor is not None:
            shown = password_refusal(request, viewer, code, given=bool(payment_password), amount=minor,
                                     currency=currency, free_cap=_free_cap(request, viewer))
        shown = shown or refusal(request, code, getattr(exc, "param", None))
        return _transfer_page(request, viewer, form=form, error=shown, status_code=exc.status,
                              need_totp=code in STEP_UP_CODES)
    return redirect(f"/wallet/transfers/{done['id']}")


def _transfer_result(request: Request, viewer: Viewer, transfer_id: str, *, info: str | None = None,
                     error: Refusal | None = None, status_code: int = 200) -> Response:
    p = auth.platform_of(request)
    try:
        with p.db.transaction(write=False) as conn:
            t = _transfer_view(conn, transfers.get_for(conn, transfer_id, viewer.user.id), viewer.user.id)
    except TrustPayError:
        return not_found_page(request)
    now = p.clock.now()
    undo_left = 0
    if (not t["incoming"] and t["status"] == TransferStatus.COMPLETED and not t["settled"]
            and t["undo_until"] is not None and t["undo_until"] > now):
        undo_left = max(1, int((t["undo_until"] - now).total_seconds() + 0.999))
    return render(request, "wallet_transfer_result.html", {
        "viewer": viewer, "t": t, "undo_left": undo_left, "info": info, "error": error,
        "status_labels": STATUS_LABELS, "balances": _balances(request, viewer),
    }, status_code=status_code)


@router.get("/wallet/transfers/{transfer_id}", response_class=HTMLResponse)
def transfer_result(request: Request, transfer_id: str, notice: str = "") -> Response:
    viewer = signed_in(request)
    if viewer is None:
        return login_redirect()
    return _transfer_result(request, viewer, transfer_id, info=_notice(request, notice))


def _transfer_action(action: Callable[..., Any], done: str, too_late: str) -> Callable[..., Response]:
    def route(request: Request, transfer_id: str, csrf_token: FormText = "") -> Response:
        viewer = form_viewer(request, csrf_token)
        if not isinstance(viewer, Viewer):
            return viewer
        p = auth.platform_of(request)
        try:
            p.db.run(lambda conn: action(p, conn, transfer_id, viewer.user.id))
        except TrustPayError as exc:
            # The server is the judge of the window: a 409 here means it has closed.
            return _transfer_result(request, viewer, transfer_id, status_code=exc.status,
                                    error=refusal_of(request, exc, invalid_state=too_late))
        return redirect(f"/wallet/transfers/{transfer_id}?notice={done}")
    return route


router.add_api_route("/wallet/transfers/{transfer_id}/undo", _transfer_action(transfers.undo, "undone", "too_late"),
                     methods=["POST"], response_class=HTMLResponse)
router.add_api_route("/wallet/transfers/{transfer_id}/accept",
                     _transfer_action(transfers.accept, "accepted", "already_answered"),
                     methods=["POST"], response_class=HTMLResponse)
router.add_api_route("/wallet/transfers/{transfer_id}/decline",
                     _transfer_action(transfers.decline, "declined", "already_answered"),
                     methods=["POST"], response_class=HTMLResponse)


# ------------------------------------------------------------------ preferences
def _prefs_page(request: Request, viewer: Viewer, *, form: dict[str, str] | None = None,
                error: Refusal | None = None, info: str | None = None, status_code: int = 200) -> HTMLResponse:
    p = auth.platform_of(request)
    currency = p.settings.default_currency
    with p.db.transaction(write=False) as conn:
        prefs = service.preferences(conn, viewer.user.id)
    if form is None:
        form = {"daily_cap": _major(prefs.daily_cap, currency) if prefs.daily_cap is not None else "",
                "password_free_cap": _major(prefs.password_free_cap, currency) if prefs.password_free_cap else ""}
    return render(request, "wallet_preferences.html", {
        "viewer": viewer, "prefs": prefs, "form": form, "error": error, "info": info, "currency": currency,
    }, status_code=status_code)


@router.get("/wallet/preferences", response_class=HTMLResponse)
def preferences_page(request: Request, notice: str = "") -> Response:
    viewer = signed_in(request)
    if viewer is None:
        return login_redirect()
    return _prefs_page(request, viewer, info=_notice(request, notice))


@router.post("/wallet/preferences", response_class=HTMLResponse)
def preferences_submit(request: Request, csrf_token: FormText = "", daily_cap: FormText = "",
                       password_free_cap: FormText = "", payment_password: FormText = "") -> Response:
    viewer = form_viewer(request, csrf_token)
    if not isinstance(viewer, Viewer):
        return viewer
    p = auth.platform_of(request)
    currency = p.settings.default_currency
    form = {"daily_cap": daily_cap, "password_free_cap": password_free_cap}
    try:
        cap = _amount(request, daily_cap, currency) if daily_cap.strip() else None
        free = 0 if _is_zero(password_free_cap) else _amount(request, password_free_cap, currency)
        identity.require_payment_password(p, viewer.user.id, payment_password, get_origin(request))
        p.db.run(lambda conn: service.set_preferences(p, conn, viewer.user.id, daily_cap=cap,
                                                      password_free_cap=free))
    except TrustPayError as exc:
        shown = password_refusal(request, viewer, exc.code, given=bool(payment_password))
        return _prefs_page(request, viewer, form=form, error=shown or refusal_of(request, exc),
                           status_code=exc.status)
    return redirect("/wallet/preferences?notice=prefs_saved")
