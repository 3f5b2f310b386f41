"""The checks before money leaves a wallet (today's outflow for the limits, the last
hour for risk velocity) cost the same however long the user's history is.

They run inside the payment's write transaction, so a check that read a wallet's
whole history would make every payment slower as the platform ages and hold the
writer meanwhile. On SQLite the cost is counted exactly: the virtual-machine
steps the check's statements take (sqlite3's progress handler). PostgreSQL picks
its plans by table size, so there only the figures are checked.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import Connection, select
from tests.dbs import SqliteFactory
from tests.integration.test_identity_limits import CNY, LATE_EVENING, Wallet, make_user

from trustpay.clock import FrozenClock, to_utc
from trustpay.db.schema import ledger_entries, ledger_holds, ledger_postings
from trustpay.identity import limits
from trustpay.ledger.model import EntryDraft, credit, debit
from trustpay.platform.context import Platform
from trustpay.risk import service as risk
from trustpay.settings import Settings

HISTORY = 600  # old payments of the shorter history; the longer one has twice as many


def pay_out_many(w: Wallet, count: int, amount: int) -> None:
    drafts = [EntryDraft((debit(w.id, amount, CNY), credit(w.bank, amount, CNY))) for _ in range(count)]
    with w.p.db.transaction() as conn:
        assert all(r.error is None for r in w.p.book.post_batch(conn, drafts))


@contextmanager
def vm_steps(conn: Connection) -> Iterator[list[int]]:
    """Counts SQLite virtual-machine steps of the statements run in the block."""
    count = [0]

    def step() -> int:
        count[0] += 1
        return 0  # 0: go on

    driver: Any = conn.connection.driver_connection
    driver.set_progress_handler(step, 1)
    try:
        yield count
    finally:
        driver.set_progress_handler(None, 1)


def outflow_cost(w: Wallet) -> tuple[int, int]:
    """(today's outflow, SQLite VM steps to read it; 0 on PostgreSQL)."""
    with w.p.db.transaction(write=False) as conn:
        if not w.p.db.is_sqlite:
            return limits.daily_outflow(w.p, conn, w.user_id, CNY), 0
        with vm_steps(conn) as steps:
            spent = limits.daily_outflow(w.p, conn, w.user_id, CNY)
        return spent, steps[0]


def test_todays_outflow_reads_today_not_the_whole_history(platform: Platform, clock: FrozenClock) -> None:
    clock.set(LATE_EVENING - timedelta(days=3))
    short, long = (Wallet(platform, make_user(platform, f"hist{i}@example.com", tier=1)) for i in range(2))
    for w, count in ((short, HISTORY), (long, 2 * HISTORY)):
        w.top_up(10_000_000)
        pay_out_many(w, count, 100)
    clock.set(LATE_EVENING)
    for w in (short, long):
        w.pay_out(300)
        w.hold(200)
    (short_spent, short_steps), (long_spent, long_steps) = outflow_cost(short), outflow_cost(long)
    assert short_spent == long_spent == 500  # today's debit and pending hold, none of the history
    if platform.db.is_sqlite:
        # Reading every posting of the history took ~16 steps a posting: twice the history, twice the steps.
        assert long_steps <= short_steps + 50, (short_steps, long_steps)


def test_a_clock_stepped_back_within_an_hour_still_counts_every_payment(platform: Platform,
                                                                         clock: FrozenClock) -> None:
    clock.set(LATE_EVENING - timedelta(days=1))
    w = Wallet(platform, make_user(platform, "ntp@example.com", tier=1))
    w.top_up(1_000_000)
    pay_out_many(w, 5, 1_000)  # yesterday: not today's
    clock.set(LATE_EVENING)
    w.pay_out(7_000)
    clock.set(LATE_EVENING - timedelta(minutes=50))  # the clock is corrected backwards, still today in Shanghai
    w.pay_out(11_000)
    assert outflow_cost(w)[0] == 18_000


def test_a_journal_with_nothing_before_today_counts_everything(platform: Platform, clock: FrozenClock) -> None:
    clock.set(datetime(2026, 3, 1, 0, 30, tzinfo=UTC))  # 08:30 in Shanghai: the first entries ever
    w = Wallet(platform, make_user(platform, "first@example.com", tier=1))
    w.top_up(50_000)
    w.pay_out(20_000)
    assert outflow_cost(w)[0] == 20_000


@pytest.fixture
def sqlite_platform(sqlite_factory: SqliteFactory, clock: FrozenClock) -> Iterator[Platform]:
    """The plans below are SQLite's (PostgreSQL's depend on table sizes)."""
    p = Platform.build(Settings(database_url=sqlite_factory.fresh()), clock=clock)
    yield p
    p.close()


def _plans(platform: Platform, run: Callable[[Connection], object]) -> list[str]:
    """SQLite's plan line for every table each statement of ``run`` reads."""
    seen: list[str] = []
    with platform.db.transaction(write=False) as conn:
        driver: Any = conn.connection.driver_connection
        # The driver's own trace: the checks run their statements on it directly.
        driver.set_trace_callback(seen.append)
        try:
            run(conn)
        finally:
            driver.set_trace_callback(None)
        return [row[3] for statement in seen if statement.lstrip().upper().startswith("SELECT")
                for row in driver.execute(f"EXPLAIN QUERY PLAN {statement}").fetchall()]


def test_risk_velocity_reads_the_last_hour_through_user_and_time_indexes(sqlite_platform: Platform) -> None:
    p = sqlite_platform
    user = make_user(p, "fast@example.com", tier=1)
    plans = _plans(p, lambda conn: risk.decide(p, conn, user, action="transfer", amount=100))
    wanted = {
        "transfers": "COVERING INDEX ix_transfers_sender_created_covering (sender_id=? AND created_at>?)",
        "withdrawals": "ix_withdrawals_user_created (user_id=? AND created_at>?)",
        "trades": "ix_trades_buyer_paid (buyer_id=? AND paid_at>?)",
    }
    # The same statement asks whether this recipient was paid before: one probe of
    # the (sender, recipient) index, the one read of transfers not in the hour.
    paid_before = "INDEX ix_transfers_sender_recipient (sender_id=? AND recipient_id=?)"
    assert sum(paid_before in line for line in plans) == 1, plans
    for table, index in wanted.items():
        reads = [line for line in plans if f" {table} " in f"{line} " and paid_before not in line]
        assert reads and all(index in line for line in reads), (table, reads)


def test_todays_outflow_starts_from_where_today_begins_in_the_journal(sqlite_platform: Platform) -> None:
    p = sqlite_platform
    w = Wallet(p, make_user(p, "plan@example.com", tier=1))
    plans = _plans(p, lambda conn: limits.daily_outflow(p, conn, w.user_id, CNY))
    assert any("ix_ledger_entries_created_at" in line for line in plans), plans
    postings = [line for line in plans if "ledger_postings" in line]
    assert postings and all("entry_seq>?" in line for line in postings), postings
    # No table read whole ("SCAN CONSTANT ROW" is the FROM-less SELECT that adds the parts).
    assert not any(line.startswith("SCAN") and line != "SCAN CONSTANT ROW" for line in plans), "\n".join(plans)


def spent_remembering(w: Wallet) -> int:
    """Today's outflow as a payment's check reads it: in a write transaction, moving the mark."""
    with w.p.db.transaction() as conn:
        return limits.daily_outflow(w.p, conn, w.user_id, CNY, wallet_id=w.id, remember=True)


def test_a_wallet_paying_all_day_reads_only_what_came_after_its_mark(platform: Platform,
                                                                     clock: FrozenClock) -> None:
    """A wallet's many payments today are summed once; later checks read from the mark on."""
    clock.set(LATE_EVENING - timedelta(hours=10))
    short, long = (Wallet(platform, make_user(platform, f"busy{i}@example.com", tier=1)) for i in range(2))
    for w, count in ((short, HISTORY), (long, 2 * HISTORY)):
        w.top_up(10_000_000)
        pay_out_many(w, count, 100)
        assert spent_remembering(w) == count * 100  # reads the day once, and marks it
        w.pay_out(300)
        w.hold(200)
    (short_spent, short_steps), (long_spent, long_steps) = outflow_cost(short), outflow_cost(long)
    assert (short_spent, long_spent) == (HISTORY * 100 + 500, 2 * HISTORY * 100 + 500)
    if platform.db.is_sqlite:
        # From the mark on: the one payment after it, whatever the day held before.
        assert long_steps <= short_steps + 10, (short_steps, long_steps)


def _fresh_outflow(w: Wallet, start: datetime, end: datetime) -> int:
    """The definition, read the slow way and compared in Python: every balance debit
    of the wallet stamped in [start, end), every pending hold on it created in [start, end)."""
    p, e, h = ledger_postings.c, ledger_entries.c, ledger_holds.c
    with w.p.db.transaction(write=False) as conn:
        debits = conn.execute(select(p.delta, e.created_at).join_from(ledger_postings, ledger_entries)
                              .where(p.account_id == w.id, p.field == "balance", p.delta < 0)).all()
        holds = conn.execute(select(h.amount, h.created_at).where(h.debit_account_id == w.id,
                                                                  h.status == "pending")).all()
    return (sum(-delta for delta, at in debits if start <= to_utc(at) < end)
            + sum(amount for amount, at in holds if start <= to_utc(at) < end))


def test_marked_outflow_always_equals_the_definition(platform: Platform, clock: FrozenClock,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    """Marks moved after every couple of postings, through payments, holds posted and
    voided, credits, midnight and a clock stepped back: the sum never differs."""
    monkeypatch.setattr(limits, "MARK_EVERY", 2)
    rng = random.Random(20261201)
    clock.set(LATE_EVENING - timedelta(hours=2))
    w = Wallet(platform, make_user(platform, "marks@example.com", tier=1))
    w.top_up(100_000_000)
    holds: list[str] = []
    for step in range(160):
        action = rng.choice(("pay", "pay", "batch", "hold", "post", "void", "top_up", "time"))
        if action == "pay":
            w.pay_out(rng.randint(1, 5_000))
        elif action == "batch":
            pay_out_many(w, rng.randint(1, 5), rng.randint(1, 900))
        elif action == "hold":
            holds.append(w.hold(rng.randint(1, 5_000)))
        elif action in ("post", "void") and holds:
            hold_id = holds.pop(rng.randrange(len(holds)))
            with platform.db.transaction() as conn:
                if action == "post":
                    platform.book.post_hold(conn, hold_id)
                else:
                    platform.book.void_hold(conn, hold_id)
        elif action == "top_up":
            w.top_up(rng.randint(1, 5_000))
        elif action == "time":
            # Mostly forward (midnight in Shanghai falls inside the run), now and then 50 minutes back.
            step_back = rng.random() < 0.2
            clock.set(clock.now() + timedelta(minutes=-50 if step_back else rng.randint(1, 40)))
        start, end = limits.day_bounds(clock.now(), platform.settings.limits_timezone)
        assert spent_remembering(w) == _fresh_outflow(w, start, end), (step, action)
