"""The checkout page and "my purchases" over the app (cookie sessions, CSRF), on both
engines: what the payer sees before paying, paying once per form, refusals with the
next step, confirm receipt, the QR code, who may see the page, and log-in coming back."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from tests.integration.trade_support import AMOUNT, FEE, PAY_PW, TradeEnv, Wallet, make_trade_env

from trustpay.web.auth import SESSION_COOKIE

CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')
REQUEST_KEY = re.compile(r'name="request_key" value="([^"]+)"')


@pytest.fixture
def t(db_url: str, tmp_path: Path) -> Iterator[TradeEnv]:
    yield from make_trade_env(db_url, tmp_path)


def browser(t: TradeEnv, who: Wallet | None) -> TestClient:
    client = TestClient(t.env.app)
    if who is not None:
        client.cookies.set(SESSION_COOKIE, who.token)
    return client


def form_of(client: TestClient, url: str) -> dict[str, str]:
    r = client.get(url)
    assert r.status_code == 200, r.text
    return {"csrf_token": CSRF.findall(r.text)[0], "request_key": REQUEST_KEY.findall(r.text)[0]}


def refusal_code(html: str) -> str | None:
    m = re.search(r'data-testid="refusal" data-code="([^"]+)"', html)
    return m.group(1) if m else None


def test_checkout_shows_the_order_pays_once_and_confirms(t: TradeEnv) -> None:
    shop = t.merchant()
    buyer = t.user("buyer@example.com", fund=AMOUNT)
    trade = t.create(shop)
    url = f"/checkout/{trade['id']}"
    client = browser(t, buyer)
    page = client.get(url, params={"lang": "en"})
    assert page.status_code == 200
    for shown in ("Tea set", "100.00", "0.60", "99.40", 'data-testid="escrow-explained"', "within 120 hours",
                  'data-testid="pay-form"', f'src="{url}/qr.svg"', "order-1"):
        assert shown in page.text, shown
    assert 'data-testid="short"' not in page.text

    form = form_of(client, url)
    r = client.post(f"{url}/pay", data={**form, "payment_password": "000000"})
    assert r.status_code == 402 and refusal_code(r.text) == "payment_password_invalid"
    body = {**form, "payment_password": PAY_PW}
    first = client.post(f"{url}/pay", data=body, follow_redirects=False)
    assert first.status_code == 303 and first.headers["location"] == f"{url}?notice=paid"
    again = client.post(f"{url}/pay", data=body, follow_redirects=False)  # the same form sent twice
    assert again.status_code == 303
    assert t.money(buyer, shop)["escrow"] == AMOUNT and t.money(buyer, shop)["buyer"] == 0
    paid = client.get(f"{url}?notice=paid")
    assert 'data-status="WAIT_SELLER_SEND_GOODS"' in paid.text and 'data-testid="pay-form"' not in paid.text

    t.ship(shop, trade["id"])
    shipped = client.get(url)
    assert 'data-testid="confirm-form"' in shipped.text and "SF1234567890" in shipped.text
    listed = client.get("/purchases")
    assert f'data-id="{trade["id"]}" data-status="WAIT_BUYER_CONFIRM_GOODS"' in listed.text
    form = form_of(client, url)
    r = client.post(f"{url}/confirm", data={**form, "payment_password": PAY_PW}, follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"] == f"{url}?notice=confirmed"
    assert t.money(buyer, shop) == {"buyer": 0, "merchant_pending": AMOUNT - FEE, "fee_revenue": FEE, "escrow": 0}
    assert 'data-status="TRADE_FINISHED"' in client.get(url).text
    t.ledger_ok()


def test_short_balance_points_to_top_up_and_pays_nothing(t: TradeEnv) -> None:
    shop = t.merchant()
    buyer = t.user("buyer@example.com", fund=AMOUNT - 1)
    url = f"/checkout/{t.create(shop)['id']}"
    client = browser(t, buyer)
    page = client.get(url)
    assert 'data-testid="short"' in page.text and 'href="/wallet/topup"' in page.text
    r = client.post(f"{url}/pay", data={**form_of(client, url), "payment_password": PAY_PW})
    assert r.status_code == 402 and refusal_code(r.text) == "insufficient_funds"
    assert t.money(buyer, shop)["buyer"] == AMOUNT - 1


def test_who_sees_the_checkout_page(t: TradeEnv) -> None:
    shop = t.merchant()
    buyer = t.user("buyer@example.com", fund=AMOUNT)
    stranger = t.user("stranger@example.com")
    trade = t.create(shop)
    url = f"/checkout/{trade['id']}"
    # Signed out: an open payment request is shown, with a log-in that comes back here.
    anon = browser(t, None)
    page = anon.get(url)
    assert page.status_code == 200 and 'data-testid="login-to-pay"' in page.text
    assert f'href="/login?next=%2Fcheckout%2F{trade["id"]}"' in page.text
    assert anon.get(f"{url}/qr.svg").headers["content-type"].startswith("image/svg+xml")
    assert anon.get("/checkout/trd_0000000000000000000000000a").status_code == 404
    login = anon.get(f"/login?next=%2Fcheckout%2F{trade['id']}")
    csrf = CSRF.findall(login.text)[0]
    r = anon.post("/login", data={"csrf_token": csrf, "email": buyer.email, "password": "correct horse 42 battery",
                                  "next": url}, follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"] == url
    r = anon.post("/login", data={"csrf_token": csrf, "email": buyer.email, "password": "correct horse 42 battery",
                                  "next": "//evil.example/"}, follow_redirects=False)
    assert r.headers["location"] == "/wallet"  # never to another site
    t.pay(buyer, trade["id"])
    # Paid: only its merchant and buyer.
    assert browser(t, stranger).get(url).status_code == 404
    assert browser(t, shop).get(url).status_code == 200
    assert browser(t, None).get(url, follow_redirects=False).status_code == 303
    outsider = browser(t, stranger)
    csrf = CSRF.findall(outsider.get("/purchases").text)[0]  # the header's log-out form carries one
    r = outsider.post(f"{url}/pay", data={"csrf_token": csrf, "payment_password": PAY_PW, "request_key": "k"})
    assert r.status_code == 404


def test_a_closed_trade_says_so(t: TradeEnv) -> None:
    shop = t.merchant()
    buyer = t.user("buyer@example.com", fund=AMOUNT)
    trade = t.create(shop)
    url = f"/checkout/{trade['id']}"
    client = browser(t, buyer)
    form = form_of(client, url)
    t.close(shop, trade["id"])
    r = client.post(f"{url}/pay", data={**form, "payment_password": PAY_PW})
    assert r.status_code == 409 and refusal_code(r.text) == "invalid_state"
    assert 'data-status="TRADE_CLOSED"' in r.text and 'data-testid="close-reason"' in r.text
    assert t.money(buyer, shop)["buyer"] == AMOUNT


def links_of(html: str) -> set[str]:
    return set(re.findall(r'data-testid="(refund-link|dispute-link)"', html))


def test_done_steps_say_when_and_the_order_page_offers_what_my_purchases_offers(t: TradeEnv) -> None:
    shop = t.merchant()
    buyer = t.user("buyer@example.com", fund=3 * AMOUNT)
    client = browser(t, buyer)
    tid = str(t.create(shop)["id"])
    t.pay(buyer, tid)
    t.ship(shop, tid)
    page = client.get(f"/checkout/{tid}", params={"lang": "en"}).text
    ship = re.search(r'data-testid="step-ship">([^<]*)<', page)
    assert ship is not None and ship.group(1).startswith("The merchant shipped on ")
    assert links_of(page) == {"refund-link", "dispute-link"}
    t.confirm(buyer, tid)
    page = client.get(f"/checkout/{tid}", params={"lang": "en"}).text
    confirm = re.search(r'data-testid="step-confirm">([^<]*)<', page)
    assert confirm is not None and confirm.group(1).startswith("Finished on ") and "You confirm receipt by" not in page
    assert links_of(page) == {"dispute-link"}

    # The order page offers exactly the links its line in my purchases offers, whatever the state.
    unpaid = str(t.create(shop, "o-unpaid")["id"])
    paid = str(t.create(shop, "o-paid")["id"])
    t.pay(buyer, paid)
    instant = str(t.create(shop, "o-instant", mode="instant")["id"])
    t.pay(buyer, instant)
    mine = client.get("/purchases").text
    for trade_id in (tid, paid, instant):
        line = re.search(rf'data-testid="purchase" data-id="{trade_id}".*?</li>', mine, re.S)
        assert line is not None
        assert links_of(client.get(f"/checkout/{trade_id}").text) == links_of(line.group(0)), trade_id
    assert links_of(client.get(f"/checkout/{unpaid}").text) == set()
