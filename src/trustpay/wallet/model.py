"""Pure wallet domain: statuses and their allowed moves, the withdrawal fee, the
undo and acceptance windows. No I/O here.

Where the money is at each step (every arrow is one ledger entry):

* top-up:      bank clearing → wallet, when the bank confirms (nothing before)
* withdrawal:  wallet ⇢ bank clearing (hold, amount) and wallet ⇢ fee revenue
               (hold, fee); both posted when the bank pays out, voided if it fails
* transfer:    sender ⇢ recipient as a hold while it can still go back (the undo
               window, or until the recipient accepts); posted when the window
               closes or the recipient accepts; voided on undo, decline or timeout.
               With no window and no acceptance it is posted at once.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal
from enum import StrEnum

from trustpay.errors import Conflict


class BankOpStatus(StrEnum):
    """Top-ups and withdrawals: what the bank has told us."""

    PENDING = "pending"
    SUCCEEDED = "succeeded"
    FAILED = "failed"


class TransferStatus(StrEnum):
    COMPLETED = "completed"
    PENDING_ACCEPTANCE = "pending_acceptance"
    REVERSED = "reversed"  # undone by the sender inside the undo window
    RETURNED = "returned"  # declined, or not answered in time


class CardStatus(StrEnum):
    ACTIVE = "active"
    UNBOUND = "unbound"


def invalid_state(what: str, status: str, action: str) -> Conflict:
    return Conflict(f"cannot {action}: the {what} is {status}", code="invalid_state")


@dataclass(frozen=True, slots=True)
class FeePlan:
    """Withdrawal fee = fixed + amount × rate, rounded half up to the minor unit.

    The rate is the bank's base rate plus the platform's margin; the platform
    keeps the rounding remainder (it is at most half a minor unit either way)."""

    fixed: int
    bank_rate: Decimal
    margin: Decimal
    minimum: int = 0

    @property
    def rate(self) -> Decimal:
        return self.bank_rate + self.margin

    def fee_for(self, amount: int) -> int:
        variable = (Decimal(amount) * self.rate).quantize(Decimal(1), rounding=ROUND_HALF_UP)
        return max(self.minimum, self.fixed + int(variable))

    def most_within(self, available: int) -> int:
        """The largest amount whose amount + fee is at most ``available`` (0 if none is):
        what someone with ``available`` in their wallet can withdraw. amount + fee grows
        strictly with the amount, so a binary search finds it."""
        low, high = 0, max(0, available)
        while low < high:
            mid = (low + high + 1) // 2
            if mid + self.fee_for(mid) <= available:
                low = mid
            else:
                high = mid - 1
        return low


@dataclass(frozen=True, slots=True)
class TransferWindows:
    """When a new transfer can still go back, by what the sender asked for."""

    undo_until: datetime | None
    accept_until: datetime | None

    @property
    def uses_hold(self) -> bool:
        return self.undo_until is not None or self.accept_until is not None


def transfer_windows(now: datetime, *, undo_seconds: int, require_acceptance: bool,
                     acceptance_hours: int) -> TransferWindows:
    if require_acceptance:
        return TransferWindows(None, now + timedelta(hours=acceptance_hours))
    if undo_seconds > 0:
        return TransferWindows(now + timedelta(seconds=undo_seconds), None)
    return TransferWindows(None, None)


def can_undo(status: str, settled: bool, undo_until: datetime | None, now: datetime) -> bool:
    return (status == TransferStatus.COMPLETED and not settled and undo_until is not None
            and now < undo_until)


def needs_payment_password(amount: int, password_free_cap: int) -> bool:
    """免密支付: at or under the user's own cap (0 = off) no payment password is asked."""
    return not (password_free_cap > 0 and amount <= password_free_cap)


