"""Receipts: a statement line plus what proves it is in the published ledger.

A receipt carries the line, its whole journal entry exactly as it was hashed,
the entry's hash and its predecessor's, and an RFC 6962 inclusion proof of
the entry in the tree whose root was the published digest when the receipt
was made. :func:`verify` checks one with nothing but the file — no database,
no network — using the ledger's own hashing functions (:mod:`trustpay.ledger.chain`),
so a receipt is checked exactly as the journal is sealed.

What the proof covers: the entry (id, seq, kind, reference, memo, time, and
every line's account, field, currency and amount) and its place in the
journal. The line's ``amount``, ``currency``, ``reference``, ``memo``,
``created_at`` and ``type`` are checked against that entry. ``balance_after``
and ``counterparty`` are not part of the hash (a running total and a display
label); :data:`NOT_COVERED` names them so a verifier can say so.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import Connection

from trustpay.clock import rfc3339
from trustpay.errors import Conflict
from trustpay.ledger import chain
from trustpay.ledger.digest import proof_for
from trustpay.ledger.model import Entry, Field
from trustpay.platform.context import Platform
from trustpay.wallet.statement import get_line, parse_line_id, possible_types

NOT_COVERED = ("balance_after", "counterparty")
_ENTRY_KEYS = ("seq", "id", "kind", "reference", "hold_id", "memo", "created_at", "lines")


# ------------------------------------------------------------------ making
def entry_doc(entry: Entry) -> dict[str, Any]:
    """The entry as :func:`chain.canonical_entry` hashes it: lines are
    [account, field, currency, delta], time is the canonical text."""
    return {
        "seq": entry.seq, "id": entry.id, "kind": entry.kind, "reference": entry.reference,
        "hold_id": entry.hold_id, "memo": entry.memo, "created_at": chain.timestamp(entry.created_at),
        "lines": [[ln.account_id, ln.field, ln.currency, ln.delta] for ln in sorted(entry.lines)],
    }


def make_receipt(p: Platform, conn: Connection, user_id: str, line_id: str) -> dict[str, Any]:
    """The receipt of the user's statement line ``line_id`` (404 for anyone else's)."""
    line = get_line(conn, user_id, line_id)
    entry = p.book.entry(conn, line.entry_id)
    digest = p.digest.current(conn)
    if digest.height < entry.seq:
        # Only while an earlier entry is still being committed: the tree cannot include this one yet.
        raise Conflict("the ledger digest has not reached this entry yet; try again in a moment")
    return {
        **line.as_json(),
        "object": "receipt",
        "account_id": line.account_id,
        "entry": entry_doc(entry),
        "entry_hash": entry.hash,
        "prev_hash": entry.prev_hash,
        "leaf_index": entry.seq - 1,
        "proof": proof_for(conn, entry.seq, digest.height),
        "digest": {"height": digest.height, "root": digest.root, "at": rfc3339(p.clock.now())},
    }


# --------------------------------------------------------------- checking
@dataclass(frozen=True, slots=True)
class Check:
    name: str
    ok: bool
    detail: str


@dataclass
class Verification:
    checks: list[Check] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return bool(self.checks) and all(c.ok for c in self.checks)

    @property
    def failures(self) -> list[Check]:
        return [c for c in self.checks if not c.ok]

    def add(self, name: str, ok: bool, detail: str) -> None:
        self.checks.append(Check(name, ok, detail))


class _Malformed(Exception):
    pass


def _get(doc: Mapping[str, Any], key: str, kind: type | tuple[type, ...], where: str = "") -> Any:
    if key not in doc:
        raise _Malformed(f"{where}{key} is missing")
    value = doc[key]
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        raise _Malformed(f"{where}{key} has the wrong type")
    return value


def _hex(value: Any, what: str, size: int = 32) -> bytes:
    if not isinstance(value, str):
        raise _Malformed(f"{what} is not a hex string")
    try:
        raw = bytes.fromhex(value)
    except ValueError:
        raise _Malformed(f"{what} is not a hex string") from None
    if len(raw) != size:
        raise _Malformed(f"{what} is not {size} bytes")
    return raw


def _canonical(entry: Mapping[str, Any]) -> bytes:
    for key in _ENTRY_KEYS:
        if key not in entry:
            raise _Malformed(f"entry.{key} is missing")
    lines = []
    for ln in _get(entry, "lines", list, "entry."):
        if not (isinstance(ln, list) and len(ln) == 4 and all(isinstance(x, str) for x in ln[:3])
                and isinstance(ln[3], int) and not isinstance(ln[3], bool)):
            raise _Malformed("entry.lines must be [account, field, currency, amount] items")
        lines.append((ln[0], ln[1], ln[2], ln[3]))
    return chain.canonical_entry(
        seq=_get(entry, "seq", int, "entry."), id=_get(entry, "id", str, "entry."),
        kind=_get(entry, "kind", str, "entry."), reference=_get(entry, "reference", (str, type(None)), "entry."),
        hold_id=_get(entry, "hold_id", (str, type(None)), "entry."), memo=_get(entry, "memo", str, "entry."),
        created_at=_get(entry, "created_at", str, "entry."), lines=lines,
    )


def _same_instant(a: str, b: str) -> bool:
    try:
        return datetime.fromisoformat(a) == datetime.fromisoformat(b)
    except ValueError:
        return False


def _check_line(v: Verification, doc: Mapping[str, Any], entry: Mapping[str, Any]) -> None:
    """The line shown to the person is the entry's line for their wallet, unchanged."""
    line_id = _get(doc, "id", str)
    account = _get(doc, "account_id", str)
    amount = _get(doc, "amount", int)
    currency = _get(doc, "currency", str)
    parsed = parse_line_id(line_id)
    v.add("line id", parsed == (entry["id"], account),
          "names this entry and wallet account" if parsed == (entry["id"], account)
          else f"{line_id} does not name entry {entry['id']} and account {account}")
    mine = [ln for ln in entry["lines"] if ln[0] == account and ln[1] == Field.BALANCE]
    matches = len(mine) == 1 and mine[0][2] == currency and mine[0][3] == amount
    v.add("amount", matches,
          f"{amount} {currency} is the entry's posting on {account}" if matches
          else f"amount {amount} {currency} is not what the entry posted on {account}: "
               f"{[f'{ln[3]} {ln[2]}' for ln in mine] or 'nothing'}")
    for key in ("reference", "memo"):
        same = doc.get(key) == entry[key]
        v.add(key, same, "matches the entry" if same else f"{doc.get(key)!r} is not the entry's {entry[key]!r}")
    created = _get(doc, "created_at", str)
    same_time = _same_instant(created, entry["created_at"])
    v.add("created_at", same_time,
          "matches the entry" if same_time else f"{created} is not the entry's time {entry['created_at']}")
    allowed = possible_types(entry["reference"], entry["kind"], amount)
    shown = doc.get("type")
    fits = isinstance(shown, str) and shown in allowed
    v.add("type", fits,
          "agrees with the entry" if fits
          else f"{shown!r} does not fit the entry (expected {' or '.join(sorted(allowed))})")


def verify(doc: Mapping[str, Any], *, published: Mapping[str, Any] | None = None) -> Verification:
    """Check a receipt offline; ``published``: a digest ``{height, root}`` fetched
    separately, to compare with the receipt's (same height → same root)."""
    v = Verification()
    try:
        entry = _get(doc, "entry", dict)
        canonical = _canonical(entry)
        entry_hash = _hex(_get(doc, "entry_hash", str), "entry_hash").hex()
        prev_hash = _hex(_get(doc, "prev_hash", str), "prev_hash").hex()
        recomputed = chain.chain_hash(prev_hash, canonical)
        v.add("entry hash", recomputed == entry_hash,
              "recomputed from the entry and prev_hash" if recomputed == entry_hash
              else f"recomputed {recomputed}, receipt says {entry_hash}: the entry or prev_hash was altered")
        _check_line(v, doc, entry)
        index = _get(doc, "leaf_index", int)
        v.add("leaf index", index == entry["seq"] - 1,
              f"entry #{entry['seq']} is leaf {index}" if index == entry["seq"] - 1
              else f"leaf {index} is not entry #{entry['seq']}'s place ({entry['seq'] - 1})")
        digest = _get(doc, "digest", dict)
        height = _get(digest, "height", int, "digest.")
        root = _hex(_get(digest, "root", str, "digest."), "digest.root")
        proof = [_hex(h, f"proof[{i}]") for i, h in enumerate(_get(doc, "proof", list))]
        included = chain.verify_inclusion(chain.leaf_hash(entry_hash), index, height, proof, root)
        v.add("inclusion proof", included,
              f"leaf {index} is in the tree of {height} entries with root {root.hex()}" if included
              else f"the proof does not lead from leaf {index} to root {root.hex()} at height {height}")
        if published is not None:
            _compare_published(v, height, root.hex(), published)
    except _Malformed as exc:
        v.add("receipt format", False, f"malformed receipt: {exc}")
    return v


def _compare_published(v: Verification, height: int, root: str, published: Mapping[str, Any]) -> None:
    p_height, p_root = published.get("height"), published.get("root")
    if p_height == height:
        v.add("published digest", p_root == root,
              f"the published root at height {height} is the receipt's" if p_root == root
              else f"the published root at height {height} is {p_root}, the receipt's is {root}")
    elif isinstance(p_height, int) and p_height < height:
        v.add("published digest", False,
              f"the receipt claims height {height} but the published ledger has only {p_height} entries")
    else:
        # Roots of different heights cannot be compared without a consistency proof.
        v.add("published digest", True,
              f"the ledger has grown to {p_height} entries since; roots of different heights "
              "are not comparable, so only the receipt's own proof was checked")


def report_lines(v: Verification, doc: Mapping[str, Any], mark: Callable[[bool], str]) -> list[str]:
    """Human-readable result, one check a line, then the verdict."""
    out = [f"{mark(c.ok)} {c.name}: {c.detail}" for c in v.checks]
    if v.ok:
        d = doc["digest"]
        out.append(f"verified: {doc['id']} ({doc['amount']} {doc['currency']}) is entry "
                   f"#{doc['entry']['seq']} of the ledger with root {d['root']} at height {d['height']}")
        out.append(f"not covered by the proof: {', '.join(NOT_COVERED)}")
    else:
        out.append("NOT verified: " + "; ".join(c.name for c in v.failures))
    return out
