"""The bank test (after Jepsen's; QUALITY.md §2) over real HTTP, on SQLite and
PostgreSQL: workers transfer at random between a few users — with the undo
window on, some transfers undone — while readers read every balance. Each
read of all balances is one snapshot of ``ledger_accounts`` (see
wallet_load's docstring for why not K separate GETs) and must sum to what was
funded; no wallet's available balance may go below zero; what is held on the
way out equals what is pending on the way in. The per-user GETs run too and
are checked one by one.
"""

from __future__ import annotations

import random
import threading
import time
from pathlib import Path

import httpx
import pytest

from tests.e2e.wallet_load import (
    User,
    WalletServer,
    balance,
    engine_for,
    fund,
    make_user,
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


def test_every_read_of_all_balances_sums_to_the_funded_total(db_url: str, tmp_path: Path) -> None:
    server = WalletServer(db_url, tmp_path, undo_seconds=10)
    server.start()
    engine = engine_for(db_url)
    try:
        with httpx.Client(base_url=server.base_url, timeout=30) as c:
            users = [make_user(server, c, f"bank{i}@example.com", password_free_cap=1_000) for i in range(USERS)]
            for u in users:
                fund(c, u, FUNDS)
        total = USERS * FUNDS
        assert snapshot(engine).total == total

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

        def reader(seed: int) -> None:
            rng = random.Random(seed)
            with httpx.Client(base_url=server.base_url, timeout=30) as c:
                while not done.is_set():
                    snap = snapshot(engine)
                    one: User = rng.choice(users)
                    seen = balance(c, one)
                    found = []
                    if snap.total != total:
                        found.append(f"read total {snap.total} != funded {total}")
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
        assert statuses <= {(201, ""), (402, "insufficient_funds"), (200, "undo"), (409, "undo")}, statuses
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
        assert (final.total, final.held, final.pending_in, final.negative()) == (total, 0, 0, {})
        server.stop()
        verified = server.cli("ledger", "verify")
        assert verified.returncode == 0, verified.stdout + verified.stderr
    finally:
        server.stop()
        engine.dispose()
