"""Ledger throughput: raw SQL loop vs ``Book.post`` one-per-commit vs ``Book.post_batch``.

All of them write the same rows into the same schema (two account updates,
one journal entry, two posting lines per transfer; the raw loop into a
second, identically migrated database), in one run, on SQLite
(WAL, synchronous=FULL) and — given ``--pg-url`` — on PostgreSQL. Rounds are
interleaved so machine noise hits every variant alike; medians are printed.

    python bench/ledger.py [--pg-url postgresql+psycopg://…] [--n 3000] [--rounds 3] [--batch-sizes 1000,8190]

The batched figures come with their own physical reference: the raw loop's
same row writes, that many transfers to a commit.
"""

from __future__ import annotations

import argparse
import gc
import random
import sqlite3
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path

import psycopg
from sqlalchemy.engine import make_url

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from trustpay.clock import SystemClock
from trustpay.db.engine import SQLITE_PRAGMAS, Database
from trustpay.db.migrate import upgrade
from trustpay.ledger.book import Book
from trustpay.ledger.model import EntryDraft, credit, debit

ACCOUNTS = 200


def fresh_pg(url: str) -> str:
    base = make_url(url)
    name = f"bench_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(host=base.host, port=base.port, user=base.username, password=base.password,
                         dbname=base.database, autocommit=True) as c:
        c.execute(f'CREATE DATABASE "{name}"')  # type: ignore[arg-type]
    return base.set(database=name).render_as_string(hide_password=False)


class RawLoop:
    """The physical reference: the same row writes, straight through the driver.

    Same values' sizes as the ledger's: a 30-character entry id (like
    ``txn_…``), each account's ``last_seq`` set, real ``balance_after`` values
    (kept in a dict here; the ledger reads them in its transaction)."""

    def __init__(self, url: str) -> None:
        u = make_url(url)
        self.pg = u.get_backend_name() == "postgresql"
        if self.pg:
            self.con = psycopg.connect(host=u.host, port=u.port, user=u.username, dbname=u.database,
                                       autocommit=True)
            self.p = "%s"
        else:
            self.con = sqlite3.connect(u.database, isolation_level=None)
            for pragma in SQLITE_PRAGMAS:  # the platform's connection settings
                self.con.execute(pragma)
            self.p = "?"
        self.seq = 10**6  # after the setup entries
        self.balances: dict[str, int] = dict(self.con.execute("SELECT id, balance FROM ledger_accounts").fetchall())
        # The statements' text made once, as the ledger's are; the two lines in
        # one INSERT on SQLite (as Book.post writes them), psycopg's executemany on PostgreSQL.
        p = self.p
        self.begin = "BEGIN" if self.pg else "BEGIN IMMEDIATE"
        self.take = f"UPDATE ledger_accounts SET balance = balance - {p}, last_seq = {p} WHERE id = {p}"
        self.give = f"UPDATE ledger_accounts SET balance = balance + {p}, last_seq = {p} WHERE id = {p}"
        self.entry = (f"INSERT INTO ledger_entries (seq, id, kind, memo, created_at, prev_hash, hash) "
                      f"VALUES ({p}, {p}, 'transfer', '', {p}, {p}, {p})")
        line = f"({p}, {p}, 'balance', 'CNY', {p}, {p})"
        self.lines = ("INSERT INTO ledger_postings (entry_seq, account_id, field, currency, delta, balance_after) "
                      f"VALUES {line}" + ("" if self.pg else f", {line}"))
        self.cursor = self.con.cursor()

    def transfer(self, a: str, b: str, amount: int) -> None:
        self.cursor.execute(self.begin)
        self._rows(a, b, amount)
        self.cursor.execute("COMMIT")

    def transfers(self, todo: list[tuple[str, str]], amount: int) -> None:
        """The same rows for many transfers in one commit: the batched reference."""
        self.cursor.execute(self.begin)
        for a, b in todo:
            self._rows(a, b, amount)
        self.cursor.execute("COMMIT")

    def _rows(self, a: str, b: str, amount: int) -> None:
        cur, balances = self.cursor, self.balances
        self.seq += 1
        seq = self.seq
        balances[a] -= amount
        balances[b] += amount
        cur.execute(self.take, (amount, seq, a))
        cur.execute(self.give, (amount, seq, b))
        cur.execute(self.entry, (seq, f"raw_{seq:026d}", "2026-01-01 00:00:00.000000", "0" * 64, "1" * 64))
        if self.pg:
            cur.executemany(self.lines, [(seq, a, -amount, balances[a]), (seq, b, amount, balances[b])])
        else:
            cur.execute(self.lines, (seq, a, -amount, balances[a], seq, b, amount, balances[b]))


def timed(fn: Callable[[], int]) -> float:
    # The inputs built before the clock starts are tens of thousands of live
    # objects; freeze them so the cyclic GC does not rescan them on every
    # collection the timed code triggers (servers do the same after start-up).
    gc.collect()
    gc.freeze()
    try:
        t = time.perf_counter()
        n = fn()
        return n / (time.perf_counter() - t)
    finally:
        gc.unfreeze()


def setup(url: str) -> tuple[Database, Book, list[str]]:
    upgrade(url)
    db = Database(url)
    book = Book(SystemClock(), max_amount=10**12)
    with db.transaction() as c:
        funding = book.open_account(c, currency="CNY", kind="equity", allow_negative=True)
        ids = [book.open_account(c, currency="CNY", kind="wallet", owner_id=f"usr_{i:04d}").id
               for i in range(ACCOUNTS)]
        book.post_batch(c, [EntryDraft((debit(funding.id, 10**9, "CNY"), credit(a, 10**9, "CNY")))
                            for a in ids])
    return db, book, ids


def run_engine(label: str, url: str, raw_url: str, n: int, rounds: int, batch_total: int,
               sizes: list[int]) -> dict[str, float]:
    db, book, ids = setup(url)
    raw_db, _, raw_ids = setup(raw_url)
    raw_db.dispose()
    rng = random.Random(7)

    def pairs(k: int) -> list[tuple[str, str]]:
        return [tuple(rng.sample(ids, 2)) for _ in range(k)]  # type: ignore[misc]

    raw = RawLoop(raw_url)
    to_raw = dict(zip(ids, raw_ids, strict=True))

    # Inputs are made before the clock starts: each variant is timed on its
    # writes alone (raw: the statements; ledger: validate, lock, check, hash,
    # write — everything from the draft to the commit).
    def drafts(todo: list[tuple[str, str]]) -> list[EntryDraft]:
        return [EntryDraft((debit(a, 1, "CNY"), credit(b, 1, "CNY"))) for a, b in todo]

    def raw_loop(todo: list[tuple[str, str]]) -> int:
        for a, b in todo:
            raw.transfer(to_raw[a], to_raw[b], 1)
        return len(todo)

    def ledger_loop(todo: list[EntryDraft]) -> int:
        # One connection kept open, like the raw loop's: this measures the ledger, not the pool.
        with db.engine.connect() as conn:
            for draft in todo:
                with db.transaction_on(conn):
                    book.post(conn, draft)
        return len(todo)

    def raw_batches(todo: list[tuple[str, str]], size: int) -> int:
        for i in range(0, len(todo), size):
            raw.transfers([(to_raw[a], to_raw[b]) for a, b in todo[i : i + size]], 1)
        return len(todo)

    def batch_loop(todo: list[EntryDraft], size: int) -> int:
        for i in range(0, len(todo), size):
            with db.transaction() as c:
                results = book.post_batch(c, todo[i : i + size])
            assert all(r.error is None for r in results)
        return len(todo)

    def per_round(size: int) -> int:  # whole commits, at least two a round
        return max(batch_total - batch_total % size, 2 * size)

    got: dict[str, list[float]] = {"raw": [], "post": []}
    for size in sizes:
        got[f"raw_batch_{size}"], got[f"batch_{size}"] = [], []
    ratios: list[float] = []
    for _ in range(rounds):
        raw_in, post_in = pairs(n), drafts(pairs(n))
        got["raw"].append(timed(lambda todo=raw_in: raw_loop(todo)))  # type: ignore[misc]
        got["post"].append(timed(lambda todo=post_in: ledger_loop(todo)))  # type: ignore[misc]
        ratios.append(got["post"][-1] / got["raw"][-1])  # adjacent in time: noise hits both
        for size in sizes:
            todo = pairs(per_round(size))
            batch_in = drafts(todo)
            got[f"raw_batch_{size}"].append(timed(lambda t=todo, k=size: raw_batches(t, k)))  # type: ignore[misc]
            got[f"batch_{size}"].append(timed(lambda t=batch_in, k=size: batch_loop(t, k)))  # type: ignore[misc]
    with db.transaction(write=False) as c:
        from trustpay.ledger.verify import verify

        rep = verify(c)
    db.dispose()
    med = {k: statistics.median(v) for k, v in got.items()}
    print(f"{label:10s} raw loop {med['raw']:8.0f}/s | book.post one-per-commit {med['post']:8.0f}/s "
          f"(× {statistics.median(ratios):.2f} of raw, median of per-round ratios "
          f"{min(ratios):.2f}–{max(ratios):.2f}) | verify {'OK' if rep.ok else 'BROKEN'} "
          f"({rep.entries_checked} entries)")
    for size in sizes:
        raw_b, batch = med[f"raw_batch_{size}"], med[f"batch_{size}"]
        print(f"{'':10s} {size:5d} a commit: raw {raw_b:8.0f}/s | post_batch {batch:8.0f}/s "
              f"(× {batch / raw_b:.2f} of raw at that size)")
    return med


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--pg-url")
    ap.add_argument("--n", type=int, default=1000, help="transfers per round, one per commit")
    ap.add_argument("--batch", type=int, default=10000, help="transfers per round through post_batch")
    ap.add_argument("--rounds", type=int, default=7)
    # 8,190: the most transfers one TigerBeetle request carries (DESIGN.md's reference for batching).
    ap.add_argument("--batch-sizes", default="1000,8190",
                    help="transfers per commit for post_batch and the raw batched reference, comma-separated")
    args = ap.parse_args()
    sizes = [int(x) for x in args.batch_sizes.split(",")]
    print(f"ledger benchmark: {args.rounds} interleaved rounds, {ACCOUNTS} accounts, random pairs; medians")
    with tempfile.TemporaryDirectory() as d:
        run_engine("SQLite", f"sqlite:///{d}/bench.db", f"sqlite:///{d}/raw.db", args.n, args.rounds,
                   args.batch, sizes)
    if args.pg_url:
        run_engine("PostgreSQL", fresh_pg(args.pg_url), fresh_pg(args.pg_url), args.n, args.rounds,
                   args.batch, sizes)
    print("goals (QUALITY.md): one-per-commit ≥ 0.7 × raw; post_batch ≥ 20,000/s on SQLite "
          "(QUALITY.md names no batch size: both are shown)")


if __name__ == "__main__":
    main()
