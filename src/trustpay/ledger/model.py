"""Pure ledger domain: accounts, postings, entries, holds and their invariants.

Sign convention, seen from each account: a *credit* puts money in
(``balance`` goes up), a *debit* takes it out. A wallet is owed to its user,
so it may not go negative; platform clearing accounts may
(``allow_negative``), and return to zero once the bank has settled.

Stored entries are made of :class:`Line` s, each a signed ``delta`` on one of
an account's three running totals: ``balance`` (posted), ``pending_out`` and
``pending_in`` (open holds, TigerBeetle's pending debits/credits). Every
running total equals the sum of its lines; that is what ``verify`` checks.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import NamedTuple

from trustpay.ledger.errors import (
    HoldAlreadyResolved,
    HoldAmountExceeded,
    HoldExpired,
    MalformedEntry,
    UnbalancedEntry,
)
from trustpay.money import check_amount


class Side(StrEnum):
    DEBIT = "debit"
    CREDIT = "credit"


class AccountKind(StrEnum):
    WALLET = "wallet"
    BANK_CLEARING = "bank_clearing"
    ESCROW = "escrow"
    FEE_REVENUE = "fee_revenue"
    SETTLEMENT_PENDING = "settlement_pending"
    SUSPENSE = "suspense"
    EQUITY = "equity"


class Field(StrEnum):
    BALANCE = "balance"
    PENDING_OUT = "pending_out"
    PENDING_IN = "pending_in"


class HoldStatus(StrEnum):
    PENDING = "pending"
    POSTED = "posted"
    VOIDED = "voided"
    EXPIRED = "expired"


class EntryKind(StrEnum):
    TRANSFER = "transfer"
    HOLD = "hold"
    POST_HOLD = "post_hold"
    VOID_HOLD = "void_hold"
    EXPIRE_HOLD = "expire_hold"
    REVERSAL = "reversal"


@dataclass(frozen=True, slots=True)
class Account:
    id: str
    owner_id: str | None
    currency: str
    kind: str
    name: str
    allow_negative: bool
    balance: int
    pending_out: int
    pending_in: int
    created_at: datetime
    closed_at: datetime | None

    @property
    def available(self) -> int:
        """What can be spent now: posted balance minus money held on the way out."""
        return self.balance - self.pending_out

    @property
    def is_open(self) -> bool:
        return self.closed_at is None


class Posting(NamedTuple):
    """One side of an entry as a caller states it: a positive amount in or out.

    A NamedTuple rather than a frozen dataclass: batches build tens of
    thousands of these a second and tuples are several times cheaper."""

    account_id: str
    side: Side
    amount: int
    currency: str

    @property
    def delta(self) -> int:
        return self.amount if self.side is Side.CREDIT else -self.amount


def debit(account_id: str, amount: int, currency: str) -> Posting:
    return Posting(account_id, Side.DEBIT, amount, currency)


def credit(account_id: str, amount: int, currency: str) -> Posting:
    return Posting(account_id, Side.CREDIT, amount, currency)


@dataclass(frozen=True, slots=True)
class EntryDraft:
    """What a caller asks the ledger to record; validated by :func:`validate_draft`."""

    postings: tuple[Posting, ...]
    kind: str = EntryKind.TRANSFER
    reference: str | None = None
    memo: str = ""


class Line(NamedTuple):
    """A stored change of one running total of one account."""

    account_id: str
    field: str
    currency: str
    delta: int
    balance_after: int


class Entry(NamedTuple):
    """A journal entry as recorded: its place, its hash link and its lines."""

    seq: int
    id: str
    kind: str
    reference: str | None
    hold_id: str | None
    memo: str
    created_at: datetime
    prev_hash: str
    hash: str
    lines: tuple[Line, ...] = ()


@dataclass(frozen=True, slots=True)
class Hold:
    id: str
    debit_account_id: str
    credit_account_id: str
    currency: str
    amount: int
    status: HoldStatus
    posted_amount: int
    expires_at: datetime | None
    reference: str | None
    created_at: datetime
    resolved_at: datetime | None


def validate_draft(draft: EntryDraft, max_amount: int) -> dict[str, int]:
    """Check an entry before any I/O; returns the net balance delta per account.

    Rules: at least two postings; every amount a positive int within the
    maximum; each account at most once; per currency, debits equal credits.
    """
    if len(draft.postings) < 2:
        raise MalformedEntry("an entry needs at least two postings")
    net: dict[str, int] = {}
    per_currency: dict[str, int] = {}
    for account_id, side, amount, currency in draft.postings:
        if type(amount) is not int or not 0 < amount <= max_amount:
            check_amount(amount, max_amount)  # raises with the precise reason
        if side is Side.CREDIT:
            delta = amount
        elif side is Side.DEBIT:
            delta = -amount
        else:
            raise MalformedEntry(f"unknown side {side!r}")
        if account_id in net:
            raise MalformedEntry(f"account {account_id} appears twice in one entry")
        net[account_id] = delta
        per_currency[currency] = per_currency.get(currency, 0) + delta
    if any(per_currency.values()):
        unbalanced = {c: s for c, s in per_currency.items() if s}
        raise UnbalancedEntry(f"debits and credits differ: {unbalanced}")
    if len(draft.memo) > 500:
        raise MalformedEntry("memo is longer than 500 characters", param="memo")
    return net


def may_change(allow_negative: bool, balance: int, pending_out: int, db: int, dpo: int) -> bool:
    """The overdraft rule (mirrored in SQL by the ledger's guarded UPDATE).

    A change that does not lower the available balance is always allowed
    (credits, posting or releasing a hold); otherwise the account must allow
    going negative or still have ``available ≥ 0`` afterwards.
    """
    return allow_negative or db - dpo >= 0 or balance + db - pending_out - dpo >= 0


def check_hold_postable(hold: Hold, amount: int, now: datetime) -> None:
    """A hold resolves once, only while pending and unexpired, for at most its amount."""
    check_resolvable(hold, now)
    if amount > hold.amount:
        raise HoldAmountExceeded(f"cannot post {amount}: hold {hold.id} is for {hold.amount}")


def check_resolvable(hold: Hold, now: datetime) -> None:
    if hold.status is not HoldStatus.PENDING:
        raise HoldAlreadyResolved(f"hold {hold.id} is already {hold.status}")
    if is_expired(hold, now):
        raise HoldExpired(f"hold {hold.id} expired at {hold.expires_at}")


def is_expired(hold: Hold, now: datetime) -> bool:
    return hold.expires_at is not None and hold.expires_at <= now
