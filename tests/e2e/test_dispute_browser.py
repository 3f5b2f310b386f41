"""Dispute in headless Chromium against the real server: a shopper pays an escrow
trade (API) that the merchant ships (API); on a phone the shopper opens a dispute
from "my purchases" with words and a photo; confirming is refused while it is open;
an ops user (``trustpay ops create-user``) finds it in the /ops/disputes queue
(screenshots in en, zh-Hans, zh-Hant) and splits it ¥100.00 / ¥168.00; the
shopper's page shows the ruling and the ledger moved exactly the split."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
from playwright.sync_api import Browser, BrowserContext, expect
from sqlalchemy import create_engine, func, select

from tests.e2e.conftest import Server, _trustpay_command
from tests.e2e.test_checkout_pages import PASSWORD, api, token, top_up
from tests.e2e.test_wallet_pages import PAY_PW, sign_up
from tests.e2e.trade_pages import log_in, new_page
from trustpay.db.schema import ledger_accounts, ledger_entries, ledger_postings

pytestmark = pytest.mark.e2e

SHOP = "porcelain.shop.dispute.e2e@example.com"
SHOPPER = "shopper.dispute.e2e@example.com"
OPS = "ops.dispute.e2e@example.com"
AMOUNT = 26_800  # ¥268.00; fee 0.6 % = 161
PHOTO = b"\x89PNG\r\n\x1a\n" + b"\0" * 512


def test_buyer_opens_a_dispute_ops_splits_it(server: Server, browser: Browser, contexts: list[BrowserContext],
                                             screenshots_dir: object) -> None:
    shots = Path(str(screenshots_dir))
    http = api(server)
    r = http.post("/v1/users", json={"email": SHOP, "password": PASSWORD, "name": "Jingdezhen Porcelain",
                                     "kind": "merchant"})
    assert r.status_code == 201, r.text
    r = http.post("/v1/merchant/api-keys", json={"label": "shop"}, headers=token(http, SHOP))
    key = {"authorization": f"Bearer {r.json()['secret']}"}
    r = http.post("/v1/trades", headers=key, json={"out_trade_no": "PORC-D-0001", "amount": AMOUNT,
                                                   "subject": "Celadon tea bowl", "mode": "escrow"})
    assert r.status_code == 201, r.text
    tid = r.json()["id"]

    phone = new_page(browser, contexts, mobile=True)
    sign_up(phone, server, "Wang Fang", SHOPPER)
    shopper = token(http, SHOPPER)
    top_up(http, shopper, 50_000)
    r = http.post(f"/v1/trades/{tid}/pay", headers=shopper, json={"payment_password": PAY_PW})
    assert r.status_code == 200, r.text
    r = http.post(f"/v1/trades/{tid}/ship", headers=key, json={"carrier": "EMS", "tracking_no": "EM987654321CN"})
    assert r.status_code == 200, r.text

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
    item.get_by_test_id("resolve-buyer").fill("100.00")
    item.get_by_test_id("resolve-seller").fill("168.00")
    item.get_by_test_id("resolve-note").fill("The crack is visible; the merchant keeps most of it.")
    item.get_by_test_id("resolve-submit").click()
    expect(desk.get_by_test_id("alert-info")).to_be_visible()
    expect(desk.locator("[data-testid=dispute][data-status=resolved]")).to_be_visible()

    phone.reload()
    expect(phone.get_by_test_id("ruling-buyer")).to_contain_text("100.00")
    phone.screenshot(path=str(shots / "dispute-resolved-en.png"), full_page=True)
    wallet = http.get("/v1/wallet", headers=shopper).json()["balances"]
    assert [b["available"] for b in wallet if b["currency"] == "CNY"] == [50_000 - AMOUNT + 10_000]
    trade = http.get(f"/v1/trades/{tid}", headers=key).json()
    assert (trade["status"], trade["dispute_status"], trade["refunded_amount"]) == ("TRADE_FINISHED", "resolved",
                                                                                     10_000)
    # Per account kind, what this trade's entries moved: the shopper is out 168.00, the merchant
    # got 168.00 less its fee on it (161 × 16 800 / 26 800 = 100.9 → 101), escrow is back to zero.
    moved = (select(ledger_accounts.c.kind, func.sum(ledger_postings.c.delta))
             .join(ledger_postings, ledger_postings.c.account_id == ledger_accounts.c.id)
             .join(ledger_entries, ledger_entries.c.seq == ledger_postings.c.entry_seq)
             .where(ledger_entries.c.reference == tid, ledger_postings.c.field == "balance")
             .group_by(ledger_accounts.c.kind))
    engine = create_engine(server.database_url)
    try:
        with engine.connect() as conn:
            by_kind = {kind: int(total) for kind, total in conn.execute(moved).all()}
    finally:
        engine.dispose()
    assert by_kind == {"wallet": -16_800, "escrow": 0, "settlement_pending": 16_699, "fee_revenue": 101}, by_kind
