"""Pure ledger rules: draft validation, the overdraft rule, hold resolution checks."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from trustpay.errors import TrustPayError
from trustpay.ledger import errors as E
from trustpay.ledger.model import (
    Account,
    EntryDraft,
    Hold,
    HoldStatus,
    Posting,
    check_amount,
    check_hold_postable,
    check_resolvable,
    credit,
    debit,
    is_expired,
    may_change,
    validate_draft,
)

MAX = 1_000_000
T0 = datetime(2026, 1, 1, tzinfo=UTC)


def draft(*postings: Posting, memo: str = "") -> EntryDraft:
    return EntryDraft(tuple(postings), memo=memo)


# --- validate_draft ---------------------------------------------------------------------------


def test_valid_transfer_returns_net_deltas() -> None:
    assert validate_draft(draft(debit("a", 100, "CNY"), credit("b", 100, "CNY")), MAX) == {"a": -100, "b": 100}


def test_split_and_multi_currency_entries_are_valid() -> None:
    split = draft(debit("a", 100, "CNY"), credit("b", 97, "CNY"), credit("fee", 3, "CNY"))
    assert validate_draft(split, MAX) == {"a": -100, "b": 97, "fee": 3}
    fx = draft(debit("a_cny", 700, "CNY"), credit("fx_cny", 700, "CNY"),
               debit("fx_usd", 100, "USD"), credit("a_usd", 100, "USD"))
    assert validate_draft(fx, MAX) == {"a_cny": -700, "fx_cny": 700, "fx_usd": -100, "a_usd": 100}


def test_posting_delta_sign() -> None:
    assert debit("a", 5, "CNY").delta == -5
    assert credit("a", 5, "CNY").delta == 5


BAD_DRAFTS: dict[str, tuple[EntryDraft, type[TrustPayError]]] = {
    "no postings": (draft(), E.MalformedEntry),
    "one posting": (draft(credit("a", 1, "CNY")), E.MalformedEntry),
    "same account twice": (draft(debit("a", 1, "CNY"), credit("a", 1, "CNY")), E.MalformedEntry),
    "same account twice among three": (
        draft(debit("a", 2, "CNY"), credit("b", 1, "CNY"), credit("a", 1, "CNY")), E.MalformedEntry),
    "unknown side": (draft(Posting("a", "debit", 1, "CNY"), credit("b", 1, "CNY")),  # type: ignore[arg-type]
                     E.MalformedEntry),
    "memo too long": (draft(debit("a", 1, "CNY"), credit("b", 1, "CNY"), memo="x" * 501), E.MalformedEntry),
    "unbalanced": (draft(debit("a", 101, "CNY"), credit("b", 100, "CNY")), E.UnbalancedEntry),
    "two debits": (draft(debit("a", 1, "CNY"), debit("b", 1, "CNY")), E.UnbalancedEntry),
    "balanced only across currencies": (draft(debit("a", 100, "CNY"), credit("b", 100, "USD")), E.UnbalancedEntry),
    "zero": (draft(debit("a", 0, "CNY"), credit("b", 0, "CNY")), E.InvalidAmount),
    "negative": (draft(debit("a", -5, "CNY"), credit("b", -5, "CNY")), E.InvalidAmount),
    "negative credit": (draft(debit("a", 5, "CNY"), credit("b", -5, "CNY"), credit("c", 10, "CNY")),
                        E.InvalidAmount),
    "over max": (draft(debit("a", MAX + 1, "CNY"), credit("b", MAX + 1, "CNY")), E.InvalidAmount),
    "float": (draft(debit("a", 1.0, "CNY"), credit("b", 1.0, "CNY")), E.InvalidAmount),  # type: ignore[arg-type]
    "str": (draft(debit("a", "1", "CNY"), credit("b", "1", "CNY")), E.InvalidAmount),  # type: ignore[arg-type]
    "bool": (draft(debit("a", True, "CNY"), credit("b", True, "CNY")), E.InvalidAmount),
}


@pytest.mark.parametrize("case", sorted(BAD_DRAFTS))
def test_bad_drafts(case: str) -> None:
    bad, error = BAD_DRAFTS[case]
    with pytest.raises(error) as ei:
        validate_draft(bad, MAX)
    assert type(ei.value) is error


def test_memo_of_500_characters_is_fine() -> None:
    validate_draft(draft(debit("a", 1, "CNY"), credit("b", 1, "CNY"), memo="字" * 500), MAX)


def test_amount_of_exactly_max_is_fine() -> None:
    assert validate_draft(draft(debit("a", MAX, "CNY"), credit("b", MAX, "CNY")), MAX) == {"a": -MAX, "b": MAX}


@pytest.mark.parametrize("amount", [0, -1, MAX + 1, 1.5, "7", None, True, False])
def test_check_amount_rejects(amount: object) -> None:
    with pytest.raises(E.InvalidAmount) as ei:
        check_amount(amount, MAX)
    assert ei.value.code == "invalid_amount"


def test_error_codes_are_distinct() -> None:
    classes = [getattr(E, name) for name in E.__all__ if name != "LedgerError"]
    codes = [cls.code for cls in classes]
    assert len(set(codes)) == len(codes), codes
    assert E.Overdraft.code == "insufficient_funds"


# --- the overdraft rule -----------------------------------------------------------------------


def reference_may_change(allow_negative: bool, balance: int, pending_out: int, db: int, dpo: int) -> bool:
    before = balance - pending_out
    after = (balance + db) - (pending_out + dpo)
    return allow_negative or after >= 0 or after >= before


@pytest.mark.parametrize(
    ("allow_negative", "balance", "pending_out", "db", "dpo", "allowed"),
    [
        (False, 100, 0, -100, 0, True),  # spend exactly all
        (False, 100, 0, -101, 0, False),  # one more than all
        (False, 100, 30, -70, 0, True),  # available = balance - pending_out
        (False, 100, 30, -71, 0, False),
        (False, 100, 30, 0, 70, True),  # hold exactly the rest
        (False, 100, 30, 0, 71, False),
        (False, 100, 100, -100, -100, True),  # posting a whole hold
        (False, 100, 100, -40, -100, True),  # posting part of a hold releases the rest
        (False, 100, 100, 0, -100, True),  # voiding a hold
        (False, 0, 0, 5, 0, True),  # a credit
        (False, -10, 0, 5, 0, True),  # a credit to an account that is (somehow) below zero
        (False, -10, 0, -1, 0, False),
        (True, 0, 0, -10**9, 0, True),  # clearing accounts may go negative
        (True, 0, 0, 0, 10**9, True),
        (False, 0, 0, 0, 0, True),
    ],
)
def test_may_change_truth_table(
    allow_negative: bool, balance: int, pending_out: int, db: int, dpo: int, allowed: bool
) -> None:
    assert may_change(allow_negative, balance, pending_out, db, dpo) is allowed
    assert reference_may_change(allow_negative, balance, pending_out, db, dpo) is allowed


def test_may_change_exhaustive_small_grid() -> None:
    values = range(-3, 4)
    for neg, bal, po, db, dpo in itertools.product((False, True), values, range(4), values, values):
        assert may_change(neg, bal, po, db, dpo) == reference_may_change(neg, bal, po, db, dpo), (
            neg, bal, po, db, dpo)


@given(st.booleans(), st.integers(-10**12, 10**12), st.integers(0, 10**12),
       st.integers(-10**12, 10**12), st.integers(-10**12, 10**12))
def test_may_change_property(neg: bool, bal: int, po: int, db: int, dpo: int) -> None:
    assert may_change(neg, bal, po, db, dpo) == reference_may_change(neg, bal, po, db, dpo)


def test_account_available() -> None:
    acc = Account(id="a", owner_id=None, currency="CNY", kind="wallet", name="", allow_negative=False,
                  balance=100, pending_out=30, pending_in=50, created_at=T0, closed_at=None)
    assert acc.available == 70 and acc.is_open


# --- holds ------------------------------------------------------------------------------------


def hold(status: HoldStatus = HoldStatus.PENDING, amount: int = 100,
         expires_at: datetime | None = T0 + timedelta(minutes=10)) -> Hold:
    return Hold(id="hold_x", debit_account_id="a", credit_account_id="b", currency="CNY", amount=amount,
                status=status, posted_amount=0, expires_at=expires_at, reference=None, created_at=T0,
                resolved_at=None)


def test_expiry_boundary() -> None:
    h = hold()
    assert h.expires_at is not None
    assert not is_expired(h, h.expires_at - timedelta(microseconds=1))
    assert is_expired(h, h.expires_at)
    assert is_expired(h, h.expires_at + timedelta(days=1))
    assert not is_expired(hold(expires_at=None), T0 + timedelta(days=10_000))


def test_postable_up_to_the_held_amount_before_expiry() -> None:
    h = hold()
    assert h.expires_at is not None
    just_before = h.expires_at - timedelta(microseconds=1)
    for amount in (1, 99, 100):
        check_hold_postable(h, amount, just_before)
    check_resolvable(h, just_before)
    with pytest.raises(E.HoldAmountExceeded):
        check_hold_postable(h, 101, T0)


def test_expired_hold_cannot_be_posted_or_voided() -> None:
    h = hold()
    assert h.expires_at is not None
    with pytest.raises(E.HoldExpired):
        check_hold_postable(h, 1, h.expires_at)
    with pytest.raises(E.HoldExpired):
        check_resolvable(h, h.expires_at)


@pytest.mark.parametrize("status", [HoldStatus.POSTED, HoldStatus.VOIDED, HoldStatus.EXPIRED])
def test_resolved_hold_resolves_no_more(status: HoldStatus) -> None:
    h = hold(status)
    assert h.expires_at is not None
    for now in (T0, h.expires_at + timedelta(seconds=1)):  # "already resolved" wins over "expired"
        with pytest.raises(E.HoldAlreadyResolved):
            check_hold_postable(h, 1, now)
        with pytest.raises(E.HoldAlreadyResolved):
            check_resolvable(h, now)
