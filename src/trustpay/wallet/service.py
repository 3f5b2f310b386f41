"""Wallet reads and the user's own wallet settings (daily cap, 免密 cap)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from sqlalchemy import Connection

from trustpay.identity import service as identity
from trustpay.identity.audit import Origin
from trustpay.identity.model import payment_password_missing
from trustpay.money import check_amount
from trustpay.wallet import store
from trustpay.wallet.model import needs_payment_password

if TYPE_CHECKING:
    from trustpay.platform.context import Platform


@dataclass(frozen=True, slots=True)
class Balance:
    currency: str
    available: int
    held: int
    pending_in: int


def balances(conn: Connection, user_id: str) -> list[Balance]:
    """Per currency: what can be spent, what is held on the way out (withdrawals,
    transfers still undoable), and what is on the way in (not spendable yet).

    For a merchant, "on the way in" also counts finished-trade money awaiting
    settlement (API.md "Wallet"), less what a settlement payout already holds: that
    part is on its way to the settlement card, not to the wallet."""
    by_currency = {r["currency"]: Balance(r["currency"], r["balance"] - r["pending_out"], r["pending_out"],
                                          r["pending_in"]) for r in store.wallet_accounts(conn, user_id)}
    for r in store.settlement_pending_accounts(conn, user_id):
        b = by_currency.get(r["currency"], Balance(r["currency"], 0, 0, 0))
        by_currency[r["currency"]] = Balance(b.currency, b.available, b.held,
                                             b.pending_in + r["balance"] - r["pending_out"])
    return [by_currency[c] for c in sorted(by_currency)]


@dataclass(frozen=True, slots=True)
class Preferences:
    daily_cap: int | None
    password_free_cap: int


def preferences(conn: Connection, user_id: str) -> Preferences:
    row = store.preferences(conn, user_id)
    if row is None:
        return Preferences(None, 0)
    return Preferences(row["daily_cap"], row["password_free_cap"])


def set_preferences(p: Platform, conn: Connection, user_id: str, *, daily_cap: int | None,
                    password_free_cap: int) -> Preferences:
    if daily_cap is not None:
        check_amount(daily_cap, p.settings.max_amount, param="daily_cap")
    if password_free_cap:
        check_amount(password_free_cap, p.settings.max_amount, param="password_free_cap")
    store.save_preferences(conn, user_id, daily_cap=daily_cap, password_free_cap=password_free_cap,
                           now=p.clock.now())
    return preferences(conn, user_id)


def authorise_payment(p: Platform, user_id: str, amount: int, payment_password: str | None,
                      origin: Origin = Origin()) -> bool:
    """The payment password, unless the amount is within the user's password-free cap.

    Runs in its own transaction before the money moves, so a wrong password's
    count toward the lock commits even though the payment does not happen.
    Returns whether a payment password was checked (a risk challenge may need it).
    A password sent although the cap would allow none is still checked."""
    prefs = p.db.run(lambda conn: preferences(conn, user_id), write=False)
    return check_payment_password(p, user_id, amount, payment_password, prefs, origin)


def check_payment_password(p: Platform, user_id: str, amount: int, payment_password: str | None,
                           prefs: Preferences, origin: Origin = Origin()) -> bool:
    """:func:`authorise_payment` with the user's preferences already read."""
    if not payment_password:
        if not needs_payment_password(amount, prefs.password_free_cap):
            return False
        raise payment_password_missing()
    identity.require_payment_password(p, user_id, payment_password, origin)
    return True


def shape_balances(rows: list[Balance]) -> dict[str, Any]:
    return {"balances": [{"currency": b.currency, "available": b.available, "held": b.held,
                          "pending_in": b.pending_in} for b in rows]}
