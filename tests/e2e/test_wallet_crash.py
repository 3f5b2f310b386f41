"""Crash test (QUALITY.md §3) over real HTTP, on SQLite and PostgreSQL: the bank
test's transfer workload, with escrow trades in the mix (a merchant creates each
with its secret key, a buyer pays, the merchant ships, the buyer confirms),
while ``trustpay serve`` is SIGKILLed at least five times and restarted on the
same database.

Every transfer carries its own Idempotency-Key (also used as its memo, so the
database can be asked which key produced which row) and is retried with the
same key after a connection error, a 5xx or a 409 ``idempotency_in_progress``
until it gets a definite answer. Afterwards: every 2xx answer's transfer is in
the database and its money moved (hold posted, balances match a replay of the
2xx answers), every key took effect exactly once (no row without a 2xx, no key
twice), the total is unchanged and ``trustpay ledger verify`` passes. Every
trade step is retried the same way; afterwards each trade is finished, its buyer
paid exactly once, the merchant's pending settlement holds amount − fee of each,
the fee account the fees, and escrow is back to zero.

A kill can leave a key claimed ``in_progress`` with a two-minute lease; after
each restart the test clock is moved past the lease so the retry takes the
key over (the fencing token keeps that safe) instead of waiting two minutes.
The workers hold their retries from the restart until that move is done (the
move runs every job then due, which a running workload keeps feeding); the
kill itself always lands on requests in flight.
"""

from __future__ import annotations

import random
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import text
from sqlalchemy.engine import Engine

from tests.e2e.wallet_load import (
    LEASE_SKIP_SECONDS,
    PAY_PW,
    User,
    WalletServer,
    engine_for,
    fund,
    make_merchant,
    make_user,
    snapshot,
    transfer_body,
)
from trustpay.jobs.runner import JOB_LEASE

pytestmark = pytest.mark.e2e

USERS = 4
FUNDS = 150_000
WORKERS = 8
TRANSFERS = 2_040  # split evenly over the workers
KILLS = 5
DEADLINE_SECONDS = 600  # a hang fails the test instead of blocking the suite (bounded even on a loaded machine)
RETRY_PAUSE = 0.05
BUYERS = 2
TRADES = 40  # escrow trades, four steps each, run by their own workers beside the transfers
TRADE_WORKERS = 2


def unsettled(engine: Engine) -> int:
    with engine.connect() as conn:
        return int(conn.execute(text("SELECT count(*) FROM transfers WHERE settled_at IS NULL")).scalar_one())


def stuck_jobs(engine: Engine) -> list[Any]:
    with engine.connect() as conn:
        return [tuple(r) for r in conn.execute(text(
            "SELECT j.status, j.attempts, j.run_at, j.locked_until, j.last_error, now_at.n FROM jobs j "
            "JOIN transfers t ON j.dedupe_key = 'transfer.close_undo_window:' || t.id "
            "CROSS JOIN (SELECT offset_ms AS n FROM platform_clock) now_at "
            "WHERE t.settled_at IS NULL")).all()]


def test_sigkill_during_transfers_loses_and_duplicates_nothing(db_url: str, tmp_path: Path) -> None:
    server = WalletServer(db_url, tmp_path, undo_seconds=2)
    server.start()
    engine = engine_for(db_url)
    try:
        with httpx.Client(base_url=server.base_url, timeout=30) as c:
            users = [make_user(server, c, f"crash{i}@example.com", password_free_cap=1_000) for i in range(USERS)]
            for u in users:
                fund(c, u, FUNDS)
            merchant, secret = make_merchant(c, "crash-shop@example.com")
            buyers = [make_user(server, c, f"crash-buyer{i}@example.com", password_free_cap=0)
                      for i in range(BUYERS)]
            for b in buyers:
                fund(c, b, FUNDS)
        shop = {"authorization": f"Bearer {secret}"}

        rng = random.Random(4)
        plans: list[list[tuple[str, User, dict[str, Any]]]] = [[] for _ in range(WORKERS)]
        for i in range(TRANSFERS):
            sender, recipient = rng.sample(users, 2)
            key = f"crash-{i:05d}"
            plans[i % WORKERS].append((key, sender, transfer_body(recipient.id, rng.randint(1, 900), memo=key)))

        answers: dict[str, tuple[int, dict[str, Any]]] = {}
        retried = Counter[str]()
        lock = threading.Lock()
        deadline = time.monotonic() + DEADLINE_SECONDS
        failures: list[str] = []
        give_up = threading.Event()  # set when the test fails early, so no worker outlives it
        # Cleared while the server restarts and the clock moves past the lease: the
        # advance runs every job now due, which the workload would otherwise keep feeding.
        resumed = threading.Event()
        resumed.set()

        def send(c: httpx.Client, key: str, sender: User | dict[str, str], body: dict[str, Any],
                 path: str = "/v1/transfers") -> tuple[int, dict[str, Any]]:
            auth = sender.auth if isinstance(sender, User) else sender
            pause = RETRY_PAUSE
            while time.monotonic() < deadline and not give_up.is_set():
                resumed.wait(timeout=max(0.0, deadline - time.monotonic()))
                try:
                    r = c.post(path, json=body, headers={**auth, "Idempotency-Key": key})
                except httpx.TransportError as exc:
                    why = type(exc).__name__
                else:
                    payload = r.json()
                    code = payload.get("error", {}).get("code") if r.status_code >= 400 else None
                    if r.status_code < 500 and code != "idempotency_in_progress":
                        return r.status_code, payload
                    why = f"{r.status_code} {code}"
                with lock:
                    retried[why] += 1
                time.sleep(pause)
                pause = min(pause * 2, 0.5)  # a restarting server is not hammered
            raise AssertionError(f"{key} got no answer before the deadline")

        def worker(plan: list[tuple[str, User, dict[str, Any]]]) -> None:
            try:
                with httpx.Client(base_url=server.base_url, timeout=20) as c:
                    for key, sender, body in plan:
                        answer = send(c, key, sender, body)
                        with lock:
                            answers[key] = answer
            except Exception as exc:  # reported below; a dead thread must not look like success
                with lock:
                    failures.append(repr(exc))

        trades_done: dict[int, dict[str, Any]] = {}

        def trade_worker(numbers: list[int]) -> None:
            """Each trade's four steps, each retried with its own key until it has an answer."""
            try:
                with httpx.Client(base_url=server.base_url, timeout=20) as c:
                    for n in numbers:
                        buyer = buyers[n % BUYERS]
                        status, trade = send(c, f"trade-{n}-create", shop, {
                            "out_trade_no": f"crash-{n:04d}", "amount": 1_000 + n, "currency": "CNY",
                            "subject": f"crash test order {n}", "mode": "escrow"}, "/v1/trades")
                        assert status == 201, trade
                        steps: list[tuple[str, User | dict[str, str], dict[str, Any]]] = [
                            ("pay", buyer, {"payment_password": PAY_PW}),
                            ("ship", shop, {"carrier": "SF", "tracking_no": f"SF{n:06d}"}),
                            ("confirm", buyer, {"payment_password": PAY_PW})]
                        for step, who, body in steps:
                            status, trade = send(c, f"trade-{n}-{step}", who, body,
                                                 f"/v1/trades/{trade['id']}/{step}")
                            assert status == 200, (step, trade)
                        with lock:
                            trades_done[n] = trade
            except Exception as exc:
                with lock:
                    failures.append(repr(exc))

        threads = [threading.Thread(target=worker, args=(plan,), daemon=True) for plan in plans]
        threads += [threading.Thread(target=trade_worker, args=(list(range(w, TRADES, TRADE_WORKERS)),), daemon=True)
                    for w in range(TRADE_WORKERS)]
        for t in threads:
            t.start()
        kills = 0
        try:
            for k in range(KILLS):
                # Spread the kills over the run: the k-th once that share of transfers has an answer.
                mark = (k + 1) * TRANSFERS // (KILLS + 1)
                while len(answers) < mark and any(t.is_alive() for t in threads) and time.monotonic() < deadline:
                    time.sleep(0.02)
                if not any(t.is_alive() for t in threads):
                    break
                time.sleep(rng.uniform(0, 0.2))
                server.kill()
                kills += 1
                resumed.clear()
                server.start()
                server.advance_clock(LEASE_SKIP_SECONDS)
                resumed.set()
            for t in threads:
                t.join(timeout=max(1.0, deadline - time.monotonic()))
        finally:
            give_up.set()  # whatever happened above, no worker outlives the test
        assert not any(t.is_alive() for t in threads), "a worker hung"
        assert failures == []
        assert kills >= 5 and len(answers) == TRANSFERS >= 2_000 and len(trades_done) == TRADES
        assert sum(retried.values()) > 0, "no request was cut by a kill; the test proved nothing"

        statuses = Counter((s, b.get("error", {}).get("code")) for s, b in answers.values())
        assert set(statuses) <= {(201, None), (402, "insufficient_funds")}, statuses
        ok = {key: body for key, (s, body) in answers.items() if s == 201}
        assert len(ok) > TRANSFERS // 2

        # Every undo window closes and its job posts the hold. A job a killed server had
        # claimed waits out its lease (JOB_LEASE) before another runner may take it, so
        # the clock moves past that too; the server's worker may still be finishing a
        # batch, so the wait for it is bounded, not zero.
        server.advance_clock(JOB_LEASE.total_seconds() + 5)
        settle_by = time.monotonic() + 60
        while unsettled(engine):
            assert time.monotonic() < settle_by, f"transfers never settled; their jobs: {stuck_jobs(engine)}"
            time.sleep(0.2)
        with engine.connect() as conn:
            rows = conn.execute(text("SELECT id, memo, sender_id, recipient_id, amount, status, settled_at, hold_id "
                                     "FROM transfers")).all()
            holds = {r[0]: (r[1], int(r[2]), r[3]) for r in conn.execute(text(
                "SELECT id, status, amount, reference FROM ledger_holds")).all()}
        # Exactly once: one row per key that got a 2xx, none for the others.
        memos = Counter(r.memo for r in rows)
        assert [m for m, n in memos.items() if n > 1] == []
        assert set(memos) == set(ok)
        by_id = {r.id: r for r in rows}
        assert set(by_id) == {b["id"] for b in ok.values()}
        expected = dict.fromkeys((u.id for u in users), FUNDS)
        for key, body in ok.items():
            row = by_id[body["id"]]
            assert (row.memo, row.sender_id, row.recipient_id, row.amount) == (
                key, body["sender"], body["recipient"], body["amount"])
            assert row.status == "completed" and row.settled_at is not None, row
            assert holds[row.hold_id] == ("posted", row.amount, row.id)
            expected[row.sender_id] -= row.amount
            expected[row.recipient_id] += row.amount

        final = snapshot(engine)
        assert final.total == (USERS + BUYERS) * FUNDS - sum(t["amount"] for t in trades_done.values())
        transfer_wallets = {o: v for o, v in final.wallets.items() if o in expected}
        assert transfer_wallets == {o: (v, 0, 0) for o, v in expected.items()}

        # Trades: all finished, each buyer charged once per trade, the merchant credited amount − fee.
        assert sorted(trades_done) == list(range(TRADES))
        assert {t["status"] for t in trades_done.values()} == {"TRADE_FINISHED"}
        spent = Counter[str]()
        for trade in trades_done.values():
            spent[trade["buyer"]] += trade["amount"]
        assert {b.id: final.wallets[b.id] for b in buyers} == {b.id: (FUNDS - spent[b.id], 0, 0) for b in buyers}
        with engine.connect() as conn:
            kinds = {(r[0], r[1]): int(r[2]) for r in conn.execute(text(
                "SELECT kind, owner_id, balance FROM ledger_accounts WHERE kind IN "
                "('escrow', 'settlement_pending', 'fee_revenue') AND currency = 'CNY'")).all()}
            paid_entries = Counter(r[0] for r in conn.execute(text(
                "SELECT reference FROM ledger_entries WHERE reference LIKE 'trd_%'")).all())
        fees = sum(t["fee"] for t in trades_done.values())
        assert kinds.get(("escrow", "platform"), 0) == 0
        assert kinds[("settlement_pending", merchant.id)] == sum(t["amount"] - t["fee"] for t in trades_done.values())
        assert sum(v for (k, _), v in kinds.items() if k == "fee_revenue") == fees
        assert set(paid_entries.values()) == {2}, paid_entries  # pay and finish: one entry each, never twice
        server.stop()
        verified = server.cli("ledger", "verify")
        assert verified.returncode == 0, verified.stdout + verified.stderr
        print(f"\ncrash test: {kills} kills, {server.starts} starts, {len(ok)} transfers posted, "
              f"{TRANSFERS - len(ok)} refused, retries {dict(retried)}")
    finally:
        server.stop()
        engine.dispose()
