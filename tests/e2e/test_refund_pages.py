"""Refund request in headless Chromium against the real server: a shopper pays an
escrow trade (API), the merchant ships (API); on a phone the shopper asks for the
money back from "my purchases"; on a desktop the merchant finds the request in its
dashboard's Trades tab (screenshots in en, zh-Hans, zh-Hant) and approves it; the
money is back in the shopper's wallet, the trade is closed, escrow holds nothing."""

from __future__ import annotations

from pathlib import Path

import pytest
from playwright.sync_api import Browser, BrowserContext, expect

from tests.e2e.conftest import Server
from tests.e2e.test_wallet_pages import PAY_PW
from tests.e2e.trade_pages import SHOPPER_FUNDS, log_in, moved_by_kind, new_page, shipped_escrow_trade

pytestmark = pytest.mark.e2e

SHOP = "porcelain.shop.refund.e2e@example.com"
SHOPPER = "shopper.refund.e2e@example.com"
AMOUNT = 26_800  # ¥268.00


def test_buyer_refund_request_merchant_approves(server: Server, browser: Browser, contexts: list[BrowserContext],
                                                screenshots_dir: object) -> None:
    shots = Path(str(screenshots_dir))
    setup = shipped_escrow_trade(server, browser, contexts, shop=SHOP, shopper=SHOPPER, out_trade_no="PORC-0001",
                                 amount=AMOUNT, tracking_no="EM123456789CN")
    http, key, shopper, phone, tid = setup.http, setup.key, setup.shopper, setup.phone, setup.trade_id

    # The shopper: my purchases → refund → ask for everything back.
    phone.goto(server.url("/purchases?lang=en"))
    row = phone.locator(f"[data-testid=purchase][data-id='{tid}']")
    # The refund and dispute links read as links, side by side under the order (each was a
    # block row in the list's dark text), and the order's date is not cut off.
    refund_link, dispute_link = row.get_by_test_id("refund-link"), row.get_by_test_id("dispute-link")
    assert refund_link.bounding_box()["y"] == dispute_link.bounding_box()["y"]  # type: ignore[index]
    assert refund_link.evaluate("a => [getComputedStyle(a).display, getComputedStyle(a).paddingTop]") == \
        ["block", "0px"]  # an item of the links' row, not a padded flex row of its own
    assert row.locator(".order-meta").first.evaluate("e => e.scrollWidth <= e.clientWidth")
    refund_link.click()
    expect(phone.get_by_test_id("refund-amount")).to_have_value("268.00")
    phone.get_by_test_id("refund-reason").fill("Cracked on arrival")
    phone.get_by_test_id("refund-submit").click()
    expect(phone.get_by_test_id("open-request")).to_have_attribute("data-status", "WAIT_SELLER_AGREE")
    expect(phone.get_by_test_id("alert-info")).to_be_visible()
    phone.screenshot(path=str(shots / "refund-requested-en.png"), full_page=True)
    r = http.post(f"/v1/trades/{tid}/confirm", headers=shopper, json={"payment_password": PAY_PW})
    assert r.status_code == 409  # the merchant is not paid while the request is open

    # The merchant: Trades tab → the trade with a request → approve.
    desk = new_page(browser, contexts, mobile=False)
    log_in(desk, server, SHOP)
    for lang in ("en", "zh-Hans", "zh-Hant"):
        desk.goto(server.url(f"/merchant/trades?lang={lang}"))
        expect(desk.locator(f"[data-testid=merchant-trade][data-id='{tid}'] [data-testid=refund-open]")).to_be_visible()
        desk.screenshot(path=str(shots / f"merchant-trades-{lang}.png"), full_page=True)
    desk.goto(server.url("/merchant/trades?lang=en"))
    line = desk.locator(f"[data-testid=merchant-trade][data-id='{tid}']")
    expect(line.get_by_test_id("line-fee")).to_have_text("Fee CN¥1.61")  # 0.6 % of ¥268.00 = 1.608 → 1.61
    expect(line.get_by_test_id("line-net")).to_have_text("Net CN¥266.39")
    line.locator("a").click()
    request = desk.get_by_test_id("refund-request")
    expect(request).to_contain_text("Cracked on arrival")
    desk.screenshot(path=str(shots / "merchant-refund-request-en.png"), full_page=True)
    request.get_by_test_id("approve-refund").click()
    expect(desk.get_by_test_id("alert-info")).to_be_visible()
    expect(desk.get_by_test_id("merchant-trade-detail")).to_have_attribute("data-status", "TRADE_CLOSED")
    expect(desk.get_by_test_id("refunded")).to_contain_text("268.00")

    # The money is back, once; the shopper's page says so.
    phone.reload()
    expect(phone.locator("[data-testid=refund]")).to_have_attribute("data-status", "REFUND_SUCCESS")
    phone.screenshot(path=str(shots / "refund-done-en.png"), full_page=True)
    # The order's own page says it was refunded and where the money went, not just "Closed".
    for lang in ("en", "zh-Hans"):
        phone.goto(server.url(f"/checkout/{tid}?lang={lang}"))
        expect(phone.get_by_test_id("refunds")).to_be_visible()
        phone.screenshot(path=str(shots / f"checkout-refunded-{lang}.png"), full_page=True)
    phone.goto(server.url(f"/checkout/{tid}?lang=en"))
    expect(phone.get_by_test_id("trade-status")).to_have_text("Refunded")
    expect(phone.get_by_test_id("refunds")).to_contain_text("CN¥268.00 came back to your TrustPay wallet")
    expect(phone.get_by_test_id("refund-line")).to_contain_text("Cracked on arrival")
    desk.goto(server.url(f"/checkout/{tid}?lang=en"))  # the merchant's view of the same order
    expect(desk.get_by_test_id("refunds")).to_contain_text("went back to the buyer's TrustPay wallet")
    desk.screenshot(path=str(shots / "checkout-refunded-merchant-desktop-en.png"), full_page=True)
    wallet = http.get("/v1/wallet", headers=shopper).json()["balances"]
    assert [b["available"] for b in wallet if b["currency"] == "CNY"] == [SHOPPER_FUNDS]
    trade = http.get(f"/v1/trades/{tid}", headers=key).json()
    assert (trade["status"], trade["refunded_amount"], trade["close_reason"]) == ("TRADE_CLOSED", AMOUNT, "refunded")
    refunds = http.get(f"/v1/trades/{tid}/refunds", headers=key).json()["data"]
    assert [(x["status"], x["amount"], x["requested_by"]) for x in refunds] == [("REFUND_SUCCESS", AMOUNT, "buyer")]
    # Per account kind, what this trade's ledger entries moved: the shopper's wallet is back where it
    # was, escrow returned to zero, the merchant and the fee account got nothing.
    by_kind = moved_by_kind(server, tid)
    assert by_kind == {"wallet": 0, "escrow": 0}, by_kind
