"""A collection code (收款码) paid while its merchant disables it, on both engines: a
payment either completes fully against a code that was still enabled (an instant
trade, paid, with its collection_payments row and its ledger entry) or is refused
with 409 invalid_state and leaves nothing behind; never a half state.

Two fixed interleavings (the payment's transaction holding the code while the
disable waits, and the other way round), then free-running threads."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select
from tests.integration.trade_support import AMOUNT, FEE, PAY_PW, TradeEnv, Wallet, make_trade_env

from trustpay.db.schema import collection_payments, ledger_entries, trades
from trustpay.errors import Conflict
from trustpay.ledger.model import AccountKind
from trustpay.trades import collection

FUNDS = 5 * AMOUNT
BLOCKED_FOR_S = 0.5  # how long the second transaction must stay blocked behind the first
WAIT_S = 30.0


@pytest.fixture
def t(db_url: str, tmp_path: Path) -> Iterator[TradeEnv]:
    yield from make_trade_env(db_url, tmp_path)


def new_code(t: TradeEnv, shop: Wallet, label: str) -> str:
    p = t.platform
    row = p.db.run(lambda conn: collection.create_code(p, conn, shop.id, collection.NewCode(label, "CNY", AMOUNT)))
    return str(row["id"])


def authorised(t: TradeEnv, payer: Wallet, code_id: str) -> bool:
    """The checks before the money transaction (password, risk), done before any race starts."""
    return collection.authorise(t.platform, payer.id, code_id, None, payment_password=PAY_PW, totp_code=None)


def pay(t: TradeEnv, payer: Wallet, code_id: str, stepped_up: bool, *, hold: threading.Event | None = None,
        inside: threading.Event | None = None) -> dict[str, Any]:
    """The payment's transaction; with ``inside``/``hold``: say so once the payment is written,
    then keep the transaction open until ``hold`` is set."""
    p = t.platform

    def work(conn: Any) -> dict[str, Any]:
        done = collection.pay(p, conn, code_id, payer.id, None, note="table 4", stepped_up=stepped_up)
        if inside is not None and hold is not None:
            inside.set()
            assert hold.wait(WAIT_S)
        return done

    result: dict[str, Any] = p.db.run(work)
    return result


def disable(t: TradeEnv, shop: Wallet, code_id: str, *, hold: threading.Event | None = None,
            inside: threading.Event | None = None) -> None:
    p = t.platform

    def work(conn: Any) -> None:
        collection.disable_code(p, conn, code_id, shop.id)
        if inside is not None and hold is not None:
            inside.set()
            assert hold.wait(WAIT_S)

    p.db.run(work)


def run(target: Any, outcome: dict[str, Any], name: str) -> threading.Thread:
    def body() -> None:
        try:
            outcome[name] = target()
        except Exception as exc:
            outcome[name] = exc
    thread = threading.Thread(target=body, daemon=True)
    thread.start()
    return thread


def state(t: TradeEnv, code_id: str) -> dict[str, Any]:
    """Everything the code's payments left: the trades, their statuses, payments rows, entries."""
    with t.platform.db.transaction(write=False) as conn:
        made = list(conn.execute(select(trades.c.id, trades.c.status, trades.c.paid_at)
                                 .where(trades.c.out_trade_no.like(f"{code_id}.%"))).mappings())
        rows = int(conn.execute(select(func.count()).select_from(collection_payments)
                                .where(collection_payments.c.source_id == code_id)).scalar_one())
        entries = int(conn.execute(select(func.count()).select_from(ledger_entries).where(
            ledger_entries.c.reference.in_([m["id"] for m in made] or ["-"]))).scalar_one())
        status = collection.code(conn, code_id)["status"]
    return {"trades": [(m["status"], m["paid_at"] is not None) for m in made], "payments": rows,
            "entries": entries, "status": status}


def test_payment_holding_the_code_completes_and_the_disable_waits_for_it(t: TradeEnv) -> None:
    shop, payer = t.merchant(), t.user("payer@example.com", fund=FUNDS)
    code_id = new_code(t, shop, "Table 4")
    inside, hold = threading.Event(), threading.Event()
    outcome: dict[str, Any] = {}
    stepped_up = authorised(t, payer, code_id)
    paying = run(lambda: pay(t, payer, code_id, stepped_up, inside=inside, hold=hold), outcome, "pay")
    assert inside.wait(WAIT_S)
    disabling = run(lambda: disable(t, shop, code_id), outcome, "disable")
    disabling.join(BLOCKED_FOR_S)
    assert disabling.is_alive(), "the disable did not wait for the payment holding the code"
    hold.set()
    paying.join(WAIT_S)
    disabling.join(WAIT_S)
    assert outcome["disable"] is None and isinstance(outcome["pay"], dict), outcome
    assert outcome["pay"]["trade"]["status"] == "TRADE_SUCCESS"
    assert state(t, code_id) == {"trades": [("TRADE_SUCCESS", True)], "payments": 1, "entries": 1,
                                 "status": "disabled"}
    assert t.account(payer.id, AccountKind.WALLET) == FUNDS - AMOUNT
    assert t.account(shop.id, AccountKind.SETTLEMENT_PENDING) == AMOUNT - FEE
    t.ledger_ok()


def test_payment_arriving_while_the_disable_holds_the_code_is_refused_and_leaves_nothing(t: TradeEnv) -> None:
    shop, payer = t.merchant(), t.user("payer@example.com", fund=FUNDS)
    code_id = new_code(t, shop, "Table 5")
    inside, hold = threading.Event(), threading.Event()
    outcome: dict[str, Any] = {}
    stepped_up = authorised(t, payer, code_id)  # the code is still enabled here
    disabling = run(lambda: disable(t, shop, code_id, inside=inside, hold=hold), outcome, "disable")
    assert inside.wait(WAIT_S)
    paying = run(lambda: pay(t, payer, code_id, stepped_up), outcome, "pay")
    paying.join(BLOCKED_FOR_S)
    assert paying.is_alive(), "the payment read the code while a disable of it was under way"
    hold.set()
    disabling.join(WAIT_S)
    paying.join(WAIT_S)
    refused = outcome["pay"]
    assert isinstance(refused, Conflict) and refused.code == "invalid_state", outcome
    assert state(t, code_id) == {"trades": [], "payments": 0, "entries": 0, "status": "disabled"}
    assert t.account(payer.id, AccountKind.WALLET) == FUNDS
    assert t.account(shop.id, AccountKind.SETTLEMENT_PENDING) == 0
    t.ledger_ok()


def test_payers_racing_a_disable_each_end_whole(t: TradeEnv) -> None:
    shop = t.merchant()
    payers = [t.user(f"payer{i}@example.com", fund=FUNDS) for i in range(4)]
    for round_no in range(5):
        code_id = new_code(t, shop, f"Stall {round_no}")
        start = threading.Barrier(len(payers) + 1)
        outcome: dict[str, Any] = {}
        steps = {w.email: authorised(t, w, code_id) for w in payers}

        def paying(who: Wallet, cid: str = code_id, gate: threading.Barrier = start,
                   stepped: dict[str, bool] = steps) -> dict[str, Any]:
            gate.wait(WAIT_S)
            return pay(t, who, cid, stepped[who.email])

        def disabling(cid: str = code_id, gate: threading.Barrier = start) -> None:
            gate.wait(WAIT_S)
            disable(t, shop, cid)

        threads = [run(lambda w=w: paying(w), outcome, w.email) for w in payers]
        threads.append(run(disabling, outcome, "disable"))
        for thread in threads:
            thread.join(WAIT_S)
        assert outcome["disable"] is None, outcome
        paid = [w for w in payers if isinstance(outcome[w.email], dict)]
        refused = [w for w in payers if isinstance(outcome[w.email], Conflict)
                   and outcome[w.email].code == "invalid_state"]
        assert len(paid) + len(refused) == len(payers), outcome  # nothing else went wrong
        assert all(outcome[w.email]["trade"]["status"] == "TRADE_SUCCESS" for w in paid)
        assert state(t, code_id) == {"trades": [("TRADE_SUCCESS", True)] * len(paid), "payments": len(paid),
                                     "entries": len(paid), "status": "disabled"}
        with pytest.raises(Conflict):
            pay(t, payers[0], code_id, False)  # and nothing is taken after it
    spent = sum(FUNDS - t.account(w.id, AccountKind.WALLET) for w in payers)
    assert spent % AMOUNT == 0
    assert t.account(shop.id, AccountKind.SETTLEMENT_PENDING) == spent // AMOUNT * (AMOUNT - FEE)
    t.ledger_ok()
