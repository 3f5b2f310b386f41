"""The merchant's webhooks page in headless Chromium against the real server (whose
own worker delivers): add an endpoint (the secret is shown once), a top-up reaches a
real receiver signed with that secret, the delivery log shows it, and a resend to a
receiver now answering 500 shows the failed attempt and the next retry."""

from __future__ import annotations

import hashlib
import hmac
import json
import re
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from playwright.sync_api import Browser, BrowserContext, Page, expect

from tests.e2e.conftest import Server
from tests.integration.webhook_support import Receiver, receiver

pytestmark = pytest.mark.e2e

PASSWORD = "lantern 27 harbour tea"
EMAIL = "hooks.merchant.e2e@example.com"


@pytest.fixture
def page(browser: Browser) -> Iterator[Page]:
    ctx: BrowserContext = browser.new_context(viewport={"width": 1280, "height": 900}, locale="en-GB")
    try:
        yield ctx.new_page()
    finally:
        ctx.close()


@pytest.fixture
def rx() -> Iterator[Receiver]:
    yield from receiver()


def wait_for(condition: object, what: str, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():  # type: ignore[operator]
            return
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


def top_up(server: Server, amount: int) -> None:
    """The merchant tops up over the API: topup.succeeded is its own event."""
    token = httpx.post(server.url("/v1/sessions"), json={"email": EMAIL, "password": PASSWORD},
                       timeout=10).json()["token"]
    auth = {"authorization": f"Bearer {token}"}
    card = httpx.post(server.url("/v1/bank-cards"), json={"card_number": "4111111111111111", "holder_name": "Shop"},
                      headers=auth, timeout=10)
    assert card.status_code == 201, card.text
    r = httpx.post(server.url("/v1/topups"), json={"card": card.json()["id"], "amount": amount}, headers=auth,
                   timeout=10)
    assert r.status_code == 201, r.text


def test_add_an_endpoint_see_deliveries_and_resend(page: Page, server: Server, rx: Receiver,
                                                   screenshots_dir: Path) -> None:
    page.goto(server.url("/signup"))
    page.check("input[name=kind][value=merchant]")
    page.fill("input[name=name]", "Hook Tea E2E")
    page.fill("input[name=email]", EMAIL)
    page.fill("input[name=password]", PASSWORD)
    page.click("form.form button[type=submit]")
    expect(page).to_have_url(re.compile(r"/verify$"))

    page.goto(server.url("/merchant"))
    page.get_by_role("link", name="Webhooks", exact=True).first.click()
    expect(page).to_have_url(re.compile(r"/merchant/webhooks$"))
    expect(page.get_by_test_id("no-endpoints")).to_be_visible()
    page.get_by_test_id("endpoint-url").fill(rx.url)
    page.get_by_test_id("create-endpoint").click()
    secret_box = page.get_by_test_id("new-secret")
    expect(secret_box).to_have_text(re.compile(r"^whsec_[A-Za-z0-9_-]{43}$"))
    secret = secret_box.inner_text()
    page.screenshot(path=str(screenshots_dir / "merchant-webhook-created.png"), full_page=True)

    page.goto(server.url("/merchant/webhooks"))  # shown once
    expect(page.get_by_test_id("new-secret")).to_have_count(0)
    assert secret not in page.content()
    expect(page.get_by_test_id("endpoint-row")).to_have_count(1)

    top_up(server, 5_000)
    wait_for(lambda: any(json.loads(r.body)["type"] == "topup.succeeded" for r in rx.received),
             "the topup.succeeded webhook")
    got = next(r for r in rx.received if json.loads(r.body)["type"] == "topup.succeeded")
    fields = dict(part.split("=", 1) for part in got.headers["trustpay-signature"].split(","))
    mac = hmac.new(secret.encode(), f"{fields['t']}.".encode() + got.body, hashlib.sha256).hexdigest()
    assert hmac.compare_digest(mac, fields["v1"])

    page.get_by_test_id("endpoint-link").click()
    row = page.get_by_test_id("delivery-row").filter(has_text="topup.succeeded")
    expect(row).to_have_attribute("data-status", "succeeded")
    expect(row.get_by_test_id("delivery-attempts")).to_have_text("1")

    rx.default = 500
    row.get_by_test_id("resend").click()
    expect(page).to_have_url(re.compile(r"notice=resent"))
    wait_for(lambda: sum(json.loads(r.body)["type"] == "topup.succeeded" for r in rx.received) >= 2,
             "the resent delivery")
    time.sleep(0.5)  # the worker records the answer just after the receiver saw it
    page.reload()
    row = page.get_by_test_id("delivery-row").filter(has_text="topup.succeeded")
    expect(row).to_have_attribute("data-status", "pending")
    expect(row).to_contain_text("HTTP 500")
    expect(row.get_by_test_id("delivery-next")).not_to_have_text("—")
    page.screenshot(path=str(screenshots_dir / "merchant-webhook-log.png"), full_page=True)

    page.goto(page.url.split("?")[0] + "?lang=zh-Hans")
    expect(page.get_by_text("推送记录")).to_be_visible()
    page.goto(page.url.split("?")[0] + "?lang=zh-Hant")
    expect(page.get_by_text("推送紀錄")).to_be_visible()
    page.goto(page.url.split("?")[0] + "?lang=en-GB")
    page.get_by_test_id("delete-endpoint").click()
    expect(page).to_have_url(re.compile(r"/merchant/webhooks\?notice=deleted"))
    expect(page.get_by_test_id("no-endpoints")).to_be_visible()
