"""The merchant dashboard in headless Chromium against the real server: a merchant signs
up through the pages, follows the nav link to the dashboard, creates an API key (the
secret is shown once, works against the API, and is gone on reload), then revokes it
(the API refuses it at once)."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from playwright.sync_api import Browser, BrowserContext, Page, expect

from tests.e2e.conftest import Server

pytestmark = pytest.mark.e2e

PASSWORD = "lantern 27 harbour tea"
EMAIL = "shop.merchant.e2e@example.com"


@pytest.fixture
def page(browser: Browser) -> Iterator[Page]:
    ctx: BrowserContext = browser.new_context(viewport={"width": 1280, "height": 900}, locale="en-GB")
    try:
        yield ctx.new_page()
    finally:
        ctx.close()


def profile_status(server: Server, secret: str) -> int:
    return httpx.get(server.url("/v1/merchant/profile"), headers={"authorization": f"Bearer {secret}"},
                     timeout=10).status_code


def test_create_a_key_see_it_once_and_revoke_it(page: Page, server: Server, screenshots_dir: Path) -> None:
    page.goto(server.url("/signup"))
    page.check("input[name=kind][value=merchant]")
    page.fill("input[name=name]", "Lotus Tea E2E")
    page.fill("input[name=email]", EMAIL)
    page.fill("input[name=password]", PASSWORD)
    page.click("form.form button[type=submit]")
    expect(page).to_have_url(re.compile(r"/verify$"))

    page.get_by_test_id("merchant-link").click()
    expect(page).to_have_url(re.compile(r"/merchant$"))
    expect(page.get_by_test_id("fee-rate")).to_have_text("0.6%")
    expect(page.get_by_test_id("to-ship")).to_have_text("Nothing to ship")  # a new shop: the day at a glance
    expect(page.get_by_test_id("paid-today")).to_have_text("No payments yet today")
    expect(page.get_by_test_id("merchant-name")).to_have_text("Lotus Tea E2E")
    page.goto(server.url("/merchant?lang=zh-Hans"))
    expect(page.get_by_test_id("merchant-fees")).to_contain_text("银行费率")
    page.screenshot(path=str(screenshots_dir / "merchant-overview-zh-Hans.png"), full_page=True)
    # No card chosen: the money waits in pending settlement (待结算), not in the wallet.
    expect(page.get_by_test_id("settlement-card")).to_contain_text("待结算")
    expect(page.get_by_test_id("settlement-card")).not_to_contain_text("钱包")
    tabs = page.get_by_test_id("merchant-tabs")
    expect(tabs.locator("a[href='/merchant/settlement']")).to_have_text("结算设置")
    expect(tabs.locator("a[href='/merchant/settlements']")).to_have_text("结算记录")
    page.goto(server.url("/merchant?lang=en-GB"))
    # Two tabs, two names: where and when money is paid out, and the payouts themselves (same URLs).
    expect(tabs.locator("a[href='/merchant/settlement']")).to_have_text("Payout settings")
    expect(tabs.locator("a[href='/merchant/settlements']")).to_have_text("Settlements")
    expect(page.get_by_test_id("settlement-card")).to_contain_text("waits in pending settlement")
    expect(page.get_by_test_id("settlement-card")).not_to_contain_text("wallet")
    tabs.get_by_role("link", name="Payout settings", exact=True).click()
    expect(page).to_have_url(re.compile(r"/merchant/settlement$"))
    expect(page.get_by_test_id("settlement-form")).to_contain_text("Payout settings")
    page.goto(server.url("/merchant"))

    page.get_by_role("link", name="API keys", exact=True).first.click()
    expect(page.get_by_test_id("no-keys")).to_be_visible()
    page.get_by_test_id("key-label").fill("shop server")
    page.get_by_test_id("create-key").click()
    secret_box = page.get_by_test_id("new-secret")
    expect(secret_box).to_have_text(re.compile(r"^sk_test_[A-Za-z0-9]{43}$"))
    secret = secret_box.inner_text()
    expect(page.get_by_test_id("copy-secret")).to_be_visible()
    page.screenshot(path=str(screenshots_dir / "merchant-api-key-created.png"), full_page=True)
    assert profile_status(server, secret) == 200

    # Shown once: a reload of the list has the prefix, never the secret.
    page.goto(server.url("/merchant/api-keys"))
    expect(page.get_by_test_id("new-secret")).to_have_count(0)
    assert secret not in page.content() and secret[:12] in page.content()
    row = page.get_by_test_id("key-row").first
    expect(row).to_have_attribute("data-status", "active")

    row.get_by_test_id("revoke-key").click()
    expect(page).to_have_url(re.compile(r"notice=revoked"))
    expect(page.get_by_test_id("key-row").first).to_have_attribute("data-status", "revoked")
    page.screenshot(path=str(screenshots_dir / "merchant-api-key-revoked.png"), full_page=True)
    assert profile_status(server, secret) == 401
