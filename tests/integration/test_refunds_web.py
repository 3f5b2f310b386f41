"""The refund pages over the app (cookie sessions, CSRF), on both engines: the buyer
asks from "my purchases" and ships the goods back; the merchant's trades tab lists,
filters, ships, refunds and answers requests; who may see which page."""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from tests.integration.refund_support import AMOUNT, RefundEnv, Wallet, make_refund_env

from trustpay.clock import to_utc
from trustpay.trades import disputes
from trustpay.web.auth import SESSION_COOKIE
from trustpay.web.i18n import format_timestamp

CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')
REQUEST_KEY = re.compile(r'name="request_key" value="([^"]+)"')


@pytest.fixture
def t(db_url: str, tmp_path: Path) -> Iterator[RefundEnv]:
    yield from make_refund_env(db_url, tmp_path)


def browser(t: RefundEnv, who: Wallet) -> TestClient:
    client = TestClient(t.env.app)
    client.cookies.set(SESSION_COOKIE, who.token)
    return client


def form_of(client: TestClient, url: str) -> dict[str, str]:
    r = client.get(url)
    assert r.status_code == 200, r.text
    keys = REQUEST_KEY.findall(r.text)
    return {"csrf_token": CSRF.findall(r.text)[0], **({"request_key": keys[0]} if keys else {})}


def test_buyer_asks_merchant_wants_the_goods_back(t: RefundEnv) -> None:
    shop, buyer = t.merchant(), t.user("buyer@example.com", fund=AMOUNT)
    tid = t.paid_trade(shop, buyer, shipped=True)
    me, merchant = browser(t, buyer), browser(t, shop)
    assert f'href="/purchases/{tid}/refund"' in me.get("/purchases").text
    url = f"/purchases/{tid}/refund"
    page = me.get(url, params={"lang": "en"})
    assert 'data-testid="refund-form"' in page.text and 'value="100.00"' in page.text
    form = form_of(me, url)
    over = me.post(url, data={**form, "amount": "100.01", "reason": "Wrong colour"})
    assert over.status_code == 400 and "more than what is left" in over.text
    body = {**form, "amount": "100.00", "reason": "Wrong colour"}
    first = me.post(url, data=body, follow_redirects=False)
    assert first.status_code == 303 and first.headers["location"] == f"{url}?notice=requested"
    assert me.post(url, data=body, follow_redirects=False).status_code == 303  # the same form again: once
    asked = me.get(url)
    assert 'data-testid="open-request" data-status="WAIT_SELLER_AGREE"' in asked.text
    assert 'data-testid="refund-form"' not in asked.text  # one open request at a time

    listed = merchant.get("/merchant/trades", params={"lang": "en"})
    assert f'data-id="{tid}"' in listed.text and 'data-testid="refund-open"' in listed.text
    assert f'data-id="{tid}"' not in merchant.get("/merchant/trades", params={"status": "TRADE_CLOSED"}).text
    detail = merchant.get(f"/merchant/trades/{tid}")
    rid = re.findall(r'data-testid="refund-request" data-id="([^"]+)"', detail.text)[0]
    assert 'data-testid="approve-with-return"' in detail.text
    csrf = CSRF.findall(detail.text)[0]
    r = merchant.post(f"/merchant/refunds/{rid}/approve", data={"csrf_token": csrf, "return_goods": "1"},
                      follow_redirects=False)
    assert r.headers["location"] == f"/merchant/trades/{tid}?notice=return"

    waiting = me.get(url)
    assert 'data-testid="return-form"' in waiting.text
    r = me.post(f"/purchases/refunds/{rid}/return", data={"csrf_token": CSRF.findall(waiting.text)[0],
                                                           "carrier": "YTO", "tracking_no": "YT42"},
                follow_redirects=False)
    assert r.headers["location"] == f"{url}?notice=returned"
    detail = merchant.get(f"/merchant/trades/{tid}", params={"lang": "en"})
    assert "YT42" in detail.text and 'data-testid="confirm-goods"' in detail.text
    r = merchant.post(f"/merchant/refunds/{rid}/confirm-goods", data={"csrf_token": CSRF.findall(detail.text)[0]},
                      follow_redirects=False)
    assert r.headers["location"] == f"/merchant/trades/{tid}?notice=received"
    assert t.money(buyer, shop) == {"buyer": AMOUNT, "merchant_pending": 0, "fee_revenue": 0, "escrow": 0}
    done = me.get(url)
    assert 'data-status="REFUND_SUCCESS"' in done.text and 'data-status="TRADE_CLOSED"' in done.text
    t.ledger_ok()


def test_merchant_ships_refunds_and_declines_from_the_dashboard(t: RefundEnv) -> None:
    shop, buyer = t.merchant(), t.user("buyer@example.com", fund=AMOUNT)
    tid = t.paid_trade(shop, buyer)
    merchant, me = browser(t, shop), browser(t, buyer)
    url = f"/merchant/trades/{tid}"
    form = form_of(merchant, url)
    r = merchant.post(f"{url}/ship", data={"csrf_token": form["csrf_token"], "carrier": "SF", "tracking_no": ""})
    assert r.status_code == 400 and 'data-testid="ship-form"' in r.text
    r = merchant.post(f"{url}/ship", data={"csrf_token": form["csrf_token"], "carrier": "SF", "tracking_no": "SF9"},
                      follow_redirects=False)
    assert r.headers["location"] == f"{url}?notice=shipped"
    assert t.trade(tid, shop)["status"] == "WAIT_BUYER_CONFIRM_GOODS"
    form = form_of(merchant, url)
    body = {**form, "amount": "30.00", "reason": "Late delivery"}
    assert merchant.post(f"{url}/refund", data=body, follow_redirects=False).status_code == 303
    assert merchant.post(f"{url}/refund", data=body, follow_redirects=False).status_code == 303  # resent: once
    assert t.money(buyer, shop)["buyer"] == 3_000
    bad = merchant.post(f"{url}/refund", data={**form_of(merchant, url), "amount": "3,00", "reason": "x"})
    assert bad.status_code == 400

    rid = t.refund(buyer, tid, 1_000, "B1")["id"]
    detail = merchant.get(url)
    r = merchant.post(f"/merchant/refunds/{rid}/reject", data={"csrf_token": CSRF.findall(detail.text)[0],
                                                               "answer": "Arrived intact"}, follow_redirects=False)
    assert r.headers["location"] == f"{url}?notice=rejected"
    assert "Arrived intact" in me.get(f"/purchases/{tid}/refund").text
    assert t.money(buyer, shop)["buyer"] == 3_000
    t.ledger_ok()


def test_who_sees_the_refund_pages(t: RefundEnv) -> None:
    shop, other_shop = t.merchant(), t.merchant("other@example.com")
    buyer, stranger = t.user("buyer@example.com", fund=AMOUNT), t.user("stranger@example.com")
    tid = t.paid_trade(shop, buyer)
    rid = t.refund(buyer, tid, 1_000)["id"]
    assert browser(t, stranger).get(f"/purchases/{tid}/refund").status_code == 404
    assert browser(t, shop).get(f"/purchases/{tid}/refund").status_code == 404  # the buyer's page
    assert browser(t, other_shop).get(f"/merchant/trades/{tid}").status_code == 404
    assert browser(t, buyer).get("/merchant/trades").status_code == 404  # not a merchant
    other = browser(t, other_shop)
    csrf = CSRF.findall(other.get("/merchant/api-keys").text)[0]
    assert other.post(f"/merchant/refunds/{rid}/approve", data={"csrf_token": csrf}).status_code == 404
    mine = browser(t, shop)
    assert mine.post(f"/merchant/refunds/{rid}/approve", data={"csrf_token": "forged"}).status_code == 403
    assert t.get_refund(rid, buyer)["status"] == "WAIT_SELLER_AGREE"
    assert t.money(buyer, shop)["buyer"] == 0


def test_a_blank_reason_is_asked_for_in_words_that_fit_who_is_typing(t: RefundEnv) -> None:
    shop, buyer = t.merchant(), t.user("buyer@example.com", fund=AMOUNT)
    tid = t.paid_trade(shop, buyer, shipped=True)
    merchant, me = browser(t, shop), browser(t, buyer)
    url = f"/merchant/trades/{tid}"
    blank = merchant.post(f"{url}/refund", params={"lang": "en"},
                          data={**form_of(merchant, url), "amount": "10.00", "reason": " "})
    # The merchant gives money back: never asked why they "want the money back".
    assert blank.status_code == 400 and "Give the reason for the refund in one line" in blank.text
    assert "want the money back" not in blank.text
    mine = f"/purchases/{tid}/refund"
    asked = me.post(mine, params={"lang": "en"}, data={**form_of(me, mine), "amount": "10.00", "reason": ""})
    assert asked.status_code == 400 and "Say in one line why you want the money back." in asked.text

    rid = t.refund(buyer, tid, 1_000)["id"]
    t.approve(shop, rid, return_goods=True)
    t.ship_back(buyer, rid)
    refused = merchant.post(f"/merchant/refunds/{rid}/refuse-goods", params={"lang": "en"},
                            data={"csrf_token": form_of(merchant, url)["csrf_token"], "answer": ""})
    assert refused.status_code == 400 and "what is wrong with the returned goods" in refused.text
    assert "want the money back" not in refused.text
    assert t.get_refund(rid, buyer)["status"] == "WAIT_SELLER_CONFIRM_GOODS"


def test_purchases_show_the_buyer_what_the_merchant_sees(t: RefundEnv) -> None:
    shop, buyer = t.merchant(), t.user("buyer@example.com", fund=2 * AMOUNT)
    part, asked = t.paid_trade(shop, buyer, shipped=True), t.paid_trade(shop, buyer, "order-2")
    t.refund(shop, part, 1_000, "M1")  # the merchant gives 10.00 back
    t.refund(buyer, asked, 2_500, "B1")  # the buyer asks for 25.00 back
    page = browser(t, buyer).get("/purchases", params={"lang": "en"}).text
    rows = {tid: page[page.index(f'data-id="{tid}"'):].split("</li>", 1)[0] for tid in (part, asked)}
    assert 'data-testid="line-refunded">Refunded CN¥10.00<' in rows[part]
    assert 'data-testid="refund-open"' not in rows[part]
    assert "Waiting for the merchant's answer" in rows[asked] and 'data-testid="refund-open"' in rows[asked]
    assert 'data-testid="line-refunded"' not in rows[asked]
    merchant = browser(t, shop).get("/merchant/trades", params={"lang": "en"}).text
    assert "Refunded CN¥10.00" in merchant and 'data-testid="refund-open"' in merchant  # the same two facts


def test_the_refund_page_says_why_not_and_what_to_do_instead(t: RefundEnv) -> None:
    shop, buyer = t.merchant(), t.user("buyer@example.com", fund=3 * AMOUNT)
    instant = t.paid_trade(shop, buyer, "order-1", mode="instant")
    finished = t.paid_trade(shop, buyer, "order-2", shipped=True)
    t.confirm(buyer, finished)
    me = browser(t, buyer)

    page = me.get(f"/purchases/{instant}/refund", params={"lang": "en"}).text
    assert 'data-testid="no-refund" data-why="instant"' in page and "Ask the merchant for a refund." in page
    until = to_utc(t.trade(instant, buyer)["paid_at"]) + timedelta(days=15)
    # In the display zone (Asia/Shanghai by default), the formatter saying so: "… 10:35:00 PM UTC+8".
    shown = format_timestamp(until, "en", t.platform.settings.display_timezone)
    assert shown.endswith("\u00a0UTC+8") and f"open a dispute by {shown}: TrustPay" in page
    assert f'href="/trades/{instant}/dispute" data-testid="dispute-next"' in page
    page = me.get(f"/purchases/{finished}/refund", params={"lang": "en"}).text
    assert 'data-why="finished"' in page and "Contact the merchant" in page
    assert 'data-testid="dispute-next"' in page and 'data-testid="refund-form"' not in page

    t.clock.advance(timedelta(days=16).total_seconds())  # past the protection period
    me = TestClient(t.env.app)
    me.cookies.set(SESSION_COOKIE, t.env.token("buyer@example.com"))
    page = me.get(f"/purchases/{finished}/refund", params={"lang": "en"}).text
    assert "A dispute can no longer be opened on this order." in page and 'data-testid="dispute-next"' not in page
    # The dispute page agrees: no form that opening would refuse.
    page = me.get(f"/trades/{finished}/dispute").text
    assert 'data-testid="not-disputable"' in page and 'data-testid="dispute-form"' not in page


def test_a_declined_request_points_to_a_dispute_and_an_open_one_to_its_page(t: RefundEnv) -> None:
    shop, buyer = t.merchant(), t.user("buyer@example.com", fund=AMOUNT)
    tid = t.paid_trade(shop, buyer, shipped=True)
    me, url = browser(t, buyer), f"/purchases/{tid}/refund"
    rid = t.refund(buyer, tid, 4_000)["id"]
    assert 'data-testid="dispute-hint"' not in me.get(url).text  # waiting for the answer
    t.reject(shop, rid)
    page = me.get(url, params={"lang": "en"}).text
    assert 'data-testid="dispute-hint"' in page and "open a dispute" in page
    assert f'href="/trades/{tid}/dispute" data-testid="dispute-next"' in page
    assert 'data-testid="refund-form"' in page  # asking again stays possible too

    p = t.platform
    p.db.run(lambda conn: disputes.open_dispute(p, conn, tid, buyer.id, reason="Broken on arrival"))
    page = me.get(url, params={"lang": "en"}).text
    assert 'data-why="disputed"' in page and 'data-testid="dispute-hint"' not in page
    assert f'href="/trades/{tid}/dispute" data-testid="dispute-next">See the dispute' in page
