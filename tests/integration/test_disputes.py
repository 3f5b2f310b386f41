"""Disputes on both engines: opened from every disputable state and refused from the
others (generated from the status list), the protection period's boundary on the
test clock, the money really frozen while open, the ops ruling (one entry, the
fee in proportion, the trade's end state), evidence uploads, and the API's
answers to each party, ops and strangers."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from functools import partial
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select
from tests.integration.identity_support import PASSWORD
from tests.integration.trade_support import AMOUNT, FEE, TradeEnv, Wallet, make_trade_env

from trustpay.db.schema import audit_log, ledger_entries, ledger_holds, outbox, refunds, settlement_items
from trustpay.errors import Conflict, NotFound, TrustPayError
from trustpay.identity.audit import Origin
from trustpay.identity.service import create_ops_user
from trustpay.ledger.model import EntryDraft, credit, debit
from trustpay.merchants import service as merchant_service
from trustpay.merchants import settlement
from trustpay.trades import disputes, service
from trustpay.trades import refunds as refund_service
from trustpay.trades.dispute_model import DISPUTABLE
from trustpay.trades.disputes import EvidenceIn
from trustpay.trades.model import TradeStatus
from trustpay.trades.refunds import NewRefund
from trustpay.wallet import common

H, DAY = 3600, 86_400
PNG = b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 4


@pytest.fixture
def t(db_url: str, tmp_path: Path) -> Iterator[TradeEnv]:
    yield from make_trade_env(db_url, tmp_path, dispute_evidence_max_bytes=4096)


def open_(t: TradeEnv, who: Wallet, trade_id: str, reason: str = "Never arrived") -> Any:
    p = t.platform
    return p.db.run(lambda conn: disputes.open_dispute(p, conn, trade_id, who.id, reason=reason,
                                                       evidence=[EvidenceIn("text", text="No parcel came")]))


def ops(t: TradeEnv) -> Wallet:
    user = t.platform.db.run(lambda conn: create_ops_user(t.platform, conn, email="ops@example.com",
                                                          password=PASSWORD))
    return Wallet(user.id, "ops@example.com", t.env.token("ops@example.com"))


def rule(t: TradeEnv, op: Wallet, dispute_id: str, buyer: int, seller: int, note: str = "Photos show damage") -> Any:
    return t.client.post(f"/v1/ops/disputes/{dispute_id}/resolve", headers=op.auth,
                         json={"buyer_amount": buyer, "seller_amount": seller, "note": note})


def paid(t: TradeEnv, shop: Wallet, buyer: Wallet, no: str, *, mode: str = "escrow", ship: bool = False,
         finish: bool = False) -> str:
    tid = str(t.create(shop, no, mode=mode)["id"])
    t.pay(buyer, tid)
    if ship or finish:
        t.ship(shop, tid)
    if finish:
        t.confirm(buyer, tid)
    return tid


def event_types(t: TradeEnv) -> list[tuple[str, str | None]]:
    with t.platform.db.transaction(write=False) as conn:
        rows = conn.execute(select(outbox.c.type, outbox.c.owner_id).order_by(outbox.c.seq)).all()
    return [(r.type, r.owner_id) for r in rows if r.type.startswith("dispute.")]


# ------------------------------------------------------------------ who may open when
# How to bring a trade to each status (the allowed ones and the refused ones).
REACH: dict[TradeStatus, Callable[[TradeEnv, Wallet, Wallet, str], str]] = {
    TradeStatus.WAIT_BUYER_PAY: lambda t, s, b, no: str(t.create(s, no)["id"]),
    TradeStatus.WAIT_SELLER_SEND_GOODS: lambda t, s, b, no: paid(t, s, b, no),
    TradeStatus.WAIT_BUYER_CONFIRM_GOODS: lambda t, s, b, no: paid(t, s, b, no, ship=True),
    TradeStatus.TRADE_SUCCESS: lambda t, s, b, no: paid(t, s, b, no, mode="instant"),
    TradeStatus.TRADE_FINISHED: lambda t, s, b, no: paid(t, s, b, no, finish=True),
    TradeStatus.TRADE_CLOSED: lambda t, s, b, no: str(t.close(s, t.create(s, no)["id"])["id"]),
}


def test_every_status_is_covered() -> None:
    assert set(REACH) == set(TradeStatus)


@pytest.mark.parametrize("status", sorted(DISPUTABLE))
@pytest.mark.parametrize("side", ["buyer", "merchant"])
def test_either_side_opens_one_on_a_paid_trade(t: TradeEnv, status: TradeStatus, side: str) -> None:
    shop, buyer = t.merchant(), t.user("buyer@example.com", fund=AMOUNT)
    tid = REACH[status](t, shop, buyer, "order-1")
    assert t.trade(tid, buyer)["status"] == status.value
    who, other = (buyer, shop) if side == "buyer" else (shop, buyer)
    r = t.client.post(f"/v1/trades/{tid}/disputes", headers=who.auth,
                      json={"reason": "Not as described", "evidence": [{"kind": "text", "text": "Cracked lid"},
                                                                         {"kind": "url", "url": "https://x.test/p"}]})
    assert r.status_code == 201, r.text
    d = r.json()
    assert (d["status"], d["opened_by"], d["amount"], d["trade"]) == ("open", side, AMOUNT, tid)
    assert [(e["kind"], e["party"]) for e in d["evidence"]] == [("text", side), ("url", side)]
    assert t.trade(tid, buyer)["dispute_status"] == "open"
    assert t.client.get(f"/v1/disputes/{d['id']}", headers=other.auth).json()["id"] == d["id"]
    assert event_types(t) == [("dispute.opened", shop.id)]
    t.advance(1)  # the queued mail goes out
    assert any(n["to"] == other.email and n["subject"] == "A dispute was opened" for n in t.env.notes())
    again = t.client.post(f"/v1/trades/{tid}/disputes", headers=other.auth, json={"reason": "Me too"})
    assert (again.status_code, again.json()["error"]["code"]) == (409, "invalid_state")
    stranger = t.user("nosy@example.com")
    assert t.client.get(f"/v1/disputes/{d['id']}", headers=stranger.auth).status_code == 404
    t.ledger_ok()


@pytest.mark.parametrize("status", sorted(set(TradeStatus) - DISPUTABLE))
def test_unpaid_and_closed_trades_cannot_be_disputed(t: TradeEnv, status: TradeStatus) -> None:
    shop, buyer = t.merchant(), t.user("buyer@example.com", fund=AMOUNT)
    tid = REACH[status](t, shop, buyer, "order-1")
    for who in (shop, buyer):
        with pytest.raises(Conflict, match=status.value):
            open_(t, who, tid)
    assert t.trade(tid, shop)["dispute_status"] == "none"


def test_strangers_cannot_dispute_a_paid_trade(t: TradeEnv) -> None:
    shop, buyer, other = t.merchant(), t.user("buyer@example.com", fund=AMOUNT), t.user("x@example.com")
    tid = paid(t, shop, buyer, "order-1")
    with pytest.raises(NotFound):
        open_(t, other, tid)


@pytest.mark.parametrize("mode", ["escrow", "instant"])
def test_protection_period_boundary(t: TradeEnv, mode: str) -> None:
    shop, buyer = t.merchant(), t.user("buyer@example.com", fund=2 * AMOUNT)
    late = paid(t, shop, buyer, "late", mode=mode, finish=mode == "escrow")
    t.advance(1)
    just = paid(t, shop, buyer, "just", mode=mode, finish=mode == "escrow")
    t.advance(15 * DAY)  # "late" is now 1 s past its 15 days, "just" exactly at them
    with pytest.raises(Conflict, match="15-day protection period"):
        open_(t, buyer, late)
    assert open_(t, buyer, just)["status"] == "open"


# ------------------------------------------------------------------ frozen money
def test_escrow_money_is_frozen_while_open(t: TradeEnv) -> None:
    shop, buyer = t.merchant(), t.user("buyer@example.com", fund=2 * AMOUNT)
    unshipped, shipped = paid(t, shop, buyer, "a"), paid(t, shop, buyer, "b", ship=True)
    open_(t, buyer, unshipped)
    open_(t, shop, shipped)
    with pytest.raises(Conflict, match="dispute"):
        t.ship(shop, unshipped)
    with pytest.raises(Conflict, match="dispute"):
        t.confirm(buyer, shipped)
    def refund(conn: Any, tid: str) -> Any:
        return refund_service.create(t.platform, conn, tid, shop.id,
                                     NewRefund(out_refund_no=f"r-{tid}", amount=100, reason="Sorry"))
    for tid in (unshipped, shipped):
        with pytest.raises(Conflict, match="dispute"):
            t.platform.db.run(partial(refund, tid=tid))
    t.advance(40 * DAY)  # past the ship and confirm deadlines: neither refunds nor finishes
    assert [t.trade(x, buyer)["status"] for x in (unshipped, shipped)] == ["WAIT_SELLER_SEND_GOODS",
                                                                           "WAIT_BUYER_CONFIRM_GOODS"]
    assert t.money(buyer, shop) == {"buyer": 0, "merchant_pending": 0, "fee_revenue": 0, "escrow": 2 * AMOUNT}
    t.ledger_ok()


def test_an_open_refund_request_gives_way_to_the_dispute(t: TradeEnv) -> None:
    shop, buyer = t.merchant(), t.user("buyer@example.com", fund=AMOUNT)
    tid = paid(t, shop, buyer, "a", ship=True)
    asked = t.platform.db.run(lambda conn: refund_service.create(
        t.platform, conn, tid, buyer.id, NewRefund(out_refund_no="ask-1", amount=AMOUNT, reason="Broken")))
    assert asked["status"] == "WAIT_SELLER_AGREE"
    open_(t, buyer, tid)
    with t.platform.db.transaction(write=False) as conn:
        row = conn.execute(select(refunds.c.status, refunds.c.close_reason)).one()
    assert tuple(row) == ("REFUND_CLOSED", "disputed")


def test_a_finished_trade_is_held_then_ruled_from_the_merchants_pending_money(t: TradeEnv) -> None:
    shop, buyer, op = t.merchant(), t.user("buyer@example.com", fund=AMOUNT), None
    tid = paid(t, shop, buyer, "a", finish=True)
    before = t.money(buyer, shop)
    assert before == {"buyer": 0, "merchant_pending": AMOUNT - FEE, "fee_revenue": FEE, "escrow": 0}
    d = open_(t, buyer, tid)
    with t.platform.db.transaction(write=False) as conn:
        hold = conn.execute(select(ledger_holds).where(ledger_holds.c.id == d["hold_id"])).mappings().one()
    assert (hold["amount"], hold["status"]) == (AMOUNT - FEE, "pending")  # settlement cannot pay it out
    op = ops(t)
    r = rule(t, op, d["id"], AMOUNT, 0)
    assert r.status_code == 200, r.text
    assert (r.json()["buyer_amount"], r.json()["seller_fee"]) == (AMOUNT, 0)
    assert t.money(buyer, shop) == {"buyer": AMOUNT, "merchant_pending": 0, "fee_revenue": 0, "escrow": 0}
    trade = t.trade(tid, buyer)
    assert (trade["status"], trade["dispute_status"], trade["refunded_amount"], trade["close_reason"]) == (
        "TRADE_CLOSED", "resolved", AMOUNT, "dispute_ruling")
    t.ledger_ok()


# ------------------------------------------------------------------ the ruling
def test_ops_splits_an_escrow_trade_in_one_entry_with_the_fee_in_proportion(t: TradeEnv) -> None:
    shop, buyer = t.merchant(), t.user("buyer@example.com", fund=AMOUNT)
    tid = paid(t, shop, buyer, "a", ship=True)
    d = open_(t, buyer, tid)
    op = ops(t)
    for b, s in ((2_500, 7_499), (2_500, 7_501), (-1, AMOUNT + 1)):
        bad = rule(t, op, d["id"], b, s)
        assert (bad.status_code, bad.json()["error"]["code"]) == (400, "invalid_split")
    assert rule(t, buyer, d["id"], 2_500, 7_500).status_code == 404  # parties do not rule
    with t.platform.db.transaction(write=False) as conn:
        entries_before = conn.execute(select(ledger_entries.c.id)).all()
    r = rule(t, op, d["id"], 2_500, 7_500)
    assert r.status_code == 200, r.text
    body = r.json()
    assert (body["status"], body["buyer_amount"], body["seller_amount"], body["seller_fee"]) == (
        "resolved", 2_500, 7_500, 45)  # 0.6 % of 7 500
    with t.platform.db.transaction(write=False) as conn:
        assert len(conn.execute(select(ledger_entries.c.id)).all()) == len(entries_before) + 1
        assert conn.execute(select(audit_log.c.event).where(audit_log.c.user_id == op.id,
                                                            audit_log.c.resource == d["id"])).scalar() \
            == "dispute.resolved"
    assert t.money(buyer, shop) == {"buyer": 2_500, "merchant_pending": 7_455, "fee_revenue": 45, "escrow": 0}
    trade = t.trade(tid, buyer)
    assert (trade["status"], trade["dispute_status"], trade["refunded_amount"]) == ("TRADE_FINISHED", "resolved",
                                                                                     2_500)
    assert event_types(t) == [("dispute.opened", shop.id), ("dispute.resolved", shop.id)]
    t.advance(1)  # the queued mail goes out
    told = {n["to"] for n in t.env.notes() if "resolved" in n["subject"]}
    assert told == {buyer.email, shop.email}
    again = rule(t, op, d["id"], 2_500, 7_500)
    assert (again.status_code, again.json()["error"]["code"]) == (409, "invalid_state")
    t.advance(40 * DAY)  # the old confirm deadline was cancelled: nothing moves any more
    assert t.money(buyer, shop)["escrow"] == 0
    t.ledger_ok()


def test_a_partly_refunded_instant_trade_is_split_on_what_is_left(t: TradeEnv) -> None:
    shop, buyer = t.merchant(), t.user("buyer@example.com", fund=AMOUNT)
    tid = paid(t, shop, buyer, "a", mode="instant")
    t.platform.db.run(lambda conn: refund_service.create(
        t.platform, conn, tid, shop.id, NewRefund(out_refund_no="r-1", amount=4_000, reason="One cup missing")))
    assert t.money(buyer, shop) == {"buyer": 4_000, "merchant_pending": 6_000 - 36, "fee_revenue": 36, "escrow": 0}
    d = open_(t, buyer, tid)
    assert d["amount"] == 6_000
    r = rule(t, ops(t), d["id"], 1_000, 5_000)
    assert r.status_code == 200, r.text
    assert r.json()["seller_fee"] == 30  # 0.6 % of 5 000, the trade's fee in proportion
    assert t.money(buyer, shop) == {"buyer": 5_000, "merchant_pending": 4_970, "fee_revenue": 30, "escrow": 0}
    assert t.trade(tid, buyer)["status"] == "TRADE_FINISHED"
    t.ledger_ok()


# ------------------------------------------------------------------ evidence
def test_evidence_files_are_sniffed_and_size_checked(t: TradeEnv) -> None:
    shop, buyer = t.merchant(), t.user("buyer@example.com", fund=AMOUNT)
    tid = paid(t, shop, buyer, "a", ship=True)
    d = open_(t, buyer, tid)
    url = f"/v1/disputes/{d['id']}/evidence"
    # The header claims a program; the bytes are a PNG: the bytes win.
    ok = t.client.post(url, headers=buyer.auth, files={"file": ("../../photo.png", PNG, "application/x-msdownload")})
    assert ok.status_code == 201, ok.text
    f = ok.json()["evidence"][-1]
    assert (f["kind"], f["content_type"], f["size"], f["file_name"]) == ("file", "image/png", len(PNG), "....photo.png")
    for data, code in ((b"MZ\x90\x00" + b"\0" * 100, "unsupported_file_type"), (PNG * 5, "file_too_large"),
                       (b"", "empty_file")):
        bad = t.client.post(url, headers=shop.auth, files={"file": ("x.png", data, "image/png")})
        assert (bad.status_code, bad.json()["error"]["code"]) == (400, code), bad.text
    words = t.client.post(url, headers=shop.auth, data={"text": "Sent with tracking SF1234567890"})
    assert words.status_code == 201, words.text
    assert [e["party"] for e in words.json()["evidence"]] == ["buyer", "buyer", "merchant"]
    got = t.client.get(f["download_url"], headers=shop.auth)
    assert (got.status_code, got.content, got.headers["content-type"]) == (200, PNG, "image/png")
    assert got.headers["content-disposition"].startswith("attachment")
    op = ops(t)
    assert t.client.get(f["download_url"], headers=op.auth).status_code == 200
    stranger = t.user("nosy@example.com")
    assert t.client.get(f["download_url"], headers=stranger.auth).status_code == 404
    assert t.client.post(url, headers=stranger.auth, data={"text": "hi"}).status_code == 404
    assert rule(t, op, d["id"], 0, AMOUNT).status_code == 200
    late = t.client.post(url, headers=buyer.auth, data={"text": "one more"})
    assert (late.status_code, late.json()["error"]["code"]) == (409, "invalid_state")


def test_the_ops_queue_shows_open_disputes_first_with_their_timeline(t: TradeEnv) -> None:
    shop, buyer = t.merchant(), t.user("buyer@example.com", fund=2 * AMOUNT)
    first, second = paid(t, shop, buyer, "a", ship=True), paid(t, shop, buyer, "b")
    d1 = open_(t, buyer, first)
    t.advance(60)
    d2 = open_(t, shop, second)
    op = ops(t)
    assert rule(t, op, d1["id"], AMOUNT, 0).status_code == 200
    assert t.client.get("/v1/ops/disputes", headers=buyer.auth).status_code == 404
    q = t.client.get("/v1/ops/disputes", headers=op.auth).json()
    assert [(x["id"], x["status"]) for x in q["data"]] == [(d2["id"], "open"), (d1["id"], "resolved")]
    story = [e["what"] for e in q["data"][1]["timeline"]]
    assert story == ["trade.created", "trade.paid", "trade.shipped", "dispute.opened", "evidence.added",
                     "dispute.resolved"]
    one = t.client.get(f"/v1/ops/disputes/{d2['id']}", headers=op.auth).json()
    assert one["trade_detail"]["id"] == second


def test_bad_input_is_refused_clearly(t: TradeEnv) -> None:
    shop, buyer = t.merchant(), t.user("buyer@example.com", fund=AMOUNT)
    tid = paid(t, shop, buyer, "a")
    for body, param in (({"reason": ""}, "reason"),
                        ({"reason": "x", "evidence": [{"kind": "file"}]}, "evidence[0].kind"),
                        ({"reason": "x", "evidence": [{"kind": "url", "url": "javascript:alert(1)"}]},
                         "evidence[0].url"),
                        ({"reason": "x", "evidence": [{"kind": "text", "text": " "}]}, "evidence[0].text")):
        r = t.client.post(f"/v1/trades/{tid}/disputes", headers=buyer.auth, json=body)
        assert (r.status_code, r.json()["error"].get("param")) == (400, param), r.text
    assert t.trade(tid, buyer)["dispute_status"] == "none"


def test_a_settled_trade_cannot_be_held(t: TradeEnv) -> None:
    """Once its money left the pending account (here: spent by another road), opening is refused."""
    shop, buyer = t.merchant(), t.user("buyer@example.com", fund=AMOUNT)
    tid = paid(t, shop, buyer, "a", finish=True)
    pending = t.platform.db.run(lambda conn: service.merchant_pending_account(t.platform, conn, shop.id, "CNY"))
    wallet = t.platform.db.run(lambda conn: common.recipient_wallet(t.platform, conn, shop.id, "CNY"))
    t.platform.db.run(lambda conn: t.platform.book.post(conn, EntryDraft(
        (debit(pending, AMOUNT - FEE, "CNY"), credit(wallet, AMOUNT - FEE, "CNY")), reference="test")))
    with pytest.raises(TrustPayError, match="left the merchant"):
        open_(t, buyer, tid)
    assert t.trade(tid, buyer)["dispute_status"] == "none"


def test_settlement_waits_for_the_ruling_then_pays_the_sellers_share(t: TradeEnv) -> None:
    shop, buyer = t.merchant(), t.user("buyer@example.com", fund=2 * AMOUNT)
    r = t.client.post("/v1/bank-cards", json={"bank": "sandbox", "card_number": "4111111111111111",
                                              "holder_name": "Shop"}, headers=shop.auth)
    assert r.status_code == 201, r.text
    p = t.platform
    p.db.run(lambda conn: merchant_service.update_profile(p, conn, shop.id, origin=Origin(),
                                                          settlement_card_id=r.json()["id"],
                                                          settlement_delay_days=0))
    disputed, other = paid(t, shop, buyer, "a", finish=True), paid(t, shop, buyer, "b", finish=True)
    d = open_(t, buyer, disputed)
    t.advance(DAY)
    settlement.run(p, settlement.today(p))  # whether or not the daily job ran it already
    with p.db.transaction(write=False) as conn:
        batched = {row.trade_id for row in conn.execute(select(settlement_items.c.trade_id))}
    assert batched == {other}  # the disputed trade's money stays, held
    assert rule(t, ops(t), d["id"], 4_000, 6_000).status_code == 200
    t.advance(DAY)
    settlement.run(p, settlement.today(p))
    with p.db.transaction(write=False) as conn:
        amounts = {row.trade_id: row.net for row in conn.execute(select(settlement_items.c.trade_id,
                                                                        settlement_items.c.net))}
    assert amounts == {other: AMOUNT - FEE, disputed: 6_000 - 36}
    t.ledger_ok()
