"""Races on the wallet (QUALITY.md §4), on both engines, with the real app in
process and real threads (one TestClient each, all released together):

- 50 identical POST /v1/transfers with one Idempotency-Key: one transfer, one
  ledger hold, the sender debited once; every answer is the same 201 body
  (first or replayed) or 409 ``idempotency_in_progress``.
- 100 withdrawals, each of the whole balance (amount + fee = balance): exactly
  one 201, the rest 402 ``insufficient_funds``; no read ever sees the balance
  below zero; the ledger verifies.
"""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select
from tests.integration.wallet_support import PAY_PW, WalletEnv, make_wallet_env

from trustpay.banks.registry import sandbox_bank
from trustpay.db.schema import ledger_holds, transfers, withdrawals

FUNDS = 100_000


@pytest.fixture
def w(db_url: str, tmp_path: Path) -> Iterator[WalletEnv]:
    # Limits and risk rules off: what is raced here is the balance and the key, not a velocity rule.
    yield from make_wallet_env(db_url, tmp_path, tier_limits="off", risk_rules="off",
                               bank_sandbox_data_dir=str(tmp_path / "bank"), bank_sandbox_settle_seconds=0)


def all_at_once(n: int, call: Callable[[TestClient], httpx.Response], app: object,
                in_flight: int | None = None) -> list[httpx.Response]:
    """``call`` from ``n`` threads released together by a barrier; every thread must answer.

    ``in_flight`` caps how many are inside the app at once, as a served app's
    thread pool would (each TestClient otherwise brings its own)."""
    barrier = threading.Barrier(n)
    gate = threading.BoundedSemaphore(in_flight or n)
    answers: list[httpx.Response | BaseException | None] = [None] * n

    def body(i: int) -> None:
        client = TestClient(app)  # type: ignore[arg-type]
        barrier.wait(timeout=60)
        try:
            with gate:
                answers[i] = call(client)
        except BaseException as exc:  # re-raised below, in the test's thread
            answers[i] = exc

    threads = [threading.Thread(target=body, args=(i,), daemon=True) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=240)
    assert not any(t.is_alive() for t in threads), "a request hung"
    for a in answers:
        if isinstance(a, BaseException):
            raise a
    return [a for a in answers if isinstance(a, httpx.Response)]


def test_fifty_identical_keyed_transfers_take_effect_once(w: WalletEnv) -> None:
    alice = w.user("alice@example.com", fund=FUNDS)
    bob = w.user("bob@example.com")
    r = w.client.put("/v1/wallet/preferences", json={"password_free_cap": 10_000, "daily_cap": None,
                                                    "payment_password": PAY_PW}, headers=alice.auth)
    assert r.status_code == 200, r.text
    headers = {**alice.auth, "Idempotency-Key": "race-one-transfer"}
    body = {"to": bob.id, "amount": 1_234, "currency": "CNY", "memo": "once"}

    answers = all_at_once(50, lambda c: c.post("/v1/transfers", json=body, headers=headers), w.env.app)

    created = [a for a in answers if a.status_code == 201]
    busy = [a for a in answers if a.status_code == 409]
    assert len(created) + len(busy) == 50, Counter(a.status_code for a in answers)
    assert created, "no request got the transfer's answer"
    assert {a.content for a in created} == {created[0].content}, "replays differ from the first answer"
    assert {a.json()["error"]["code"] for a in busy} <= {"idempotency_in_progress"}
    transfer_id = created[0].json()["id"]
    with w.platform.db.transaction(write=False) as conn:
        rows = conn.execute(select(transfers.c.id).where(transfers.c.sender_id == alice.id)).scalars().all()
        holds = conn.execute(select(func.count()).select_from(ledger_holds)
                             .where(ledger_holds.c.reference == transfer_id)).scalar_one()
    assert (rows, holds) == ([transfer_id], 1)
    assert w.balance(alice) == {"available": FUNDS - 1_234, "held": 1_234, "pending_in": 0}
    assert w.balance(bob) == {"available": 0, "held": 0, "pending_in": 1_234}
    # A late retry after the race: the same answer again, still one effect.
    again = w.client.post("/v1/transfers", json=body, headers=headers)
    assert (again.status_code, again.content) == (201, created[0].content)
    assert again.headers.get("Idempotent-Replayed") == "true"
    w.advance(11)  # the undo window closes: posted once
    assert w.balance(alice) == {"available": FUNDS - 1_234, "held": 0, "pending_in": 0}
    assert w.balance(bob) == {"available": 1_234, "held": 0, "pending_in": 0}
    w.ledger_ok()


def test_hundred_withdrawals_of_the_whole_balance_one_succeeds(w: WalletEnv) -> None:
    amount = 50_000
    alice = w.user("alice@example.com")
    quote = w.client.get("/v1/withdrawals/quote", params={"amount": amount}, headers=alice.auth).json()
    assert quote["total"] == amount + quote["fee"] and quote["fee"] > 0
    r = w.client.post("/v1/bank-cards", json={"bank": "sandbox", "card_number": "4111111111111111",
                                              "holder_name": "Li Lei"}, headers=alice.auth)
    assert r.status_code == 201, r.text
    card = r.json()["id"]
    # Funded the way production is: a top-up the bank confirms (it also opens the clearing account).
    r = w.client.post("/v1/topups", json={"card": card, "amount": quote["total"], "currency": "CNY"},
                      headers=alice.auth)
    assert r.status_code == 201, r.text
    w.clock.advance(1)
    sandbox_bank(w.platform).tick()
    w.advance(1)
    assert w.balance(alice) == {"available": quote["total"], "held": 0, "pending_in": 0}
    body = {"card": card, "amount": amount, "currency": "CNY", "payment_password": PAY_PW}
    # At most the app's connection pool (10 + 10 overflow) inside at once: every withdrawal
    # checks the argon2 payment password inside a write transaction, so on SQLite they
    # queue one by one, and beyond the pool the queue is for a connection (30 s timeout).
    in_flight = 20

    seen: list[dict[str, int]] = []
    racing = threading.Event()
    racing.set()

    def watch() -> None:  # reads while the race runs: nobody may see money that is not there
        client = TestClient(w.env.app)  # no `with`: its lifespan would close the shared platform
        while racing.is_set():
            b = client.get("/v1/wallet", headers=alice.auth).json()["balances"]
            seen.extend({k: int(x[k]) for k in ("available", "held")} for x in b)

    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    try:
        answers = all_at_once(100, lambda c: c.post("/v1/withdrawals", json=body, headers=alice.auth),
                              w.env.app, in_flight)
    finally:
        racing.clear()
        watcher.join(timeout=30)

    outcome = Counter((a.status_code, a.json().get("error", {}).get("code")) for a in answers)
    assert outcome == {(201, None): 1, (402, "insufficient_funds"): 99}, outcome
    assert seen and all(s["available"] >= 0 and s["held"] >= 0 for s in seen)
    with w.platform.db.transaction(write=False) as conn:
        made = conn.execute(select(func.count()).select_from(withdrawals)
                            .where(withdrawals.c.user_id == alice.id)).scalar_one()
    assert made == 1
    assert w.balance(alice) == {"available": 0, "held": quote["total"], "pending_in": 0}
    w.clock.advance(1)
    sandbox_bank(w.platform).tick()  # the bank pays out and calls back: both holds post
    w.advance(60)
    assert w.balance(alice) == {"available": 0, "held": 0, "pending_in": 0}
    w.ledger_ok()
