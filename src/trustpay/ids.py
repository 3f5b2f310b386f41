"""Prefixed, time-sortable identifiers (``usr_…``, ``txn_…``).

Layout (like ULID): 48 bits of milliseconds since the epoch then 80 random
bits, in Crockford base32, so ids sort by creation time and never collide in
practice. Within one process ids made in the same millisecond still sort in
creation order: the random part is incremented instead of redrawn.
"""

from __future__ import annotations

import re
import secrets
import threading
from datetime import datetime

_ALPHABET = "0123456789abcdefghjkmnpqrstvwxyz"
_RANDOM_BITS = 80
_lock = threading.Lock()
_last_ms = -1
_last_rand = 0

PREFIXES = frozenset(
    {
        "usr", "card", "top", "wd", "tr", "trd", "rf", "dp", "evt", "whe", "key", "txn", "stl",
        "acc", "hold", "job", "ses", "aud",
    }
)
_ID_RE = re.compile(r"^([a-z]{2,4})_([0-9a-hjkmnp-tv-z]{26})$")


def _encode(n: int, length: int) -> str:
    out = []
    for _ in range(length):
        out.append(_ALPHABET[n & 31])
        n >>= 5
    return "".join(reversed(out))


def new_id(prefix: str, at: datetime | None = None) -> str:
    global _last_ms, _last_rand
    if prefix not in PREFIXES:
        raise ValueError(f"unknown id prefix {prefix!r}")
    ms = int((at.timestamp() if at else _wall()) * 1000)
    with _lock:
        if ms <= _last_ms:
            ms = _last_ms
            _last_rand = (_last_rand + 1) % (1 << _RANDOM_BITS)
        else:
            _last_ms = ms
            _last_rand = secrets.randbits(_RANDOM_BITS)
        rand = _last_rand
    return f"{prefix}_{_encode((ms << _RANDOM_BITS) | rand, 26)}"


def _wall() -> float:
    import time

    return time.time()


def id_prefix(value: str) -> str | None:
    m = _ID_RE.match(value)
    return m.group(1) if m else None


def is_valid_id(value: str, prefix: str) -> bool:
    return id_prefix(value) == prefix
