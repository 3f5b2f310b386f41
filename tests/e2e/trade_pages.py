"""Browser set-up the trade page tests share: a phone or desktop context per actor
(kept in the ``contexts`` fixture of conftest.py, closed after the test) and logging in."""

from __future__ import annotations

import re

from playwright.sync_api import Browser, BrowserContext, Page, expect

from tests.e2e.conftest import Server
from tests.e2e.test_checkout_pages import MOBILE, PASSWORD


def new_page(browser: Browser, opened: list[BrowserContext], *, mobile: bool) -> Page:
    ctx = (browser.new_context(viewport=MOBILE, locale="en-GB", is_mobile=True, has_touch=True)
           if mobile else browser.new_context(viewport={"width": 1280, "height": 900}, locale="en-GB"))
    opened.append(ctx)
    return ctx.new_page()


def log_in(page: Page, server: Server, email: str) -> None:
    page.goto(server.url("/login"))
    page.fill("input[name=email]", email)
    page.fill("input[name=password]", PASSWORD)
    page.click("form.form button[type=submit]")
    expect(page).not_to_have_url(re.compile(r"/login"))
