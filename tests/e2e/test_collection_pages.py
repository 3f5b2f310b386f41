"""Collection codes and donation pages in headless Chromium on a phone, against the real
server: a merchant creates a collection code on its dashboard tab; a payer opens the code's
page, types an amount and a note, pays with balance and payment password and lands on the
paid trade; a charity's donation page takes a donation with a message, which then shows,
escaped, in the public total and the latest messages."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from playwright.sync_api import Browser, BrowserContext, Page, expect

from tests.e2e.conftest import Server
from tests.e2e.test_checkout_pages import MOBILE, PASSWORD, api, phone, token, top_up
from tests.e2e.test_wallet_pages import PAY_PW, sign_up

pytestmark = pytest.mark.e2e

SHOP = "noodles.collect.e2e@example.com"
CHARITY = "wells.collect.e2e@example.com"
PAYER = "payer.collect.e2e@example.com"


def log_in(page: Page, server: Server, email: str) -> None:
    page.goto(server.url("/login"))
    page.fill("input[name=email]", email)
    page.fill("input[name=password]", PASSWORD)
    page.click("form.form button[type=submit]")
    expect(page).not_to_have_url(re.compile(r"/login"))


def test_pay_a_collection_code_and_donate(server: Server, browser: Browser, contexts: list[BrowserContext],
                                          screenshots_dir: object) -> None:
    assert MOBILE["width"] < 500
    shots = Path(str(screenshots_dir))
    http = api(server)
    for email, name in ((SHOP, "Lanzhou Noodles"), (CHARITY, "Clear Water Fund")):
        r = http.post("/v1/users", json={"email": email, "password": PASSWORD, "name": name, "kind": "merchant"})
        assert r.status_code == 201, r.text

    shop = phone(browser, contexts)
    log_in(shop, server, SHOP)
    shop.goto(server.url("/merchant/collect?lang=en"))
    shop.get_by_test_id("code-label").fill("Counter 1")
    shop.get_by_test_id("create-code").click()
    row = shop.get_by_test_id("code-row").first
    expect(row).to_have_attribute("data-status", "active")
    code_path = str(row.get_by_test_id("code-link").get_attribute("href"))
    assert re.fullmatch(r"/pay/qrc_[0-9a-z]{26}", code_path), code_path

    payer = phone(browser, contexts)
    sign_up(payer, server, "Wang Fang", PAYER)
    top_up(http, token(http, PAYER), 50_000)
    for lang in ("en", "zh-Hans", "zh-Hant"):
        payer.goto(server.url(f"{code_path}?lang={lang}"))
        expect(payer.get_by_test_id("collect-form")).to_be_visible()
        payer.screenshot(path=str(shots / f"collect-{lang}.png"), full_page=True)
    payer.goto(server.url(f"{code_path}?lang=en"))
    expect(payer.get_by_test_id("merchant-name")).to_have_text("Lanzhou Noodles")
    expect(payer.get_by_test_id("qr")).to_be_visible()
    payer.get_by_test_id("amount").fill("23.50")
    payer.get_by_test_id("note").fill("Two bowls, table 4")
    payer.get_by_test_id("payment-password").fill(PAY_PW)
    payer.get_by_test_id("pay").click()
    expect(payer).to_have_url(re.compile(r"/checkout/trd_[0-9a-z]{26}\?notice=paid_instant$"))
    expect(payer.get_by_test_id("checkout")).to_have_attribute("data-status", "TRADE_SUCCESS")
    expect(payer.get_by_test_id("amount")).to_contain_text("23.50")

    charity = token(http, CHARITY)
    r = http.post("/v1/merchant/donation-pages", headers=charity, json={
        "title": "Wells for Yunnan", "story": "Three villages walk an hour for water.\nHelp us dig wells.",
        "goal": 1_000_000, "suggested_amounts": [1_000, 5_000]})
    assert r.status_code == 201, r.text
    donate_path = r.json()["url"]
    payer.goto(server.url(f"{donate_path}?lang=en"))
    expect(payer.get_by_test_id("donation-count")).to_have_text("0")
    payer.get_by_test_id("suggested").last.click()
    expect(payer.get_by_test_id("amount")).to_have_value("50.00")
    payer.get_by_test_id("note").fill("<b>加油</b> good luck")
    payer.get_by_test_id("payment-password").fill(PAY_PW)
    payer.get_by_test_id("donate").click()
    expect(payer.get_by_test_id("alert-info")).to_be_visible()
    expect(payer.get_by_test_id("raised")).to_contain_text("50.00")
    expect(payer.get_by_test_id("donation-count")).to_have_text("1")
    expect(payer.get_by_test_id("message-text")).to_have_text("<b>加油</b> good luck")  # shown as text
    assert payer.locator("[data-testid=message-text] b").count() == 0
    for lang in ("en", "zh-Hans", "zh-Hant"):
        payer.goto(server.url(f"{donate_path}?lang={lang}"))
        payer.screenshot(path=str(shots / f"donate-{lang}.png"), full_page=True)

    wallet = http.get("/v1/wallet", headers=token(http, PAYER)).json()["balances"]
    assert [b["available"] for b in wallet if b["currency"] == "CNY"] == [50_000 - 2_350 - 5_000]
