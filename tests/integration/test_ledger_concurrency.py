"""Many threads on one ledger, on SQLite and PostgreSQL: money is conserved, nobody
overdraws, contested money is spent exactly once, and the journal verifies.

Workers go through ``Database.run``, which promises to retry deadlocks and
serialization failures; any other exception that escapes it is recorded and
fails the test at the end (after the money checks, which must hold regardless).
"""

from __future__ import annotations

import random
import threading
from collections import Counter
from collections.abc import Callable
from typing import Any

import pytest
from sqlalchemy import Connection, func, select, text
from tests.dbs import PostgresFactory

from trustpay.clock import FrozenClock
from trustpay.db.raw import Raw, Sql
from trustpay.db.schema import ledger_accounts, ledger_entries
from trustpay.errors import TrustPayError
from trustpay.ledger import errors as E
from trustpay.ledger.model import EntryDraft, credit, debit
from trustpay.ledger.verify import verify
from trustpay.platform.context import Platform
from trustpay.settings import Settings

pytestmark = pytest.mark.timeout(120)


def open_account(p: Platform, owner: str | None, allow_negative: bool = False, kind: str = "wallet") -> str:
    with p.db.transaction() as c:
        return p.book.open_account(c, currency="CNY", kind=kind, owner_id=owner, allow_negative=allow_negative).id


def transfer(frm: str, to: str, amount: int) -> EntryDraft:
    return EntryDraft((debit(frm, amount, "CNY"), credit(to, amount, "CNY")))


def setup(p: Platform, wallets: int, funds: int) -> tuple[str, list[str]]:
    bank = open_account(p, None, allow_negative=True, kind="bank_clearing")
    ids = [open_account(p, f"usr_{i}") for i in range(wallets)]
    with p.db.transaction() as c:
        for w in ids:
            if funds:
                p.book.post(c, transfer(bank, w, funds))
    return bank, ids


def in_threads(n: int, work: Callable[[int], None]) -> None:
    """Run ``work(i)`` in ``n`` threads started together; re-raise the first failure."""
    barrier = threading.Barrier(n)
    failures: list[BaseException] = []

    def body(i: int) -> None:
        try:
            barrier.wait()
            work(i)
        except BaseException as exc:
            failures.append(exc)

    threads = [threading.Thread(target=body, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=100)
    assert not any(t.is_alive() for t in threads), "a worker hung"
    if failures:
        raise failures[0]


def entry_count(p: Platform) -> int:
    with p.db.transaction(write=False) as c:
        return int(c.execute(select(func.count()).select_from(ledger_entries)).scalar_one())


def balances(p: Platform) -> dict[str, tuple[int, int, bool]]:
    with p.db.transaction(write=False) as c:
        rows = c.execute(select(ledger_accounts.c.id, ledger_accounts.c.balance, ledger_accounts.c.pending_out,
                                ledger_accounts.c.allow_negative))
        return {r[0]: (int(r[1]), int(r[2]), bool(r[3])) for r in rows}


def assert_sound(p: Platform, total_in_wallets: int, bank: str) -> None:
    accounts = balances(p)
    assert sum(b for b, _, _ in accounts.values()) == 0
    assert sum(b for a, (b, _, _) in accounts.items() if a != bank) == total_in_wallets
    for acc, (bal, pending_out, allow_negative) in accounts.items():
        assert allow_negative or bal - pending_out >= 0, (acc, bal, pending_out)
    with p.db.transaction(write=False) as c:
        rep = verify(c)
    assert rep.ok, [str(x) for x in rep.problems]


def test_random_transfers_and_batches_conserve_money(platform: Platform) -> None:
    p = platform
    bank, wallets = setup(p, wallets=5, funds=1000)
    start_entries = entry_count(p)
    written = Counter[int]()
    refused = Counter[str]()
    lock = threading.Lock()
    stop = threading.Event()
    reads: list[int] = []

    unexpected: list[str] = []

    def worker(i: int) -> None:
        rng = random.Random(1000 + i)
        for _ in range(50):
            if unexpected:  # fail fast: one escaped error already fails the test
                return
            try:
                if rng.random() < 0.15:  # a batch of three transfers, each all-or-nothing
                    pairs = [rng.sample(wallets, 2) for _ in range(3)]
                    drafts = [transfer(frm, to, rng.randint(1, 600)) for frm, to in pairs]
                    results = p.db.run(lambda c, d=drafts: p.book.post_batch(c, d))  # type: ignore[misc]
                    with lock:
                        written[i] += sum(r.entry is not None for r in results)
                        refused.update(r.error.code for r in results if r.error is not None)
                    continue
                a, b = rng.sample(wallets, 2)
                draft = transfer(a, b, rng.randint(1, 600))
                p.db.run(lambda c, d=draft: p.book.post(c, d))  # type: ignore[misc]
                with lock:
                    written[i] += 1
            except E.Overdraft as exc:
                with lock:
                    refused[exc.code] += 1
            except Exception as exc:
                with lock:
                    unexpected.append(f"{type(exc).__module__}.{type(exc).__name__}: {exc}")

    def reader() -> None:
        # Every read of all balances, taken in one statement, sums to zero.
        while not stop.is_set():
            with p.db.transaction(write=False) as c:
                total = c.execute(select(func.sum(ledger_accounts.c.balance))).scalar_one()
            reads.append(int(total))

    r = threading.Thread(target=reader)
    r.start()
    try:
        in_threads(8, worker)
    finally:
        stop.set()
        r.join(timeout=30)
    assert reads and set(reads) == {0}
    assert set(refused) <= {"insufficient_funds"}
    assert sum(written.values()) > 0 and refused["insufficient_funds"] > 0  # the workload did contend
    assert entry_count(p) == start_entries + sum(written.values())
    assert_sound(p, 5000, bank)
    assert unexpected == [], f"{len(unexpected)} operations failed with errors Database.run should have retried"


@pytest.mark.parametrize(("threads", "tries", "amount", "funds", "winners"), [
    (16, 10, 100, 1000, 10),  # 160 attempts at 100 from 1000
    (16, 1, 1000, 1000, 1),  # everyone spends the whole balance at once
])
def test_racing_to_spend_the_same_balance(
    platform: Platform, threads: int, tries: int, amount: int, funds: int, winners: int
) -> None:
    p = platform
    bank, (payer, *payees) = setup(p, wallets=1 + threads, funds=0)
    with p.db.transaction() as c:
        p.book.post(c, transfer(bank, payer, funds))
    outcomes = Counter[str]()
    lock = threading.Lock()

    def spend(i: int) -> None:
        for _ in range(tries):
            try:
                p.db.run(lambda c: p.book.post(c, transfer(payer, payees[i], amount)))
                result = "ok"
            except TrustPayError as exc:
                result = exc.code
            except Exception as exc:
                result = f"unexpected {type(exc).__name__}"
            with lock:
                outcomes[result] += 1

    in_threads(threads, spend)
    assert outcomes == {"ok": winners, "insufficient_funds": threads * tries - winners}
    assert balances(p)[payer][0] == funds - winners * amount
    assert entry_count(p) == 1 + winners
    assert_sound(p, funds, bank)


def test_racing_holds_against_the_same_balance(platform: Platform) -> None:
    p = platform
    bank, (payer, payee) = setup(p, wallets=2, funds=0)
    with p.db.transaction() as c:
        p.book.post(c, transfer(bank, payer, 1000))
    held: list[str] = []
    outcomes = Counter[str]()
    lock = threading.Lock()

    def hold(_: int) -> None:
        for _ in range(5):
            try:
                h = p.db.run(lambda c: p.book.hold(c, debit_account_id=payer, credit_account_id=payee,
                                                   amount=100, currency="CNY"))
            except TrustPayError as exc:
                with lock:
                    outcomes[exc.code] += 1
            except Exception as exc:
                with lock:
                    outcomes[f"unexpected {type(exc).__name__}"] += 1
            else:
                with lock:
                    outcomes["ok"] += 1
                    held.append(h.id)

    in_threads(8, hold)
    assert outcomes == {"ok": 10, "insufficient_funds": 30}
    assert balances(p)[payer] == (1000, 1000, False)
    assert_sound(p, 1000, bank)


@pytest.mark.parametrize("how", ["post", "void", "mixed"])
def test_a_hold_resolves_once_under_contention(platform: Platform, how: str) -> None:
    p = platform
    bank, (payer, payee) = setup(p, wallets=2, funds=1000)
    with p.db.transaction() as c:
        h = p.book.hold(c, debit_account_id=payer, credit_account_id=payee, amount=400, currency="CNY")
    outcomes = Counter[str]()
    lock = threading.Lock()

    def resolve(i: int) -> None:
        verb = how if how != "mixed" else ("post" if i % 2 else "void")
        action: Callable[[Any], Any] = (
            (lambda c: p.book.post_hold(c, h.id, 250)) if verb == "post" else (lambda c: p.book.void_hold(c, h.id))
        )
        try:
            p.db.run(action)
            result = f"ok_{verb}"
        except TrustPayError as exc:
            result = exc.code
        except Exception as exc:
            result = f"unexpected {type(exc).__name__}"
        with lock:
            outcomes[result] += 1

    in_threads(8, resolve)
    assert sum(v for k, v in outcomes.items() if k.startswith("ok_")) == 1
    assert outcomes["hold_already_resolved"] == 7
    with p.db.transaction(write=False) as c:
        final = p.book.get_hold(c, h.id)
    posted = outcomes["ok_post"] == 1
    assert final.status == ("posted" if posted else "voided")
    assert balances(p)[payer] == ((750, 0, False) if posted else (1000, 0, False))
    assert balances(p)[payee] == ((1250, 0, False) if posted else (1000, 0, False))
    assert entry_count(p) == 2 + 1 + 1
    assert_sound(p, 2000, bank)


def test_an_entry_is_reversed_once_under_contention(platform: Platform) -> None:
    p = platform
    bank, (a, b) = setup(p, wallets=2, funds=1000)
    with p.db.transaction() as c:
        e = p.book.post(c, transfer(a, b, 300))
    outcomes = Counter[str]()
    lock = threading.Lock()

    def reverse(_: int) -> None:
        try:
            p.db.run(lambda c: p.book.reverse(c, e.id))
            result = "ok"
        except TrustPayError as exc:
            result = exc.code
        except Exception as exc:
            result = f"unexpected {type(exc).__name__}"
        with lock:
            outcomes[result] += 1

    in_threads(8, reverse)
    assert outcomes == {"ok": 1, "entry_already_reversed": 7}
    assert balances(p)[a][0] == 1000 and balances(p)[b][0] == 1000
    assert entry_count(p) == 2 + 1 + 1
    assert_sound(p, 2000, bank)


@pytest.mark.parametrize("via", ["sqlalchemy", "raw_driver"])
def test_run_retries_a_deadlock(pg_factory: PostgresFactory, via: str) -> None:
    """PostgreSQL only (SQLite writers never interleave). Two transactions lock two
    accounts in opposite orders; PostgreSQL aborts one with a deadlock, and
    ``Database.run`` must run it again so that both commit.

    BUG (reported): passes ``via="sqlalchemy"`` but fails ``via="raw_driver"`` — the
    ledger's hot path (``db/raw.py``) runs statements on the psycopg connection, whose
    ``psycopg.errors.DeadlockDetected`` is not a SQLAlchemy ``DBAPIError``, so
    ``Database.run``/``is_retryable`` never see it and the deadlock reaches the caller.
    """
    url = pg_factory.fresh()
    p = Platform.build(Settings(database_url=url), clock=FrozenClock())
    try:
        x = open_account(p, "usr_x", allow_negative=True)
        y = open_account(p, "usr_y", allow_negative=True)
        barrier = threading.Barrier(2)
        attempts = Counter[str]()

        def lock_row(conn: Connection, account_id: str) -> None:
            if via == "raw_driver":
                Raw(conn).run(_LOCK, {"id": account_id})
            else:
                conn.execute(text(_LOCK.sqlite), {"id": account_id})

        def move(first: str, second: str) -> Callable[[int], None]:
            def fn(conn: Connection) -> None:
                attempts[first] += 1
                lock_row(conn, first)
                if attempts[first] == 1:
                    barrier.wait(timeout=20)  # both hold their first lock
                lock_row(conn, second)
                p.book.post(conn, transfer(first, second, 1))

            return lambda _: p.db.run(fn)

        in_threads(2, lambda i: move(x, y)(i) if i == 0 else move(y, x)(i))
        assert sum(attempts.values()) == 3  # one of the two ran again
        assert entry_count(p) == 2
        assert_sound(p, 0, x)
    finally:
        p.close()
        pg_factory.drop(url)


_LOCK = Sql("SELECT id FROM ledger_accounts WHERE id = :id FOR UPDATE")


def test_first_openings_of_one_account_racing_return_the_same_account(platform: Platform) -> None:
    """Eight transactions open the same (owner, kind, currency) for the first time at once:
    all get the one account, none fails on the unique constraint."""
    n = 8
    barrier = threading.Barrier(n)
    got: list[str | BaseException] = []
    lock = threading.Lock()
    # On PostgreSQL all eight meet inside their transactions, after none has seen the
    # account; SQLite lets one writer in at a time, so there they meet before starting.
    inside = platform.settings.database_url.startswith("postgresql")

    def opener() -> None:
        try:
            if not inside:
                barrier.wait(timeout=30)

            def work(conn: Connection) -> str:
                if inside:
                    platform.book.accounts_of(conn, "bank_race")  # the transaction has begun
                    barrier.wait(timeout=30)
                return platform.book.open_account(conn, currency="CNY", kind="bank_clearing", owner_id="bank_race",
                                                  allow_negative=True).id
            result: str | BaseException = platform.db.run(work, attempts=1)
        except BaseException as exc:  # collected and asserted in the test's thread
            result = exc
        with lock:
            got.append(result)

    threads = [threading.Thread(target=opener) for _ in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert len(got) == n and not [g for g in got if isinstance(g, BaseException)], got
    assert len(set(got)) == 1, got
    with platform.db.transaction(write=False) as conn:
        count = conn.execute(select(func.count()).select_from(ledger_accounts)
                             .where(ledger_accounts.c.owner_id == "bank_race")).scalar_one()
    assert count == 1
