"""Pure trade domain: statuses, who may do what from where, deadlines, the fee.
No I/O here.

Two modes (seed 002, 交易流程):

* ``escrow`` (担保交易): the buyer pays into the platform's escrow account, the
  merchant is told to ship by a deadline, ships, the buyer confirms receipt and
  only then is the merchant paid (amount − fee). Unshipped in time: the buyer
  gets everything back. Unconfirmed in time: finished for the buyer.
* ``instant`` (即时到账): the buyer pays the merchant at once (amount − fee);
  the trade stays ``TRADE_SUCCESS`` (still refundable by the merchant).

Where the money is at each step (each arrow is one ledger entry):

* pay, escrow:   buyer wallet → escrow (amount)
* pay, instant:  buyer wallet → merchant pending settlement (amount − fee)
                 + fee revenue (fee)
* confirm / confirm timeout:  escrow → merchant pending settlement
                 (amount − fee) + fee revenue (fee)
* ship timeout:  escrow → buyer wallet (amount)

How refunds and disputes fit (built later on this same table): a refund is an
object of its own with its own small machine (buyer request
``WAIT_SELLER_AGREE`` → approve → ``WAIT_BUYER_RETURN_GOODS`` →
``WAIT_SELLER_CONFIRM_GOODS`` → refunded; merchant-issued refunds go straight
to refunded). It never changes the trade's status on its own: it raises
``refunded_amount``, and a refund of everything that was paid closes the trade.
A dispute sets ``dispute_status`` to ``open``, which freezes the money: while
it is open, :data:`FROZEN_BY_DISPUTE` actions are refused; the ruling then
finishes or closes the trade.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal
from enum import StrEnum

from trustpay.errors import Conflict, InvalidRequest, NotFound


class Mode(StrEnum):
    ESCROW = "escrow"  # 担保交易
    INSTANT = "instant"  # 即时到账


class TradeStatus(StrEnum):
    WAIT_BUYER_PAY = "WAIT_BUYER_PAY"
    WAIT_SELLER_SEND_GOODS = "WAIT_SELLER_SEND_GOODS"
    WAIT_BUYER_CONFIRM_GOODS = "WAIT_BUYER_CONFIRM_GOODS"
    TRADE_SUCCESS = "TRADE_SUCCESS"  # instant: paid to the merchant, still refundable
    TRADE_FINISHED = "TRADE_FINISHED"  # the merchant has the money; nothing more happens
    TRADE_CLOSED = "TRADE_CLOSED"  # never paid, or all the money went back to the buyer


class Action(StrEnum):
    PAY = "pay"
    SHIP = "ship"
    CONFIRM = "confirm"
    CLOSE = "close"
    # The deadlines, run by jobs on the platform clock.
    PAY_TIMEOUT = "pay_timeout"
    SHIP_TIMEOUT = "ship_timeout"
    CONFIRM_TIMEOUT = "confirm_timeout"


class Party(StrEnum):
    BUYER = "buyer"
    MERCHANT = "merchant"
    SYSTEM = "system"  # the platform itself: timeouts


class DisputeStatus(StrEnum):
    NONE = "none"
    OPEN = "open"
    RESOLVED = "resolved"


class CloseReason(StrEnum):
    MERCHANT_CLOSED = "merchant_closed"
    PAY_TIMEOUT = "pay_timeout"
    SHIP_TIMEOUT = "ship_timeout"  # paid, not shipped in time: refunded in full


@dataclass(frozen=True, slots=True)
class Edge:
    party: Party
    next: TradeStatus


S, A, P = TradeStatus, Action, Party

# The whole machine. Anything not listed is refused: a party that never does
# the action gets 404 (as if the trade were not theirs to act on), a party that
# may do it, but not in this mode or from this status, gets 409 invalid_state.
# One table per mode because paying leads somewhere else in each.
TRANSITIONS: dict[Mode, dict[tuple[TradeStatus, Action], Edge]] = {
    Mode.ESCROW: {
        (S.WAIT_BUYER_PAY, A.PAY): Edge(P.BUYER, S.WAIT_SELLER_SEND_GOODS),
        (S.WAIT_BUYER_PAY, A.CLOSE): Edge(P.MERCHANT, S.TRADE_CLOSED),
        (S.WAIT_BUYER_PAY, A.PAY_TIMEOUT): Edge(P.SYSTEM, S.TRADE_CLOSED),
        (S.WAIT_SELLER_SEND_GOODS, A.SHIP): Edge(P.MERCHANT, S.WAIT_BUYER_CONFIRM_GOODS),
        (S.WAIT_SELLER_SEND_GOODS, A.SHIP_TIMEOUT): Edge(P.SYSTEM, S.TRADE_CLOSED),
        (S.WAIT_BUYER_CONFIRM_GOODS, A.CONFIRM): Edge(P.BUYER, S.TRADE_FINISHED),
        (S.WAIT_BUYER_CONFIRM_GOODS, A.CONFIRM_TIMEOUT): Edge(P.SYSTEM, S.TRADE_FINISHED),
    },
    Mode.INSTANT: {
        (S.WAIT_BUYER_PAY, A.PAY): Edge(P.BUYER, S.TRADE_SUCCESS),
        (S.WAIT_BUYER_PAY, A.CLOSE): Edge(P.MERCHANT, S.TRADE_CLOSED),
        (S.WAIT_BUYER_PAY, A.PAY_TIMEOUT): Edge(P.SYSTEM, S.TRADE_CLOSED),
    },
}

# Money an open dispute has frozen must not move by any other road (and the goods
# wait too: the ruling decides whether the trade goes on at all).
FROZEN_BY_DISPUTE = frozenset({A.SHIP, A.CONFIRM, A.CONFIRM_TIMEOUT, A.SHIP_TIMEOUT})

# Where the buyer's money has left their wallet (and not come back): from here
# on only the merchant and that buyer may see the trade.
PAID_STATUSES = frozenset({S.WAIT_SELLER_SEND_GOODS, S.WAIT_BUYER_CONFIRM_GOODS, S.TRADE_SUCCESS,
                           S.TRADE_FINISHED})


def parties_for(action: Action) -> frozenset[Party]:
    """Who ever does ``action``, in any mode and from any status."""
    return frozenset(e.party for table in TRANSITIONS.values() for (_, a), e in table.items() if a is action)


def invalid_state(status: str, action: Action) -> Conflict:
    return Conflict(f"cannot {action.value.replace('_', ' ')}: the trade is {status}", code="invalid_state")


def not_found(trade_id: str) -> NotFound:
    # The same words whether the trade is missing or only not the caller's (no oracle).
    return NotFound(f"no trade {trade_id[:40]}")


def transition(trade_id: str, mode: Mode, status: TradeStatus, action: Action, party: Party, *,
               dispute_status: DisputeStatus = DisputeStatus.NONE) -> TradeStatus:
    """The status ``action`` by ``party`` leads to; raises if it is not allowed."""
    edge = TRANSITIONS[mode].get((status, action))
    if party not in parties_for(action):
        raise not_found(trade_id)
    if edge is None or edge.party is not party:
        raise invalid_state(status.value, action)
    if dispute_status is DisputeStatus.OPEN and action in FROZEN_BY_DISPUTE:
        raise Conflict(f"cannot {action.value.replace('_', ' ')}: a dispute about this trade is open",
                       code="invalid_state")
    return edge.next


# ------------------------------------------------------------------ deadlines
@dataclass(frozen=True, slots=True)
class Bounds:
    low: int
    high: int


PAY_WITHIN_MINUTES = Bounds(1, 15 * 24 * 60)  # up to 15 days to pay
SHIP_WITHIN_HOURS = Bounds(1, 30 * 24)  # up to 30 days to ship
CONFIRM_WITHIN_HOURS = Bounds(24, 90 * 24)  # at least a day, at most 90, to confirm receipt


@dataclass(frozen=True, slots=True)
class Windows:
    """How long each step may take, fixed when the trade is created (and shown
    to the payer before paying): the merchant's per-trade choice or the default."""

    pay_within_minutes: int
    ship_within_hours: int
    confirm_within_hours: int

    def pay_by(self, created_at: datetime) -> datetime:
        return created_at + timedelta(minutes=self.pay_within_minutes)

    def ship_by(self, paid_at: datetime) -> datetime:
        return paid_at + timedelta(hours=self.ship_within_hours)

    def confirm_by(self, shipped_at: datetime) -> datetime:
        return shipped_at + timedelta(hours=self.confirm_within_hours)


def windows(defaults: Windows, *, pay_within_minutes: int | None = None, ship_within_hours: int | None = None,
            confirm_within_hours: int | None = None) -> Windows:
    """The trade's windows: each override checked against its bounds (400 if outside)."""
    return Windows(
        _within("pay_within_minutes", pay_within_minutes, defaults.pay_within_minutes, PAY_WITHIN_MINUTES),
        _within("ship_within_hours", ship_within_hours, defaults.ship_within_hours, SHIP_WITHIN_HOURS),
        _within("confirm_within_hours", confirm_within_hours, defaults.confirm_within_hours, CONFIRM_WITHIN_HOURS),
    )


def _within(name: str, value: object, default: int, bounds: Bounds) -> int:
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, int) or not bounds.low <= value <= bounds.high:
        raise InvalidRequest(f"{name} must be a whole number from {bounds.low} to {bounds.high}",
                             code="invalid_deadline", param=name)
    return value


# ------------------------------------------------------------------ fee
@dataclass(frozen=True, slots=True)
class TradeFee:
    """The merchant's fee on one trade: fixed + amount × rate, rounded half up to the
    minor unit, at least ``minimum``, never more than the amount itself.

    The rate is the bank's base rate plus the platform's margin. The rounding
    remainder (under one minor unit) goes to the platform when it is half a
    unit or more and to the merchant below that; the merchant receives
    exactly ``amount − fee``, so nothing is lost or made up."""

    rate: Decimal
    fixed: int = 0
    minimum: int = 0

    def fee_for(self, amount: int) -> int:
        variable = int((Decimal(amount) * self.rate).quantize(Decimal(1), rounding=ROUND_HALF_UP))
        return min(amount, max(self.minimum, self.fixed + variable))

    def merchant_gets(self, amount: int) -> int:
        return amount - self.fee_for(amount)


def fee_due(fee: int, amount: int, refunded: int) -> int:
    """The part of a trade's fee still charged once ``refunded`` of ``amount`` has gone
    back to the buyer: the fee shrinks in proportion, rounded half up (so refunds
    reverse ``fee − fee_due``). Nothing refunded: the whole fee; all of it: none."""
    if not 0 <= refunded <= amount:
        raise ValueError("refunded must be between 0 and the trade's amount")
    kept = (Decimal(fee) * (amount - refunded) / amount).quantize(Decimal(1), rounding=ROUND_HALF_UP)
    return int(kept)
