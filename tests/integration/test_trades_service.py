"""Trades through the services on both engines: the escrow and instant flows with
the ledger checked at every step, every deadline on the test clock, wrong
parties and states, duplicate out_trade_no, and pay racing close."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from tests.integration.trade_support import AMOUNT, FEE, TradeEnv, make_trade_env

from trustpay.errors import Conflict, InvalidRequest, NotFound, PaymentFailed, TrustPayError
from trustpay.trades import service
from trustpay.trades.service import NewTrade


@pytest.fixture
def t(db_url: str, tmp_path: Path) -> Iterator[TradeEnv]:
    yield from make_trade_env(db_url, tmp_path)


def test_escrow_flow_moves_the_money_step_by_step(t: TradeEnv) -> None:
    shop = t.merchant()
    buyer = t.user("buyer@example.com", fund=50_000)
    trade = t.create(shop)
    assert (trade["status"], trade["fee"], trade["buyer_id"]) == ("WAIT_BUYER_PAY", FEE, None)
    start = {"buyer": 50_000, "merchant_pending": 0, "fee_revenue": 0, "escrow": 0}
    assert t.money(buyer, shop) == start

    paid = t.pay(buyer, trade["id"])
    assert (paid["status"], paid["buyer_id"]) == ("WAIT_SELLER_SEND_GOODS", buyer.id)
    assert paid["ship_by"] is not None and paid["pay_entry_id"]
    assert t.money(buyer, shop) == {**start, "buyer": 50_000 - AMOUNT, "escrow": AMOUNT}

    shipped = t.ship(shop, trade["id"])
    assert (shipped["status"], shipped["carrier"], shipped["tracking_no"]) == (
        "WAIT_BUYER_CONFIRM_GOODS", "SF Express", "SF1234567890")
    assert t.money(buyer, shop)["escrow"] == AMOUNT

    done = t.confirm(buyer, trade["id"])
    assert done["status"] == "TRADE_FINISHED" and done["release_entry_id"]
    assert t.money(buyer, shop) == {"buyer": 50_000 - AMOUNT, "merchant_pending": AMOUNT - FEE,
                                    "fee_revenue": FEE, "escrow": 0}
    assert t.events(trade["id"]) == [
        ("trade.paid", shop.id, "WAIT_SELLER_SEND_GOODS"),
        ("trade.shipped", shop.id, "WAIT_BUYER_CONFIRM_GOODS"),
        ("trade.finished", shop.id, "TRADE_FINISHED"),
    ]
    # The deadlines that were pending are gone: nothing happens later.
    t.advance(400 * 3600)
    assert t.trade(trade["id"], buyer)["status"] == "TRADE_FINISHED"
    assert t.money(buyer, shop)["merchant_pending"] == AMOUNT - FEE
    assert len(t.events(trade["id"])) == 3
    t.ledger_ok()


def test_instant_trade_pays_the_merchant_at_once(t: TradeEnv) -> None:
    shop = t.merchant()
    buyer = t.user("buyer@example.com", fund=AMOUNT)
    trade = t.create(shop, mode="instant")
    paid = t.pay(buyer, trade["id"])
    assert paid["status"] == "TRADE_SUCCESS" and paid["ship_by"] is None
    assert t.money(buyer, shop) == {"buyer": 0, "merchant_pending": AMOUNT - FEE, "fee_revenue": FEE, "escrow": 0}
    assert t.events(trade["id"]) == [("trade.paid", shop.id, "TRADE_SUCCESS")]
    # Nothing to ship or confirm in an instant trade.
    with pytest.raises(Conflict):
        t.ship(shop, trade["id"])
    with pytest.raises(Conflict):
        t.confirm(buyer, trade["id"])
    t.advance(300 * 3600)
    assert t.trade(trade["id"], buyer)["status"] == "TRADE_SUCCESS"
    t.ledger_ok()


def test_unpaid_trade_closes_at_its_pay_deadline(t: TradeEnv) -> None:
    shop = t.merchant()
    buyer = t.user("buyer@example.com", fund=AMOUNT)
    trade = t.create(shop)
    short = t.create(shop, "order-2", pay_within_minutes=5)
    t.advance(5 * 60 - 1)
    assert t.trade(short["id"], buyer)["status"] == "WAIT_BUYER_PAY"
    t.advance(1)
    assert t.trade(short["id"], buyer)["close_reason"] == "pay_timeout"
    t.advance(25 * 60 - 1)
    assert t.trade(trade["id"], buyer)["status"] == "WAIT_BUYER_PAY"
    t.advance(1)
    closed = t.trade(trade["id"], buyer)
    assert (closed["status"], closed["close_reason"]) == ("TRADE_CLOSED", "pay_timeout")
    assert t.events(trade["id"]) == [("trade.closed", shop.id, "TRADE_CLOSED")]
    with pytest.raises(Conflict) as late:
        t.pay(buyer, trade["id"])
    assert late.value.code == "invalid_state"
    assert t.money(buyer, shop)["buyer"] == AMOUNT
    t.ledger_ok()


def test_paid_just_before_the_deadline_stays_paid(t: TradeEnv) -> None:
    shop = t.merchant()
    buyer = t.user("buyer@example.com", fund=AMOUNT)
    trade = t.create(shop)
    t.advance(30 * 60 - 1)
    t.pay(buyer, trade["id"])
    t.advance(60)
    assert t.trade(trade["id"], buyer)["status"] == "WAIT_SELLER_SEND_GOODS"
    assert [e[0] for e in t.events(trade["id"])] == ["trade.paid"]


def test_unshipped_trade_is_refunded_in_full_and_closed(t: TradeEnv) -> None:
    shop = t.merchant()
    buyer = t.user("buyer@example.com", fund=AMOUNT)
    trade = t.create(shop, ship_within_hours=48)
    t.pay(buyer, trade["id"])
    t.advance(48 * 3600 - 1)
    assert t.trade(trade["id"], buyer)["status"] == "WAIT_SELLER_SEND_GOODS"
    t.advance(1)
    closed = t.trade(trade["id"], buyer)
    assert (closed["status"], closed["close_reason"], closed["refunded_amount"]) == (
        "TRADE_CLOSED", "ship_timeout", AMOUNT)
    assert t.money(buyer, shop) == {"buyer": AMOUNT, "merchant_pending": 0, "fee_revenue": 0, "escrow": 0}
    assert t.events(trade["id"]) == [("trade.paid", shop.id, "WAIT_SELLER_SEND_GOODS"),
                                     ("trade.closed", shop.id, "TRADE_CLOSED")]
    with pytest.raises(Conflict):
        t.ship(shop, trade["id"])  # too late
    assert any(n["to"] == buyer.email and "back in your wallet" in n.get("body", "") for n in t.env.notes())
    t.ledger_ok()


def test_unconfirmed_trade_finishes_at_its_confirm_deadline(t: TradeEnv) -> None:
    shop = t.merchant()
    buyer = t.user("buyer@example.com", fund=AMOUNT)
    trade = t.create(shop)
    t.pay(buyer, trade["id"])
    t.advance(3600)
    t.ship(shop, trade["id"])
    t.advance(240 * 3600 - 1)
    assert t.trade(trade["id"], buyer)["status"] == "WAIT_BUYER_CONFIRM_GOODS"
    t.advance(1)
    assert t.trade(trade["id"], buyer)["status"] == "TRADE_FINISHED"
    assert t.money(buyer, shop) == {"buyer": 0, "merchant_pending": AMOUNT - FEE, "fee_revenue": FEE, "escrow": 0}
    assert [e[0] for e in t.events(trade["id"])] == ["trade.paid", "trade.shipped", "trade.finished"]
    with pytest.raises(Conflict):
        t.confirm(buyer, trade["id"])  # already finished for them
    t.ledger_ok()


def test_merchant_closes_an_unpaid_trade_only(t: TradeEnv) -> None:
    shop = t.merchant()
    buyer = t.user("buyer@example.com", fund=2 * AMOUNT)
    one, two = t.create(shop, "order-1"), t.create(shop, "order-2")
    closed = t.close(shop, one["id"])
    assert (closed["status"], closed["close_reason"]) == ("TRADE_CLOSED", "merchant_closed")
    assert t.events(one["id"]) == [("trade.closed", shop.id, "TRADE_CLOSED")]
    with pytest.raises(Conflict):
        t.pay(buyer, one["id"])
    t.pay(buyer, two["id"])
    with pytest.raises(Conflict):
        t.close(shop, two["id"])  # paid: only a refund can undo it now
    t.advance(3600)  # the cancelled pay deadline does nothing
    assert len(t.events(one["id"])) == 1


def test_wrong_parties_get_404_and_wrong_states_409(t: TradeEnv) -> None:
    shop = t.merchant()
    other_shop = t.merchant("other@example.com")
    buyer = t.user("buyer@example.com", fund=AMOUNT)
    stranger = t.user("stranger@example.com", fund=AMOUNT)
    trade = t.create(shop)
    tid = trade["id"]
    # Before payment whoever holds the id may see it; the merchant may not pay its own trade.
    assert t.trade(tid, stranger)["id"] == tid
    with pytest.raises(NotFound):
        t.pay(shop, tid)
    with pytest.raises(NotFound):
        t.close(other_shop, tid)
    with pytest.raises(NotFound):
        t.platform.db.run(lambda c: service.close(t.platform, c, tid, buyer.id))  # a buyer never closes
    with pytest.raises(Conflict):
        t.ship(shop, tid)  # not paid yet
    t.pay(buyer, tid)
    # Paid: only its merchant and buyer see it; anyone else gets the same 404 as for no trade.
    for outsider in (stranger, other_shop):
        with pytest.raises(NotFound) as missing:
            t.trade(tid, outsider)
        assert missing.value.message == f"no trade {tid}"
        with pytest.raises(NotFound):
            t.pay(outsider, tid)
    with pytest.raises(NotFound):
        t.ship(other_shop, tid)
    with pytest.raises(NotFound):
        t.ship(buyer, tid)  # a buyer never ships
    with pytest.raises(Conflict):
        t.pay(buyer, tid)  # paid already
    with pytest.raises(Conflict):
        t.confirm(buyer, tid)  # not shipped yet
    t.ship(shop, tid)
    with pytest.raises(NotFound):
        t.platform.db.run(lambda c: service.confirm(t.platform, c, tid, shop.id))  # not for the buyer
    assert t.money(buyer, shop)["escrow"] == AMOUNT
    t.ledger_ok()


def test_a_named_buyer_is_the_only_one_who_sees_and_pays(t: TradeEnv) -> None:
    shop = t.merchant()
    buyer = t.user("buyer@example.com", fund=AMOUNT)
    stranger = t.user("stranger@example.com", fund=AMOUNT)
    trade = t.create(shop, buyer=buyer.id)
    with pytest.raises(NotFound):
        t.trade(trade["id"], stranger)
    with pytest.raises(NotFound):
        t.pay(stranger, trade["id"])
    assert t.pay(buyer, trade["id"])["status"] == "WAIT_SELLER_SEND_GOODS"
    with pytest.raises(InvalidRequest):
        t.create(shop, "order-2", buyer=shop.id)
    with pytest.raises(InvalidRequest):
        t.create(shop, "order-3", buyer="usr_00000000000000000000000000")


def test_refused_payments_move_nothing(t: TradeEnv) -> None:
    shop = t.merchant()
    poor = t.user("poor@example.com", fund=AMOUNT - 1)
    unverified = t.user("unverified@example.com", fund=AMOUNT, verify_email=False)
    trade = t.create(shop)
    cases: list[tuple[Any, str | None, str]] = [
        (poor, "135790", "payment_password_invalid"),
        (poor, None, "payment_password_invalid"),
        (poor, "246810", "insufficient_funds"),
    ]
    for who, password, code in cases:
        with pytest.raises(PaymentFailed) as refused:
            t.pay(who, trade["id"], payment_password=password)
        assert refused.value.code == code
    with pytest.raises(TrustPayError) as unverified_refusal:
        t.pay(unverified, trade["id"])
    assert unverified_refusal.value.code == "email_unverified"
    assert t.trade(trade["id"], poor)["status"] == "WAIT_BUYER_PAY"
    assert t.events(trade["id"]) == []
    assert t.money(poor, shop)["buyer"] == AMOUNT - 1
    t.ledger_ok()


def test_duplicate_out_trade_no(t: TradeEnv) -> None:
    shop = t.merchant()
    other_shop = t.merchant("other@example.com")
    first = t.create(shop)
    assert t.create(shop)["id"] == first["id"]  # the same body: the same trade
    # Sending the default window explicitly is the same body.
    assert t.create(shop, pay_within_minutes=30)["id"] == first["id"]
    for change in ({"amount": AMOUNT + 1}, {"mode": "instant"}, {"ship_within_hours": 24}):
        with pytest.raises(Conflict) as dup:
            t.create(shop, **change)
        assert (dup.value.code, dup.value.param) == ("already_exists", "out_trade_no")
    # Numbers are the merchant's own: another merchant may use the same one.
    assert t.create(other_shop)["id"] != first["id"]


@pytest.mark.parametrize(("field", "value"), [
    ("out_trade_no", ""), ("out_trade_no", "x" * 65), ("out_trade_no", "has space"),
    ("amount", 0), ("amount", -1), ("amount", 1.5), ("currency", "RMB"), ("subject", " "),
    ("subject", "a\nb"), ("mode", "cod"), ("pay_within_minutes", 0), ("ship_within_hours", 24 * 31),
    ("confirm_within_hours", 23),
])
def test_bad_trades_are_refused(t: TradeEnv, field: str, value: Any) -> None:
    shop = t.merchant()
    body: dict[str, Any] = {"out_trade_no": "order-1", "amount": AMOUNT, "currency": "CNY", "subject": "Tea set",
                            field: value}
    with pytest.raises(InvalidRequest) as bad:
        t.platform.db.run(lambda c: service.create(t.platform, c, shop.id, NewTrade(**body)))
    assert bad.value.param == field or bad.value.code in ("invalid_amount", "invalid_currency")


def test_pay_and_close_racing_end_one_way(t: TradeEnv) -> None:
    shop = t.merchant()
    buyer = t.user("buyer@example.com", fund=10 * AMOUNT)
    p = t.platform
    outcomes = []
    for n in range(6):
        trade = t.create(shop, f"race-{n}")
        tid = trade["id"]
        service.authorise_pay(p, buyer.id, tid, payment_password="246810", totp_code=None)
        barrier = threading.Barrier(2)
        results: dict[str, str] = {}

        def attempt(name: str, fn: Any, tid: str = tid, barrier: threading.Barrier = barrier,
                    results: dict[str, str] = results) -> None:
            barrier.wait()
            try:
                p.db.run(lambda conn: fn(p, conn, tid))
                results[name] = "won"
            except TrustPayError as err:
                results[name] = err.code

        threads = [
            threading.Thread(target=attempt, args=("pay", lambda p, c, i: service.pay(p, c, i, buyer.id))),
            threading.Thread(target=attempt, args=("close", lambda p, c, i: service.close(p, c, i, shop.id))),
        ]
        for th in threads:
            th.start()
        for th in threads:
            th.join()
        assert sorted(results.values()) == ["invalid_state", "won"], results
        winner = "pay" if results["pay"] == "won" else "close"
        status = t.trade(tid, buyer if winner == "pay" else shop)["status"]
        assert status == ("WAIT_SELLER_SEND_GOODS" if winner == "pay" else "TRADE_CLOSED")
        assert len(t.events(tid)) == 1
        outcomes.append(winner)
    paid = outcomes.count("pay")
    assert t.money(buyer, shop)["buyer"] == 10 * AMOUNT - paid * AMOUNT
    assert t.money(buyer, shop)["escrow"] == paid * AMOUNT
    t.ledger_ok()


def test_trade_payments_count_toward_risk_velocity(db_url: str, tmp_path: Path) -> None:
    # One money-out action an hour before a step-up, three times that before a refusal.
    for t in make_trade_env(db_url, tmp_path, risk_velocity_count=1):
        shop = t.merchant()
        buyer = t.user("buyer@example.com", fund=10 * AMOUNT)
        for n in range(3):  # the 2nd and 3rd are challenged; the payment password answers it
            assert t.pay(buyer, t.create(shop, f"order-{n}")["id"])["status"] == "WAIT_SELLER_SEND_GOODS"
        fourth = t.create(shop, "order-3")
        with pytest.raises(PaymentFailed) as refused:
            t.pay(buyer, fourth["id"])
        assert refused.value.code == "risk_declined"
        r = t.transfer(buyer, shop.id, 100)  # and the trades count for transfers too
        assert r.status_code == 402 and r.json()["error"]["code"] == "risk_declined"
        t.advance(3600)  # an hour later the window has moved on
        assert t.pay(buyer, t.create(shop, "order-4")["id"])["status"] == "WAIT_SELLER_SEND_GOODS"
