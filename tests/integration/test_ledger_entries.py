"""What the ledger hands back is what it stored, on SQLite and PostgreSQL.

The append path builds each entry's lines, seq and prev_hash in memory (on
SQLite the seq and the previous hash come back from the balance UPDATE
itself); these tests read every entry back and compare it field by field,
including the order of its lines, and check the chain's head and verify."""

from __future__ import annotations

import itertools
import sqlite3

import psycopg
import pytest

from trustpay.clock import FrozenClock
from trustpay.ledger.model import Entry, EntryDraft, credit, debit
from trustpay.ledger.verify import verify
from trustpay.platform.context import Platform


def _open(p: Platform, owner: str | None, *, kind: str = "wallet", allow_negative: bool = False) -> str:
    with p.db.transaction() as c:
        return p.book.open_account(c, currency="CNY", kind=kind, owner_id=owner, allow_negative=allow_negative).id


def test_every_kind_of_entry_reads_back_as_returned(platform: Platform, clock: FrozenClock) -> None:
    p = platform
    bank = _open(p, None, kind="bank_clearing", allow_negative=True)
    # Ids chosen so that the payer sorts after the payee in one case and before in the other.
    a, b, c_ = _open(p, "usr_a"), _open(p, "usr_b"), _open(p, "usr_c")
    made: list[Entry] = []
    with p.db.transaction() as c:
        made.append(p.book.post(c, EntryDraft((debit(bank, 1000, "CNY"), credit(a, 1000, "CNY")))))
        made.append(p.book.post(c, EntryDraft((debit(a, 300, "CNY"), credit(b, 200, "CNY"),
                                                credit(c_, 100, "CNY")), memo="split", reference="ord_1")))
    with p.db.transaction() as c:
        h1 = p.book.hold(c, debit_account_id=a, credit_account_id=b, amount=250, currency="CNY")
        h2 = p.book.hold(c, debit_account_id=b, credit_account_id=a, amount=50, currency="CNY")
    with p.db.transaction() as c:
        made.append(p.book.post_hold(c, h1.id, 100))  # posts 100, releases 150: four lines
        made.append(p.book.void_hold(c, h2.id))
        made.append(p.book.reverse(c, made[1].id))
    with p.db.transaction() as c:
        made.extend(r.entry for r in p.book.post_batch(c, [
            EntryDraft((debit(b, 10, "CNY"), credit(a, 10, "CNY"))),
            EntryDraft((debit(a, 10, "CNY"), credit(b, 10, "CNY"))),
            # The batch's other shapes: credit listed first, with a reference and memo; three postings.
            EntryDraft((credit(c_, 3, "CNY"), debit(a, 3, "CNY")), reference="ord_2", memo='"credit" first'),
            EntryDraft((debit(a, 6, "CNY"), credit(b, 4, "CNY"), credit(c_, 2, "CNY")), memo="split in a batch"),
        ]) if r.entry is not None)
        made.append(p.book.post(c, EntryDraft((debit(a, 5, "CNY"), credit(c_, 5, "CNY")))))
    assert len(made) == 10
    with p.db.transaction(write=False) as c:
        for e in made:
            assert p.book.entry(c, e.id) == e
        assert p.book.head(c) == (made[-1].seq, made[-1].hash)
        report = verify(c)
    assert report.ok, report.problems
    four_lines = made[2]
    assert [(ln.account_id, ln.field) for ln in four_lines.lines] == sorted(
        (ln.account_id, ln.field) for ln in four_lines.lines)
    assert len(four_lines.lines) == 4
    for before, after in itertools.pairwise(made):
        if after.seq == before.seq + 1:
            assert after.prev_hash == before.hash


def test_first_entry_of_an_empty_journal_chains_to_genesis(platform: Platform) -> None:
    p = platform
    bank = _open(p, None, kind="bank_clearing", allow_negative=True)
    a = _open(p, "usr_a")
    with p.db.transaction() as c:
        seq0, hash0 = p.book.head(c)
        e = p.book.post(c, EntryDraft((debit(bank, 1, "CNY"), credit(a, 1, "CNY"))))
    assert (e.seq, e.prev_hash) == (seq0 + 1, hash0)
    with p.db.transaction(write=False) as c:
        assert p.book.entry(c, e.id) == e


def test_batch_gives_the_garbage_collector_back_as_it_found_it(platform: Platform) -> None:
    # post_batch pauses the cyclic collector while it works (see Book.post_batch).
    import gc

    p = platform
    bank, a = _open(p, None, kind="bank_clearing", allow_negative=True), _open(p, "usr_a")
    draft = EntryDraft((debit(bank, 5, "CNY"), credit(a, 5, "CNY")))
    assert gc.isenabled()
    with p.db.transaction() as c:
        assert p.book.post_batch(c, [draft])[0].error is None
    assert gc.isenabled()
    gc.disable()
    try:
        with p.db.transaction() as c:
            assert p.book.post_batch(c, [draft])[0].error is None
        assert not gc.isenabled()  # a caller's choice to turn it off stands
    finally:
        gc.enable()
    with pytest.raises(AttributeError), p.db.transaction() as c:
        p.book.post_batch(c, [draft, None])  # type: ignore[list-item]  # not a draft: the batch fails
    assert gc.isenabled()  # and on failure too


def test_a_batch_that_fills_the_multi_row_statements_reads_back_as_returned(platform: Platform) -> None:
    # SQLite writes a batch's journal rows 16 and its lines 4 to a statement, the rest one by one:
    # 37 plain transfers (2 full statements + 5, and 74 lines: 18 + 2), between referring and split entries.
    p = platform
    bank = _open(p, None, kind="bank_clearing", allow_negative=True)
    users = [_open(p, f"usr_{i}") for i in range(5)]
    drafts = [EntryDraft((debit(bank, 100 + i, "CNY"), credit(users[i % 5], 100 + i, "CNY"))) for i in range(20)]
    drafts.append(EntryDraft((debit(users[0], 7, "CNY"), credit(users[1], 7, "CNY")), reference="ord_9"))
    drafts.append(EntryDraft((debit(users[2], 6, "CNY"), credit(users[3], 3, "CNY"), credit(users[4], 3, "CNY"))))
    drafts += [EntryDraft((credit(users[i % 5], 1, "CNY"), debit(bank, 1, "CNY"))) for i in range(17)]
    with p.db.transaction() as c:
        results = p.book.post_batch(c, drafts)
    made = [r.entry for r in results if r.entry is not None]
    assert len(made) == len(drafts) == 39
    with p.db.transaction(write=False) as c:
        assert [p.book.entry(c, e.id) for e in made] == made
        assert p.book.head(c) == (made[-1].seq, made[-1].hash)
        balances = [p.book.account(c, u).balance for u in users]
        report = verify(c)
    assert report.ok, report.problems
    assert balances == [100 + 105 + 110 + 115 - 7 + 4, 101 + 106 + 111 + 116 + 7 + 4, 102 + 107 + 112 + 117 - 6 + 3,
                        103 + 108 + 113 + 118 + 3 + 3, 104 + 109 + 114 + 119 + 3 + 3]


def test_a_batch_whose_rows_fail_to_insert_leaves_nothing_behind(
    platform: Platform, monkeypatch: pytest.MonkeyPatch,
) -> None:
    # A journal row that fails to insert part-way through a multi-row statement (here a
    # duplicate id) fails the batch, and its transaction leaves no row and no balance changed.
    import trustpay.ledger.book as book_module

    p = platform
    bank, a = _open(p, None, kind="bank_clearing", allow_negative=True), _open(p, "usr_a")
    with p.db.transaction() as c:
        before = p.book.head(c)
    monkeypatch.setattr(book_module, "new_ids", lambda prefix, at, count: [f"txn_{'0' * 26}"] * count)
    with pytest.raises((sqlite3.IntegrityError, psycopg.IntegrityError)), p.db.transaction() as c:
        p.book.post_batch(c, [EntryDraft((debit(bank, 1, "CNY"), credit(a, 1, "CNY")))] * 20)
    with p.db.transaction(write=False) as c:
        assert p.book.head(c) == before
        assert p.book.account(c, a).balance == 0
        assert verify(c).ok


@pytest.mark.parametrize("payees", [2, 3, 4, 5, 8])
def test_an_entrys_lines_read_back_whatever_their_number(platform: Platform, payees: int) -> None:
    # Lines are written in one INSERT (up to 4 rows a statement on SQLite): 3 to 9 lines here.
    p = platform
    bank = _open(p, None, kind="bank_clearing", allow_negative=True)
    users = [_open(p, f"usr_{i}") for i in range(payees)]
    draft = EntryDraft((debit(bank, 10 * payees, "CNY"), *(credit(u, 10, "CNY") for u in users)))
    with p.db.transaction() as c:
        entry = p.book.post(c, draft)
    assert len(entry.lines) == payees + 1
    with p.db.transaction(write=False) as c:
        assert p.book.entry(c, entry.id) == entry
        assert [p.book.account(c, u).balance for u in users] == [10] * payees
        report = verify(c)
    assert report.ok, report.problems
