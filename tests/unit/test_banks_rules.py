"""The sandbox bank's outcome rules (API.md test cards), without storage."""

from __future__ import annotations

import pytest

from trustpay.banks.connector import OperationKind, OperationStatus
from trustpay.banks.sandbox.rules import answers, balance_change, outcome

DEBIT, PAYOUT = OperationKind.DEBIT, OperationKind.PAYOUT
OK, FAILED = OperationStatus.SUCCEEDED, OperationStatus.FAILED


@pytest.mark.parametrize("kind", [DEBIT, PAYOUT])
def test_ordinary_cards_succeed(kind: OperationKind) -> None:
    assert outcome(kind, last4="4242", revoked=False, balance=1_000, amount=1_000) == (OK, None)


@pytest.mark.parametrize("kind", [DEBIT, PAYOUT])
def test_card_ending_0002_is_declined_either_way(kind: OperationKind) -> None:
    assert outcome(kind, last4="0002", revoked=False, balance=10**9, amount=1) == (FAILED, "card_declined")


def test_card_ending_0028_completes_but_does_not_answer() -> None:
    assert outcome(DEBIT, last4="0028", revoked=False, balance=500, amount=500) == (OK, None)
    assert not answers("0028")
    assert answers("0002") and answers("4242") and answers("0280")


def test_a_debit_beyond_the_balance_fails_a_payout_does_not_care() -> None:
    assert outcome(DEBIT, last4="4242", revoked=False, balance=999, amount=1_000) == (FAILED, "insufficient_funds")
    assert outcome(PAYOUT, last4="4242", revoked=False, balance=0, amount=1_000) == (OK, None)


def test_a_card_revoked_before_completion_fails_first() -> None:
    assert outcome(PAYOUT, last4="0002", revoked=True, balance=0, amount=1) == (FAILED, "card_revoked")


def test_debits_take_payouts_give() -> None:
    assert balance_change(DEBIT, 250) == -250 and balance_change(PAYOUT, 250) == 250
