"""The ledger: the only code that changes balances.

Public surface: :class:`~trustpay.ledger.book.Book` (post, hold, post_hold,
void_hold, reverse, batches, reads), the domain types in :mod:`.model`, and
:func:`~trustpay.ledger.verify.verify`.
"""

from trustpay.ledger.model import (
    Account,
    AccountKind,
    Entry,
    EntryDraft,
    Hold,
    HoldStatus,
    Line,
    Posting,
    Side,
    credit,
    debit,
)

__all__ = [
    "Account",
    "AccountKind",
    "Entry",
    "EntryDraft",
    "Hold",
    "HoldStatus",
    "Line",
    "Posting",
    "Side",
    "credit",
    "debit",
]
