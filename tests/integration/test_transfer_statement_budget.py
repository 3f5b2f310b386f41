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
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import event
from tests.dbs import SqliteFactory
from tests.integration.wallet_support import WalletEnv, make_wallet_env

# Read transactions, before the money moves: the session (1), the key's first
# use (1), the payment's checks (4: preferences, recipient, velocity, new
# recipient) and the payment password's hash (1).
READS_BEFORE = 7
# The money transaction: the key (1), the checks again where they count (6:
# recipient, payer with wallet and own cap, today's outflow, velocity, new
# recipient, the recipient's wallet), the ledger's hold (6: read, two balances,
# entry, its two postings in one INSERT, hold), the transfer, its undo-window
# job, the outbox event, the e-mail and the key's response (5).
MONEY_TRANSACTION = 18
BUDGET = READS_BEFORE + MONEY_TRANSACTION


@pytest.fixture
def w(sqlite_factory: SqliteFactory, tmp_path: Path) -> Iterator[WalletEnv]:
    yield from make_wallet_env(sqlite_factory.fresh(), tmp_path, tier_limits="on", risk_rules="on")


def statements_of(w: WalletEnv, request: Any) -> list[str]:
    """The SQL statements (not BEGIN/COMMIT/SAVEPOINT) the request ran."""
    seen: list[str] = []
    engine = w.platform.db.engine

    def trace(dbapi_conn: Any, _record: Any, _proxy: Any) -> None:
        dbapi_conn.set_trace_callback(seen.append)

    event.listen(engine, "checkout", trace)
    try:
        response = request()
    finally:
        event.remove(engine, "checkout", trace)
    assert response.status_code == 201, response.text
    control = ("BEGIN", "COMMIT", "ROLLBACK", "SAVEPOINT", "RELEASE")
    return [" ".join(s.split()) for s in seen if not s.lstrip().upper().startswith(control)]


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
