"""How the sandbox bank decides an operation's outcome: pure, no storage.

Test cards (API.md), by the last four digits of the card:

* ``…0002``: declined (``card_declined``);
* ``…0028``: the bank completes the operation like any other (the money moves
  and the statement says so) but never answers: no callback, and polling keeps
  reporting ``pending``. Why completed rather than stuck: a real "no answer"
  is a lost reply, not a lost payment — the bank did act, and the platform
  learns it only from the daily statement at reconciliation, which is the case
  reconciliation exists to settle;
* anything else succeeds, unless a debit exceeds the card account's balance
  (``insufficient_funds``) or the card was revoked meanwhile (``card_revoked``).
"""

from __future__ import annotations

from trustpay.banks.cards import DECLINED_SUFFIX, NO_ANSWER_SUFFIX
from trustpay.banks.connector import (
    CARD_REVOKED,
    DECLINED,
    INSUFFICIENT_FUNDS,
    OperationKind,
    OperationStatus,
)


def answers(last4: str) -> bool:
    """Whether the bank ever tells the platform how an operation on this card ended."""
    return last4 != NO_ANSWER_SUFFIX


def outcome(
    kind: OperationKind, *, last4: str, revoked: bool, balance: int, amount: int
) -> tuple[OperationStatus, str | None]:
    """(status, failure reason) of an operation when the bank completes it;
    ``balance`` is the card account's before the operation."""
    if revoked:
        return OperationStatus.FAILED, CARD_REVOKED
    if last4 == DECLINED_SUFFIX:
        return OperationStatus.FAILED, DECLINED
    if kind is OperationKind.DEBIT and balance < amount:
        return OperationStatus.FAILED, INSUFFICIENT_FUNDS
    return OperationStatus.SUCCEEDED, None


def balance_change(kind: OperationKind, amount: int) -> int:
    """A debit takes from the card account, a payout adds to it."""
    return -amount if kind is OperationKind.DEBIT else amount
