"""Dispute in headless Chromium against the real server: a shopper pays an escrow
trade (API) that the merchant ships (API); on a phone the shopper opens a dispute
from "my purchases" with words and a photo; confirming is refused while it is open;
an ops user (``trustpay ops create-user``) finds it in the /ops/disputes queue
(screenshots in en, zh-Hans, zh-Hant) and splits it ¥100.00 / ¥168.00 (after a
typo it is told about in the dispute's card, the typed values kept); the
shopper's page shows the ruling and the ledger moved exactly the split."""

from __future__ import annotations

import re
import subprocess
from datetime import datetime
from pathlib import Path

import pytest
from playwright.sync_api import Browser, BrowserContext, expect

from tests.e2e.conftest import Server, _trustpay_command
from tests.e2e.test_checkout_pages import PASSWORD
from tests.e2e.test_wallet_pages import PAY_PW
from tests.e2e.trade_pages import SHOPPER_FUNDS, log_in, moved_by_kind, new_page, shipped_escrow_trade
from trustpay.web.i18n import format_timestamp, translations

pytestmark = pytest.mark.e2e

SHOP = "porcelain.shop.dispute.e2e@example.com"
SHOPPER = "shopper.dispute.e2e@example.com"
OPS = "ops.dispute.e2e@example.com"
AMOUNT = 26_800  # ¥268.00; fee 0.6 % = 161
PHOTO = b"\x89PNG\r\n\x1a\n" + b"\0" * 512


def test_buyer_opens_a_dispute_ops_splits_it(server: Server, browser: Browser, contexts: list[BrowserContext],
                                             screenshots_dir: object) -> None:
    shots = Path(str(screenshots_dir))
    setup = shipped_escrow_trade(server, browser, contexts, shop=SHOP, shopper=SHOPPER, out_trade_no="PORC-D-0001",
                                 amount=AMOUNT, tracking_no="EM987654321CN")
    http, key, shopper, phone, tid = setup.http, setup.key, setup.shopper, setup.phone, setup.trade_id

    # The shopper: my purchases → dispute → reason, words and a photo.
    phone.goto(server.url("/purchases?lang=en"))
    phone.locator(f"[data-testid=purchase][data-id='{tid}']").get_by_test_id("dispute-link").click()
    phone.get_by_test_id("dispute-reason").fill("Arrived cracked")
    phone.get_by_test_id("dispute-text").fill("The rim has a crack; the box was dented.")
    phone.get_by_test_id("dispute-file").set_input_files(
        {"name": "rim.png", "mimeType": "image/png", "buffer": PHOTO})
    phone.get_by_test_id("dispute-submit").click()
    expect(phone.get_by_test_id("dispute")).to_have_attribute("data-status", "open")
    expect(phone.get_by_test_id("evidence")).to_contain_text("rim.png")
    expect(phone.get_by_test_id("trade-status")).to_have_text("Shipped: confirm when it arrives")
    phone.screenshot(path=str(shots / "dispute-opened-en.png"), full_page=True)
    r = http.post(f"/v1/trades/{tid}/confirm", headers=shopper, json={"payment_password": PAY_PW})
    assert r.status_code == 409  # frozen while the dispute is open

    # Ops: the queue in three languages, then the split.
    made = subprocess.run([*_trustpay_command(), "ops", "create-user", "--email", OPS, "--password", PASSWORD],
                          env=server.env, cwd=server.tmp, capture_output=True, text=True, timeout=120)
    assert made.returncode == 0, made.stdout + made.stderr
    desk = new_page(browser, contexts, mobile=False)
    log_in(desk, server, OPS)
    for lang in ("en", "zh-Hans", "zh-Hant"):
        desk.goto(server.url(f"/ops/disputes?lang={lang}"))
        expect(desk.locator("[data-testid=dispute][data-status=open]")).to_contain_text("Celadon tea bowl")
        desk.screenshot(path=str(shots / f"ops-disputes-{lang}.png"), full_page=True)
    desk.goto(server.url("/ops/disputes?lang=en"))
    item = desk.locator("[data-testid=dispute][data-status=open]")
    expect(item.get_by_test_id("timeline")).to_contain_text("rim.png")
    # Words and local formats, not codes: the trade's status as a label, times as the other pages
    # write them, and no list bullet in front of the card.
    expect(item.get_by_test_id("trade-status")).to_have_text("Shipped, awaiting the buyer")
    expect(item).not_to_contain_text("WAIT_BUYER_CONFIRM_GOODS")
    # Each time in the platform's display zone (Asia/Shanghai by default), saying so; the
    # <time datetime> attribute stays the UTC instant.
    first_time = item.get_by_test_id("timeline-item").locator("time").first
    expect(first_time).to_have_text(re.compile(r"^[A-Z][a-z]{2} \d{1,2}, \d{4}, \d{1,2}:\d\d:\d\d\s[AP]M\sUTC\+8$"))
    instant = first_time.get_attribute("datetime") or ""
    assert instant.endswith("Z")
    expect(first_time).to_have_text(
        format_timestamp(datetime.fromisoformat(instant.replace("Z", "+00:00")), "en", "Asia/Shanghai"))
    assert desk.get_by_test_id("disputes").evaluate("e => getComputedStyle(e).listStyleType") == "none"
    ops_phone = new_page(browser, contexts, mobile=True)
    log_in(ops_phone, server, OPS)
    ops_phone.goto(server.url("/ops/disputes?lang=zh-Hans"))
    expect(ops_phone.get_by_test_id("trade-status")).to_have_text(
        translations("zh-Hans").gettext("Shipped, awaiting the buyer"))
    expect(ops_phone.get_by_test_id("opened")).to_contain_text("年")  # 2026年11月30日 …
    expect(ops_phone.get_by_test_id("opened")).to_contain_text("（UTC+8）")  # …, in Shanghai time, saying so
    ops_phone.screenshot(path=str(shots / "ops-disputes-zh-Hans-phone.png"), full_page=True)
    item.get_by_test_id("resolve-buyer").fill("100.00")
    item.get_by_test_id("resolve-seller").fill("168.0O")  # a letter O for a zero
    item.get_by_test_id("resolve-note").fill("The crack is visible; the merchant keeps most of it.")
    item.get_by_test_id("resolve-submit").click()
    # Refused: told in this dispute's card, on top of its form (scrolled to), what was typed kept.
    expect(item.get_by_test_id("alert-error")).to_contain_text("such as 12.50")
    expect(item.get_by_test_id("resolve-seller")).to_have_value("168.0O")
    expect(item.get_by_test_id("resolve-note")).to_have_value("The crack is visible; the merchant keeps most of it.")
    expect(item.get_by_test_id("alert-error")).to_be_in_viewport()
    desk.screenshot(path=str(shots / "ops-dispute-refused-en.png"))
    item.get_by_test_id("resolve-seller").fill("168.00")
    item.get_by_test_id("resolve-submit").click()
    expect(desk.get_by_test_id("alert-info")).to_be_visible()
    expect(desk.locator("[data-testid=dispute][data-status=resolved]")).to_be_visible()

    phone.reload()
    expect(phone.get_by_test_id("ruling-buyer")).to_contain_text("100.00")
    phone.screenshot(path=str(shots / "dispute-resolved-en.png"), full_page=True)
    wallet = http.get("/v1/wallet", headers=shopper).json()["balances"]
    assert [b["available"] for b in wallet if b["currency"] == "CNY"] == [SHOPPER_FUNDS - AMOUNT + 10_000]
    trade = http.get(f"/v1/trades/{tid}", headers=key).json()
    assert (trade["status"], trade["dispute_status"], trade["refunded_amount"]) == ("TRADE_FINISHED", "resolved",
                                                                                     10_000)
    # Per account kind, what this trade's entries moved: the shopper is out 168.00, the merchant
    # got 168.00 less its fee on it (161 × 16 800 / 26 800 = 100.9 → 101), escrow is back to zero.
    by_kind = moved_by_kind(server, tid)
    assert by_kind == {"wallet": -16_800, "escrow": 0, "settlement_pending": 16_699, "fee_revenue": 101}, by_kind
