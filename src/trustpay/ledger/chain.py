"""The journal's tamper evidence: a hash chain and an RFC 6962 Merkle tree.

* ``entry.hash = SHA-256(prev_hash ‖ canonical(entry))``: altering, dropping
  or reordering any stored entry or line breaks every hash after it.
* Merkle leaves are ``SHA-256(0x00 ‖ entry.hash)``, inner nodes
  ``SHA-256(0x01 ‖ left ‖ right)`` with RFC 6962's split (the largest power
  of two below n), so a receipt's inclusion proof can be checked offline
  against the published root with any RFC 6962/9162 verifier.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from json.encoder import encode_basestring
from typing import Any

from trustpay.clock import to_utc

GENESIS = "0" * 64
_EMPTY_ROOT = hashlib.sha256(b"").digest()


def canonical_entry(
    *,
    seq: int,
    id: str,
    kind: str,
    reference: str | None,
    hold_id: str | None,
    memo: str,
    created_at: datetime | str,
    lines: Iterable[tuple[str, str, str, int]],
) -> bytes:
    """Deterministic bytes of an entry: exactly ``json.dumps(doc, sort_keys=True,
    separators=(",", ":"), ensure_ascii=False)`` of the entry and its sorted
    lines — written out by hand because this runs once per entry on the hot
    path (a test pins it to json.dumps)."""
    stamp = created_at if isinstance(created_at, str) else _timestamp(created_at)
    return canonical_sorted(seq, id, kind, reference, hold_id, memo, stamp, sorted(lines))


def canonical_sorted(
    seq: int, id: str, kind: str, reference: str | None, hold_id: str | None, memo: str, stamp: str,
    lines: Sequence[Sequence[Any]],
) -> bytes:
    """:func:`canonical_entry` for the ledger's own hot path: ``stamp`` is
    already canonical text and ``lines`` are already in sorted order (only
    their first four fields are read, so stored 5-field lines pass as they are)."""
    heads = _LINE_HEADS
    texts = []
    for ln in lines:
        head = heads.get((ln[0], ln[1], ln[2])) or known_line_head(ln[0], ln[1], ln[2])
        texts.append(f"{head}{int(ln[3])}]")
    return canonical_from_body(seq, id, kind, reference, hold_id, memo, stamp, ",".join(texts))


def line_head(account_id: str, field: str, currency: str) -> str:
    """The canonical text of a line up to its delta: a batch keeps it per
    account and appends ``f"{delta}]"``."""
    return f"[{_plain(account_id)},{_plain(field)},{_plain(currency)},"


# line_head of the (account, field, currency) triples recently seen; bounded.
_LINE_HEADS: dict[tuple[str, str, str], str] = {}


def known_line_head(account_id: str, field: str, currency: str) -> str:
    """:func:`line_head`, kept for the next entry on the same account."""
    key = (account_id, field, currency)
    head = _LINE_HEADS.get(key)
    if head is None:
        head = line_head(account_id, field, currency)
        if len(_LINE_HEADS) >= _QUOTED_MAX:
            _LINE_HEADS.clear()
        _LINE_HEADS[key] = head
    return head


def canonical_from_body(
    seq: int, id: str, kind: str, reference: str | None, hold_id: str | None, memo: str, stamp: str,
    body: str,
) -> bytes:
    """The canonical bytes around ``body``, the lines' texts (``line_head`` +
    delta + ``]``) joined by commas in sorted order."""
    # _s and _plain written out for the common values: this runs once per
    # entry on the ledger's hot path, where a call costs more than the work.
    # (encode_basestring is json.dumps' own quoting, in C: cheaper than
    # checking that an id needs none.)
    held = "null" if hold_id is None else _s(hold_id)
    refers = "null" if reference is None else _s(reference)
    quoted_id = encode_basestring(id)
    quoted_kind = _QUOTED.get(kind) or _plain(kind)
    quoted_memo = _s(memo) if memo else '""'
    return (
        f'{{"created_at":"{stamp}","hold_id":{held},"id":{quoted_id},'
        f'"kind":{quoted_kind},"lines":[{body}],"memo":{quoted_memo},"reference":{refers},'
        f'"seq":{int(seq)}}}'
    ).encode()


class CanonicalParts:
    """:func:`canonical_from_body` cut into the pieces a batch repeats, for
    entries without a hold whose id needs no escaping (every id ``new_ids``
    makes): ``f"{head}{id}{kind_part(kind)}{body}{tail_part(memo, reference)}{seq}}}"``
    is the same text (a test pins it). A batch shares one time, and most of
    its entries one kind and an empty memo and reference."""

    __slots__ = ("_kinds", "head")

    _PLAIN_TAIL = '],"memo":"","reference":null,"seq":'

    def __init__(self, stamp: str) -> None:
        self.head = f'{{"created_at":"{stamp}","hold_id":null,"id":"'
        self._kinds: dict[str, str] = {}

    def kind_part(self, kind: str) -> str:
        part = self._kinds.get(kind)
        if part is None:
            part = self._kinds[kind] = f'","kind":{_plain(kind)},"lines":['
        return part

    @classmethod
    def tail_part(cls, memo: str, reference: str | None) -> str:
        if not memo and reference is None:
            return cls._PLAIN_TAIL
        return f'],"memo":{_s(memo)},"reference":{_s(reference)},"seq":'


def _s(value: str | None) -> str:
    return "null" if value is None else encode_basestring(value) if value else '""'


# JSON text of the few strings every entry repeats (account ids, field names,
# currencies, kinds); bounded so odd inputs cannot grow it without limit.
_QUOTED: dict[str, str] = {}
_QUOTED_MAX = 50_000


def _plain(value: str) -> str:
    quoted = _QUOTED.get(value)
    if quoted is None:
        quoted = encode_basestring(value)  # exactly as json.dumps quotes it
        if len(_QUOTED) >= _QUOTED_MAX:
            _QUOTED.clear()
        _QUOTED[value] = quoted
    return quoted


# The second timestamp() wrote last and its text up to the fraction: times
# come mostly in order, so the next entry's usually starts the same.
_LAST_SECOND: tuple[tuple[int, ...], str] = ((), "")


def timestamp(dt: datetime) -> str:
    """The canonical text of an entry's time (what ``created_at`` is hashed as)."""
    global _LAST_SECOND
    t = dt if dt.tzinfo is UTC else to_utc(dt)  # the clock's times are UTC already
    second = (t.year, t.month, t.day, t.hour, t.minute, t.second)
    last = _LAST_SECOND  # one read: its second and text belong together (threads)
    if last[0] == second:
        head = last[1]
    else:
        head = "%04d-%02d-%02dT%02d:%02d:%02d." % second  # noqa: UP031 - 5x faster than strftime
        _LAST_SECOND = (second, head)
    return f"{head}{t.microsecond:06d}Z"


_timestamp = timestamp


def chain_hash(prev_hash: str, canonical: bytes) -> str:
    return hashlib.sha256(bytes.fromhex(prev_hash) + canonical).hexdigest()


def leaf_hash(entry_hash: str) -> bytes:
    return hashlib.sha256(b"\x00" + bytes.fromhex(entry_hash)).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    return hashlib.sha256(b"\x01" + left + right).digest()


def _split(n: int) -> int:
    """Largest power of two strictly less than n (n ≥ 2)."""
    return 1 << ((n - 1).bit_length() - 1)


def merkle_root(leaves: Sequence[bytes]) -> bytes:
    """RFC 6962 MTH over already-hashed leaves."""
    if not leaves:
        return _EMPTY_ROOT
    return MerkleFrontier.of(leaves).root()


class MerkleFrontier:
    """The roots of the perfect subtrees covering leaves [0, size): enough to
    extend the tree one leaf at a time and to give its root in O(log n)."""

    __slots__ = ("_stack", "size")

    def __init__(self) -> None:
        self.size = 0
        self._stack: list[tuple[int, bytes]] = []  # (height, hash), left to right

    @classmethod
    def of(cls, leaves: Iterable[bytes]) -> MerkleFrontier:
        f = cls()
        for leaf in leaves:
            f.append(leaf)
        return f

    def append(self, leaf: bytes) -> None:
        height, h = 0, leaf
        while self._stack and self._stack[-1][0] == height:
            _, left = self._stack.pop()
            h = node_hash(left, h)
            height += 1
        self._stack.append((height, h))
        self.size += 1

    def root(self) -> bytes:
        if not self._stack:
            return _EMPTY_ROOT
        # RFC 6962 puts the smaller subtrees on the right: fold from the right.
        acc = self._stack[-1][1]
        for _, h in reversed(self._stack[:-1]):
            acc = node_hash(h, acc)
        return acc

    def copy(self) -> MerkleFrontier:
        c = MerkleFrontier()
        c.size, c._stack = self.size, list(self._stack)
        return c


def inclusion_proof(index: int, leaves: Sequence[bytes]) -> list[bytes]:
    """RFC 6962 audit path for leaf ``index`` in the tree of ``leaves``."""
    if not 0 <= index < len(leaves):
        raise IndexError("leaf index out of range")
    path: list[bytes] = []
    lo, hi = 0, len(leaves)
    # Walk down from the root, collecting the sibling subtree at each split.
    while hi - lo > 1:
        k = _split(hi - lo)
        if index - lo < k:
            path.append(merkle_root(leaves[lo + k : hi]))
            hi = lo + k
        else:
            path.append(merkle_root(leaves[lo : lo + k]))
            lo = lo + k
    path.reverse()  # RFC order: from the leaf's sibling up to the root's child
    return path


def verify_inclusion(leaf: bytes, index: int, size: int, proof: Sequence[bytes], root: bytes) -> bool:
    """RFC 9162 §2.1.3.2: recompute the root from a leaf and its audit path."""
    if not 0 <= index < size:
        return False
    fn, sn, r = index, size - 1, leaf
    for p in proof:
        if sn == 0:
            return False
        if fn & 1 or fn == sn:
            r = node_hash(p, r)
            if not fn & 1:
                while fn and not fn & 1:
                    fn >>= 1
                    sn >>= 1
        else:
            r = node_hash(r, p)
        fn >>= 1
        sn >>= 1
    return sn == 0 and r == root
