"""Refunds through the services on both engines: merchant refunds (escrow and instant,
fee reversed in proportion), out_refund_no, buyer requests with every answer and
every deadline on the test clock, the paused confirm deadline, and racing refunds."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import update
from tests.integration.refund_support import AMOUNT, FEE, RefundEnv, make_refund_env

from trustpay.clock import to_utc
from trustpay.db.schema import trades
from trustpay.errors import Conflict, InvalidRequest, NotFound, TrustPayError
from trustpay.jobs.runner import run_until_idle
from trustpay.trades import refunds
from trustpay.trades.refunds import NewRefund

H = 3600


@pytest.fixture
def t(db_url: str, tmp_path: Path) -> Iterator[RefundEnv]:
    yield from make_refund_env(db_url, tmp_path)


def test_merchant_refunds_an_escrow_trade_in_parts_then_in_full(t: RefundEnv) -> None:
    shop, buyer = t.merchant(), t.user("buyer@example.com", fund=AMOUNT)
    tid = t.paid_trade(shop, buyer)
    first = t.refund(shop, tid, 3_000, "rf-1")
    assert (first["status"], first["requested_by"], first["fee_reversed"]) == ("REFUND_SUCCESS", "merchant", 0)
    assert t.money(buyer, shop) == {"buyer": 3_000, "merchant_pending": 0, "fee_revenue": 0, "escrow": 7_000}
    assert t.trade(tid, buyer)["refunded_amount"] == 3_000
    t.ship(shop, tid)
    t.refund(shop, tid, 2_000, "rf-2")  # shipped: still refundable
    with pytest.raises(InvalidRequest) as over:
        t.refund(shop, tid, 5_001, "rf-3")
    assert (over.value.code, over.value.param) == ("refund_exceeds_paid", "amount")
    last = t.refund(shop, tid, 5_000, "rf-3")  # exactly what is left: the trade closes
    closed = t.trade(tid, buyer)
    assert (closed["status"], closed["close_reason"], closed["refunded_amount"]) == ("TRADE_CLOSED", "refunded",
                                                                                      AMOUNT)
    assert t.money(buyer, shop) == {"buyer": AMOUNT, "merchant_pending": 0, "fee_revenue": 0, "escrow": 0}
    assert [e[2] for e in t.refund_events()] == [3_000, 2_000, 5_000]
    assert {e[0] for e in t.refund_events()} == {shop.id}
    assert t.refund_events()[-1][1] == last["id"]
    assert [e[0] for e in t.events(tid)] == ["trade.paid", "trade.shipped", "trade.closed"]
    t.advance(400 * H)  # the confirm deadline was cancelled with the trade (queued mail goes out)
    assert sum("is back in your TrustPay wallet" in n.get("body", "") for n in t.env.notes()
               if n["to"] == buyer.email) == 3
    assert t.trade(tid, buyer)["status"] == "TRADE_CLOSED"
    assert t.money(buyer, shop)["merchant_pending"] == 0
    t.ledger_ok()


def test_a_partly_refunded_escrow_trade_finishes_with_the_fee_in_proportion(t: RefundEnv) -> None:
    shop, buyer = t.merchant(), t.user("buyer@example.com", fund=AMOUNT)
    tid = t.paid_trade(shop, buyer, shipped=True)
    t.refund(shop, tid, 5_000)
    t.confirm(buyer, tid)
    assert t.money(buyer, shop) == {"buyer": 5_000, "merchant_pending": 5_000 - FEE // 2,
                                    "fee_revenue": FEE // 2, "escrow": 0}
    with pytest.raises(Conflict) as finished:
        t.refund(shop, tid, 1, "rf-2")
    assert finished.value.code == "invalid_state"
    t.ledger_ok()


def test_instant_refunds_reverse_the_fee_in_proportion(t: RefundEnv) -> None:
    shop, buyer = t.merchant(), t.user("buyer@example.com", fund=AMOUNT)
    tid = t.paid_trade(shop, buyer, mode="instant")
    assert t.money(buyer, shop) == {"buyer": 0, "merchant_pending": AMOUNT - FEE, "fee_revenue": FEE, "escrow": 0}
    # 2 501 of 10 000: the fee still due is 60 × 7 499 / 10 000 = 44.994 → 45, so 15 comes back.
    part = t.refund(shop, tid, 2_501, "rf-1")
    assert part["fee_reversed"] == 15
    assert t.money(buyer, shop) == {"buyer": 2_501, "merchant_pending": AMOUNT - FEE - (2_501 - 15),
                                    "fee_revenue": FEE - 15, "escrow": 0}
    assert t.trade(tid, buyer)["status"] == "TRADE_SUCCESS"
    rest = t.refund(shop, tid, AMOUNT - 2_501, "rf-2")
    assert part["fee_reversed"] + rest["fee_reversed"] == FEE  # all of it back, never more
    assert t.money(buyer, shop) == {"buyer": AMOUNT, "merchant_pending": 0, "fee_revenue": 0, "escrow": 0}
    assert t.trade(tid, buyer)["status"] == "TRADE_CLOSED"
    t.ledger_ok()


def test_out_refund_no_is_idempotent_per_requester(t: RefundEnv) -> None:
    shop, buyer = t.merchant(), t.user("buyer@example.com", fund=2 * AMOUNT)
    tid, other = t.paid_trade(shop, buyer), t.paid_trade(shop, buyer, "order-2")
    first = t.refund(shop, tid, 1_000, "R1")
    again = t.refund(shop, tid, 1_000, "R1")
    assert again["id"] == first["id"]
    assert t.money(buyer, shop)["buyer"] == 1_000 and len(t.refund_events()) == 1
    for amount, trade_id, reason in ((1_001, tid, "Damaged in transit"), (1_000, other, "Damaged in transit"),
                                     (1_000, tid, "Another reason")):
        with pytest.raises(Conflict) as dup:
            t.refund(shop, trade_id, amount, "R1", reason=reason)
        assert (dup.value.code, dup.value.param) == ("already_exists", "out_refund_no")
    # The buyer's numbers are theirs: the same R1 is a new request, not the merchant's refund.
    asked = t.refund(buyer, tid, 500, "R1")
    assert asked["id"] != first["id"] and asked["status"] == "WAIT_SELLER_AGREE"
    # Still the same answer once the trade moved on.
    t.refund(shop, other, AMOUNT, "R2")
    assert t.refund(shop, other, AMOUNT, "R2")["status"] == "REFUND_SUCCESS"
    assert t.money(buyer, shop)["buyer"] == 1_000 + AMOUNT


def test_who_may_refund_and_when(t: RefundEnv) -> None:
    shop, other_shop = t.merchant(), t.merchant("other@example.com")
    buyer, stranger = t.user("buyer@example.com", fund=2 * AMOUNT), t.user("stranger@example.com")
    unpaid = t.create(shop, "order-0")["id"]
    with pytest.raises(Conflict):
        t.refund(shop, unpaid, 100)
    with pytest.raises(Conflict):
        t.refund(stranger, unpaid, 100)  # holds the link, but nothing was paid
    tid = t.paid_trade(shop, buyer)
    for outsider in (stranger, other_shop):
        with pytest.raises(NotFound):
            t.refund(outsider, tid, 100)
    instant = t.paid_trade(shop, buyer, "order-2", mode="instant")
    with pytest.raises(Conflict, match="ask the merchant"):
        t.refund(buyer, instant, 100)
    with t.platform.db.transaction() as conn:
        conn.execute(update(trades).where(trades.c.id == tid).values(dispute_status="open"))
    with pytest.raises(Conflict, match="dispute"):
        t.refund(shop, tid, 100)
    for bad in ({"amount": 0}, {"amount": 1.5}, {"out_refund_no": "has space"}, {"reason": ""},
                {"reason": "a\nb"}, {"reason": "x" * 257}):
        body = {"out_refund_no": "rf-9", "amount": 100, "reason": "why", **bad}
        with pytest.raises(InvalidRequest):
            t.platform.db.run(lambda c, b=body: refunds.create(t.platform, c, instant, shop.id,  # type: ignore[misc]
                                                               NewRefund(**b)))
    assert t.refund_events() == []


def test_buyer_request_approved_pauses_then_resumes_the_confirm_deadline(t: RefundEnv) -> None:
    shop, buyer = t.merchant(), t.user("buyer@example.com", fund=AMOUNT)
    tid = t.paid_trade(shop, buyer, shipped=True)
    confirm_by = to_utc(t.trade(tid, buyer)["confirm_by"])
    t.advance(100 * H)
    asked = t.refund(buyer, tid, 4_000)
    assert asked["status"] == "WAIT_SELLER_AGREE"
    assert to_utc(asked["respond_by"]) == t.clock.now() + timedelta(hours=72)
    run_until_idle(t.platform)  # sends the queued mail
    assert any("asked for" in n.get("body", "") for n in t.env.notes() if n["to"] == shop.email)
    with pytest.raises(Conflict, match="withdraw"):
        t.confirm(buyer, tid)
    with pytest.raises(Conflict, match="already asked"):
        t.refund(buyer, tid, 1_000, "rf-2")
    with pytest.raises(InvalidRequest):  # 4 000 are claimed by the open request
        t.refund(shop, tid, 6_001, "m-1")
    t.advance(50 * H)
    approved = t.approve(shop, asked["id"])
    assert approved["status"] == "REFUND_SUCCESS" and approved["succeeded_at"]
    assert t.money(buyer, shop) == {"buyer": 4_000, "merchant_pending": 0, "fee_revenue": 0, "escrow": 6_000}
    resumed = to_utc(t.trade(tid, buyer)["confirm_by"])
    assert resumed == confirm_by + timedelta(hours=50)  # the 50 h the request was open
    t.advance((resumed - t.clock.now()).total_seconds() - 1)
    assert t.trade(tid, buyer)["status"] == "WAIT_BUYER_CONFIRM_GOODS"
    t.advance(1)
    assert t.trade(tid, buyer)["status"] == "TRADE_FINISHED"
    assert t.money(buyer, shop) == {"buyer": 4_000, "merchant_pending": 6_000 - 36, "fee_revenue": 36, "escrow": 0}
    t.ledger_ok()


def test_an_open_request_outlives_the_confirm_deadline_without_paying_the_merchant(t: RefundEnv) -> None:
    # Shipped while the request was open: the confirm deadline the ship set never pays the merchant
    # while the request waits; rejecting it gives the buyer the whole confirm window from then.
    shop, buyer = t.merchant(), t.user("buyer@example.com", fund=AMOUNT)
    tid = t.paid_trade(shop, buyer, confirm_within_hours=24)
    asked = t.refund(buyer, tid, AMOUNT)
    t.ship(shop, tid)  # its confirm deadline (24 h) comes while the request (72 h) waits
    t.advance(71 * H)
    assert t.trade(tid, buyer)["status"] == "WAIT_BUYER_CONFIRM_GOODS"
    assert t.money(buyer, shop)["escrow"] == AMOUNT
    rejected = t.reject(shop, asked["id"])
    assert (rejected["status"], rejected["close_reason"], rejected["answer"]) == (
        "REFUND_CLOSED", "seller_rejected", "Used, not faulty")
    run_until_idle(t.platform)
    assert any("declined" in n.get("body", "") for n in t.env.notes() if n["to"] == buyer.email)
    assert to_utc(t.trade(tid, buyer)["confirm_by"]) == t.clock.now() + timedelta(hours=24)
    again = t.refund(buyer, tid, 1_000, "rf-2")  # may ask again
    t.cancel(buyer, again["id"])
    assert t.confirm(buyer, tid)["status"] == "TRADE_FINISHED"
    t.ledger_ok()


def test_an_unanswered_request_is_approved_at_its_deadline(t: RefundEnv) -> None:
    shop, buyer = t.merchant(), t.user("buyer@example.com", fund=AMOUNT)
    tid = t.paid_trade(shop, buyer, ship_within_hours=720)
    asked = t.refund(buyer, tid, 2_500)
    t.advance(72 * H - 1)
    assert t.get_refund(asked["id"], buyer)["status"] == "WAIT_SELLER_AGREE"
    t.advance(1)
    assert t.get_refund(asked["id"], buyer)["status"] == "REFUND_SUCCESS"
    assert t.money(buyer, shop) == {"buyer": 2_500, "merchant_pending": 0, "fee_revenue": 0, "escrow": 7_500}
    with pytest.raises(Conflict):
        t.approve(shop, asked["id"])  # decided already
    t.ledger_ok()


def test_return_of_goods_then_confirmed_receipt(t: RefundEnv) -> None:
    shop, buyer = t.merchant(), t.user("buyer@example.com", fund=AMOUNT)
    tid = t.paid_trade(shop, buyer, shipped=True)
    asked = t.refund(buyer, tid, AMOUNT)
    waiting = t.approve(shop, asked["id"], return_goods=True)
    assert waiting["status"] == "WAIT_BUYER_RETURN_GOODS"
    assert to_utc(waiting["respond_by"]) == t.clock.now() + timedelta(hours=168)
    t.advance(24 * H)
    sent = t.ship_back(buyer, asked["id"])
    assert (sent["status"], sent["return_carrier"], sent["return_tracking_no"]) == (
        "WAIT_SELLER_CONFIRM_GOODS", "YTO", "YT998877")
    assert t.money(buyer, shop)["escrow"] == AMOUNT
    done = t.receive(shop, asked["id"])
    assert done["status"] == "REFUND_SUCCESS"
    assert t.trade(tid, buyer)["status"] == "TRADE_CLOSED"
    assert t.money(buyer, shop) == {"buyer": AMOUNT, "merchant_pending": 0, "fee_revenue": 0, "escrow": 0}
    t.advance(800 * H)  # no deadline left to fire
    assert t.trade(tid, buyer)["status"] == "TRADE_CLOSED"
    t.ledger_ok()


def test_return_deadlines(t: RefundEnv) -> None:
    shop, buyer = t.merchant(), t.user("buyer@example.com", fund=2 * AMOUNT)
    # Goods never shipped back: the request closes and the confirm deadline resumes.
    tid = t.paid_trade(shop, buyer, shipped=True)
    asked = t.refund(buyer, tid, AMOUNT)
    t.approve(shop, asked["id"], return_goods=True)
    t.advance(168 * H - 1)
    assert t.get_refund(asked["id"], buyer)["status"] == "WAIT_BUYER_RETURN_GOODS"
    t.advance(1)
    closed = t.get_refund(asked["id"], buyer)
    assert (closed["status"], closed["close_reason"]) == ("REFUND_CLOSED", "return_timeout")
    assert t.trade(tid, buyer)["status"] == "WAIT_BUYER_CONFIRM_GOODS"
    t.advance(240 * H)
    assert t.trade(tid, buyer)["status"] == "TRADE_FINISHED"
    # Shipped back, never confirmed by the merchant: the buyer is refunded.
    other = t.paid_trade(shop, buyer, "order-2", shipped=True)
    asked = t.refund(buyer, other, 3_000, "rf-2")
    t.approve(shop, asked["id"], return_goods=True)
    t.ship_back(buyer, asked["id"])
    t.advance(240 * H - 1)
    assert t.get_refund(asked["id"], buyer)["status"] == "WAIT_SELLER_CONFIRM_GOODS"
    t.advance(1)
    assert t.get_refund(asked["id"], buyer)["status"] == "REFUND_SUCCESS"
    assert t.trade(other, buyer)["refunded_amount"] == 3_000
    t.ledger_ok()


def test_return_only_for_shipped_goods_and_ship_timeout_closes_requests(t: RefundEnv) -> None:
    shop, buyer = t.merchant(), t.user("buyer@example.com", fund=AMOUNT)
    tid = t.paid_trade(shop, buyer, ship_within_hours=48)
    asked = t.refund(buyer, tid, 1_000)
    with pytest.raises(Conflict) as nothing_to_return:
        t.approve(shop, asked["id"], return_goods=True)
    assert nothing_to_return.value.param == "return_goods"
    with pytest.raises(NotFound):
        t.approve(buyer, asked["id"])  # a buyer never approves
    with pytest.raises(NotFound):
        t.ship_back(shop, asked["id"])  # a merchant never ships back
    t.advance(48 * H)  # not shipped in time: everything goes back, the request with it
    assert t.trade(tid, buyer)["status"] == "TRADE_CLOSED"
    closed = t.get_refund(asked["id"], buyer)
    assert (closed["status"], closed["close_reason"]) == ("REFUND_CLOSED", "trade_closed")
    assert t.money(buyer, shop)["buyer"] == AMOUNT
    t.advance(72 * H)  # the request's own deadline finds it closed
    assert t.money(buyer, shop)["buyer"] == AMOUNT and t.refund_events() == []
    t.ledger_ok()


@pytest.mark.parametrize("mode", ["escrow", "instant"])
def test_racing_refunds_never_pass_what_was_paid(t: RefundEnv, mode: str) -> None:
    shop, buyer = t.merchant(), t.user("buyer@example.com", fund=AMOUNT)
    tid = t.paid_trade(shop, buyer, mode=mode)
    p = t.platform
    barrier = threading.Barrier(8)
    results: list[str] = []

    def attempt(n: int) -> None:
        new = NewRefund(out_refund_no=f"race-{n}", amount=3_000, reason="race")
        barrier.wait()
        try:
            p.db.run(lambda conn: refunds.create(p, conn, tid, shop.id, new))
            results.append("ok")
        except TrustPayError as err:
            results.append(err.code)

    threads = [threading.Thread(target=attempt, args=(n,)) for n in range(8)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    assert sorted(results) == ["ok"] * 3 + ["refund_exceeds_paid"] * 5, results
    trade = t.trade(tid, buyer)
    assert trade["refunded_amount"] == 9_000 and trade["status"] != "TRADE_CLOSED"
    assert t.money(buyer, shop)["buyer"] == 9_000
    assert len(t.refund_events()) == 3
    run_until_idle(p)
    t.ledger_ok()
