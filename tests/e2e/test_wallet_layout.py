"""The wallet home's recent transfers in headless Chromium, on a phone and a desktop: each
status pill is as wide as its own text (they once stretched to the width of the amount above
them), and a transfer whose money went back is struck through and muted, not shown as money
that moved. The people are made through the API; only the pages are looked at."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
from playwright.sync_api import Browser, BrowserContext, Page, ViewportSize, expect

from tests.e2e.conftest import Server
from tests.e2e.trade_pages import log_in

pytestmark = pytest.mark.e2e

PASSWORD = "amber quay 73 willow"
PAY_PW = "246810"
ALICE = "alice.layout.e2e@example.com"
BOB = "bob.layout.e2e@example.com"
CARD = "4111111111111111"
SETTLE_SECONDS = 20.0

# Each recent transfer's amount and pill, measured: the pill's own content width is its text's
# (a Range over it) plus its padding and borders.
RECENT_JS = """() => [...document.querySelectorAll('[data-testid=recent-transfer]')].map(li => {
  const amount = li.querySelector('.line-amount'), tag = li.querySelector('.tag');
  const figures = li.querySelector('.line-figures');
  const range = document.createRange();
  range.selectNodeContents(tag);
  const s = getComputedStyle(tag), a = getComputedStyle(amount);
  const px = v => parseFloat(v) || 0;
  return {
    status: li.dataset.status,
    amount: amount.getBoundingClientRect().width,
    tag: tag.getBoundingClientRect().width,
    tagRight: tag.getBoundingClientRect().right,
    figuresRight: figures.getBoundingClientRect().right,
    tagContent: range.getBoundingClientRect().width + px(s.paddingLeft) + px(s.paddingRight)
                + px(s.borderLeftWidth) + px(s.borderRightWidth),
    struck: a.textDecorationLine.includes('line-through'),
    color: a.color,
    docWidth: document.documentElement.scrollWidth,
    viewWidth: document.documentElement.clientWidth,
  };
})"""
# The page's muted grey (outside the balance card, whose notes are white on its blue).
MUTED_JS = "() => getComputedStyle(document.querySelector('main .muted:not(.balance-card .muted)')).color"


def _ok(r: httpx.Response, status: int = 200) -> Any:
    assert r.status_code == status, r.text
    return r.json() if r.content else None


def _last_code(server: Server, to: str) -> str:
    lines = server.notify_file.read_text("utf-8").splitlines() if server.notify_file.exists() else []
    codes = [n["code"] for n in map(json.loads, lines) if n.get("to") == to and n.get("code")]
    assert codes, f"no code was mailed to {to}"
    return str(codes[-1])


def _person(client: httpx.Client, server: Server, email: str, name: str) -> dict[str, str]:
    """Signed up, e-mail verified, payment password set; its bearer header."""
    _ok(client.post("/v1/users", json={"email": email, "password": PASSWORD, "name": name}), 201)
    token = _ok(client.post("/v1/sessions", json={"email": email, "password": PASSWORD}), 201)["token"]
    auth = {"authorization": f"Bearer {token}"}
    _ok(client.post("/v1/users/me/verifications/confirm",
                    json={"channel": "email", "code": _last_code(server, email)}, headers=auth), 204)
    _ok(client.put("/v1/users/me/payment-password", json={"password": PASSWORD, "payment_password": PAY_PW},
                   headers=auth), 204)
    return auth


def _available(client: httpx.Client, auth: dict[str, str]) -> int:
    balances = _ok(client.get("/v1/wallet", headers=auth))["balances"]
    return sum(int(b["available"]) for b in balances if b["currency"] == "CNY")


@pytest.fixture(scope="module")
def recent(server: Server) -> None:
    """Alice tops up ¥5,000 and sends Bob ¥1,234.56 (kept), ¥12.34 (undone) and ¥20.00 (declined)."""
    with httpx.Client(base_url=server.base_url, timeout=30) as client:
        alice = _person(client, server, ALICE, "Alice Layout")
        bob = _person(client, server, BOB, "Bob Layout")
        card = _ok(client.post("/v1/bank-cards", json={"bank": "sandbox", "card_number": CARD,
                                                       "holder_name": "Alice Layout"}, headers=alice), 201)["id"]
        _ok(client.post("/v1/topups", json={"card": card, "amount": 500_000, "currency": "CNY"},
                        headers=alice), 201)
        deadline = time.monotonic() + SETTLE_SECONDS
        while _available(client, alice) < 500_000:
            assert time.monotonic() < deadline, "the top-up did not settle"
            time.sleep(0.1)

        def send(amount: int, **extra: Any) -> str:
            body = {"to": BOB, "amount": amount, "currency": "CNY", "payment_password": PAY_PW, **extra}
            return str(_ok(client.post("/v1/transfers", json=body, headers=alice), 201)["id"])

        send(123_456, memo="camera")
        _ok(client.post(f"/v1/transfers/{send(1_234, memo='oops')}/undo", headers=alice))
        _ok(client.post(f"/v1/transfers/{send(2_000, require_acceptance=True)}/decline", headers=bob))


def _wallet(browser: Browser, opened: list[BrowserContext], server: Server, viewport: ViewportSize,
            *, phone: bool) -> Page:
    ctx = browser.new_context(viewport=viewport, locale="en-GB", is_mobile=phone, has_touch=phone,
                              device_scale_factor=2 if phone else 1)
    opened.append(ctx)
    page = ctx.new_page()
    log_in(page, server, ALICE, PASSWORD)
    page.goto(server.url("/wallet"))
    expect(page.get_by_test_id("recent-transfer")).to_have_count(3)
    return page


@pytest.mark.parametrize(("label", "viewport", "phone"), [
    ("mobile", {"width": 390, "height": 844}, True),
    ("desktop", {"width": 1280, "height": 900}, False),
])
def test_recent_transfer_pills_fit_their_text_and_money_that_went_back_is_struck_through(
    server: Server, browser: Browser, contexts: list[BrowserContext], screenshots_dir: Path,
    recent: None, label: str, viewport: ViewportSize, phone: bool,
) -> None:
    page = _wallet(browser, contexts, server, viewport, phone=phone)
    rows = page.evaluate(RECENT_JS)
    muted = page.evaluate(MUTED_JS)
    assert sorted(r["status"] for r in rows) == ["completed", "returned", "reversed"]
    for r in rows:
        assert r["docWidth"] <= r["viewWidth"], f"the page is wider than the {r['viewWidth']}px screen"
        # "−CN¥1,234.56" is wider than "Completed": a stretched pill would be as wide as it.
        assert r["tag"] <= r["tagContent"] + 1, f"the {r['status']} pill is wider than its text: {r}"
        assert abs(r["tagRight"] - r["figuresRight"]) <= 1, f"the {r['status']} pill left the right edge: {r}"
        went_back = r["status"] in ("reversed", "returned")
        assert r["struck"] is went_back, r
        assert (r["color"] == muted) is went_back, (r, muted)
    completed = next(r for r in rows if r["status"] == "completed")
    assert completed["tag"] < completed["amount"] - 10, completed  # the case the pill used to stretch in
    page.screenshot(path=str(screenshots_dir / f"wallet-recent-transfers-{label}.png"), full_page=True)

    # The undone transfer's own page: the big amount is struck through too.
    page.locator("[data-testid=recent-transfer][data-status=reversed] a").click()
    expect(page.get_by_test_id("transfer-status")).to_have_attribute("data-status", "reversed")
    decoration = page.get_by_test_id("transfer-amount").evaluate("el => getComputedStyle(el).textDecorationLine")
    assert "line-through" in decoration
    page.screenshot(path=str(screenshots_dir / f"wallet-transfer-reversed-{label}.png"), full_page=True)
