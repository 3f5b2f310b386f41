"""Signed out at a signed-in page, in headless Chromium: the log-in page says why and brings
the person back to the page they asked for (or the page their form was on)."""

from __future__ import annotations

import json
import re

import pytest
from playwright.sync_api import Browser, BrowserContext, Page, expect

from tests.e2e.conftest import Server

pytestmark = pytest.mark.e2e

PASSWORD = "green harbour 58 willow"
EMAIL = "back.e2e@example.com"
DEEP = "/wallet/statement?type=transfer"


def last_code(server: Server, to: str) -> str:
    lines = server.notify_file.read_text("utf-8").splitlines() if server.notify_file.exists() else []
    codes = [n["code"] for n in map(json.loads, lines) if n.get("to") == to and n.get("code")]
    assert codes, f"no code was mailed to {to}"
    return str(codes[-1])


def log_in_here(page: Page) -> None:
    page.fill("input[name=email]", EMAIL)
    page.fill("input[name=password]", PASSWORD)
    page.click("form.form button[type=submit]")


def end_session(ctx: BrowserContext, server: Server) -> None:
    """The browser still sends a session cookie, but the server no longer knows it (as after 15 idle minutes)."""
    ctx.add_cookies([{"name": "tp_session", "value": "ended-long-ago", "url": server.url("/")}])


def test_signed_out_deep_links_and_forms_come_back_after_logging_in(
    server: Server, browser: Browser, contexts: list[BrowserContext],
) -> None:
    ctx = browser.new_context(locale="en-GB")
    contexts.append(ctx)
    page = ctx.new_page()
    page.goto(server.url("/signup"))
    page.fill("input[name=name]", "Bo Back")
    page.fill("input[name=email]", EMAIL)
    page.fill("input[name=password]", PASSWORD)
    page.click("form.form button[type=submit]")
    expect(page).to_have_url(re.compile(r"/verify$"))
    ctx.clear_cookies()  # a visitor who never signed in (on this browser)

    # A deep link while signed out: a neutral notice, then the e-mail step, then the page asked for.
    page.goto(server.url(DEEP))
    expect(page).to_have_url(re.compile(r"/login\?notice=signin&next="))
    expect(page.get_by_test_id("alert-info")).to_have_text("Please log in to continue.")
    log_in_here(page)
    expect(page).to_have_url(re.compile(r"/verify\?next="))
    page.fill("input[name=code]", last_code(server, EMAIL))
    page.click("form[action='/verify'] button")
    expect(page).to_have_url(server.url(DEEP))

    # An ended session: "Your session has ended", then back to the page asked for.
    end_session(ctx, server)
    page.goto(server.url("/wallet"))
    expect(page).to_have_url(re.compile(r"/login\?notice=expired&next=%2Fwallet$"))
    expect(page.get_by_test_id("alert-info")).to_contain_text("Your session has ended")
    log_in_here(page)
    expect(page).to_have_url(server.url("/wallet"))

    # A form sent after the session ended: back to the page the form was on (not its POST-only path).
    page.goto(server.url("/security"))
    end_session(ctx, server)
    page.fill("input[name=password]", PASSWORD)
    page.fill("input[name=payment_password]", "135790")
    page.fill("input[name=confirm]", "135790")
    page.click("#payment-password button[type=submit]")
    expect(page).to_have_url(re.compile(r"/login\?notice=expired&next=%2Fsecurity(#[-a-z]*)?$"))
    log_in_here(page)
    expect(page).to_have_url(server.url("/security"))
