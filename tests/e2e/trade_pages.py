"""Browser set-up the trade page tests share: a phone or desktop context per actor
(kept in the ``contexts`` fixture of conftest.py, closed after the test), logging in,
an escrow trade brought to "shipped" through the API with its shopper signed in on a
phone, and what a trade's ledger entries moved per account kind."""

from __future__ import annotations

import re
from dataclasses import dataclass

import httpx
from playwright.sync_api import Browser, BrowserContext, Page, expect
from sqlalchemy import create_engine, func, select

from tests.e2e.conftest import Server
from tests.e2e.test_checkout_pages import MOBILE, PASSWORD, api, token, top_up
from tests.e2e.test_wallet_pages import PAY_PW, sign_up
from trustpay.db.schema import ledger_accounts, ledger_entries, ledger_postings

SHOP_NAME = "Jingdezhen Porcelain"
SUBJECT = "Celadon tea bowl"
SHOPPER_FUNDS = 50_000  # ¥500.00 topped up before paying


def new_page(browser: Browser, opened: list[BrowserContext], *, mobile: bool) -> Page:
    ctx = (browser.new_context(viewport=MOBILE, locale="en-GB", is_mobile=True, has_touch=True)
           if mobile else browser.new_context(viewport={"width": 1280, "height": 900}, locale="en-GB"))
    opened.append(ctx)
    return ctx.new_page()


def log_in(page: Page, server: Server, email: str, password: str = PASSWORD) -> None:
    page.goto(server.url("/login"))
    page.fill("input[name=email]", email)
    page.fill("input[name=password]", password)
    page.click("form.form button[type=submit]")
    expect(page).not_to_have_url(re.compile(r"/login"))


@dataclass(frozen=True)
class ShippedTrade:
    """An escrow trade the shopper paid and the merchant shipped, and who is who."""

    http: httpx.Client
    key: dict[str, str]  # the merchant's secret API key, as a header
    shopper: dict[str, str]  # the shopper's API session, as a header
    phone: Page  # the shopper, signed up and signed in on a phone
    trade_id: str


def shipped_escrow_trade(server: Server, browser: Browser, contexts: list[BrowserContext], *, shop: str,
                         shopper: str, out_trade_no: str, amount: int, tracking_no: str) -> ShippedTrade:
    """A merchant (``shop``) with a key creates an escrow trade of ``amount``; ``shopper`` signs up
    on a phone through the pages, tops up ¥500.00 from the sandbox bank and pays it; the merchant
    ships it by EMS."""
    http = api(server)
    r = http.post("/v1/users", json={"email": shop, "password": PASSWORD, "name": SHOP_NAME, "kind": "merchant"})
    assert r.status_code == 201, r.text
    r = http.post("/v1/merchant/api-keys", json={"label": "shop"}, headers=token(http, shop))
    assert r.status_code == 201, r.text
    key = {"authorization": f"Bearer {r.json()['secret']}"}
    r = http.post("/v1/trades", headers=key, json={"out_trade_no": out_trade_no, "amount": amount,
                                                   "subject": SUBJECT, "mode": "escrow"})
    assert r.status_code == 201, r.text
    trade_id = r.json()["id"]

    phone = new_page(browser, contexts, mobile=True)
    sign_up(phone, server, "Wang Fang", shopper)
    session = token(http, shopper)
    top_up(http, session, SHOPPER_FUNDS)
    r = http.post(f"/v1/trades/{trade_id}/pay", headers=session, json={"payment_password": PAY_PW})
    assert r.status_code == 200 and r.json()["status"] == "WAIT_SELLER_SEND_GOODS", r.text
    r = http.post(f"/v1/trades/{trade_id}/ship", headers=key, json={"carrier": "EMS", "tracking_no": tracking_no})
    assert r.status_code == 200, r.text
    return ShippedTrade(http, key, session, phone, trade_id)


def moved_by_kind(server: Server, trade_id: str) -> dict[str, int]:
    """Per account kind, the sum of what the trade's ledger entries moved (balances only)."""
    moved = (select(ledger_accounts.c.kind, func.sum(ledger_postings.c.delta))
             .join(ledger_postings, ledger_postings.c.account_id == ledger_accounts.c.id)
             .join(ledger_entries, ledger_entries.c.seq == ledger_postings.c.entry_seq)
             .where(ledger_entries.c.reference == trade_id, ledger_postings.c.field == "balance")
             .group_by(ledger_accounts.c.kind))
    engine = create_engine(server.database_url)
    try:
        with engine.connect() as conn:
            return {kind: int(total) for kind, total in conn.execute(moved).all()}
    finally:
        engine.dispose()
