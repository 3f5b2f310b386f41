"""The account pages in headless Chromium on a phone: sign up, verify, security centre, sessions."""

from __future__ import annotations

import json
import re

import pytest
from playwright.sync_api import Browser, BrowserContext, Page, ViewportSize, expect

from tests.e2e.conftest import Server

pytestmark = pytest.mark.e2e

MOBILE: ViewportSize = {"width": 390, "height": 844}
PASSWORD = "blue lantern 77 river"
EMAIL = "mei.e2e@example.com"


def phone(browser: Browser, opened: list[BrowserContext], user_agent: str) -> Page:
    ctx = browser.new_context(viewport=MOBILE, locale="en-GB", is_mobile=True, has_touch=True,
                              device_scale_factor=2, user_agent=user_agent)
    opened.append(ctx)
    return ctx.new_page()


def last_code(server: Server, to: str) -> str:
    lines = server.notify_file.read_text("utf-8").splitlines() if server.notify_file.exists() else []
    codes = [n["code"] for n in map(json.loads, lines) if n.get("to") == to and n.get("code")]
    assert codes, f"no code was mailed to {to}"
    return str(codes[-1])


def log_in(page: Page, server: Server, password: str = PASSWORD) -> None:
    page.goto(server.url("/login"))
    page.fill("input[name=email]", EMAIL)
    page.fill("input[name=password]", password)
    page.click("form.form button[type=submit]")


def test_sign_up_verify_secure_and_manage_sessions(
    server: Server, browser: Browser, contexts: list[BrowserContext], screenshots_dir: object,
) -> None:
    from pathlib import Path
    shots = Path(str(screenshots_dir))
    page = phone(browser, contexts, "TrustPay-e2e phone")

    page.goto(server.url("/signup"))
    expect(page.get_by_role("heading", level=1)).to_have_text("Create your account")
    page.screenshot(path=str(shots / "signup-mobile.png"), full_page=True)
    page.check("input[name=kind][value=merchant]")
    page.fill("input[name=name]", "Mei Lin")
    page.fill("input[name=email]", EMAIL)
    page.fill("input[name=password]", "short")
    page.click("form.form button[type=submit]")
    expect(page.get_by_test_id("error-password")).to_contain_text("12 or more characters")
    page.fill("input[name=password]", PASSWORD)
    page.click("form.form button[type=submit]")

    expect(page).to_have_url(re.compile(r"/verify$"))
    expect(page.get_by_role("heading", level=1)).to_have_text("Check your e-mail")
    page.fill("input[name=code]", "000000" if last_code(server, EMAIL) != "000000" else "111111")
    page.click("form[action='/verify'] button")
    expect(page.get_by_test_id("alert-error")).to_contain_text("wrong or has expired")
    page.fill("input[name=code]", last_code(server, EMAIL))
    page.click("form[action='/verify'] button")

    expect(page).to_have_url(re.compile(r"/security"))
    expect(page.get_by_test_id("email-status")).to_have_text("Verified")
    expect(page.get_by_test_id("account-name")).to_have_text("Mei Lin")
    expect(page.get_by_test_id("payment-status")).to_have_text("Not set")
    page.fill("input[name=password]", PASSWORD)
    page.fill("input[name=payment_password]", "246810")
    page.fill("input[name=confirm]", "246810")
    page.click("#payment-password button[type=submit]")
    expect(page.get_by_test_id("alert-info")).to_contain_text("payment password is set")
    expect(page.get_by_test_id("payment-status")).to_have_text("Set")
    expect(page.get_by_test_id("audit-log")).to_contain_text("Payment password changed")
    expect(page.locator("[data-testid=audit-log] [title='payment_password.changed']")).to_have_count(1)
    page.evaluate("window.scrollTo(0, 0)")
    page.screenshot(path=str(shots / "security-mobile.png"), full_page=True)

    page.get_by_test_id("logout").click()
    expect(page).to_have_url(re.compile(r"/login\?notice=signed_out"))
    expect(page.get_by_test_id("alert-info")).to_have_text("You are signed out.")
    expect(page.get_by_test_id("login-link")).to_be_visible()

    log_in(page, server, "not the password 1")
    expect(page.get_by_test_id("alert-error")).to_have_text(
        "The e-mail or the password is wrong. Check both and try again.")
    page.screenshot(path=str(shots / "login-mobile.png"), full_page=True)
    log_in(page, server)
    # A log-in with nowhere to return to opens a merchant's dashboard (a person's wallet).
    expect(page).to_have_url(re.compile(r"/merchant$"))

    other = phone(browser, contexts, "TrustPay-e2e tablet")
    log_in(other, server)
    expect(other).to_have_url(re.compile(r"/merchant$"))

    page.goto(server.url("/security"))
    sessions = page.get_by_test_id("session")
    expect(sessions).to_have_count(2)
    expect(page.get_by_test_id("sessions")).to_contain_text("TrustPay-e2e tablet")
    page.get_by_test_id("revoke").click()  # HTMX: the list is swapped in place
    expect(sessions).to_have_count(1)
    expect(page.get_by_test_id("sessions")).not_to_contain_text("TrustPay-e2e tablet")
    expect(page.get_by_test_id("alert-info")).to_have_text("The session was signed out.")

    other.goto(server.url("/security"))
    expect(other).to_have_url(re.compile(r"/login\?notice=expired"))


def test_post_without_csrf_token_is_refused(
    server: Server, browser: Browser, contexts: list[BrowserContext],
) -> None:
    page = phone(browser, contexts, "TrustPay-e2e csrf")
    page.goto(server.url("/login"))
    r = page.request.post(server.url("/login"), form={"email": EMAIL, "password": PASSWORD},
                          max_redirects=0)
    assert r.status == 403
    assert "This form has expired" in r.text()
    assert not [c for c in page.context.cookies() if c["name"] == "tp_session"]


def test_traditional_chinese_security_centre_with_two_step_setup(
    server: Server, browser: Browser, contexts: list[BrowserContext], screenshots_dir: object,
) -> None:
    from pathlib import Path
    shots = Path(str(screenshots_dir))
    ctx = browser.new_context(viewport=MOBILE, locale="zh-TW", is_mobile=True, has_touch=True,
                              device_scale_factor=2)
    contexts.append(ctx)
    page = ctx.new_page()
    email = "wen.hant@example.com"
    page.goto(server.url("/signup"))
    expect(page.get_by_role("heading", level=1)).to_have_text("建立你的帳戶")
    page.fill("input[name=name]", "陳文")
    page.fill("input[name=email]", email)
    page.fill("input[name=password]", PASSWORD)
    page.click("form.form button[type=submit]")
    expect(page.get_by_role("heading", level=1)).to_have_text("請查看你的電子郵件")
    page.fill("input[name=code]", last_code(server, email))
    page.click("form[action='/verify'] button")
    expect(page.get_by_role("heading", level=1)).to_have_text("安全中心")
    page.click("form[action='/security/mfa/start#mfa'] button")
    expect(page.locator("img.qr")).to_be_visible()
    expect(page.get_by_test_id("mfa-secret")).to_have_text(re.compile(r"^[A-Z2-7]{32}$"))
    page.screenshot(path=str(shots / "security-mfa-zh-Hant-mobile.png"), full_page=True)
