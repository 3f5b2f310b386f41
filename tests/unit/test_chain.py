"""Hash chain and RFC 6962 Merkle tree, against straightforward reference implementations."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta, timezone, tzinfo
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from trustpay.ledger.chain import (
    GENESIS,
    CanonicalParts,
    MerkleFrontier,
    canonical_entry,
    canonical_from_body,
    chain_hash,
    inclusion_proof,
    leaf_hash,
    merkle_root,
    verify_inclusion,
)

# --- reference RFC 6962 §2.1, written from the text --------------------------------------------


def ref_mth(data: Sequence[bytes]) -> bytes:
    n = len(data)
    if n == 0:
        return hashlib.sha256(b"").digest()
    if n == 1:
        return hashlib.sha256(b"\x00" + data[0]).digest()
    k = 1
    while k * 2 < n:
        k *= 2
    return hashlib.sha256(b"\x01" + ref_mth(data[:k]) + ref_mth(data[k:])).digest()


def ref_path(m: int, data: Sequence[bytes]) -> list[bytes]:
    n = len(data)
    if n == 1:
        return []
    k = 1
    while k * 2 < n:
        k *= 2
    if m < k:
        return [*ref_path(m, data[:k]), ref_mth(data[k:])]
    return [*ref_path(m - k, data[k:]), ref_mth(data[:k])]


def entry_hashes(n: int, salt: str = "") -> list[str]:
    return [hashlib.sha256(f"{salt}entry-{i}".encode()).hexdigest() for i in range(n)]


def root_of(hashes: Sequence[str]) -> bytes:
    return merkle_root([leaf_hash(h) for h in hashes])


# Known answers from the certificate-transparency test vectors (leaf data as hex).
CT_LEAVES = ["", "00", "10", "2021", "3031", "40414243", "5051525354555657", "606162636465666768696a6b6c6d6e6f"]
CT_ROOTS = [
    "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
    "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
    "aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77",
    "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
    "4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4",
    "76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef",
    "ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c",
    "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328",
]


@pytest.mark.parametrize("n", range(1, 9))
def test_known_answer_roots(n: int) -> None:
    assert root_of(CT_LEAVES[:n]).hex() == CT_ROOTS[n - 1]
    assert ref_mth([bytes.fromhex(d) for d in CT_LEAVES[:n]]).hex() == CT_ROOTS[n - 1]


def test_empty_tree_root() -> None:
    assert merkle_root([]) == hashlib.sha256(b"").digest()
    assert MerkleFrontier().root() == hashlib.sha256(b"").digest()


@pytest.mark.parametrize("n", range(71))
def test_root_matches_reference(n: int) -> None:
    hashes = entry_hashes(n)
    expected = ref_mth([bytes.fromhex(h) for h in hashes])
    assert root_of(hashes) == expected
    # Growing the frontier leaf by leaf gives every intermediate root too.
    f = MerkleFrontier()
    for i, h in enumerate(hashes):
        f.append(leaf_hash(h))
        assert f.size == i + 1
    assert f.root() == expected


@given(st.lists(st.binary(min_size=32, max_size=32), max_size=300))
def test_root_matches_reference_property(leaves: list[bytes]) -> None:
    assert root_of([b.hex() for b in leaves]) == ref_mth(leaves)


def test_frontier_copy_is_independent() -> None:
    hashes = entry_hashes(10)
    f = MerkleFrontier.of(leaf_hash(h) for h in hashes[:5])
    g = f.copy()
    for h in hashes[5:]:
        g.append(leaf_hash(h))
    assert f.size == 5 and f.root() == root_of(hashes[:5])
    assert g.size == 10 and g.root() == root_of(hashes)


@pytest.mark.parametrize("n", range(1, 71))
def test_every_inclusion_proof_verifies_and_only_for_its_leaf(n: int) -> None:
    hashes = entry_hashes(n)
    leaves = [leaf_hash(h) for h in hashes]
    root = merkle_root(leaves)
    other_root = root_of(entry_hashes(n, salt="x"))
    stranger = leaf_hash(hashlib.sha256(b"not in the tree").hexdigest())
    for i in range(n):
        proof = inclusion_proof(i, leaves)
        assert proof == ref_path(i, [bytes.fromhex(h) for h in hashes])
        assert verify_inclusion(leaves[i], i, n, proof, root)
        assert not verify_inclusion(stranger, i, n, proof, root)
        assert not verify_inclusion(leaves[i], i, n, proof, other_root)
        if n > 1:
            assert not verify_inclusion(leaves[(i + 1) % n], i, n, proof, root)
            wrong_index = (i + 1) % n
            assert not verify_inclusion(leaves[i], wrong_index, n, proof, root)
            assert not verify_inclusion(leaves[i], i, n, proof[:-1], root)
            assert not verify_inclusion(leaves[i], i, n, [*proof[:-1], stranger], root)
        assert not verify_inclusion(leaves[i], i, n, [*proof, stranger], root)
        assert not verify_inclusion(leaves[i], n, n, proof, root)
        assert not verify_inclusion(leaves[i], -1, n, proof, root)


def test_inclusion_proof_index_out_of_range() -> None:
    leaves = [leaf_hash(h) for h in entry_hashes(3)]
    for bad in (-1, 3):
        with pytest.raises(IndexError):
            inclusion_proof(bad, leaves)


@given(st.integers(1, 500).flatmap(lambda n: st.tuples(st.just(n), st.integers(0, n - 1))))
def test_inclusion_property(n_i: tuple[int, int]) -> None:
    n, i = n_i
    hashes = entry_hashes(n)
    leaves = [leaf_hash(h) for h in hashes]
    root = merkle_root(leaves)
    proof = inclusion_proof(i, leaves)
    assert verify_inclusion(leaves[i], i, n, proof, root)
    assert root == ref_mth([bytes.fromhex(h) for h in hashes])


# --- canonical entry -----------------------------------------------------------------------


def reference_canonical(**kw: Any) -> bytes:
    created_at: datetime = kw["created_at"]
    utc = created_at.replace(tzinfo=UTC) if created_at.tzinfo is None else created_at.astimezone(UTC)
    doc = {
        "seq": kw["seq"], "id": kw["id"], "kind": kw["kind"], "reference": kw["reference"],
        "hold_id": kw["hold_id"], "memo": kw["memo"],
        "created_at": utc.replace(tzinfo=None).isoformat(timespec="microseconds") + "Z",
        "lines": sorted([list(line) for line in kw["lines"]]),
    }
    return json.dumps(doc, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


TRICKY = st.sampled_from(['"', "\\", "\n", "\r", "\t", "\x00", "\x1f", "\x7f", "\u2028", "\u2029", "é", "中文",
                          "😀", "</script>", "null", '","memo":"', "\ufeff"])
TEXT = st.one_of(st.text(), st.lists(st.one_of(TRICKY, st.text(max_size=3))).map("".join))
OPT_TEXT = st.one_of(st.none(), TEXT)
LINES = st.lists(st.tuples(TEXT, st.sampled_from(["balance", "pending_out", "pending_in"]), TEXT,
                           st.integers(-(2**63), 2**63 - 1)), max_size=6)
ZONES: st.SearchStrategy[tzinfo] = st.sampled_from(
    [UTC, timezone(timedelta(hours=8)), timezone(timedelta(hours=-5, minutes=-30))])
LO, HI = datetime(1900, 1, 2), datetime(9999, 12, 30)
CREATED = st.one_of(st.datetimes(LO, HI), st.datetimes(LO, HI, timezones=ZONES))  # naive = UTC (SQLite)


@given(seq=st.integers(1, 2**62), id=TEXT, kind=TEXT, reference=OPT_TEXT, hold_id=OPT_TEXT, memo=TEXT,
       created_at=CREATED,
       lines=LINES)
def test_canonical_entry_is_sorted_compact_json(**kw: Any) -> None:
    got = canonical_entry(**kw)
    assert got == reference_canonical(**kw)
    json.loads(got)  # and it is valid JSON


SAFE_ID = st.text("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-", min_size=1)


@given(seq=st.integers(1, 2**62), id=SAFE_ID, kind=TEXT, reference=OPT_TEXT, memo=TEXT,
       created_at=st.datetimes(LO, HI), lines=LINES)
def test_canonical_parts_of_a_batch_give_the_canonical_entry(**kw: Any) -> None:
    # The batch writes an entry's canonical text from pieces it reuses; it must be canonical_entry's.
    lines = sorted(kw["lines"])
    body = canonical_entry(seq=1, id="x", kind="k", reference=None, hold_id=None, memo="",
                           created_at=kw["created_at"], lines=lines).split(b'"lines":[', 1)[1]
    body_text = body.rsplit(b'],"memo":', 1)[0].decode()
    stamp = reference_canonical(seq=1, id="", kind="", reference=None, hold_id=None, memo="",
                                created_at=kw["created_at"], lines=[])[15:42].decode()
    parts = CanonicalParts(stamp)
    got = (f"{parts.head}{kw['id']}{parts.kind_part(kw['kind'])}{body_text}"
           f"{parts.tail_part(kw['memo'], kw['reference'])}{kw['seq']}}}").encode()
    assert got == reference_canonical(hold_id=None, **kw)
    assert got == canonical_from_body(kw["seq"], kw["id"], kw["kind"], kw["reference"], None, kw["memo"], stamp,
                                      body_text)


def test_canonical_entry_example() -> None:
    got = canonical_entry(
        seq=7, id="txn_1", kind="transfer", reference=None, hold_id="hold_1", memo='say "hi"\u2028',
        created_at=datetime(2026, 1, 2, 3, 4, 5, 6, tzinfo=timezone(timedelta(hours=8))),
        lines=[("acc_b", "balance", "CNY", 5), ("acc_a", "balance", "CNY", -5)],
    )
    assert got == (
        '{"created_at":"2026-01-01T19:04:05.000006Z","hold_id":"hold_1","id":"txn_1","kind":"transfer",'
        '"lines":[["acc_a","balance","CNY",-5],["acc_b","balance","CNY",5]],"memo":"say \\"hi\\"\u2028",'
        '"reference":null,"seq":7}'
    ).encode()


# --- chain hash ----------------------------------------------------------------------------

BASE: dict[str, Any] = {
    "seq": 3, "id": "txn_a", "kind": "transfer", "reference": "ref", "hold_id": None, "memo": "m",
    "created_at": datetime(2026, 1, 1, tzinfo=UTC),
    "lines": [("acc_a", "balance", "CNY", -5), ("acc_b", "balance", "CNY", 5)],
}
PREV = hashlib.sha256(b"prev").hexdigest()

CHANGES: dict[str, dict[str, Any]] = {
    "seq": {"seq": 4},
    "id": {"id": "txn_b"},
    "kind": {"kind": "reversal"},
    "reference none": {"reference": None},
    "reference text": {"reference": "ref2"},
    "reference 'null'": {"reference": "null"},
    "hold_id": {"hold_id": "hold_a"},
    "memo": {"memo": "m "},
    "memo empty": {"memo": ""},
    "created_at": {"created_at": datetime(2026, 1, 1, 0, 0, 0, 1, tzinfo=UTC)},
    "delta": {"lines": [("acc_a", "balance", "CNY", -6), ("acc_b", "balance", "CNY", 6)]},
    "account": {"lines": [("acc_a", "balance", "CNY", -5), ("acc_c", "balance", "CNY", 5)]},
    "field": {"lines": [("acc_a", "pending_out", "CNY", -5), ("acc_b", "balance", "CNY", 5)]},
    "currency": {"lines": [("acc_a", "balance", "USD", -5), ("acc_b", "balance", "USD", 5)]},
    "line added": {"lines": [*BASE["lines"], ("acc_c", "balance", "CNY", 0)]},
    "line removed": {"lines": BASE["lines"][:1]},
}


def test_chain_hash_of_base() -> None:
    digest = chain_hash(PREV, canonical_entry(**BASE))
    assert digest == hashlib.sha256(bytes.fromhex(PREV) + canonical_entry(**BASE)).hexdigest()
    assert len(digest) == 64 and GENESIS == "0" * 64


@pytest.mark.parametrize("change", sorted(CHANGES))
def test_chain_hash_changes_with_any_field(change: str) -> None:
    base = chain_hash(PREV, canonical_entry(**BASE))
    assert chain_hash(PREV, canonical_entry(**{**BASE, **CHANGES[change]})) != base


def test_chain_hash_changes_with_prev_hash() -> None:
    assert chain_hash(GENESIS, canonical_entry(**BASE)) != chain_hash(PREV, canonical_entry(**BASE))


def test_line_order_and_timezone_do_not_matter() -> None:
    same = {**BASE, "lines": list(reversed(BASE["lines"])),
            "created_at": datetime(2026, 1, 1, 8, tzinfo=timezone(timedelta(hours=8)))}
    assert canonical_entry(**same) == canonical_entry(**BASE)
    naive = {**BASE, "created_at": datetime(2026, 1, 1)}  # read back from SQLite: UTC by construction
    assert canonical_entry(**naive) == canonical_entry(**BASE)


def test_null_reference_differs_from_the_text_null() -> None:
    assert canonical_entry(**{**BASE, "reference": None}) != canonical_entry(**{**BASE, "reference": "null"})
