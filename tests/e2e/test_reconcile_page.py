"""The ops reconciliation page in headless Chromium against the real server: an ops user
made with ``trustpay ops create-user`` works two findings of a statement (one note only,
one credited to a customer's wallet), in English and Chinese; a customer gets the 404 page."""

from __future__ import annotations

import re
import subprocess
from collections.abc import Iterator
from datetime import UTC, date, datetime
from pathlib import Path

import httpx
import pytest
from playwright.sync_api import Browser, BrowserContext, Page, expect

from tests.e2e.conftest import Server, _trustpay_command
from trustpay.banks import reconcile
from trustpay.banks.connector import OperationKind, OperationStatus, StatementLine
from trustpay.ids import new_id
from trustpay.platform.context import Platform
from trustpay.settings import Settings

pytestmark = pytest.mark.e2e

PASSWORD = "ledger owl 31 harbour"
OPS = "recon.ops@example.com"
CUSTOMER = "recon.customer@example.com"
DAY = date(2025, 6, 1)


@pytest.fixture
def context(browser: Browser) -> Iterator[BrowserContext]:
    ctx = browser.new_context(locale="en-GB")
    try:
        yield ctx
    finally:
        ctx.close()


def log_in(page: Page, server: Server, email: str) -> None:
    page.goto(server.url("/login"))
    page.fill("input[name=email]", email)
    page.fill("input[name=password]", PASSWORD)
    page.click("form.form button[type=submit]")
    expect(page).not_to_have_url(re.compile(r"/login"))


def stray_lines(server: Server) -> tuple[str, str]:
    """Two lines the bank reported that match nothing of ours, reconciled into the queue."""
    at = datetime(2025, 6, 1, 10, tzinfo=UTC)
    lines = [StatementLine(DAY, new_id("card", at), new_id("top", at), OperationKind.DEBIT, amount, "CNY",
                           OperationStatus.SUCCEEDED, at) for amount in (700, 1_250)]
    p = Platform.build(Settings(database_url=server.database_url))
    try:
        run = reconcile.reconcile(p, "sandbox", DAY, lines=lines)
    finally:
        p.close()
    assert run.new_exceptions == 2
    return lines[0].reference, lines[1].reference


def test_ops_resolves_reconciliation_exceptions_in_the_browser(server: Server, context: BrowserContext,
                                                              screenshots_dir: Path) -> None:
    made = subprocess.run([*_trustpay_command(), "ops", "create-user", "--email", OPS, "--password", PASSWORD],
                          env=server.env, cwd=server.tmp, capture_output=True, text=True, timeout=120)
    assert made.returncode == 0, made.stdout + made.stderr
    r = httpx.post(server.url("/v1/users"), json={"email": CUSTOMER, "password": PASSWORD, "name": "Customer"})
    assert r.status_code == 201, r.text
    customer_id = str(r.json()["id"])
    noted, credited = stray_lines(server)

    page = context.new_page()
    log_in(page, server, CUSTOMER)  # a customer: the console does not exist
    assert page.goto(server.url("/ops/reconciliation")).status == 404  # type: ignore[union-attr]
    context.clear_cookies()

    log_in(page, server, OPS)
    page.goto(server.url("/ops/reconciliation"))
    expect(page.get_by_role("heading", level=1)).to_have_text("Reconciliation exceptions")
    first = page.locator(f"[data-testid=recon-exception][data-reference='{noted}']")
    expect(first).to_contain_text("On the bank's statement, unknown to us")
    # Cards, not a bulleted list (the browser's default bullet sat before each panel).
    assert page.get_by_test_id("recon-exceptions").evaluate("e => getComputedStyle(e).listStyleType") == "none"
    page.screenshot(path=str(screenshots_dir / "ops-reconciliation-en.png"), full_page=True)
    # No note: refused, nothing changes (the browser's own check is bypassed to reach the server's).
    first.get_by_test_id("resolve-note").evaluate("el => el.removeAttribute('required')")
    first.get_by_test_id("resolve-submit").click()
    expect(page.get_by_test_id("alert-error")).to_contain_text("Say why in the note")
    first = page.locator(f"[data-testid=recon-exception][data-reference='{noted}']")
    first.get_by_test_id("resolve-note").fill("the bank reverses its stray debit")
    first.get_by_test_id("resolve-submit").click()
    expect(page.get_by_test_id("alert-info")).to_contain_text("The exception is resolved")
    expect(page.locator(f"[data-testid=recon-exception][data-reference='{noted}']")).to_have_count(0)

    second = page.locator(f"[data-testid=recon-exception][data-reference='{credited}']")
    expect(second.get_by_test_id("recon-amount")).to_contain_text("12.50")
    second.get_by_test_id("resolve-action").select_option("credit_wallet")
    second.get_by_test_id("resolve-user").fill(customer_id)
    second.get_by_test_id("resolve-note").fill("customer's card was debited; credit them")
    second.get_by_test_id("resolve-submit").click()
    expect(page.get_by_test_id("alert-info")).to_be_visible()
    expect(page.get_by_test_id("recon-resolved")).to_contain_text("credit them")

    token = httpx.post(server.url("/v1/sessions"), json={"email": CUSTOMER, "password": PASSWORD}).json()["token"]
    wallet = httpx.get(server.url("/v1/wallet"), headers={"authorization": f"Bearer {token}"}).json()
    (cny,) = [b for b in wallet["balances"] if b["currency"] == "CNY"]
    assert int(cny["available"]) == 1_250

    # The same console in Chinese, simplified and traditional.
    page.goto(server.url("/ops/reconciliation?lang=zh-Hans"))
    expect(page.get_by_role("heading", level=1)).to_have_text("对账异常")
    expect(page.get_by_test_id("recon-resolved")).to_contain_text("银行对账单上有，我方无记录")
    page.goto(server.url("/ops/reconciliation?lang=zh-Hant"))
    expect(page.get_by_role("heading", level=1)).to_have_text("對帳異常")
