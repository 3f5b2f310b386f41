"""The landing page in headless Chromium, in each language, on a phone and a desktop."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from playwright.sync_api import Browser, BrowserContext, Page, expect

from tests.e2e.conftest import Server

pytestmark = pytest.mark.e2e

MOBILE = {"width": 390, "height": 844}
DESKTOP = {"width": 1280, "height": 800}


@dataclass(frozen=True)
class Case:
    lang: str
    browser_locale: str  # what the browser sends as Accept-Language
    h1: str
    escrow_heading: str
    first_step: str
    example_amount: str
    digest_title: str
    switch_to: str
    switched_h1: str


CASES = [
    Case("zh-Hans", "zh-CN", "和陌生人交易，也能放心付款。", "什么是担保交易？",
         "买家付款到 TrustPay", "¥199.00", "已公布的账本摘要", "zh-Hant",
         "和陌生人交易，也能安心付款。"),
    Case("zh-Hant", "zh-TW", "和陌生人交易，也能安心付款。", "什麼是擔保交易？",
         "買家付款至 TrustPay", "CN¥199.00", "已公布的帳本摘要", "en",
         "Pay people you don't know, safely."),
    Case("en", "en-GB", "Pay people you don't know, safely.", "What is escrow?",
         "The buyer pays into TrustPay", "CN¥199.00", "Published ledger digest", "zh-Hans",
         "和陌生人交易，也能放心付款。"),
]


def _context(browser: Browser, case: Case, viewport: dict[str, int]) -> BrowserContext:
    mobile = viewport == MOBILE
    return browser.new_context(
        viewport=viewport, locale=case.browser_locale, is_mobile=mobile, has_touch=mobile,
        device_scale_factor=2 if mobile else 1,
    )


def _open_landing(ctx: BrowserContext, server: Server) -> Page:
    page = ctx.new_page()
    response = page.goto(server.url("/"))
    assert response is not None and response.status == 200
    return page


def _assert_no_horizontal_scroll(page: Page) -> None:
    overflow = page.evaluate(
        "() => document.documentElement.scrollWidth - document.documentElement.clientWidth"
    )
    assert overflow <= 0, f"page is {overflow}px wider than the viewport"


def _assert_landing(page: Page, case: Case, server: Server) -> None:
    assert page.get_attribute("html", "lang") == case.lang
    expect(page.locator("h1")).to_have_text(case.h1)
    expect(page.locator("#escrow h2")).to_have_text(case.escrow_heading)
    steps = page.locator("ol.steps > li")
    expect(steps).to_have_count(6)
    expect(steps.first.locator("h3")).to_have_text(case.first_step)
    expect(page.get_by_test_id("example-amount")).to_have_text(case.example_amount)
    expect(page.locator('a[href="/v1/ledger/digest"]').first).to_be_visible()
    # HTMX loads the live digest into the page: it must match the JSON API.
    digest = httpx.get(server.url("/v1/ledger/digest"), timeout=10).json()
    expect(page.get_by_test_id("digest-root")).to_have_text(digest["root"])
    expect(page.locator("#ledger-digest .digest-title")).to_have_text(case.digest_title)


@pytest.mark.parametrize("case", CASES, ids=[c.lang for c in CASES])
def test_landing_fits_a_320_px_phone(browser: Browser, server: Server, contexts: list[BrowserContext],
                                     case: Case) -> None:
    """The smallest phones still sold: the hero's long words and the example order's
    amount must not push the page (or the card) wider than the screen."""
    small = browser.new_context(viewport={"width": 320, "height": 640}, locale=case.browser_locale,
                                is_mobile=True, has_touch=True)
    contexts.append(small)
    page = _open_landing(small, server)
    _assert_no_horizontal_scroll(page)
    outside = page.evaluate("""() => {
        const card = document.querySelector('.order-card').getBoundingClientRect();
        return [...document.querySelectorAll('.order-card *')]
            .filter(el => el.getBoundingClientRect().right > card.right + 0.5).map(el => el.className);
    }""")
    assert outside == [], f"sticking out of the example order: {outside}"


@pytest.mark.parametrize("case", CASES, ids=[c.lang for c in CASES])
def test_landing_in_each_language(
    browser: Browser, server: Server, screenshots_dir: Path,
    contexts: list[BrowserContext], case: Case,
) -> None:
    phone = _context(browser, case, MOBILE)
    contexts.append(phone)
    page = _open_landing(phone, server)
    _assert_landing(page, case, server)
    _assert_no_horizontal_scroll(page)
    page.screenshot(path=str(screenshots_dir / f"landing-{case.lang}.png"), full_page=True)

    desktop = _context(browser, case, DESKTOP)
    contexts.append(desktop)
    wide = _open_landing(desktop, server)
    _assert_landing(wide, case, server)
    _assert_no_horizontal_scroll(wide)
    wide.screenshot(path=str(screenshots_dir / f"landing-{case.lang}-desktop.png"), full_page=True)

    # The language switch in the header: visible on a phone, and it sticks.
    switch = page.locator(f'.lang-switch a[data-lang="{case.switch_to}"]')
    expect(switch).to_be_visible()
    expect(page.locator(f'.lang-switch a[data-lang="{case.lang}"]')).to_have_attribute(
        "aria-current", "true")
    switch.click()
    page.wait_for_url(re.compile(rf"\?lang={case.switch_to}$"))
    assert page.get_attribute("html", "lang") == case.switch_to
    expect(page.locator("h1")).to_have_text(case.switched_h1)
    cookies = {c["name"]: c["value"] for c in phone.cookies()}
    assert cookies.get("tp_lang") == case.switch_to
    # Without ?lang= the cookie now beats the browser's Accept-Language.
    page.goto(server.url("/#how"))
    assert page.get_attribute("html", "lang") == case.switch_to


def test_digest_refresh_goes_through_htmx(
    browser: Browser, server: Server, contexts: list[BrowserContext]
) -> None:
    ctx = _context(browser, CASES[2], DESKTOP)
    contexts.append(ctx)
    page = _open_landing(ctx, server)
    expect(page.get_by_test_id("digest-root")).to_have_text(re.compile(r"^[0-9a-f]{64}$"))
    with page.expect_response(lambda r: "/fragments/ledger-digest" in r.url) as info:
        page.locator("#ledger-digest button").click()
    response = info.value
    assert response.status == 200
    assert response.request.headers.get("hx-request") == "true"
    assert page.url == server.url("/")  # swapped in place, no navigation
    expect(page.get_by_test_id("digest-root")).to_have_text(re.compile(r"^[0-9a-f]{64}$"))


def test_unknown_page_is_a_friendly_404(
    browser: Browser, server: Server, screenshots_dir: Path, contexts: list[BrowserContext]
) -> None:
    ctx = _context(browser, CASES[0], MOBILE)
    contexts.append(ctx)
    page = ctx.new_page()
    response = page.goto(server.url("/no-such-page"))
    assert response is not None and response.status == 404
    assert page.get_attribute("html", "lang") == "zh-Hans"
    expect(page.locator("h1")).to_have_text("找不到这个页面")
    expect(page.locator("main")).to_contain_text("/no-such-page")
    page.screenshot(path=str(screenshots_dir / "not-found-zh-Hans.png"), full_page=True)
    page.get_by_role("link", name="返回首页").click()
    page.wait_for_url(server.url("/"))
    expect(page.locator("h1")).to_have_text(CASES[0].h1)
