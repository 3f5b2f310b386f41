"""Tamper evidence, on SQLite and PostgreSQL: alter stored ledger rows behind the book's
back with plain SQL and ``verify`` (and ``trustpay ledger verify``) must name the
first entry that is off."""

from __future__ import annotations

import contextlib
import os
import sqlite3
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import Connection, select, text, update
from sqlalchemy.engine import make_url

from trustpay.clock import FrozenClock
from trustpay.db.schema import ledger_entries
from trustpay.ledger.model import EntryDraft, credit, debit
from trustpay.ledger.verify import Report, verify
from trustpay.platform.context import Platform


@dataclass
class Ledger:
    p: Platform
    bank: str
    a: str
    b: str
    c: str
    ids: dict[int, str]  # seq -> entry id

    @property
    def height(self) -> int:
        return max(self.ids)

    def tamper(self, *statements: tuple[str, dict[str, Any]]) -> None:
        with self.p.db.transaction() as conn:
            for sql, params in statements:
                conn.execute(text(sql), params)

    def report(self) -> Report:
        with self.p.db.transaction(write=False) as conn:
            return verify(conn)


@pytest.fixture
def ledger(platform: Platform, clock: FrozenClock) -> Ledger:
    """Seven entries: two fundings, a transfer, a hold, its partial post, a reversal, a transfer."""
    p, book = platform, platform.book
    with p.db.transaction() as c:
        bank = book.open_account(c, currency="CNY", kind="bank_clearing", allow_negative=True).id
        a, b, cc = (book.open_account(c, currency="CNY", kind="wallet", owner_id=f"usr_{n}").id for n in "abc")
    ids: dict[int, str] = {}

    def step(action: Callable[[Connection], Any]) -> None:
        clock.advance(1)
        with p.db.transaction() as c:
            action(c)
            seq, _ = book.head(c)
            row = c.execute(select(ledger_entries.c.id).where(ledger_entries.c.seq == seq)).scalar_one()
        ids[seq] = row

    def move(frm: str, to: str, amount: int) -> Callable[[Connection], Any]:
        return lambda c: book.post(c, EntryDraft((debit(frm, amount, "CNY"), credit(to, amount, "CNY")),
                                                 memo=f"{frm}->{to}"))

    step(move(bank, a, 1000))
    step(move(bank, b, 500))
    step(move(a, b, 100))
    hold_id: list[str] = []
    step(lambda c: hold_id.append(book.hold(c, debit_account_id=a, credit_account_id=cc, amount=50,
                                            currency="CNY").id))
    step(lambda c: book.post_hold(c, hold_id[0], 30))
    step(lambda c: book.reverse(c, ids[3]))
    step(move(b, cc, 10))
    led = Ledger(p, bank, a, b, cc, ids)
    assert sorted(ids) == list(range(1, 8))
    rep = led.report()
    assert rep.ok and rep.entries_checked == 7, [str(x) for x in rep.problems]
    return led


def assert_first_bad(led: Ledger, seq: int, *, entry_id: str | None = None) -> Report:
    rep = led.report()
    assert not rep.ok
    first = rep.first_bad
    assert first is not None
    assert first.seq == seq, [str(x) for x in rep.problems]
    if entry_id is not None:
        assert first.entry_id == entry_id
    return rep


def test_intact_ledger_verifies(ledger: Ledger) -> None:
    rep = ledger.report()
    assert rep.ok and rep.first_bad is None
    assert (rep.height, rep.entries_checked, rep.accounts_checked) == (7, 7, 4)
    assert len(rep.root) == 64


@pytest.mark.parametrize("seq", [1, 3, 7])
def test_changed_posting_delta(ledger: Ledger, seq: int) -> None:
    ledger.tamper(("UPDATE ledger_postings SET delta = delta + 1 WHERE entry_seq = :s AND field = 'balance' "
                   "AND account_id = (SELECT MIN(account_id) FROM ledger_postings WHERE entry_seq = :s "
                   "AND field = 'balance')", {"s": seq}))
    rep = assert_first_bad(ledger, seq, entry_id=ledger.ids[seq])
    assert any("hash" in p.what for p in rep.problems if p.seq == seq)


def test_changed_posting_delta_balanced_by_another(ledger: Ledger) -> None:
    """Both sides changed together: still sums to zero, but the hash gives it away."""
    ledger.tamper(("UPDATE ledger_postings SET delta = delta * 2 WHERE entry_seq = 3", {}),
                  ("UPDATE ledger_postings SET balance_after = balance_after + delta / 2 WHERE entry_seq = 3", {}))
    assert_first_bad(ledger, 3, entry_id=ledger.ids[3])


def test_changed_balance_after(ledger: Ledger) -> None:
    ledger.tamper(("UPDATE ledger_postings SET balance_after = balance_after + 5 WHERE entry_seq = 5", {}))
    assert_first_bad(ledger, 5, entry_id=ledger.ids[5])


def test_moved_posting_to_another_account(ledger: Ledger) -> None:
    ledger.tamper(("UPDATE ledger_postings SET account_id = :c WHERE entry_seq = 7 AND account_id = :b",
                   {"b": ledger.b, "c": ledger.bank}))
    assert_first_bad(ledger, 7, entry_id=ledger.ids[7])


@pytest.mark.parametrize("seq", [2, 4, 7])
def test_changed_memo(ledger: Ledger, seq: int) -> None:
    ledger.tamper(("UPDATE ledger_entries SET memo = memo || ' ' WHERE seq = :s", {"s": seq}))
    rep = assert_first_bad(ledger, seq, entry_id=ledger.ids[seq])
    assert {p.seq for p in rep.problems} == {seq}  # later entries chain to the stored hash: only this one


def test_changed_created_at(ledger: Ledger) -> None:
    with ledger.p.db.transaction() as conn:
        when = conn.execute(select(ledger_entries.c.created_at).where(ledger_entries.c.seq == 5)).scalar_one()
        conn.execute(update(ledger_entries).where(ledger_entries.c.seq == 5)
                     .values(created_at=when + timedelta(microseconds=1)))
    assert_first_bad(ledger, 5, entry_id=ledger.ids[5])


@pytest.mark.parametrize(("column", "value"), [("kind", "transfer"), ("reference", "someone-else"),
                                               ("hold_id", None), ("id", "txn_forged")])
def test_changed_entry_columns(ledger: Ledger, column: str, value: str | None) -> None:
    ledger.tamper((f"UPDATE ledger_entries SET {column} = :v WHERE seq = 5", {"v": value}))
    assert_first_bad(ledger, 5)


def test_changed_prev_hash(ledger: Ledger) -> None:
    ledger.tamper(("UPDATE ledger_entries SET prev_hash = :h WHERE seq = 4", {"h": "f" * 64}))
    assert_first_bad(ledger, 4, entry_id=ledger.ids[4])


def test_recomputed_hash_breaks_the_next_link(ledger: Ledger) -> None:
    """Forging one entry's hash to match its new memo is caught by the next entry's prev_hash."""
    from trustpay.ledger.chain import canonical_entry, chain_hash

    with ledger.p.db.transaction() as conn:
        e = ledger.p.book.entry(conn, ledger.ids[3])
        forged = chain_hash(e.prev_hash, canonical_entry(
            seq=e.seq, id=e.id, kind=e.kind, reference=e.reference, hold_id=e.hold_id, memo="nothing to see",
            created_at=e.created_at, lines=[(ln.account_id, ln.field, ln.currency, ln.delta) for ln in e.lines]))
        conn.execute(text("UPDATE ledger_entries SET memo = 'nothing to see', hash = :h WHERE seq = 3"), {"h": forged})
    rep = assert_first_bad(ledger, 4, entry_id=ledger.ids[4])
    assert all(p.seq != 3 for p in rep.problems)


def delete_entry(led: Ledger, seq: int) -> None:
    led.tamper(("DELETE FROM ledger_postings WHERE entry_seq = :s", {"s": seq}),
               ("DELETE FROM ledger_entries WHERE seq = :s", {"s": seq}))


@pytest.mark.parametrize("seq", [1, 4, 6])
def test_deleted_entry_in_the_middle(ledger: Ledger, seq: int) -> None:
    delete_entry(ledger, seq)
    rep = assert_first_bad(ledger, seq)
    assert rep.entries_checked == 6


def test_deleted_last_entry_leaving_its_lines(ledger: Ledger, db_url: str) -> None:
    if ledger.p.db.is_sqlite:  # a plain sqlite3 connection does not enforce foreign keys
        path = make_url(db_url).database
        assert path
        with contextlib.closing(sqlite3.connect(path)) as raw, raw:
            raw.execute("DELETE FROM ledger_entries WHERE seq = 7")
    else:  # as the database owner, with triggers (and so foreign keys) off
        ledger.tamper(("SET LOCAL session_replication_role = replica", {}),
                      ("DELETE FROM ledger_entries WHERE seq = 7", {}))
    rep = assert_first_bad(ledger, 7)
    assert any("entry row is missing" in p.what for p in rep.problems)


def test_deleted_last_entry(ledger: Ledger) -> None:
    """BUG (reported, fails on both engines): the journal's tail — entry #7 with its
    lines — is gone. ``verify`` does notice (the account rows no longer equal their
    lines) but reports it only as account problems with no seq, so ``first_bad`` does
    not name entry #7. Nothing stored says how long the journal was: a head/height
    row (or the last published digest) would let verify say "#7 is missing"."""
    delete_entry(ledger, 7)
    rep = ledger.report()
    assert not rep.ok  # holds today, through the account totals
    assert_first_bad(ledger, 7)


def swap_entries(led: Ledger, i: int, j: int) -> None:
    """Give entry i's row and lines the place of entry j and vice versa (foreign keys kept)."""
    tmp = 1_000_000
    led.tamper(
        ("CREATE TEMPORARY TABLE moved AS SELECT * FROM ledger_postings WHERE entry_seq IN (:i, :j)",
         {"i": i, "j": j}),
        ("DELETE FROM ledger_postings WHERE entry_seq IN (:i, :j)", {"i": i, "j": j}),
        ("UPDATE ledger_entries SET seq = :t WHERE seq = :i", {"t": tmp, "i": i}),
        ("UPDATE ledger_entries SET seq = :i WHERE seq = :j", {"i": i, "j": j}),
        ("UPDATE ledger_entries SET seq = :j WHERE seq = :t", {"j": j, "t": tmp}),
        ("UPDATE moved SET entry_seq = CASE WHEN entry_seq = :i THEN :j ELSE :i END", {"i": i, "j": j}),
        ("INSERT INTO ledger_postings SELECT * FROM moved", {}),
        ("DROP TABLE moved", {}),
    )


@pytest.mark.parametrize(("i", "j"), [(3, 5), (4, 5), (1, 7)])
def test_reordered_entries(ledger: Ledger, i: int, j: int) -> None:
    swap_entries(ledger, i, j)
    with ledger.p.db.transaction(write=False) as conn:  # the rows really moved
        assert ledger.p.book.entry(conn, ledger.ids[i]).seq == j
    assert_first_bad(ledger, i)


def test_swapped_lines_between_entries(ledger: Ledger) -> None:
    """Entries #1 and #2 (two fundings) keep their rows but trade their lines."""
    with ledger.p.db.transaction() as conn:
        rows = {s: conn.execute(text("SELECT account_id, field, currency, delta, balance_after FROM ledger_postings "
                                     "WHERE entry_seq = :s"), {"s": s}).all() for s in (1, 2)}
        conn.execute(text("DELETE FROM ledger_postings WHERE entry_seq IN (1, 2)"))
        for s, other in ((1, 2), (2, 1)):
            for r in rows[other]:
                conn.execute(text("INSERT INTO ledger_postings (entry_seq, account_id, field, currency, delta, "
                                  "balance_after) VALUES (:s, :a, :f, :c, :d, :b)"),
                             {"s": s, "a": r[0], "f": r[1], "c": r[2], "d": r[3], "b": r[4]})
    assert_first_bad(ledger, 1, entry_id=ledger.ids[1])


def test_changed_account_balance_column(ledger: Ledger) -> None:
    ledger.tamper(("UPDATE ledger_accounts SET balance = balance + 1 WHERE id = :a", {"a": ledger.a}))
    rep = ledger.report()
    assert not rep.ok
    first = rep.first_bad
    assert first is not None
    # No entry is wrong: the report names the account instead.
    assert first.seq is None and ledger.a in first.what and "balance" in first.what


def test_changed_pending_total(ledger: Ledger) -> None:
    ledger.tamper(("UPDATE ledger_accounts SET pending_in = pending_in + 20 WHERE id = :c", {"c": ledger.c}))
    rep = ledger.report()
    assert not rep.ok and any(ledger.c in p.what and "pending_in" in p.what for p in rep.problems)


def test_reopened_hold(ledger: Ledger) -> None:
    ledger.tamper(("UPDATE ledger_holds SET status = 'pending'", {}))
    rep = ledger.report()
    assert not rep.ok and any("pending holds" in p.what for p in rep.problems)


# --- the command line ----------------------------------------------------------------------------


def run_cli(db_url: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "TRUSTPAY_DATABASE_URL": db_url}
    return subprocess.run([sys.executable, "-m", "trustpay.cli", "ledger", "verify"], env=env,
                          capture_output=True, text=True, timeout=120, check=False)


def test_cli_verify(ledger: Ledger, db_url: str) -> None:
    ok = run_cli(db_url)
    assert ok.returncode == 0, ok.stdout + ok.stderr
    assert "ledger OK" in ok.stdout and "7 entries" in ok.stdout

    ledger.tamper(("UPDATE ledger_entries SET memo = 'forged' WHERE seq = 4", {}))
    broken = run_cli(db_url)
    out = " ".join(broken.stdout.split())
    assert broken.returncode != 0
    assert "BROKEN" in out
    assert f"first bad: entry #4 ({ledger.ids[4]})" in out, broken.stdout


def test_cli_verify_names_a_deleted_entry(ledger: Ledger, db_url: str) -> None:
    delete_entry(ledger, 3)
    broken = run_cli(db_url)
    out = " ".join(broken.stdout.split())
    assert broken.returncode == 1
    assert "first bad: entry #3" in out, broken.stdout
