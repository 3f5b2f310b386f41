"""The bank test (after Jepsen's; QUALITY.md §2) over real HTTP, on SQLite and
PostgreSQL: workers transfer at random between a few users — with the undo
window on, some transfers undone — while readers read every balance. Each
read of all balances is one snapshot of ``ledger_accounts`` (see
wallet_load's docstring for why not K separate GETs) and must sum to what was
funded; no wallet's available balance may go below zero; what is held on the
way out equals what is pending on the way in. The per-user GETs run too and
are checked one by one.

Escrow trades run beside the transfers (a merchant creates each with its
secret key; a buyer pays, the merchant ships, the buyer confirms, or the
merchant refunds before shipping): every read must also find all the money —
wallets, escrow, the merchant's pending settlement and the fee account — equal
to what was funded, and escrow holding exactly what the open escrow trades paid.
"""

from __future__ import annotations

import random
import threading
import time
from pathlib import Path

import httpx
import pytest

from tests.e2e.wallet_load import (
    PAY_PW,
    User,
    WalletServer,
    balance,
    engine_for,
    fund,
    make_merchant,
    make_user,
    money_snapshot,
    snapshot,
    transfer_body,
)

pytestmark = pytest.mark.e2e

USERS = 6
FUNDS = 50_000
WORKERS = 6
TRANSFERS_PER_WORKER = 60
UNDO_SHARE = 0.1
READERS = 2
BUYERS = 2
TRADES = 16


def test_every_read_of_all_balances_sums_to_the_funded_total(db_url: str, tmp_path: Path) -> None:
    server = WalletServer(db_url, tmp_path, undo_seconds=10)
    server.start()
    engine = engine_for(db_url)
    try:
        with httpx.Client(base_url=server.base_url, timeout=30) as c:
            users = [make_user(server, c, f"bank{i}@example.com", password_free_cap=1_000) for i in range(USERS)]
            for u in users:
                fund(c, u, FUNDS)
            _, secret = make_merchant(c, "bank-shop@example.com")
            buyers = [make_user(server, c, f"bank-buyer{i}@example.com", password_free_cap=0) for i in range(BUYERS)]
            for b in buyers:
                fund(c, b, FUNDS)
        shop = {"authorization": f"Bearer {secret}"}
        total = USERS * FUNDS
        assert snapshot(engine).total == total + BUYERS * FUNDS

        outcomes: list[tuple[int, str]] = []
        problems: list[str] = []
        reads = [0]
        lock = threading.Lock()
        done = threading.Event()

        def worker(seed: int) -> None:
            rng = random.Random(seed)
            with httpx.Client(base_url=server.base_url, timeout=30) as c:
                for i in range(TRANSFERS_PER_WORKER):
                    sender, recipient = rng.sample(users, 2)
                    r = c.post("/v1/transfers", json=transfer_body(recipient.id, rng.randint(1, 900)),
                               headers={**sender.auth, "Idempotency-Key": f"bank-{seed}-{i}"})
                    code = r.json().get("error", {}).get("code", "") if r.status_code != 201 else ""
                    with lock:
                        outcomes.append((r.status_code, code))
                    if r.status_code == 201 and rng.random() < UNDO_SHARE:
                        u = c.post(f"/v1/transfers/{r.json()['id']}/undo", headers=sender.auth)
                        with lock:
                            outcomes.append((u.status_code, "undo"))

        def trader() -> None:
            """Escrow trades beside the transfers: pay, ship, confirm — or refund in full before shipping."""
            with httpx.Client(base_url=server.base_url, timeout=30) as c:
                for n in range(TRADES):
                    buyer = buyers[n % BUYERS]
                    steps: list[tuple[str, dict[str, str], dict[str, object]]] = [
                        ("pay", buyer.auth, {"payment_password": PAY_PW})]
                    if n % 4 == 3:
                        steps.append(("refunds", shop, {"amount": 2_000 + n, "reason": "out of stock",
                                                        "out_refund_no": f"bank-rf-{n}"}))
                    else:
                        steps += [("ship", shop, {"carrier": "SF", "tracking_no": f"SF{n:05d}"}),
                                  ("confirm", buyer.auth, {"payment_password": PAY_PW})]
                    r = c.post("/v1/trades", json={"out_trade_no": f"bank-{n}", "amount": 2_000 + n,
                                                   "currency": "CNY", "subject": "bank test order", "mode": "escrow"},
                               headers=shop)
                    with lock:
                        outcomes.append((r.status_code, "trade"))
                    trade_id = r.json().get("id")
                    for step, who, body in steps:
                        if r.status_code >= 300:
                            break
                        r = c.post(f"/v1/trades/{trade_id}/{step}", json=body,
                                   headers={**who, "Idempotency-Key": f"bank-{n}-{step}"})
                        with lock:
                            outcomes.append((r.status_code, step))

        def reader(seed: int) -> None:
            rng = random.Random(seed)
            with httpx.Client(base_url=server.base_url, timeout=30) as c:
                while not done.is_set():
                    snap = snapshot(engine)
                    one: User = rng.choice(users)
                    seen = balance(c, one)
                    found = []
                    money, escrow, open_trades = money_snapshot(engine)
                    if money != total + BUYERS * FUNDS:
                        found.append(f"all the money {money} != funded {total + BUYERS * FUNDS}")
                    if escrow != open_trades:
                        found.append(f"escrow holds {escrow}, open escrow trades paid {open_trades}")
                    if snap.negative():
                        found.append(f"available below zero: {snap.negative()}")
                    if snap.held != snap.pending_in:
                        found.append(f"held {snap.held} != pending_in {snap.pending_in}")
                    if min(seen.values()) < 0:
                        found.append(f"GET /v1/wallet for {one.email}: {seen}")
                    with lock:
                        reads[0] += 1
                        problems.extend(found)

        readers = [threading.Thread(target=reader, args=(100 + i,)) for i in range(READERS)]
        workers = [threading.Thread(target=worker, args=(i,)) for i in range(WORKERS)]
        workers.append(threading.Thread(target=trader))
        for t in readers + workers:
            t.start()
        for t in workers:
            t.join(timeout=150)
        done.set()
        for t in readers:
            t.join(timeout=30)
        assert not any(t.is_alive() for t in readers + workers), "a worker or reader hung"

        assert problems == []
        assert reads[0] >= 20, f"only {reads[0]} reads ran alongside the transfers"
        statuses = {(s, code) for s, code in outcomes}
        assert statuses <= {(201, ""), (402, "insufficient_funds"), (200, "undo"), (409, "undo"), (201, "trade"),
                            (200, "pay"), (200, "ship"), (200, "confirm"), (201, "refunds")}, statuses
        assert sum(1 for s, step in outcomes if (s, step) in {(200, "confirm"), (201, "refunds")}) == TRADES
        assert sum(1 for s, code in outcomes if s == 201 and code == "") > WORKERS * TRANSFERS_PER_WORKER // 2
        assert (200, "undo") in statuses

        # Close every undo window: all money lands, none is held, the total is intact.
        # The advance runs what is due; jobs the server's own worker had claimed just
        # before finish on that worker a moment later, so wait (bounded) for them.
        server.advance_clock(11)
        deadline = time.monotonic() + 30
        final = snapshot(engine)
        while final.held and time.monotonic() < deadline:
            time.sleep(0.2)
            final = snapshot(engine)
        money, escrow, _ = money_snapshot(engine)
        assert (money, escrow) == (total + BUYERS * FUNDS, 0)
        buyer_ids = {b.id for b in buyers}
        transfer_total = sum(b for o, (b, _, _) in final.wallets.items() if o not in buyer_ids)
        assert (transfer_total, final.held, final.pending_in, final.negative()) == (total, 0, 0, {})
        server.stop()
        verified = server.cli("ledger", "verify")
        assert verified.returncode == 0, verified.stdout + verified.stderr
    finally:
        server.stop()
        engine.dispose()
