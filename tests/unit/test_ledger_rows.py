"""The ledger's hand-built rows match what the general helpers would store."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest
from hypothesis import given
from hypothesis import strategies as st

from trustpay.db.raw import Raw, Sql
from trustpay.errors import TrustPayError
from trustpay.ledger.book import (
    _INSERT_BALANCE_LINES,
    _INSERT_PLAIN_TRANSFER,
    _chunked,
    _entry_row,
    _sqlite_time,
    _transfer_shape,
)
from trustpay.ledger.chain import timestamp
from trustpay.ledger.model import EntryDraft, Posting, Side, credit, debit, validate_draft


def _sqlite_raw() -> Raw:
    raw = Raw.__new__(Raw)
    raw.is_pg = False
    return raw


@given(
    st.datetimes(min_value=datetime(1970, 1, 2), max_value=datetime(9998, 12, 31)),
    st.sampled_from([UTC, timezone(timedelta(hours=8)), timezone(timedelta(hours=-5, minutes=-30))]),
)
def test_the_sqlite_time_cut_from_the_canonical_stamp_is_what_raw_ts_stores(naive: datetime, tz: timezone) -> None:
    at = naive.replace(tzinfo=tz)
    assert _sqlite_time(timestamp(at)) == _sqlite_raw().ts(at)


@pytest.mark.parametrize("reference", [None, "tr_1"])
@pytest.mark.parametrize("hold_id", [None, "hold_1"])
def test_an_entry_row_binds_one_parameter_per_placeholder_and_null_for_what_is_absent(
    reference: str | None, hold_id: str | None
) -> None:
    sql, row = _entry_row(7, "txn_1", "transfer", reference, hold_id, "memo", "2026-01-01 00:00:00.000000",
                          "0" * 64, "1" * 64)
    assert sql.sqlite.count("?") == len(row)
    assert None not in row
    assert [v for v in (reference, hold_id) if v is not None] == [v for v in row if v in ("tr_1", "hold_1")]
    assert sql.sqlite.count("NULL") == (reference is None) + (hold_id is None)


# --- the two-account transfer's shortcut (Book.post, and the batch's twin of it) ---------------

SIDES = st.sampled_from(list(Side))
ACCOUNTS = st.sampled_from(["acc_a", "acc_b", "acc_c"])
AMOUNTS = st.one_of(st.integers(-2, 12), st.sampled_from([True, 1.0, "5"]))
CURRENCIES = st.sampled_from(["CNY", "USD"])
POSTINGS = st.builds(Posting, ACCOUNTS, SIDES, AMOUNTS, CURRENCIES)


@given(st.lists(POSTINGS, min_size=1, max_size=3), st.sampled_from(["", "m", "x" * 501]))
def test_the_transfer_shortcut_takes_only_valid_drafts_and_moves_what_validate_draft_moves(
    postings: list[Posting], memo: str,
) -> None:
    draft = EntryDraft(tuple(postings), memo=memo)
    shape = _transfer_shape(draft, 10)
    try:
        net = validate_draft(draft, 10)
    except TrustPayError:
        assert shape is None  # a draft validate_draft refuses never takes the shortcut
        return
    if shape is None:
        assert len(postings) != 2  # every valid two-posting draft is one debit and one credit of one amount
        return
    low, low_delta, high, high_delta, currency = shape
    assert low < high
    assert net == {low: low_delta, high: high_delta}
    assert {p.currency for p in postings} == {currency}


def test_every_plain_two_account_transfer_takes_the_shortcut() -> None:
    for a, b in [("acc_a", "acc_b"), ("acc_b", "acc_a")]:
        assert _transfer_shape(EntryDraft((debit(a, 5, "CNY"), credit(b, 5, "CNY"))), 10) is not None
        assert _transfer_shape(EntryDraft((credit(a, 5, "CNY"), debit(b, 5, "CNY"))), 10) is not None


# --- timestamp keeps the text of its last second -----------------------------------------------


@given(st.lists(st.datetimes(min_value=datetime(1900, 1, 2), max_value=datetime(9999, 12, 30)), max_size=20),
       st.sampled_from([UTC, timezone(timedelta(hours=8))]))
def test_timestamps_of_times_in_and_out_of_order_are_each_their_own(naive: list[datetime], tz: timezone) -> None:
    # Sorted, many share a second with the one before (the text kept); shuffled back, few do.
    times = sorted(naive) + naive + [t + timedelta(microseconds=1) for t in naive]
    for t in times:
        at = t.replace(tzinfo=tz)
        assert timestamp(at) == at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


# --- the batch's rows several to a statement ---------------------------------------------------


@pytest.mark.parametrize("one", [_INSERT_PLAIN_TRANSFER, _INSERT_BALANCE_LINES])
@pytest.mark.parametrize("size", [2, 4, 16])
def test_a_chunked_insert_is_its_one_row_insert_repeated(one: Sql, size: int) -> None:
    chunked = _chunked(one, size)
    head, values = one.sqlite.split(" VALUES ")
    assert chunked.sql == f"{head} VALUES " + ", ".join([values] * size)
    assert chunked.sql.count("?") == size * one.sqlite.count("?")
    assert _chunked(one, size, keep_earlier_rows=True).sql == chunked.sql.replace(
        "INSERT INTO", "INSERT OR FAIL INTO", 1)
