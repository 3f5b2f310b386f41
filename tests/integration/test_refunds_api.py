"""Refunds over HTTP on both engines: shapes, the one POST for both sides, the
return-of-goods steps, errors per API.md, idempotency, who sees what."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from tests.integration.identity_support import bearer
from tests.integration.refund_support import AMOUNT, FEE, RefundEnv, make_refund_env


@pytest.fixture
def t(db_url: str, tmp_path: Path) -> Iterator[RefundEnv]:
    yield from make_refund_env(db_url, tmp_path)


def post(t: RefundEnv, path: str, who: dict[str, str], body: Any = None, key: str | None = None) -> httpx.Response:
    headers = dict(who)
    if key:
        headers["Idempotency-Key"] = key
    r: httpx.Response = t.client.post(path, json=body, headers=headers)
    return r


def secret_key(t: RefundEnv, shop: Any) -> tuple[dict[str, str], str]:
    r = t.client.post("/v1/merchant/api-keys", json={"label": "backend"}, headers=shop.auth)
    assert r.status_code == 201, r.text
    return bearer(r.json()["secret"]), r.json()["id"]


def refund_body(amount: int, out_refund_no: str = "R1", reason: str = "Out of stock") -> dict[str, Any]:
    return {"amount": amount, "reason": reason, "out_refund_no": out_refund_no}


def test_merchant_refunds_over_http(t: RefundEnv) -> None:
    shop, buyer = t.merchant(), t.user("buyer@example.com", fund=AMOUNT)
    key, _ = secret_key(t, shop)
    tid = t.paid_trade(shop, buyer, mode="instant")
    r = post(t, f"/v1/trades/{tid}/refunds", key, refund_body(4_000), key="idem-1")
    assert r.status_code == 201, r.text
    refund = r.json()
    assert refund["id"].startswith("rf_")
    assert {k: refund[k] for k in ("object", "trade", "out_refund_no", "requested_by", "amount", "currency",
                                   "reason", "status", "fee_reversed", "return_shipping", "close_reason",
                                   "respond_by")} == {
        "object": "refund", "trade": tid, "out_refund_no": "R1", "requested_by": "merchant", "amount": 4_000,
        "currency": "CNY", "reason": "Out of stock", "status": "REFUND_SUCCESS", "fee_reversed": 24,
        "return_shipping": None, "close_reason": None, "respond_by": None}
    again = post(t, f"/v1/trades/{tid}/refunds", key, refund_body(4_000), key="idem-1")
    assert again.status_code == 201 and again.content == r.content
    same_no = post(t, f"/v1/trades/{tid}/refunds", key, refund_body(4_000))
    assert (same_no.status_code, same_no.json()["id"]) == (201, refund["id"])
    dup = post(t, f"/v1/trades/{tid}/refunds", key, refund_body(4_001))
    assert (dup.status_code, dup.json()["error"]["code"]) == (409, "already_exists")
    over = post(t, f"/v1/trades/{tid}/refunds", key, refund_body(6_001, "R2"))
    assert (over.status_code, over.json()["error"]["code"], over.json()["error"]["param"]) == (
        400, "refund_exceeds_paid", "amount")
    for bad in ({"amount": "12"}, {"amount": 0}, {"out_refund_no": ""}, {"reason": ""}):
        r = post(t, f"/v1/trades/{tid}/refunds", key, {**refund_body(100, "R3"), **bad})
        assert r.status_code == 400, (bad, r.text)
    trade = t.client.get(f"/v1/trades/{tid}", headers=buyer.auth).json()
    assert (trade["refunded_amount"], trade["status"]) == (4_000, "TRADE_SUCCESS")
    assert t.balance(buyer)["available"] == 4_000
    listed = t.client.get(f"/v1/trades/{tid}/refunds", headers=buyer.auth).json()
    assert [x["id"] for x in listed["data"]] == [refund["id"]] and listed["has_more"] is False
    assert t.client.get(f"/v1/refunds/{refund['id']}", headers=buyer.auth).json()["amount"] == 4_000
    rest = post(t, f"/v1/trades/{tid}/refunds", shop.auth, refund_body(6_000, "R2"))  # the session works too
    assert rest.status_code == 201 and rest.json()["fee_reversed"] == FEE - 24
    assert t.client.get(f"/v1/trades/{tid}", headers=key).json()["status"] == "TRADE_CLOSED"
    t.ledger_ok()


def test_buyer_asks_merchant_wants_the_goods_back(t: RefundEnv) -> None:
    shop, buyer = t.merchant(), t.user("buyer@example.com", fund=AMOUNT)
    key, _ = secret_key(t, shop)
    tid = t.paid_trade(shop, buyer, shipped=True)
    r = post(t, f"/v1/trades/{tid}/refunds", buyer.auth, refund_body(AMOUNT, "B1", "Wrong colour"))
    assert r.status_code == 201, r.text
    rid = r.json()["id"]
    assert (r.json()["status"], r.json()["requested_by"], r.json()["respond_by"]) == (
        "WAIT_SELLER_AGREE", "buyer", "2026-01-04T00:00:00Z")
    assert post(t, f"/v1/refunds/{rid}/approve", buyer.auth, {}).status_code == 404  # not the buyer's to decide
    r = post(t, f"/v1/refunds/{rid}/approve", key, {"return_goods": True})
    assert r.status_code == 200 and r.json()["status"] == "WAIT_BUYER_RETURN_GOODS"
    r = post(t, f"/v1/refunds/{rid}/return-goods", buyer.auth, {"carrier": "YTO", "tracking_no": "YT1"})
    assert r.status_code == 200, r.text
    assert (r.json()["status"], r.json()["return_shipping"]) == (
        "WAIT_SELLER_CONFIRM_GOODS", {"carrier": "YTO", "tracking_no": "YT1"})
    again = post(t, f"/v1/refunds/{rid}/return-goods", buyer.auth, {"carrier": "YTO", "tracking_no": "YT1"})
    assert (again.status_code, again.json()["error"]["code"]) == (409, "invalid_state")
    r = post(t, f"/v1/refunds/{rid}/confirm-goods", key)
    assert r.status_code == 200 and r.json()["status"] == "REFUND_SUCCESS"
    assert t.balance(buyer)["available"] == AMOUNT
    assert t.client.get(f"/v1/trades/{tid}", headers=buyer.auth).json()["close_reason"] == "refunded"
    t.ledger_ok()


def test_reject_refuse_and_cancel_over_http(t: RefundEnv) -> None:
    shop, buyer = t.merchant(), t.user("buyer@example.com", fund=AMOUNT)
    tid = t.paid_trade(shop, buyer, shipped=True)
    rid = post(t, f"/v1/trades/{tid}/refunds", buyer.auth, refund_body(1_000, "B1")).json()["id"]
    r = post(t, f"/v1/refunds/{rid}/reject", shop.auth, {"answer": "Works as described"})
    assert (r.status_code, r.json()["status"], r.json()["close_reason"], r.json()["answer"]) == (
        200, "REFUND_CLOSED", "seller_rejected", "Works as described")
    rid = post(t, f"/v1/trades/{tid}/refunds", buyer.auth, refund_body(1_000, "B2")).json()["id"]
    post(t, f"/v1/refunds/{rid}/approve", shop.auth, {"return_goods": True})
    post(t, f"/v1/refunds/{rid}/return-goods", buyer.auth, {"carrier": "YTO", "tracking_no": "YT2"})
    assert post(t, f"/v1/refunds/{rid}/refuse-goods", shop.auth, {"answer": ""}).status_code == 400
    r = post(t, f"/v1/refunds/{rid}/refuse-goods", shop.auth, {"answer": "Box arrived empty"})
    assert (r.status_code, r.json()["close_reason"]) == (200, "seller_refused_goods")
    rid = post(t, f"/v1/trades/{tid}/refunds", buyer.auth, refund_body(1_000, "B3")).json()["id"]
    conflict = post(t, f"/v1/trades/{tid}/confirm", buyer.auth, {"payment_password": "246810"})
    assert (conflict.status_code, conflict.json()["error"]["code"]) == (409, "invalid_state")
    r = post(t, f"/v1/refunds/{rid}/cancel", buyer.auth)
    assert (r.status_code, r.json()["close_reason"]) == (200, "buyer_cancelled")
    assert post(t, f"/v1/trades/{tid}/confirm", buyer.auth, {"payment_password": "246810"}).status_code == 200
    assert [x["status"] for x in t.client.get(f"/v1/trades/{tid}/refunds", headers=shop.auth).json()["data"]] == [
        "REFUND_CLOSED"] * 3
    assert t.balance(buyer)["available"] == 0
    t.ledger_ok()


def test_outsiders_and_revoked_keys(t: RefundEnv) -> None:
    shop, buyer = t.merchant(), t.user("buyer@example.com", fund=AMOUNT)
    stranger, other_shop = t.user("stranger@example.com"), t.merchant("other@example.com")
    key, key_id = secret_key(t, shop)
    tid = t.paid_trade(shop, buyer)
    rid = post(t, f"/v1/trades/{tid}/refunds", key, refund_body(100)).json()["id"]
    for who in (stranger.auth, other_shop.auth):
        assert post(t, f"/v1/trades/{tid}/refunds", who, refund_body(100, "X")).status_code == 404
        assert t.client.get(f"/v1/trades/{tid}/refunds", headers=who).status_code == 404
        missing = t.client.get(f"/v1/refunds/{rid}", headers=who)
        assert missing.status_code == 404 and missing.json()["error"]["message"] == f"no refund {rid}"
    assert t.client.get("/v1/refunds/rf_00000000000000000000000000", headers=shop.auth).status_code == 404
    assert t.client.post(f"/v1/trades/{tid}/refunds", json=refund_body(100, "Y")).status_code == 401
    r = t.client.delete(f"/v1/merchant/api-keys/{key_id}", headers=shop.auth)
    assert r.status_code == 200, r.text
    revoked = post(t, f"/v1/trades/{tid}/refunds", key, refund_body(100, "Z"))
    assert revoked.status_code == 401
    assert t.balance(buyer)["available"] == 100
