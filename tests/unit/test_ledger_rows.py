"""The ledger's hand-built rows match what the general helpers would store."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest
from hypothesis import given
from hypothesis import strategies as st

from trustpay.db.raw import Raw
from trustpay.ledger.book import _entry_row, _sqlite_time
from trustpay.ledger.chain import timestamp


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
