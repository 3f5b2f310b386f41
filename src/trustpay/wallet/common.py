"""What every money-out action of the wallet does first, and the platform's own
accounts the wallet moves money through."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from sqlalchemy import Connection

from trustpay.errors import InsufficientFunds, InvalidCurrency, NotFound, PaymentFailed
from trustpay.events.notify import Notification
from trustpay.events.queue import enqueue
from trustpay.identity import freeze, limits
from trustpay.identity import store as identity_store
from trustpay.identity.model import User, payment_password_missing, tier_of
from trustpay.ledger.model import Account, AccountKind
from trustpay.money import check_currency
from trustpay.risk import service as risk
from trustpay.wallet import store
from trustpay.wallet.model import FeePlan, needs_payment_password

if TYPE_CHECKING:
    from trustpay.platform.context import Platform

# Owner of the platform's own accounts. Not NULL, so the ledger's unique
# (owner, kind, currency) holds for them too: two first-ever openings cannot
# both succeed.
PLATFORM_OWNER = "platform"


def own_wallet(conn: Connection, user_id: str, currency: str) -> str:
    """The user's wallet account in ``currency``; 400 when they hold none in it."""
    check_currency(currency)
    account_id = store.wallet_account_id(conn, user_id, currency)
    if account_id is None:
        raise _no_wallet(currency)
    return account_id


def _no_wallet(currency: str) -> InvalidCurrency:
    return InvalidCurrency(f"you have no {currency} wallet", param="currency")


def recipient_wallet(p: Platform, conn: Connection, user_id: str, currency: str) -> str:
    """The recipient's wallet, opened on first receipt in a new currency."""
    return recipient_account(p, conn, user_id, currency).id


def recipient_account(p: Platform, conn: Connection, user_id: str, currency: str) -> Account:
    """:func:`recipient_wallet` with its balances as this transaction reads them."""
    return p.book.open_account(conn, currency=currency, kind=AccountKind.WALLET.value, owner_id=user_id)


def before_money_out(p: Platform, conn: Connection, user_id: str, *, currency: str, amount: int, action: str,
                     stepped_up: bool, recipient_id: str | None = None, password_free_only: bool = False,
                     fee: int = 0, fees: FeePlan | None = None) -> str:
    """Freeze, verified e-mail, (for a withdrawal) the available balance, the tier
    and personal limits, then risk control; returns the wallet id.

    ``amount`` is what the person asked to move, ``fee`` what the platform takes on
    top (a withdrawal's). The tier's single-payment limit is on ``amount``; what
    leaves the wallet, ``amount + fee``, counts toward the daily limits, the
    password-free cap and risk control. ``fees`` (a withdrawal's fee plan): refuse
    402 ``insufficient_funds`` naming the figures and the most that can be
    withdrawn, before any limit is judged, so a payment that cannot be paid anyway
    is not sent off to raise a limit. The ledger's own overdraft refusal (the
    hold) stays the guard either way.

    Runs inside the money transaction, so the limits and the risk rules see
    every earlier outflow that committed and none that rolled back. Each fact
    is read once: the user with their wallet and own caps (one statement), and
    today's outflow (the tier's daily limit and the user's own cap).

    ``password_free_only``: no payment password was checked for this payment
    (a request tried before its own checks, see ``idempotency.execute``), so an
    amount over the user's 免密 cap is refused here, as that check would."""
    found = store.payer(conn, user_id, currency)
    if found is None:
        raise NotFound(f"no user {user_id}")
    total = amount + fee
    if password_free_only and needs_payment_password(total, found.own_password_free_cap or 0):
        raise payment_password_missing()
    sender = identity_store.as_user(found)
    freeze.ensure_can_move_money(sender)
    check_currency(currency)
    if found.wallet_id is None:
        raise _no_wallet(currency)
    wallet = str(found.wallet_id)
    if fees is not None:
        _enforce_funds(p.book.account(conn, wallet).available, amount, fee, currency, fees)
    enforce_daily_limits(p, conn, found, currency=currency, amount=amount, fee=fee, remember=True, user=sender)
    risk.enforce(risk.decide(p, conn, user_id, action=action, amount=total, recipient_id=recipient_id),
                 stepped_up=stepped_up)
    return wallet


def enforce_daily_limits(p: Platform, conn: Connection, found: Any, *, currency: str, amount: int, fee: int,
                         remember: bool = False, user: User | None = None) -> None:
    """The tier's limits and the user's own daily cap for ``amount`` + ``fee`` leaving
    the wallet now; raises 402 ``limit_exceeded`` naming the limit in ``param``.
    ``found``: the :func:`store.payer` row (with a wallet). The money transaction
    calls it with ``remember`` (it may write the day's outflow mark) and the ``user``
    it already made of ``found`` (every transfer passes here); the withdrawal quote
    calls it in a read-only transaction, to refuse before the payment password."""
    wallet = str(found.wallet_id)
    own_cap = found.own_daily_cap
    spent = (limits.daily_outflow(p, conn, found.id, currency, wallet_id=wallet, remember=remember)
             if own_cap is not None or limits.applies(p, outflow=amount) else 0)
    # The fee rides on today's outflow, not on the single payment: the tier judges
    # the amount asked for as one payment, and spent + fee + amount for the day.
    limits.enforce_limits(p, conn, found.id, currency=currency, outflow=amount,
                          user=user or identity_store.as_user(found), spent_today=spent + fee)
    if own_cap is not None:
        _enforce_own_daily_cap(own_cap, spent, amount + fee, currency)


@dataclass(frozen=True)
class RoomToday:
    """What may still leave the wallet today (amount + fee), under the tighter of the
    user's own daily cap and the tier's daily limit, and which one that is (the
    ``param`` :func:`enforce_daily_limits` names when it refuses)."""

    left: int
    param: str


def room_today(p: Platform, conn: Connection, found: Any, currency: str) -> RoomToday | None:
    """:class:`RoomToday` for the :func:`store.payer` row ``found``; None when neither
    a cap of their own nor the tier limits apply (or they hold no wallet in ``currency``)."""
    own_cap = found.own_daily_cap
    tier_applies = limits.applies(p, outflow=1)
    if found.wallet_id is None or (own_cap is None and not tier_applies):
        return None
    spent = limits.daily_outflow(p, conn, found.id, currency, wallet_id=str(found.wallet_id))
    rooms = []
    if own_cap is not None:  # first: on a tie, the cap the person can change is the one to name
        rooms.append(RoomToday(max(0, own_cap - spent), "own_daily_cap"))
    if tier_applies:
        daily = limits.limits_for(p.settings, tier_of(identity_store.as_user(found))).daily_outflow
        rooms.append(RoomToday(max(0, daily - spent), "daily_outflow"))
    return min(rooms, key=lambda room: room.left)


def _enforce_funds(available: int, amount: int, fee: int, currency: str, fees: FeePlan) -> None:
    """402 ``insufficient_funds`` when amount + fee is more than the wallet can spend now."""
    if amount + fee > available:
        shown = limits.format_amount
        raise InsufficientFunds(
            f"{shown(amount, currency)} plus the {shown(fee, currency)} fee is {shown(amount + fee, currency)}, "
            f"more than your available balance of {shown(available, currency)}; the most you can withdraw now "
            f"is {shown(fees.most_within(available), currency)}", param="amount")


def _enforce_own_daily_cap(cap: int, spent: int, amount: int, currency: str) -> None:
    """The cap the user set for themselves (always on, whatever TRUSTPAY_TIER_LIMITS says)."""
    if spent + amount > cap:
        left = max(0, cap - spent)
        raise PaymentFailed(
            f"this would pass the daily cap you set yourself ({limits.format_amount(cap, currency)}); "
            f"{limits.format_amount(left, currency)} is left today — raise it in your wallet settings",
            code="limit_exceeded", param="own_daily_cap")


def clearing_account(p: Platform, conn: Connection, bank: str, currency: str) -> str:
    """The bank's clearing account: negative while the bank owes us, positive while we
    owe it; back to zero once a day's operations are reconciled."""
    return p.book.open_account(conn, currency=currency, kind=AccountKind.BANK_CLEARING.value,
                               owner_id=f"bank_{bank}", name=f"{bank} clearing {currency}",
                               allow_negative=True).id


def fee_revenue_account(p: Platform, conn: Connection, currency: str) -> str:
    return p.book.open_account(conn, currency=currency, kind=AccountKind.FEE_REVENUE.value,
                               owner_id=PLATFORM_OWNER, name=f"fee revenue {currency}").id


def tell(p: Platform, conn: Connection, user_id: str, subject: str, body: str) -> None:
    """Queue an e-mail to the user, sent only if this transaction commits."""
    row = store.user_by(conn, user_id=user_id)
    if row is not None:
        tell_address(p, conn, row.email, subject, body)


def tell_address(p: Platform, conn: Connection, email: str, subject: str, body: str) -> None:
    """:func:`tell` when the caller has just read the user's address in this transaction."""
    enqueue(conn, Notification("email", email, subject, body), now=p.clock.now())
