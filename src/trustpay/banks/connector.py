"""The bank connector protocol: everything the platform asks of a bank.

The wallet (cards, top-ups, withdrawals), settlement and reconciliation code
against :class:`BankConnector` only; :class:`trustpay.banks.client.SandboxBankClient`
is the HTTP adapter for the sandbox bank, and a real bank gets an adapter of
the same shape. All calls are synchronous (call them outside a DB transaction:
they wait on the network).

Contract, whatever the bank:

* ``reference`` is the platform's id of the money movement (``top_…``, ``wd_…``,
  ``stl_…``) and the bank's idempotency key: starting again with the same
  reference and the same parameters returns the SAME operation (never a second
  one); the same reference with other parameters raises
  :class:`~trustpay.banks.errors.BankReferenceConflict`.
* Starting is asynchronous: the answer is normally ``pending``; the outcome
  arrives by a signed callback (POST to the platform's callback URL, checked
  with :meth:`BankConnector.verify_callback`) or by polling
  :meth:`BankConnector.get_operation`; whichever comes first — apply it once.
* :class:`~trustpay.banks.errors.BankUnavailable` (timeout, 5xx) means the
  outcome is unknown: the operation may exist. Keep the platform object
  pending; retry the start with the same reference, poll, or reconcile.
* Some operations never get an answer (sandbox card ending 0028): they stay
  ``pending`` through the API; the daily :meth:`BankConnector.statement`
  is the bank's record of what it did complete, and reconciliation settles them.
* The full card number goes to :meth:`BankConnector.tokenize_card` and nowhere
  else; the platform keeps only ``CardToken.token`` and ``CardToken.last4``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date, datetime
from enum import StrEnum
from typing import Protocol, runtime_checkable

# Where the platform receives bank callbacks (the wallet mounts the route;
# the in-process sandbox posts there). One path per bank: ``/v1/bank-callbacks/<bank>``.
CALLBACK_PATH_PREFIX = "/v1/bank-callbacks/"
SIGNATURE_HEADER = "Bank-Signature"
# Callbacks older or newer than this (seconds, wall-clock) are refused as replays.
SIGNATURE_TOLERANCE_SECONDS = 300


def callback_path(bank: str) -> str:
    return CALLBACK_PATH_PREFIX + bank


class OperationKind(StrEnum):
    DEBIT = "debit"  # pull from the card into the platform (top-up)
    PAYOUT = "payout"  # push from the platform to the card (withdrawal, settlement)


class OperationStatus(StrEnum):
    PENDING = "pending"
    SUCCEEDED = "succeeded"
    FAILED = "failed"

    @property
    def is_final(self) -> bool:
        return self is not OperationStatus.PENDING


# Failure reasons a bank reports (``BankOperation.failure_reason``).
DECLINED = "card_declined"
INSUFFICIENT_FUNDS = "insufficient_funds"
CARD_REVOKED = "card_revoked"


@dataclass(frozen=True, slots=True)
class CardToken:
    """What the platform may keep about a card. The same card number always
    yields the same token at a given bank, so a second binding can be detected."""

    token: str
    last4: str
    brand: str


@dataclass(frozen=True, slots=True)
class BankOperation:
    bank_ref: str  # the bank's own id for the operation
    reference: str  # the platform's id; the idempotency key at the bank
    kind: OperationKind
    status: OperationStatus
    amount: int  # minor units, > 0
    currency: str
    failure_reason: str | None = None  # set when status is failed
    completed_at: datetime | None = None  # set when status is final


@dataclass(frozen=True, slots=True)
class BankCallback:
    """A verified callback: the bank says this operation reached a final status."""

    reference: str
    bank_ref: str
    kind: OperationKind
    status: OperationStatus
    amount: int
    currency: str
    failure_reason: str | None = None
    completed_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class StatementLine:
    """One line of the bank's daily statement: an operation the bank completed
    (succeeded or failed) on ``business_date`` (UTC date of ``completed_at``)."""

    business_date: date
    bank_ref: str
    reference: str
    kind: OperationKind
    amount: int
    currency: str
    status: OperationStatus
    completed_at: datetime


@runtime_checkable
class BankConnector(Protocol):
    name: str  # "sandbox"; stored next to card tokens and operations

    def tokenize_card(self, card_number: str, holder_name: str) -> CardToken:
        """Validate (Luhn, 13–19 digits; :class:`InvalidCardNumber` otherwise) and
        tokenise at the bank. The number is not kept, logged or echoed anywhere."""
        ...

    def revoke_card(self, token: str) -> None:
        """Tell the bank the platform no longer uses this token (card unbound). Idempotent."""
        ...

    def start_debit(self, token: str, amount: int, currency: str, reference: str) -> BankOperation:
        """Pull ``amount`` from the card (top-up). Idempotent per ``reference``."""
        ...

    def start_payout(self, token: str, amount: int, currency: str, reference: str) -> BankOperation:
        """Push ``amount`` to the card (withdrawal, settlement). Idempotent per ``reference``."""
        ...

    def get_operation(self, reference: str) -> BankOperation:
        """Poll. :class:`UnknownBankOperation` if the bank never received it
        (safe then to start it again with the same reference)."""
        ...

    def verify_callback(self, headers: Mapping[str, str], body: bytes) -> BankCallback:
        """Check the signature header and its timestamp, then parse the body.
        Raises :class:`BadBankSignature` on any doubt; nothing is parsed before that."""
        ...

    def statement(self, business_date: date) -> list[StatementLine]:
        """The bank's statement for one business date (UTC), every completed operation."""
        ...
