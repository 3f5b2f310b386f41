"""What one POST /v1/transfers asks of the database, statement by statement.

Every statement is a round trip on PostgreSQL (~100 µs of client CPU through
psycopg here) and most of them run while the transfer holds the ledger's
append lock, so a check that quietly reads the same row twice slows every
payment. The budget below is what the path needs today, with the tier limits
and risk rules on; it was 36 in the service's part before each fact was read
once (sender, wallet and own cap together; recipient once; no read-back of
the transfer just written; session and user in one read). SQLite alone: its
driver reports every statement it runs (``set_trace_callback``).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import pytest
from sqlalchemy import event
from tests.dbs import SqliteFactory
from tests.integration.wallet_support import PAY_PW, WalletEnv, make_wallet_env

from trustpay.jobs.runner import chunk_size, run_due

# Read transactions, before the money moves: the session (1), the key's first
# use (1), the payment's checks (3: preferences, recipient, velocity with
# "paid this recipient before") and the payment password's hash (2: read for
# the argon2 check, which runs with no transaction open, then locked where the
# outcome counts).
READS_BEFORE = 7
# The money transaction: the key (1), the checks again where they count (4:
# recipient with their wallet, payer with wallet and own cap, today's outflow,
# velocity with new recipient), the ledger's hold (6: read, two balances,
# entry, its two postings in one INSERT, hold), the transfer, its undo-window
# job, the outbox event, the e-mail and the key's response (5). (18 until
# December 2026, when the recipient's wallet and the new-recipient rule were
# read on their own.)
MONEY_TRANSACTION = 16
BUDGET = READS_BEFORE + MONEY_TRANSACTION
T = TypeVar("T")


@pytest.fixture
def w(sqlite_factory: SqliteFactory, tmp_path: Path) -> Iterator[WalletEnv]:
    yield from make_wallet_env(sqlite_factory.fresh(), tmp_path, tier_limits="on", risk_rules="on")


def statements_of(w: WalletEnv, request: Any) -> list[str]:
    """The SQL statements (not BEGIN/COMMIT/SAVEPOINT) the request ran."""
    response, ran = traced(w, request)
    assert response.status_code == 201, response.text
    return ran


CONTROL = ("BEGIN", "COMMIT", "ROLLBACK", "SAVEPOINT", "RELEASE")


def traced(w: WalletEnv, action: Callable[[], T], *, control: bool = False) -> tuple[T, list[str]]:
    """What ``action`` returned, and the SQL statements it ran (with ``control``, also
    BEGIN/COMMIT/SAVEPOINT and the like)."""
    seen: list[str] = []
    engine = w.platform.db.engine

    def trace(dbapi_conn: Any, _record: Any, _proxy: Any) -> None:
        dbapi_conn.set_trace_callback(seen.append)

    event.listen(engine, "checkout", trace)
    try:
        result = action()
    finally:
        event.remove(engine, "checkout", trace)
    return result, [" ".join(s.split()) for s in seen if control or not s.lstrip().upper().startswith(CONTROL)]


def test_a_transfer_stays_within_its_statement_budget(w: WalletEnv) -> None:
    alice = w.user("alice@example.com", fund=100_000)
    w.user("bob@example.com")
    for i in range(3):  # warm: the recipient's wallet exists, the key store has rows
        assert w.transfer(alice, "bob@example.com", 100, key=f"warm-{i}").status_code == 201
    ran = statements_of(w, lambda: w.transfer(alice, "bob@example.com", 100, key="measured"))
    assert len(ran) <= BUDGET, "\n".join(ran)
    # Inside the money transaction no row is read twice (the same SELECT with the
    # same values); the reads before it are repeated there on purpose, so that
    # the limits and risk rules count what committed in between.
    money = ran[next(i for i, s in enumerate(ran) if s.startswith("INSERT INTO idempotency_keys")):]
    assert len(money) <= MONEY_TRANSACTION, "\n".join(money)
    repeated = [s for s, n in Counter(s for s in money if s.upper().startswith("SELECT")).items() if n > 1]
    assert not repeated, repeated


def test_a_password_free_transfer_is_one_read_and_one_money_transaction(w: WalletEnv) -> None:
    """With no password or code to check (免密), the checks before the money
    transaction would only read what it reads again: the request is tried in it at
    once (idempotency.execute's ``optimistic``). The session's read, then one write."""
    alice = w.user("alice@example.com", fund=100_000)
    w.user("bob@example.com")
    r = w.client.put("/v1/wallet/preferences", headers=alice.auth,
                     json={"password_free_cap": 1_000, "daily_cap": None, "payment_password": PAY_PW})
    assert r.status_code == 200, r.text
    for i in range(3):
        assert w.transfer(alice, "bob@example.com", 100, key=f"warm-{i}", payment_password=None).status_code == 201
    response, seen = traced(w, lambda: w.transfer(alice, "bob@example.com", 100, key="measured",
                                                   payment_password=None), control=True)
    assert response.status_code == 201, response.text
    begins = [s.split()[:2] for s in seen if s.upper().startswith("BEGIN")]
    assert begins == [["BEGIN", "DEFERRED"], ["BEGIN", "IMMEDIATE"]], "\n".join(seen)
    ran = [s for s in seen if not s.upper().startswith(CONTROL)]
    assert len(ran) <= 1 + MONEY_TRANSACTION, "\n".join(ran)


@pytest.fixture
def busy(sqlite_factory: SqliteFactory, tmp_path: Path) -> Iterator[WalletEnv]:
    """Risk rules off: the velocity rule would stop one sender's 64 transfers in an hour."""
    yield from make_wallet_env(sqlite_factory.fresh(), tmp_path, risk_rules="off")


def test_closing_undo_windows_costs_about_one_statement_a_window(busy: WalletEnv) -> None:
    """The worker closes due windows together: one mark for the transfers, one
    ledger call for their holds, one done-mark for the jobs. What grows with the
    windows is each entry's four lines (one INSERT) and its journal row (16 a
    statement); one by one, a close took 12-13 statements and two savepoint commands."""
    w = busy
    alice = w.user("alice@example.com", fund=100_000)
    w.user("bob@example.com")
    w.user("carol@example.com")
    windows = 64  # four chunks of 16
    for i in range(windows):
        assert w.transfer(alice, ("bob@example.com", "carol@example.com")[i % 2], 100).status_code == 201
    w.clock.advance(w.platform.settings.transfer_undo_seconds)
    done, ran = traced(w, lambda: run_due(w.platform, limit=windows))
    assert done == windows
    size = chunk_size(windows)
    chunks = -(-windows // size)
    # Per window its four lines' INSERT; journal rows go 16 a statement; per chunk:
    # the mark, the holds, the chain's end, the totals read and written (3 accounts),
    # the holds resolved, the jobs done. Plus the claim (2).
    assert len(ran) <= windows + chunks * (-(-size // 16) + 9) + 2, "\n".join(ran)
    assert w.balance(w.wallets[1])["available"] == w.balance(w.wallets[2])["available"] == 100 * windows // 2
    w.ledger_ok()
