"""What can go wrong talking to a bank, as domain errors (codes in the API style).

None of these messages ever carries a card number: the number is known only
while it is being tokenised, and errors name the last four digits at most.
"""

from __future__ import annotations

from trustpay.errors import Conflict, InvalidRequest, NotFound, PaymentFailed


class InvalidCardNumber(InvalidRequest):
    """Not 13–19 digits or fails the Luhn check (caught before the bank sees it)."""

    code = "invalid_card_number"

    def __init__(self, message: str = "The card number is not valid.") -> None:
        super().__init__(message, param="card_number")


class UnknownBank(InvalidRequest):
    code = "invalid_bank"

    def __init__(self, bank: str) -> None:
        super().__init__(f"No bank called {bank[:40]!r} is connected.", param="bank")


class BankUnavailable(PaymentFailed):
    """The bank did not answer in time or answered 5xx. The operation's outcome is
    UNKNOWN (it may have been accepted): keep the platform object pending and
    retry the start with the same reference, or poll, or let reconciliation decide."""

    code = "bank_unavailable"


class BankRejected(InvalidRequest):
    """The bank refused the request itself (unknown or revoked card token, bad amount)."""

    code = "bank_rejected"


class BankReferenceConflict(Conflict):
    """The reference was already used at the bank for a different operation
    (other kind, card, amount or currency). Never retried: it is a platform bug."""

    code = "bank_reference_conflict"


class UnknownBankOperation(NotFound):
    """The bank has no operation with this reference (it never reached the bank)."""


class BadBankSignature(InvalidRequest):
    """A callback whose signature is missing, wrong or outside the time tolerance."""

    code = "invalid_signature"
