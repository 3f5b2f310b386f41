"""Trades over HTTP on both engines: a merchant's secret key creates the trade, a
buyer's session pays and confirms, the key ships; shapes per API.md, who may see
what, idempotency, duplicate out_trade_no, a revoked key, the test-clock route."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from tests.integration.identity_support import bearer
from tests.integration.trade_support import AMOUNT, FEE, PAY_PW, TradeEnv, Wallet, make_trade_env


@pytest.fixture
def t(db_url: str, tmp_path: Path) -> Iterator[TradeEnv]:
    yield from make_trade_env(db_url, tmp_path, test_clock=True)


def secret_key(t: TradeEnv, shop: Wallet) -> dict[str, str]:
    r = t.client.post("/v1/merchant/api-keys", json={"label": "shop backend"}, headers=shop.auth)
    assert r.status_code == 201, r.text
    return bearer(r.json()["secret"])


def new_trade(t: TradeEnv, key: dict[str, str], out_trade_no: str = "order-1", **extra: Any) -> httpx.Response:
    body = {"out_trade_no": out_trade_no, "amount": AMOUNT, "currency": "CNY", "subject": "Tea set", **extra}
    r: httpx.Response = t.client.post("/v1/trades", json=body, headers=key)
    return r


def post(t: TradeEnv, path: str, who: dict[str, str], body: Any = None, key: str | None = None) -> httpx.Response:
    headers = dict(who)
    if key:
        headers["Idempotency-Key"] = key
    r: httpx.Response = t.client.post(path, json=body, headers=headers)
    return r


def test_escrow_flow_over_http(t: TradeEnv) -> None:
    shop = t.merchant()
    key = secret_key(t, shop)
    buyer = t.user("buyer@example.com", fund=30_000)
    r = new_trade(t, key, ship_within_hours=72)
    assert r.status_code == 201, r.text
    trade = r.json()
    tid = trade["id"]
    assert tid.startswith("trd_")
    assert {k: trade[k] for k in ("object", "out_trade_no", "merchant", "buyer", "mode", "status", "amount",
                                  "currency", "subject", "fee", "refunded_amount", "dispute_status",
                                  "shipping", "close_reason")} == {
        "object": "trade", "out_trade_no": "order-1", "merchant": shop.id, "buyer": None, "mode": "escrow",
        "status": "WAIT_BUYER_PAY", "amount": AMOUNT, "currency": "CNY", "subject": "Tea set", "fee": FEE,
        "refunded_amount": 0, "dispute_status": "none", "shipping": None, "close_reason": None}
    assert trade["checkout_url"] == f"/checkout/{tid}" and trade["qr_code_url"] == f"/checkout/{tid}/qr.svg"
    d = trade["deadlines"]
    assert (d["pay_within_minutes"], d["ship_within_hours"], d["confirm_within_hours"]) == (30, 72, 240)
    assert d["pay_by"] == "2026-01-01T00:30:00Z" and d["ship_by"] is None

    # The buyer opens the checkout link: an unpaid trade is visible to whoever holds its id.
    assert t.client.get(f"/v1/trades/{tid}", headers=buyer.auth).json()["status"] == "WAIT_BUYER_PAY"
    r = post(t, f"/v1/trades/{tid}/pay", buyer.auth, {"payment_password": PAY_PW}, key="pay-1")
    assert r.status_code == 200, r.text
    assert (r.json()["status"], r.json()["buyer"]) == ("WAIT_SELLER_SEND_GOODS", buyer.id)
    assert r.json()["deadlines"]["ship_by"] == "2026-01-04T00:00:00Z"
    again = post(t, f"/v1/trades/{tid}/pay", buyer.auth, {"payment_password": PAY_PW}, key="pay-1")
    assert again.status_code == 200 and again.content == r.content  # replayed, paid once
    assert t.balance(buyer)["available"] == 30_000 - AMOUNT

    r = post(t, f"/v1/trades/{tid}/ship", key, {"carrier": "SF Express", "tracking_no": "SF1234567890"})
    assert r.status_code == 200, r.text
    assert r.json()["status"] == "WAIT_BUYER_CONFIRM_GOODS"
    assert r.json()["shipping"] == {"carrier": "SF Express", "tracking_no": "SF1234567890"}

    r = post(t, f"/v1/trades/{tid}/confirm", buyer.auth, {"payment_password": "000000"})
    assert r.status_code == 402 and r.json()["error"]["code"] == "payment_password_invalid"
    r = post(t, f"/v1/trades/{tid}/confirm", buyer.auth, {"payment_password": PAY_PW})
    assert r.status_code == 200, r.text
    assert r.json()["status"] == "TRADE_FINISHED"
    assert t.money(buyer, shop) == {"buyer": 30_000 - AMOUNT, "merchant_pending": AMOUNT - FEE,
                                    "fee_revenue": FEE, "escrow": 0}
    # The merchant finds it by its own order number, with the key or the merchant's session.
    for who in (key, shop.auth):
        found = t.client.get("/v1/trades", params={"out_trade_no": "order-1"}, headers=who)
        assert found.status_code == 200 and found.json() == r.json()
    listed = t.client.get("/v1/trades", headers=buyer.auth).json()
    assert [x["id"] for x in listed["data"]] == [tid] and listed["has_more"] is False
    assert t.client.get("/v1/trades", params={"out_trade_no": "order-9"}, headers=key).status_code == 404
    # The buyer's statement shows the payment, to the merchant by name.
    line = t.client.get("/v1/transactions", headers=buyer.auth).json()["data"][0]
    assert (line["type"], line["amount"], line["reference"], line["counterparty"]) == ("payment", -AMOUNT, tid, "T")
    t.ledger_ok()


def test_instant_trade_over_http(t: TradeEnv) -> None:
    shop = t.merchant()
    key = secret_key(t, shop)
    buyer = t.user("buyer@example.com", fund=AMOUNT)
    tid = new_trade(t, key, mode="instant").json()["id"]
    r = post(t, f"/v1/trades/{tid}/pay", buyer.auth, {"payment_password": PAY_PW})
    assert r.status_code == 200 and r.json()["status"] == "TRADE_SUCCESS"
    r = post(t, f"/v1/trades/{tid}/ship", key, {"carrier": "SF", "tracking_no": "1"})
    assert r.status_code == 409 and r.json()["error"]["code"] == "invalid_state"
    assert t.money(buyer, shop) == {"buyer": 0, "merchant_pending": AMOUNT - FEE, "fee_revenue": FEE, "escrow": 0}


def password_free(t: TradeEnv, u: Wallet, cap: int) -> None:
    r = t.client.put("/v1/wallet/preferences", headers=u.auth,
                     json={"password_free_cap": cap, "daily_cap": None, "payment_password": PAY_PW})
    assert r.status_code == 200, r.text


def test_a_password_free_payment_is_paid_once_and_refused_as_before(t: TradeEnv) -> None:
    """A 免密 payment (no password, no code) is tried in its money transaction at once
    (idempotency.execute's ``optimistic``); a refusal takes the long way, so the
    answers are the ones the checks before the money transaction give."""
    shop = t.merchant()
    key = secret_key(t, shop)
    buyer = t.user("buyer@example.com", fund=30_000)
    password_free(t, buyer, AMOUNT)
    tid = new_trade(t, key).json()["id"]
    r = post(t, f"/v1/trades/{tid}/pay", buyer.auth, {}, key="pay-1")
    assert r.status_code == 200, r.text
    assert r.json()["status"] == "WAIT_SELLER_SEND_GOODS"
    again = post(t, f"/v1/trades/{tid}/pay", buyer.auth, {}, key="pay-1")
    assert again.headers.get("idempotent-replayed") == "true" and again.content == r.content
    # Paid already: the trade's state is the answer, with or without a password.
    r = post(t, f"/v1/trades/{tid}/pay", buyer.auth, {})
    assert r.status_code == 409 and r.json()["error"]["code"] == "invalid_state"
    assert t.balance(buyer)["available"] == 30_000 - AMOUNT
    # Over the 免密 cap the password is asked for, and nothing moves.
    password_free(t, buyer, AMOUNT - 1)
    tid2 = new_trade(t, key, "order-2").json()["id"]
    r = post(t, f"/v1/trades/{tid2}/pay", buyer.auth, {}, key="pay-2")
    assert r.status_code == 402 and r.json()["error"]["code"] == "payment_password_invalid"
    assert t.trade(tid2, shop)["status"] == "WAIT_BUYER_PAY"
    assert t.balance(buyer)["available"] == 30_000 - AMOUNT
    t.ledger_ok()


def test_who_may_see_and_act(t: TradeEnv) -> None:
    shop = t.merchant()
    key = secret_key(t, shop)
    buyer = t.user("buyer@example.com", fund=AMOUNT)
    stranger = t.user("stranger@example.com", fund=AMOUNT)
    tid = new_trade(t, key).json()["id"]
    # Personal users cannot create trades; nobody signed out can see one.
    r = new_trade(t, buyer.auth, "order-x")
    assert r.status_code == 403 and r.json()["error"]["code"] == "forbidden"
    assert t.client.get(f"/v1/trades/{tid}").status_code == 401
    # Only the merchant closes; for the buyer "close" is no action of theirs.
    r = post(t, f"/v1/trades/{tid}/close", stranger.auth)
    assert r.status_code == 404 and r.json()["error"]["code"] == "not_found"
    # A secret key never spends (not even its merchant's own wallet); the merchant's session
    # cannot pay its own trade either.
    r = post(t, f"/v1/trades/{tid}/pay", key, {"payment_password": PAY_PW})
    assert r.status_code == 403 and r.json()["error"]["code"] == "forbidden"
    assert post(t, f"/v1/trades/{tid}/pay", shop.auth, {"payment_password": PAY_PW}).status_code == 404
    assert post(t, f"/v1/trades/{tid}/pay", buyer.auth, {"payment_password": PAY_PW}).status_code == 200
    # Paid: the stranger now gets the same 404 as for a trade that does not exist.
    theirs = t.client.get(f"/v1/trades/{tid}", headers=stranger.auth)
    ghost = t.client.get("/v1/trades/trd_0000000000000000000000000a", headers=stranger.auth)
    assert theirs.status_code == ghost.status_code == 404
    assert post(t, f"/v1/trades/{tid}/pay", stranger.auth, {"payment_password": PAY_PW}).status_code == 404
    r = post(t, f"/v1/trades/{tid}/close", key)
    assert r.status_code == 409 and r.json()["error"]["code"] == "invalid_state"
    # Order numbers are per merchant: another merchant (or the buyer) asking for it gets 404.
    other = t.merchant("other@example.com")
    for who in (other.auth, buyer.auth):
        assert t.client.get("/v1/trades", params={"out_trade_no": "order-1"}, headers=who).status_code == 404
    assert t.balance(stranger)["available"] == AMOUNT


def test_duplicate_out_trade_no_and_bad_input(t: TradeEnv) -> None:
    shop = t.merchant()
    key = secret_key(t, shop)
    first = new_trade(t, key)
    same = new_trade(t, key)
    assert first.status_code == same.status_code == 201
    assert first.json() == same.json()
    other = new_trade(t, key, amount=AMOUNT + 1)
    assert other.status_code == 409 and other.json()["error"]["code"] == "already_exists"
    cases: list[tuple[dict[str, Any], str]] = [
        ({"amount": "100"}, "invalid_amount"), ({"amount": 1.5}, "invalid_amount"),
        ({"currency": "ABC"}, "invalid_currency"), ({"mode": "later"}, "invalid_request"),
        ({"ship_within_hours": 0}, "invalid_deadline"), ({"pay_within_minutes": "5"}, "invalid_deadline"),
    ]
    for extra, code in cases:
        r = new_trade(t, key, "order-2", **extra)
        assert r.status_code == 400 and r.json()["error"]["code"] == code, (extra, r.text)
    r = t.client.post("/v1/trades", json={"amount": AMOUNT, "subject": "x"}, headers=key)
    assert r.status_code == 400 and r.json()["error"]["param"] == "out_trade_no"


def test_revoked_key_is_refused(t: TradeEnv) -> None:
    shop = t.merchant()
    r = t.client.post("/v1/merchant/api-keys", json={}, headers=shop.auth)
    key_id, key = r.json()["id"], bearer(r.json()["secret"])
    buyer = t.user("buyer@example.com", fund=AMOUNT)
    tid = new_trade(t, key).json()["id"]
    assert post(t, f"/v1/trades/{tid}/pay", buyer.auth, {"payment_password": PAY_PW}).status_code == 200
    assert t.client.delete(f"/v1/merchant/api-keys/{key_id}", headers=shop.auth).status_code == 200
    r = post(t, f"/v1/trades/{tid}/ship", key, {"carrier": "SF", "tracking_no": "1"})
    assert r.status_code == 401 and r.json()["error"]["code"] == "invalid_credentials"
    assert new_trade(t, key, "order-2").status_code == 401
    # The merchant's own session still works.
    assert post(t, f"/v1/trades/{tid}/ship", shop.auth, {"carrier": "SF", "tracking_no": "1"}).status_code == 200


def test_timeouts_through_the_test_clock_route(t: TradeEnv) -> None:
    shop = t.merchant()
    key = secret_key(t, shop)
    buyer = t.user("buyer@example.com", fund=AMOUNT)
    unpaid = new_trade(t, key, "order-1", pay_within_minutes=10).json()["id"]
    r = t.client.post("/v1/test_clock/advance", json={"seconds": 600})
    assert r.status_code == 200, r.text
    got = t.client.get(f"/v1/trades/{unpaid}", headers=key).json()
    assert (got["status"], got["close_reason"]) == ("TRADE_CLOSED", "pay_timeout")
    r = post(t, f"/v1/trades/{unpaid}/pay", buyer.auth, {"payment_password": PAY_PW})
    assert r.status_code == 409 and r.json()["error"]["code"] == "invalid_state"
    assert t.balance(buyer)["available"] == AMOUNT
    # Paid but never shipped: at the ship deadline the buyer gets it all back, shown as a refund.
    shipless = new_trade(t, key, "order-2", ship_within_hours=1).json()["id"]
    assert post(t, f"/v1/trades/{shipless}/pay", buyer.auth, {"payment_password": PAY_PW}).status_code == 200
    assert t.client.post("/v1/test_clock/advance", json={"seconds": 3600}).status_code == 200
    t.relogin(buyer)
    got = t.client.get(f"/v1/trades/{shipless}", headers=key).json()
    assert (got["status"], got["close_reason"], got["refunded_amount"]) == ("TRADE_CLOSED", "ship_timeout", AMOUNT)
    lines = t.client.get("/v1/transactions", headers=buyer.auth).json()["data"]
    assert [(x["type"], x["amount"]) for x in lines[:2]] == [("refund", AMOUNT), ("payment", -AMOUNT)]
    assert t.balance(buyer)["available"] == AMOUNT
    t.ledger_ok()
