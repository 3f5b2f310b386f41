"""Statement and receipt pages in headless Chromium, against the real server:
a user with a few posted entries filters the statement, downloads CSV, opens a
receipt, sees it verified, and checks the downloaded receipt with the CLI."""

from __future__ import annotations

import csv
import io
import re
import subprocess
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path

import httpx
import pytest
from playwright.sync_api import Browser, BrowserContext, Page, ViewportSize, expect

from tests.e2e.conftest import Server, _trustpay_command
from tests.integration.statement_support import top_up, transfer, withdraw
from trustpay.platform.context import Platform
from trustpay.settings import Settings
from trustpay.web.i18n import format_timestamp

pytestmark = pytest.mark.e2e

MOBILE: ViewportSize = {"width": 390, "height": 844}
PASSWORD = "ledger owl 31 harbour"
EMAIL = "statement.e2e@example.com"
FRIEND = "statement.friend@example.com"


@pytest.fixture
def page(browser: Browser) -> Iterator[Page]:
    ctx: BrowserContext = browser.new_context(viewport=MOBILE, locale="en-GB", is_mobile=True, has_touch=True,
                                              accept_downloads=True)
    try:
        yield ctx.new_page()
    finally:
        ctx.close()


def sign_up(server: Server, email: str) -> str:
    r = httpx.post(server.url("/v1/users"), json={"email": email, "password": PASSWORD, "name": "Statement"})
    assert r.status_code == 201, r.text
    return str(r.json()["id"])


def fund(server: Server) -> None:
    """Post a history straight into the server's ledger, as the wallet would record it."""
    me, friend = sign_up(server, EMAIL), sign_up(server, FRIEND)
    p = Platform.build(Settings(database_url=server.database_url))
    try:
        top_up(p, me, 20_000, memo="salary")
        top_up(p, me, 5_000)
        withdraw(p, me, 3_000, fee=200)
        transfer(p, me, friend, 1_000, memo="dumplings")
    finally:
        p.close()


def csv_rows(page: Page, link: str) -> list[dict[str, str]]:
    with page.expect_download() as info:
        page.get_by_test_id(link).click()
    return list(csv.DictReader(io.StringIO(Path(info.value.path()).read_text("utf-8"))))


def assert_no_sideways_scroll(page: Page) -> None:
    """Nothing is wider than the phone's 390 px. Compared with the viewport's width, not only with
    window.innerWidth: a mobile browser widens its layout viewport to fit content that overflows."""
    wide = page.evaluate("[document.documentElement.scrollWidth, window.innerWidth]")
    assert wide[0] <= min(wide[1], MOBILE["width"]), f"{page.url} scrolls sideways: {wide[0]} px wide"


def test_statement_filters_csv_and_verified_receipt(server: Server, page: Page, screenshots_dir: object,
                                                     tmp_path: Path) -> None:
    shots = Path(str(screenshots_dir))
    fund(server)
    page.goto(server.url("/login"))
    page.fill("input[name=email]", EMAIL)
    page.fill("input[name=password]", PASSWORD)
    page.click("form.form button[type=submit]")
    expect(page).not_to_have_url(re.compile(r"/login"))

    page.goto(server.url("/wallet/statement"))
    expect(page.get_by_role("heading", level=1)).to_have_text("Statement")
    lines = page.get_by_test_id("statement-line")
    expect(lines).to_have_count(5)
    expect(lines.first).to_contain_text("Transfer sent")
    expect(lines.first).to_contain_text("dumplings")
    expect(page.get_by_test_id("available-CNY")).to_contain_text("208.00")
    page.screenshot(path=str(shots / "statement-mobile.png"), full_page=True)

    everything = csv_rows(page, "csv-link")
    assert [r["type"] for r in everything] == ["transfer_out", "withdrawal_fee", "withdrawal", "topup", "topup"]
    assert [r["balance_after"] for r in everything] == ["20800", "21800", "22000", "25000", "20000"]
    # The page dates each line in the display zone (Asia/Shanghai by default) and says so;
    # the CSV keeps the UTC instant; the date filter counts days in the same zone.
    assert everything[0]["created_at"].endswith("Z")
    sent_at = datetime.fromisoformat(everything[0]["created_at"].replace("Z", "+00:00"))
    expect(lines.first.locator(".line-when")).to_have_text(format_timestamp(sent_at, "en", "Asia/Shanghai"))
    expect(page.locator("label.field", has=page.get_by_test_id("filter-start"))).to_contain_text("From (UTC+8)")

    page.get_by_test_id("filter-type").select_option("withdrawal_fee")
    page.get_by_test_id("filter-apply").click()
    expect(page).to_have_url(re.compile(r"type=withdrawal_fee"))
    expect(lines).to_have_count(1)
    expect(lines.first).to_contain_text("Withdrawal fee")
    assert [(r["type"], r["amount"]) for r in csv_rows(page, "csv-link")] == [("withdrawal_fee", "-200")]

    page.get_by_test_id("filter-type").select_option("")
    page.get_by_test_id("filter-end").fill("2000-01-01")
    page.get_by_test_id("filter-apply").click()
    expect(page.get_by_test_id("statement-empty")).to_be_visible()

    page.goto(server.url("/wallet/statement"))
    lines.nth(4).click()  # the first top-up
    expect(page.get_by_role("heading", level=1)).to_have_text("Receipt")
    expect(page.get_by_test_id("receipt-type")).to_have_text("Top-up")
    assert_no_sideways_scroll(page)  # the long `trustpay receipt verify receipt-txn_….json` wraps
    page.get_by_test_id("verify").click()
    verdict = page.get_by_test_id("verify-verdict")
    expect(verdict).to_have_attribute("data-ok", "true")
    expect(verdict).to_contain_text("Verified")
    expect(page.locator(".verify-checks .tag.bad")).to_have_count(0)
    assert_no_sideways_scroll(page)
    page.screenshot(path=str(shots / "receipt-verified-mobile.png"), full_page=True)

    with page.expect_download() as info:
        page.get_by_test_id("receipt-download").click()
    saved = tmp_path / "receipt.json"
    saved.write_bytes(Path(info.value.path()).read_bytes())
    checked = subprocess.run([*_trustpay_command(), "receipt", "verify", str(saved),
                              "--digest-url", server.url("/v1/ledger/digest")],
                             capture_output=True, text=True, timeout=60)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert "verified:" in checked.stdout

    page.goto(server.url("/wallet/statement?lang=zh-Hans"))
    expect(page.get_by_role("heading", level=1)).to_have_text("交易记录")
    expect(lines.nth(4)).to_contain_text("充值")
