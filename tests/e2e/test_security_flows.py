"""Security-centre flows in headless Chromium on a phone: lost-phone freeze and unfreeze
with the e-mailed code, identity verification shown masked, turning two-step verification off."""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from pathlib import Path

import pyotp
import pytest
from playwright.sync_api import Browser, BrowserContext, Page, expect

from tests.e2e.conftest import Server
from tests.e2e.test_account_pages import MOBILE, PASSWORD, last_code

pytestmark = pytest.mark.e2e


@pytest.fixture
def page(browser: Browser) -> Iterator[Page]:
    ctx: BrowserContext = browser.new_context(viewport=MOBILE, locale="en-GB", is_mobile=True, has_touch=True,
                                              device_scale_factor=2, user_agent="TrustPay-e2e security")
    yield ctx.new_page()
    ctx.close()


def fresh_verified_user(page: Page, server: Server, email: str) -> None:
    """Sign up, confirm the e-mail code, land on the security centre."""
    page.goto(server.url("/signup"))
    page.fill("input[name=name]", "Fresh User")
    page.fill("input[name=email]", email)
    page.fill("input[name=password]", PASSWORD)
    page.click("form.form button[type=submit]")
    expect(page).to_have_url(re.compile(r"/verify$"))
    page.fill("input[name=code]", last_code(server, email))
    page.click("form[action='/verify'] button")
    expect(page).to_have_url(re.compile(r"/security"))


def log_in_fresh(page: Page, server: Server, email: str) -> None:
    """Log in as a fresh user: sign up in one session, sign out, then sign in again."""
    fresh_verified_user(page, server, email)
    page.get_by_test_id("logout").click()
    expect(page).to_have_url(re.compile(r"/login"))
    page.fill("input[name=email]", email)
    page.fill("input[name=password]", PASSWORD)
    page.click("form.form button[type=submit]")
    expect(page).to_have_url(re.compile(r"/wallet$"))
    page.goto(server.url("/security"))


def test_freeze_then_unfreeze_with_the_emailed_code(server: Server, page: Page, screenshots_dir: Path) -> None:
    email = "freeze.e2e@example.com"
    log_in_fresh(page, server, email)
    freeze = page.locator("#freeze")
    freeze.locator("input[name=password]").fill("not my password 1")
    freeze.locator("button[type=submit]").click()
    expect(page.get_by_test_id("alert-error")).to_contain_text("password is wrong")
    expect(page.get_by_test_id("frozen-status")).to_have_count(0)

    freeze.locator("input[name=password]").fill(PASSWORD)
    freeze.locator("button.danger").click()
    expect(page.get_by_test_id("frozen-status")).to_have_text("Frozen")
    expect(page.get_by_test_id("alert-info")).to_contain_text("Your account is frozen")
    expect(page.get_by_test_id("audit-log")).to_contain_text("Account frozen")
    freeze.scroll_into_view_if_needed()
    page.screenshot(path=str(screenshots_dir / "security-frozen-mobile.png"), full_page=True)

    codes_before = len(server.notify_file.read_text("utf-8").splitlines())
    page.click("form[action='/security/unfreeze/code#freeze'] button")
    expect(page.get_by_test_id("alert-info")).to_contain_text("We e-mailed you a 6-digit code")
    assert len(server.notify_file.read_text("utf-8").splitlines()) > codes_before
    code = last_code(server, email)
    unfreeze = page.locator("form[action='/security/unfreeze#freeze']")
    unfreeze.locator("input[name=password]").fill(PASSWORD)
    unfreeze.locator("input[name=code]").fill("000000" if code != "000000" else "111111")
    unfreeze.locator("button").click()
    expect(page.get_by_test_id("alert-error")).to_be_visible()
    expect(page.get_by_test_id("frozen-status")).to_have_text("Frozen")
    unfreeze = page.locator("form[action='/security/unfreeze#freeze']")
    unfreeze.locator("input[name=password]").fill(PASSWORD)
    unfreeze.locator("input[name=code]").fill(code)
    unfreeze.locator("button").click()
    expect(page.get_by_test_id("alert-info")).to_contain_text("Your account is unfrozen")
    expect(page.get_by_test_id("frozen-status")).to_have_count(0)
    expect(page.get_by_test_id("audit-log")).to_contain_text("Account unfrozen")


def test_identity_submission_shows_only_masked_values(server: Server, page: Page, screenshots_dir: Path) -> None:
    fresh_verified_user(page, server, "kyc.e2e@example.com")
    expect(page.get_by_test_id("kyc-tier")).to_contain_text("Tier 1")
    expect(page.get_by_test_id("limits")).to_contain_text("¥5,000.00")
    form = page.locator("form[action='/security/identity#identity']")
    form.locator("input[name=legal_name]").fill("张三")
    form.locator("input[name=id_number]").fill("110105194912310021")  # wrong check character
    form.locator("button").click()
    expect(page.get_by_test_id("alert-error")).to_contain_text("This ID number is not valid")
    form = page.locator("form[action='/security/identity#identity']")
    expect(form.locator("input[name=legal_name]")).to_have_value("张三")
    form.locator("input[name=id_number]").fill("11010519491231002X")
    form.locator("button").click()
    expect(page.get_by_test_id("alert-info")).to_contain_text("Your identity is on file")
    expect(page.get_by_test_id("legal-name")).to_have_text("张*")
    expect(page.get_by_test_id("id-number")).to_have_text("1101**********002X")
    expect(page.get_by_test_id("kyc-tier")).to_contain_text("Tier 2")
    expect(page.get_by_test_id("limits")).to_contain_text("¥50,000.00")
    assert "11010519491231002X" not in page.content()
    page.locator("#identity").scroll_into_view_if_needed()
    page.screenshot(path=str(screenshots_dir / "security-identity-mobile.png"), full_page=True)


def test_turn_two_step_verification_on_then_off(server: Server, page: Page, screenshots_dir: Path) -> None:
    fresh_verified_user(page, server, "mfaoff.e2e@example.com")
    page.click("form[action='/security/mfa/start#mfa'] button")
    totp = pyotp.TOTP(page.get_by_test_id("mfa-secret").inner_text())
    # The previous step's code (so that the current one is still unused for turning it off
    # below): typed in the last moments of a 30 s step, it would be two steps old by the
    # time the server checks it, and refused (it failed so once).
    left = 30 - time.time() % 30
    if left < 5:
        time.sleep(left + 0.1)
    page.fill("form[action='/security/mfa/confirm#mfa'] input[name=code]", totp.at(time.time() - 30))
    page.click("form[action='/security/mfa/confirm#mfa'] button")
    expect(page.get_by_test_id("recovery-codes")).to_be_visible()
    expect(page.get_by_test_id("mfa-status")).to_have_text("On")

    page.goto(server.url("/security#mfa"))
    page.get_by_text("Turn off two-step verification").first.click()  # opens the <details>
    form = page.locator("form[action='/security/mfa/disable#mfa']")
    form.locator("input[name=password]").fill(PASSWORD)
    form.locator("input[name=code]").fill(totp.at(time.time()))
    page.locator("#mfa").screenshot(path=str(screenshots_dir / "security-mfa-disable-mobile.png"))
    form.locator("button").click()
    expect(page.get_by_test_id("alert-info")).to_contain_text("Two-step verification is off")
    expect(page.get_by_test_id("mfa-status")).to_have_text("Off")
    expect(page.get_by_test_id("audit-log")).to_contain_text("Two-step verification turned off")
