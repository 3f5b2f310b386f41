"""Ids: prefixed, Crockford base32, time-sortable, unique."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from trustpay.ids import PREFIXES, id_prefix, is_valid_id, new_id

CROCKFORD = "0123456789abcdefghjkmnpqrstvwxyz"
ID_RE = re.compile(r"(?P<prefix>[a-z]{2,4})_(?P<body>[0-9a-hjkmnp-tv-z]{26})")
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def decode(value: str) -> int:
    """The 130-bit number behind an id's 26 symbols (a reference decoder, not the module's)."""
    m = ID_RE.fullmatch(value)
    assert m, value
    n = 0
    for ch in m["body"]:
        n = n * 32 + CROCKFORD.index(ch)
    return n


def millis_of(value: str) -> int:
    return decode(value) >> 82  # 48 bits of milliseconds, then 80 random bits, then 2 zero bits


def exact_millis(at: datetime) -> int:
    return (at - EPOCH) // timedelta(milliseconds=1)


@pytest.mark.parametrize("prefix", sorted(PREFIXES))
def test_format(prefix: str) -> None:
    value = new_id(prefix)
    m = ID_RE.fullmatch(value)
    assert m and m["prefix"] == prefix
    assert id_prefix(value) == prefix
    assert is_valid_id(value, prefix)
    assert decode(value) & 0b11 == 0


@pytest.mark.parametrize("prefix", ["", "x", "abcde", "USR", "usr_", "zzz", "acc "])
def test_unknown_prefix_rejected(prefix: str) -> None:
    with pytest.raises(ValueError, match="unknown id prefix"):
        new_id(prefix)


@pytest.mark.parametrize(
    "value",
    [
        "txn_",
        "txn_0123456789abcdefghjkmnpqr",  # 27 symbols
        "txn_0123456789abcdefghjkmnp",  # 25 symbols
        "txn_0123456789abcdefghjkmnpI",  # upper case
        "txn_0123456789abcdefghjkmnpu",  # u is not a Crockford symbol
        "txn_0123456789abcdefghjkmnpo",
        "TXN_0123456789abcdefghjkmnpq",
        "txn-0123456789abcdefghjkmnpq",
        " txn_0123456789abcdefghjkmnpq",
        "txn_0123456789abcdefghjkmnpq\n",
    ],
)
def test_malformed_ids_are_not_valid(value: str) -> None:
    assert id_prefix(value) is None
    assert not is_valid_id(value, "txn")


def test_valid_id_of_another_kind_is_not_valid() -> None:
    assert not is_valid_id(new_id("usr"), "txn")


def test_time_part_is_the_given_millisecond() -> None:
    at = datetime(2026, 1, 1, 12, 30, 45, 123_456, tzinfo=UTC)
    assert millis_of(new_id("txn", at)) == exact_millis(at)


def test_time_part_is_exact_for_every_millisecond() -> None:
    """Regression: ``int(at.timestamp() * 1000)`` (a float) lands one millisecond low for
    about 1 in 200 exact milliseconds (here ...692 → ...691), so ids 1 ms apart could
    share a time part and sort either way."""
    at = EPOCH + timedelta(milliseconds=1_080_375_040_692)
    assert millis_of(new_id("txn", at)) == 1_080_375_040_692


@given(st.integers(0, (datetime(9999, 12, 31, tzinfo=UTC) - EPOCH) // timedelta(milliseconds=1)))
def test_time_part_property(ms: int) -> None:
    at = EPOCH + timedelta(milliseconds=ms)
    assert millis_of(new_id("txn", at)) == ms
    assert millis_of(new_id("txn", at + timedelta(microseconds=999))) == ms


def test_ids_sort_by_time() -> None:
    start = datetime(2026, 1, 1, tzinfo=UTC)
    times = [start + timedelta(milliseconds=3 * i, microseconds=i % 1000) for i in range(2000)]
    ids = [new_id("txn", t) for t in times]
    assert sorted(ids) == ids
    assert sorted(ids, reverse=True) != ids


@given(
    a=st.datetimes(min_value=datetime(2000, 1, 1), max_value=datetime(2200, 1, 1), timezones=st.just(UTC)),
    gap_ms=st.integers(2, 10**9),
)
def test_later_id_sorts_after(a: datetime, gap_ms: int) -> None:
    b = a + timedelta(milliseconds=gap_ms)
    assert new_id("acc", a) < new_id("acc", b)


def test_ten_thousand_ids_are_unique_even_in_one_millisecond() -> None:
    at = datetime(2026, 1, 1, tzinfo=UTC)
    same_ms = {new_id("txn", at) for _ in range(10_000)}
    assert len(same_ms) == 10_000
    assert len({millis_of(i) for i in same_ms}) == 1
    now = {new_id("evt") for _ in range(10_000)}
    assert len(now) == 10_000


def test_new_ids_are_valid_distinct_and_stamped_with_the_given_millisecond() -> None:
    from datetime import UTC, datetime

    from trustpay.ids import is_valid_id, new_id, new_ids

    at = datetime(2026, 11, 30, 12, 0, 0, 123000, tzinfo=UTC)
    batch = new_ids("txn", at, 500)
    assert len(set(batch)) == 500
    assert all(is_valid_id(i, "txn") for i in batch)
    # The first 9 symbols (45 of the 48 time bits) are the same as new_id's for that millisecond.
    assert {i[4:13] for i in batch} == {new_id("txn", at)[4:13]}
    assert new_ids("txn", at, 0) == []


@pytest.mark.parametrize("random_bytes", ["random", "zeros", "ones"])
def test_new_ids_lay_out_the_millisecond_and_one_random_byte_per_symbol(
    monkeypatch: pytest.MonkeyPatch, random_bytes: str,
) -> None:
    import os

    from trustpay import ids

    at = datetime(2026, 11, 30, 12, 0, 0, 123000, tzinfo=UTC)
    ms = (at - EPOCH) // timedelta(milliseconds=1)
    count = 64
    rnd = {"random": os.urandom(17 * count), "zeros": bytes(17 * count), "ones": b"\xff" * (17 * count)}[random_bytes]
    monkeypatch.setattr(os, "urandom", lambda n: rnd[:n])
    got = ids.new_ids("txn", at, count)
    assert len(got) == count
    for i, value in enumerate(got):
        n = decode(value)
        # new_id's layout: 48 bits of milliseconds, 80 random bits, 2 zero bits.
        assert n >> 82 == ms and n & 3 == 0
        # The 80 random bits: 2 from byte i, 5 from each of this id's 15
        # bytes of the middle part, 3 from byte i of the last part.
        expected = rnd[i] & 3
        for b in rnd[count + 15 * i : count + 15 * (i + 1)]:
            expected = expected << 5 | b & 31
        expected = expected << 3 | rnd[16 * count + i] & 7
        assert (n >> 2) & (2**80 - 1) == expected
    assert {v[:13] for v in got} == {new_id("txn", at)[:13]}
    if random_bytes == "random":
        assert len(set(got)) == count
