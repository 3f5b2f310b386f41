"""Prefixed, time-sortable identifiers (``usr_…``, ``txn_…``).

Layout (like ULID): 48 bits of milliseconds since the epoch then 80 random
bits, in Crockford base32 (lower case), so ids sort by creation time and never
collide in practice.
"""

from __future__ import annotations

import os
import re
import time
from datetime import UTC, datetime, timedelta

_ALPHABET = "0123456789abcdefghjkmnpqrstvwxyz"
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MS = timedelta(milliseconds=1)

PREFIXES = frozenset(
    {
        "usr", "card", "top", "wd", "tr", "trd", "rf", "dp", "evt", "whe", "key", "txn", "stl",
        "acc", "hold", "job", "ses", "aud", "rcn", "rex",
        "whd",  # a webhook delivery
        "dpe",  # a piece of dispute evidence
        "qrc", "don",  # a collection code (收款码), a donation page
    }
)
_ID_RE = re.compile(r"([a-z]{2,4})_([0-9a-hjkmnp-tv-z]{26})")


# Two Crockford symbols per 10 bits, looked up: 128 bits (padded to 130 at the
# low end) → 13 pairs → 26 symbols, most significant first, so the text sorts
# like the number. (base64.b32encode is pure Python and 3x slower.)
_PAIRS = [_ALPHABET[i >> 5] + _ALPHABET[i & 31] for i in range(1024)]




def new_id(prefix: str, at: datetime | None = None) -> str:
    """A fresh id: creation millisecond, then 80 bits from the OS's CSPRNG.

    The random part is drawn anew every time (not incremented within a
    millisecond as ULID's monotonic mode does) so that knowing one id never
    tells you the next: some ids, such as a trade's, act as checkout links.
    """
    if prefix not in PREFIXES:
        raise ValueError(f"unknown id prefix {prefix!r}")
    # Exact integer arithmetic: at.timestamp() * 1000 is a float and can land
    # one millisecond low.
    ms = (at - _EPOCH) // _MS if at is not None else time.time_ns() // 1_000_000
    return _encode(prefix, ((ms & 0xFFFF_FFFF_FFFF) << 82) | (int.from_bytes(os.urandom(10), "big") << 2))


def new_ids(prefix: str, at: datetime, count: int) -> list[str]:
    """``count`` fresh ids of one millisecond, as :func:`new_id` makes them, with
    the random bits for all of them read from the CSPRNG in one call (a ledger
    batch names thousands of entries per commit)."""
    if prefix not in PREFIXES:
        raise ValueError(f"unknown id prefix {prefix!r}")
    ms = ((at - _EPOCH) // _MS) & 0xFFFF_FFFF_FFFF
    p = _PAIRS
    # _encode's 13 symbol pairs, with the 8 symbols of the shared millisecond
    # made once and each id's 80 random bits taken as two 40-bit halves (small
    # ints are cheaper to shift than one 130-bit number): pair 4 holds the last
    # 8 time bits and the first 2 random ones, pair 12 the last 8 random bits
    # and 2 zero bits.
    head = f"{prefix}_{p[ms >> 38]}{p[(ms >> 28) & 1023]}{p[(ms >> 18) & 1023]}{p[(ms >> 8) & 1023]}"
    low_time = (ms & 255) << 2
    rnd = os.urandom(10 * count)
    ids = []
    for i in range(0, 10 * count, 10):
        hi = int.from_bytes(rnd[i:i + 5], "big")
        lo = int.from_bytes(rnd[i + 5:i + 10], "big")
        ids.append(
            f"{head}{p[low_time | (hi >> 38)]}{p[(hi >> 28) & 1023]}{p[(hi >> 18) & 1023]}{p[(hi >> 8) & 1023]}"
            f"{p[((hi & 255) << 2) | (lo >> 38)]}{p[(lo >> 28) & 1023]}{p[(lo >> 18) & 1023]}"
            f"{p[(lo >> 8) & 1023]}{p[(lo & 255) << 2]}"
        )
    return ids


def _encode(prefix: str, n: int) -> str:
    p = _PAIRS
    return (
        f"{prefix}_{p[n >> 120]}{p[(n >> 110) & 1023]}{p[(n >> 100) & 1023]}{p[(n >> 90) & 1023]}"
        f"{p[(n >> 80) & 1023]}{p[(n >> 70) & 1023]}{p[(n >> 60) & 1023]}{p[(n >> 50) & 1023]}"
        f"{p[(n >> 40) & 1023]}{p[(n >> 30) & 1023]}{p[(n >> 20) & 1023]}{p[(n >> 10) & 1023]}"
        f"{p[n & 1023]}"
    )


def id_prefix(value: str) -> str | None:
    m = _ID_RE.fullmatch(value)
    return m.group(1) if m else None


def is_valid_id(value: str, prefix: str) -> bool:
    return id_prefix(value) == prefix
