"""Settlement against the real server and its worker, in headless Chromium: a merchant
with a settlement card and T+0 sells an instant trade (API); the Settlements tab shows
the money waiting and the next settlement date; the test clock moves a day, the daily
job pays it out through the sandbox bank; the tab lists the paid batch (screenshots in
en, zh-Hans, zh-Hant) and its CSV report downloads with the trade in it; the API
agrees, and another merchant sees none of it."""

from __future__ import annotations

import csv
import io
import re
import time
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import httpx
import pytest
from playwright.sync_api import Browser, BrowserContext, Page, expect

from tests.e2e.conftest import Server
from tests.e2e.test_wallet_pages import PAY_PW, last_code

pytestmark = pytest.mark.e2e

PASSWORD = "quiet river 63 lantern"
SHOP = "porcelain.settlement.e2e@example.com"
OTHER = "other.settlement.e2e@example.com"
BUYER = "buyer.settlement.e2e@example.com"
AMOUNT = 25_600  # ¥256.00; fee 0.6 % = ¥1.54
NET = AMOUNT - 154
WAIT_S = 20.0


@pytest.fixture
def page(browser: Browser) -> Iterator[Page]:
    ctx: BrowserContext = browser.new_context(viewport={"width": 1280, "height": 900}, locale="en-GB",
                                              accept_downloads=True)
    try:
        yield ctx.new_page()
    finally:
        ctx.close()


def session(http: httpx.Client, email: str) -> dict[str, str]:
    r = http.post("/v1/sessions", json={"email": email, "password": PASSWORD})
    assert r.status_code == 201, r.text
    return {"authorization": f"Bearer {r.json()['token']}"}


def sign_up(http: httpx.Client, server: Server, email: str, kind: str) -> dict[str, str]:
    r = http.post("/v1/users", json={"email": email, "password": PASSWORD, "name": email.split(".")[0].title(),
                                     "kind": kind})
    assert r.status_code == 201, r.text
    who = session(http, email)
    r = http.post("/v1/users/me/verifications/confirm", json={"channel": "email", "code": last_code(server, email)},
                  headers=who)
    assert r.status_code == 204, r.text
    r = http.put("/v1/users/me/payment-password", json={"password": PASSWORD, "payment_password": PAY_PW},
                 headers=who)
    assert r.status_code == 204, r.text
    return who


def bind_card(http: httpx.Client, who: dict[str, str]) -> str:
    r = http.post("/v1/bank-cards", json={"bank": "sandbox", "card_number": "4111111111111111",
                                          "holder_name": "Card Holder"}, headers=who)
    assert r.status_code == 201, r.text
    return str(r.json()["id"])


def wait_for(check: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + WAIT_S
    while not check():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.2)


def log_in(page: Page, server: Server, email: str) -> None:
    page.goto(server.url("/login"))
    page.fill("input[name=email]", email)
    page.fill("input[name=password]", PASSWORD)
    page.click("form.form button[type=submit]")
    expect(page.get_by_test_id("logout")).to_be_visible()


def advance(http: httpx.Client, seconds: float) -> datetime:
    r = http.post("/v1/test_clock/advance", json={"seconds": seconds}, timeout=120)
    assert r.status_code == 200, r.text
    return datetime.fromisoformat(r.json()["now"].replace("Z", "+00:00"))


def to_next_local(http: httpx.Client, hour: int) -> None:
    """Move the platform clock to the next ``hour`` o'clock in the settlement zone
    (the default TRUSTPAY_LIMITS_TIMEZONE, Asia/Shanghai)."""
    local = advance(http, 0.001).astimezone(ZoneInfo("Asia/Shanghai"))
    target = local.replace(hour=hour, minute=0, second=0, microsecond=0)
    if target <= local:
        target += timedelta(days=1)
    advance(http, (target - local).total_seconds())


def test_settlements_tab_waiting_then_paid_with_report(server: Server, page: Page, screenshots_dir: Path) -> None:
    http = httpx.Client(base_url=server.base_url, timeout=30.0)
    # The daily run starts at 02:00 in the settlement zone and, for T+0, pays what the
    # day has made so far. A trade paid between 02:00 and midnight on a server with no
    # run booked yet was paid at once by that day's run, booked late: this test then
    # found nothing waiting for 22 hours of every day (it passed from 16:00 to 18:00
    # UTC). At 01:00 there the day's run is an hour away, whenever the test runs.
    to_next_local(http, 1)
    shop = sign_up(http, server, SHOP, "merchant")
    r = http.patch("/v1/merchant/profile", headers=shop,
                   json={"settlement_card_id": bind_card(http, shop), "settlement_delay_days": 0})
    assert r.status_code == 200, r.text
    r = http.post("/v1/merchant/api-keys", json={"label": "e2e"}, headers=shop)
    assert r.status_code == 201, r.text
    key = {"authorization": f"Bearer {r.json()['secret']}"}

    buyer = sign_up(http, server, BUYER, "personal")
    r = http.post("/v1/topups", json={"card": bind_card(http, buyer), "amount": 50_000, "currency": "CNY"},
                  headers=buyer)
    assert r.status_code == 201, r.text
    top = r.json()["id"]
    wait_for(lambda: http.get(f"/v1/topups/{top}", headers=buyer).json()["status"] == "succeeded", "the top-up")
    r = http.post("/v1/trades", headers=key, json={"out_trade_no": "VASE-0001", "amount": AMOUNT,
                                                   "subject": "Celadon vase", "mode": "instant"})
    assert r.status_code == 201, r.text
    trade = r.json()["id"]
    r = http.post(f"/v1/trades/{trade}/pay", json={"payment_password": PAY_PW}, headers=buyer)
    assert r.status_code == 200 and r.json()["status"] == "TRADE_SUCCESS", r.text

    log_in(page, server, SHOP)
    page.goto(server.url("/merchant?lang=en"))
    page.get_by_role("link", name="Settlements", exact=True).click()
    expect(page).to_have_url(re.compile(r"/merchant/settlements"))
    expect(page.get_by_test_id("waiting-amount")).to_contain_text("254.46")
    expect(page.get_by_test_id("no-settlements")).to_be_visible()
    page.screenshot(path=str(screenshots_dir / "merchant-settlements-waiting-en.png"), full_page=True)

    # A day later the daily job has paid it out; the bank's callback settles it.
    advance(http, 24 * 3600)
    shop = session(http, SHOP)

    def paid() -> bool:
        data = http.get("/v1/settlements", headers=shop).json()["data"]
        return bool(data) and data[0]["status"] == "succeeded"

    wait_for(paid, "the settlement payout")
    [batch] = http.get("/v1/settlements", headers=shop).json()["data"]
    assert (batch["amount"], batch["fee"], batch["gross"], batch["trade_count"]) == (NET, AMOUNT - NET, AMOUNT, 1)

    log_in(page, server, SHOP)  # the day's jump outlived the idle session
    for lang in ("zh-Hans", "zh-Hant", "en"):
        page.goto(server.url(f"/merchant/settlements?lang={lang}"))
        row = page.locator(f"[data-testid=settlement-row][data-settlement-id='{batch['id']}']")
        expect(row).to_have_attribute("data-status", "succeeded")
        page.screenshot(path=str(screenshots_dir / f"merchant-settlements-paid-{lang}.png"), full_page=True)
    expect(page.get_by_test_id("nothing-waiting")).to_be_visible()
    with page.expect_download() as download:
        page.get_by_test_id("settlement-report").first.click()
    report = list(csv.reader(io.StringIO(Path(download.value.path()).read_text("utf-8"))))
    assert report[0] == ["trade_id", "out_trade_no", "finished_at", "amount", "fee", "net"]
    assert report[1][:2] == [trade, "VASE-0001"] and report[1][3:] == [str(AMOUNT), str(AMOUNT - NET), str(NET)]

    other = sign_up(http, server, OTHER, "merchant")
    assert http.get("/v1/settlements", headers=other).json()["data"] == []
    assert http.get(f"/v1/settlements/{batch['id']}/report.csv", headers=other).status_code == 404
