"""The checkout page in headless Chromium on a phone, against the real server: a
merchant creates an escrow trade with its secret key (API); a shopper who is not
signed in opens the checkout link, logs in and comes back, pays with balance and
payment password; the merchant ships (API); the shopper confirms receipt from
"my purchases"; the merchant's pending settlement holds amount − fee."""

from __future__ import annotations

import re
import time
from pathlib import Path

import httpx
import pytest
from playwright.sync_api import Browser, BrowserContext, Page, ViewportSize, expect

from tests.e2e.conftest import Server
from tests.e2e.test_wallet_pages import PAY_PW, sign_up

pytestmark = pytest.mark.e2e

MOBILE: ViewportSize = {"width": 390, "height": 844}
PASSWORD = "copper kite 48 meadow"
SHOP = "tea.shop.checkout.e2e@example.com"
SHOPPER = "shopper.checkout.e2e@example.com"
AMOUNT = 12_800  # ¥128.00
SETTLE_TIMEOUT_S = 20.0


def phone(browser: Browser, opened: list[BrowserContext]) -> Page:
    ctx = browser.new_context(viewport=MOBILE, locale="en-GB", is_mobile=True, has_touch=True,
                              device_scale_factor=2)
    opened.append(ctx)
    return ctx.new_page()


def api(server: Server) -> httpx.Client:
    return httpx.Client(base_url=server.base_url, timeout=10.0)


def token(http: httpx.Client, email: str) -> dict[str, str]:
    r = http.post("/v1/sessions", json={"email": email, "password": PASSWORD})
    assert r.status_code == 201, r.text
    return {"authorization": f"Bearer {r.json()['token']}"}


def merchant_key(http: httpx.Client) -> dict[str, str]:
    r = http.post("/v1/users", json={"email": SHOP, "password": PASSWORD, "name": "Hangzhou Tea House",
                                     "kind": "merchant"})
    assert r.status_code == 201, r.text
    r = http.post("/v1/merchant/api-keys", json={"label": "shop"}, headers=token(http, SHOP))
    assert r.status_code == 201, r.text
    return {"authorization": f"Bearer {r.json()['secret']}"}


def top_up(http: httpx.Client, who: dict[str, str], amount: int) -> None:
    r = http.post("/v1/bank-cards", json={"bank": "sandbox", "card_number": "4111111111111111",
                                          "holder_name": "Shopper"}, headers=who)
    assert r.status_code == 201, r.text
    r = http.post("/v1/topups", json={"card": r.json()["id"], "amount": amount, "currency": "CNY"}, headers=who)
    assert r.status_code == 201, r.text
    top = r.json()["id"]
    deadline = time.monotonic() + SETTLE_TIMEOUT_S
    while http.get(f"/v1/topups/{top}", headers=who).json()["status"] != "succeeded":
        assert time.monotonic() < deadline, "the sandbox bank did not settle the top-up"
        time.sleep(0.2)


def test_checkout_pay_ship_confirm(server: Server, browser: Browser, contexts: list[BrowserContext],
                                   screenshots_dir: object) -> None:
    shots = Path(str(screenshots_dir))
    http = api(server)
    key = merchant_key(http)
    r = http.post("/v1/trades", headers=key, json={"out_trade_no": "TEA-2026-0001", "amount": AMOUNT,
                                                   "subject": "Longjing green tea, 250 g", "mode": "escrow",
                                                   "ship_within_hours": 48})
    assert r.status_code == 201, r.text
    trade = r.json()
    checkout = server.url(trade["checkout_url"])

    page = phone(browser, contexts)
    sign_up(page, server, "Li Na", SHOPPER)  # signs in; log out to arrive as a stranger would
    page.get_by_test_id("logout").click()
    top_up(http, token(http, SHOPPER), 50_000)

    # Signed out, the link shows the order and a log-in that comes back to it.
    for lang in ("en", "zh-Hans", "zh-Hant"):
        page.goto(f"{checkout}?lang={lang}")
        expect(page.get_by_test_id("escrow-explained")).to_be_visible()
        page.screenshot(path=str(shots / f"checkout-{lang}.png"), full_page=True)
    page.goto(f"{checkout}?lang=en")
    expect(page.get_by_test_id("merchant-name")).to_have_text("Hangzhou Tea House")
    expect(page.get_by_test_id("amount")).to_contain_text("128.00")
    expect(page.get_by_test_id("qr")).to_be_visible()
    page.get_by_test_id("login-to-pay").click()
    page.fill("input[name=email]", SHOPPER)
    page.fill("input[name=password]", PASSWORD)
    page.click("form.form button[type=submit]")
    expect(page).to_have_url(re.compile(re.escape(trade["checkout_url"]) + "$"))

    expect(page.get_by_test_id("balance")).to_contain_text("500.00")
    expect(page.get_by_test_id("fee")).to_contain_text("0.77")  # 0.6 % of ¥128.00 = 0.768 → 0.77
    page.get_by_test_id("payment-password").fill(PAY_PW)
    page.get_by_test_id("pay").click()
    expect(page.get_by_test_id("alert-info")).to_be_visible()
    expect(page.get_by_test_id("checkout")).to_have_attribute("data-status", "WAIT_SELLER_SEND_GOODS")
    page.screenshot(path=str(shots / "checkout-paid-en.png"), full_page=True)

    r = http.post(f"/v1/trades/{trade['id']}/ship", headers=key,
                  json={"carrier": "SF Express", "tracking_no": "SF1029384756"})
    assert r.status_code == 200 and r.json()["status"] == "WAIT_BUYER_CONFIRM_GOODS", r.text

    page.get_by_test_id("purchases-link").click()
    row = page.locator(f"[data-testid=purchase][data-id='{trade['id']}']")
    expect(row).to_have_attribute("data-status", "WAIT_BUYER_CONFIRM_GOODS")
    row.locator("a[href^='/checkout/']").click()  # the order itself (the row also links refund, dispute)
    expect(page.get_by_test_id("shipping")).to_contain_text("SF1029384756")
    page.get_by_test_id("payment-password").fill(PAY_PW)
    page.get_by_test_id("confirm").click()
    expect(page.get_by_test_id("checkout")).to_have_attribute("data-status", "TRADE_FINISHED")
    page.screenshot(path=str(shots / "checkout-finished-en.png"), full_page=True)

    done = http.get(f"/v1/trades/{trade['id']}", headers=key).json()
    assert done["status"] == "TRADE_FINISHED" and done["fee"] == 77
    wallet = http.get("/v1/wallet", headers=token(http, SHOPPER)).json()["balances"]
    assert [b["available"] for b in wallet if b["currency"] == "CNY"] == [50_000 - AMOUNT]
