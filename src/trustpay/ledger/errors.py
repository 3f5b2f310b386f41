"""Ledger errors: each its own code, so a caller (and a test) can tell them apart."""

from __future__ import annotations

from trustpay.errors import Conflict, InsufficientFunds, InvalidAmount, InvalidRequest, NotFound


class LedgerError(InvalidRequest):
    code = "ledger_error"


class UnbalancedEntry(LedgerError):
    code = "entry_unbalanced"


class MalformedEntry(LedgerError):
    code = "entry_malformed"


class CurrencyMismatch(LedgerError):
    code = "currency_mismatch"


class AccountNotFound(NotFound):
    code = "account_not_found"


class AccountClosed(Conflict):
    code = "account_closed"


class AccountNotEmpty(Conflict):
    code = "account_not_empty"


class Overdraft(InsufficientFunds):
    """Code ``insufficient_funds`` (API.md): the account may not go below zero."""


class EntryNotFound(NotFound):
    code = "entry_not_found"


class HoldNotFound(NotFound):
    code = "hold_not_found"


class HoldExpired(Conflict):
    code = "hold_expired"


class HoldAlreadyResolved(Conflict):
    code = "hold_already_resolved"


class HoldAmountExceeded(LedgerError):
    code = "hold_amount_exceeded"


class AlreadyReversed(Conflict):
    code = "entry_already_reversed"


class NotReversible(Conflict):
    code = "entry_not_reversible"


__all__ = [
    "AccountClosed",
    "AccountNotEmpty",
    "AccountNotFound",
    "AlreadyReversed",
    "CurrencyMismatch",
    "EntryNotFound",
    "HoldAlreadyResolved",
    "HoldAmountExceeded",
    "HoldExpired",
    "HoldNotFound",
    "InvalidAmount",
    "LedgerError",
    "MalformedEntry",
    "NotReversible",
    "Overdraft",
    "UnbalancedEntry",
]
