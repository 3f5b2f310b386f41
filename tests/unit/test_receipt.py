"""Offline receipt verification: a receipt built with the ledger's own hashing verifies;
changing any field the proof covers makes it fail and names the check that caught it."""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

import pytest

from trustpay.ledger import chain
from trustpay.wallet import receipt
from trustpay.wallet.statement import LineType, classify, line_id, parse_line_id, possible_types

WALLET = "acc_0000000000000000000000wall"
FEES = "acc_00000000000000000000000fee"
ENTRY_ID = "txn_01jdzz0000000000000000feex"


def _entry(seq: int, entry_id: str, reference: str, memo: str, lines: list[list[Any]]) -> dict[str, Any]:
    return {"seq": seq, "id": entry_id, "kind": "transfer", "reference": reference, "hold_id": None,
            "memo": memo, "created_at": f"2026-11-30T10:{seq // 60:02d}:{seq % 60:02d}.123456Z", "lines": lines}


def make_receipt(target: int = 3, size: int = 6) -> dict[str, Any]:
    """A journal of ``size`` entries; the receipt of entry ``target``'s wallet line."""
    prev, hashes, entries = chain.GENESIS, [], []
    for seq in range(1, size + 1):
        eid = ENTRY_ID if seq == target else f"txn_01jdzz00000000000000000{seq:03d}"
        e = _entry(seq, eid, "wd_01jdzz0000000000000000wdrw", "withdrawal fee" if seq == target else "",
                   [[WALLET, "balance", "CNY", -200], [FEES, "balance", "CNY", 200]])
        canonical = chain.canonical_entry(**{**e, "lines": [tuple(ln) for ln in e["lines"]]})
        h = chain.chain_hash(prev, canonical)
        entries.append((e, prev, h))
        hashes.append(h)
        prev = h
    e, prev_hash, h = entries[target - 1]
    leaves = [chain.leaf_hash(x) for x in hashes]
    return {
        "id": line_id(ENTRY_ID, WALLET), "object": "receipt", "type": "withdrawal_fee", "amount": -200,
        "currency": "CNY", "balance_after": 800, "counterparty": None, "reference": e["reference"],
        "memo": e["memo"], "created_at": e["created_at"], "account_id": WALLET,
        "entry": e, "entry_hash": h, "prev_hash": prev_hash, "leaf_index": target - 1,
        "proof": [p.hex() for p in chain.inclusion_proof(target - 1, leaves)],
        "digest": {"height": size, "root": chain.merkle_root(leaves).hex(), "at": "2026-11-30T10:01:00Z"},
    }


def test_a_genuine_receipt_verifies() -> None:
    v = receipt.verify(make_receipt())
    assert v.ok, v.failures
    names = {c.name for c in v.checks}
    assert {"entry hash", "amount", "inclusion proof", "leaf index", "line id"} <= names


@pytest.mark.parametrize("target, size", [(1, 1), (1, 2), (2, 2), (5, 7), (8, 8), (4, 13)])
def test_receipts_verify_at_every_place_in_trees_of_any_size(target: int, size: int) -> None:
    assert receipt.verify(make_receipt(target, size)).ok


def _set(*path: Any, value: Any) -> Callable[[dict[str, Any]], None]:
    def change(doc: dict[str, Any]) -> None:
        node = doc
        for key in path[:-1]:
            node = node[key]
        node[path[-1]] = value(node[path[-1]]) if callable(value) else value
    return change


def _flip(h: str) -> str:
    return ("0" if h[0] != "0" else "1") + h[1:]


# Field changed -> the check that must fail.
TAMPERING: dict[str, tuple[Callable[[dict[str, Any]], None], str]] = {
    "amount": (_set("amount", value=lambda a: a - 1), "amount"),
    "currency": (_set("currency", value="USD"), "amount"),
    "account_id": (_set("account_id", value=FEES), "line id"),
    "id": (_set("id", value=line_id("txn_01jdzz000000000000000000001", WALLET)), "line id"),
    "reference": (_set("reference", value="wd_01jdzz0000000000000000zzzz"), "reference"),
    "memo": (_set("memo", value="gift"), "memo"),
    "created_at": (_set("created_at", value="2026-11-30T10:00:04.123456Z"), "created_at"),
    "type": (_set("type", value="topup"), "type"),
    "entry.memo": (_set("entry", "memo", value="gift"), "entry hash"),
    "entry.seq": (_set("entry", "seq", value=4), "entry hash"),
    "entry.id": (_set("entry", "id", value="txn_01jdzz000000000000000000002"), "entry hash"),
    "entry.kind": (_set("entry", "kind", value="reversal"), "entry hash"),
    "entry.reference": (_set("entry", "reference", value=None), "entry hash"),
    "entry.hold_id": (_set("entry", "hold_id", value="hold_01jdzz00000000000000000000"), "entry hash"),
    "entry.created_at": (_set("entry", "created_at", value="2026-11-30T10:00:03.123457Z"), "entry hash"),
    "entry line amount": (_set("entry", "lines", 0, 3, value=-201), "entry hash"),
    "entry line account": (_set("entry", "lines", 1, 0, value=WALLET), "entry hash"),
    "entry line dropped": (_set("entry", "lines", value=lambda ls: ls[:1]), "entry hash"),
    "entry_hash": (_set("entry_hash", value=_flip), "entry hash"),
    "prev_hash": (_set("prev_hash", value=_flip), "entry hash"),
    "leaf_index": (_set("leaf_index", value=3), "leaf index"),
    "proof element": (_set("proof", 0, value=_flip), "inclusion proof"),
    "proof dropped": (_set("proof", value=lambda p: p[1:]), "inclusion proof"),
    "proof extended": (_set("proof", value=lambda p: [*p, "00" * 32]), "inclusion proof"),
    "digest.root": (_set("digest", "root", value=_flip), "inclusion proof"),
    # A proof's path can fit trees of neighbouring sizes: a size is bound to its root by the
    # published digest (see test_published_digest_comparison), offline only a size that cannot
    # hold the leaf is caught.
    "digest.height": (_set("digest", "height", value=2), "inclusion proof"),
    "not hex": (_set("proof", 0, value="zz" * 32), "receipt format"),
    "missing entry": (lambda d: d.pop("entry"), "receipt format"),
    "missing entry field": (lambda d: d["entry"].pop("memo"), "receipt format"),
    "amount as text": (_set("amount", value="-200"), "receipt format"),
}


@pytest.mark.parametrize("field", sorted(TAMPERING))
def test_tampering_with_any_covered_field_fails_and_is_named(field: str) -> None:
    change, expected = TAMPERING[field]
    doc = make_receipt()
    change(doc)
    v = receipt.verify(doc)
    assert not v.ok
    assert expected in [c.name for c in v.failures], [(c.name, c.detail) for c in v.failures]
    report = receipt.report_lines(v, doc, lambda ok: "ok" if ok else "FAIL")
    assert report[-1].startswith("NOT verified") and expected in report[-1]


@pytest.mark.parametrize("field", receipt.NOT_COVERED)
def test_fields_outside_the_hash_are_said_to_be_uncovered(field: str) -> None:
    doc = make_receipt()
    doc[field] = 999_999 if field == "balance_after" else "someone else"
    v = receipt.verify(doc)
    assert v.ok  # nothing in the proof can tell, so the verifier must say so instead
    assert f"not covered by the proof: {', '.join(receipt.NOT_COVERED)}" in receipt.report_lines(
        v, doc, lambda ok: "")[-1]


def test_published_digest_comparison() -> None:
    doc = make_receipt()
    same = {"height": doc["digest"]["height"], "root": doc["digest"]["root"]}
    assert receipt.verify(doc, published=same).ok
    forged = receipt.verify(doc, published={**same, "root": "00" * 32})
    assert [c.name for c in forged.failures] == ["published digest"]
    shorter = receipt.verify(doc, published={"height": 2, "root": "00" * 32})
    assert [c.name for c in shorter.failures] == ["published digest"]
    wrong_height = make_receipt()
    wrong_height["digest"]["height"] += 1
    published_then = receipt.verify(wrong_height, published={"height": wrong_height["digest"]["height"],
                                                              "root": make_receipt(3, 7)["digest"]["root"]})
    assert "published digest" in [c.name for c in published_then.failures]
    grown = receipt.verify(doc, published={"height": 100, "root": "00" * 32})
    assert grown.ok and "not comparable" in grown.checks[-1].detail


def test_line_ids_lead_back_to_entry_and_account() -> None:
    lid = line_id(ENTRY_ID, WALLET)
    assert lid.startswith("txn_") and parse_line_id(lid) == (ENTRY_ID, WALLET)
    assert line_id(ENTRY_ID, FEES) != lid
    for bad in ("txn_", "txn_abc", "acc_x_y", "txn_a_b_c", "txn__b", ENTRY_ID):
        assert parse_line_id(bad) is None, bad


@pytest.mark.parametrize("reference, kind, amount, fee, expected", [
    ("top_1", "transfer", 100, False, LineType.TOPUP),
    ("wd_1", "post_hold", -100, False, LineType.WITHDRAWAL),
    ("wd_1", "transfer", -5, True, LineType.WITHDRAWAL_FEE),
    ("tr_1", "post_hold", 100, False, LineType.TRANSFER_IN),
    ("tr_1", "post_hold", -100, False, LineType.TRANSFER_OUT),
    ("trd_1", "transfer", -100, False, LineType.PAYMENT),
    ("trd_1", "transfer", 100, False, LineType.REFUND),  # a trade puts money in a wallet only to refund it
    ("rf_1", "transfer", 100, False, LineType.REFUND),
    ("txn_1", "reversal", -100, False, LineType.REVERSAL),
    ("adj-7", "transfer", 7, False, LineType.ADJUSTMENT),
    (None, "transfer", 7, False, LineType.ADJUSTMENT),
])
def test_types_come_from_the_reference_and_the_sign(reference: str | None, kind: str, amount: int,
                                                    fee: bool, expected: LineType) -> None:
    assert classify(reference, kind, amount, to_fee_account=fee) is expected
    assert expected in possible_types(reference, kind, amount)


def test_a_receipt_is_not_changed_by_verifying_it() -> None:
    doc = make_receipt()
    before = copy.deepcopy(doc)
    receipt.verify(doc)
    assert doc == before
