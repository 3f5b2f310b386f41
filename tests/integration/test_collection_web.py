"""Collection code and donation pages over the app (cookie sessions, CSRF) on both engines:
paying once per form, the fixed amount, amount bounds with a clear refusal, a disabled code's
409 page, the QR codes, escaped messages, the public total, and the merchant's tab."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from tests.integration.test_trades_web import browser, form_of, refusal_code
from tests.integration.trade_support import PAY_PW, TradeEnv, make_trade_env

from trustpay.trades import collection
from trustpay.trades.collection import NewCode, NewDonationPage


@pytest.fixture
def t(db_url: str, tmp_path: Path) -> Iterator[TradeEnv]:
    yield from make_trade_env(db_url, tmp_path)


def code_of(t: TradeEnv, merchant_id: str, amount: int | None = None) -> str:
    p = t.platform
    row = p.db.run(lambda conn: collection.create_code(p, conn, merchant_id, NewCode("Counter 1", "CNY", amount)))
    return str(row["id"])


def test_a_payer_pays_a_code_once_per_form_with_bounds_and_a_fixed_amount(t: TradeEnv) -> None:
    shop, payer = t.merchant(), t.user("payer@example.com", fund=20_000)
    url = f"/pay/{code_of(t, shop.id)}"
    client = browser(t, payer)
    page = client.get(url, params={"lang": "en"})
    assert page.status_code == 200
    for shown in ("Counter 1", 'data-testid="collect-form"', f'src="{url}/qr.svg"', 'name="amount"'):
        assert shown in page.text, shown
    form = form_of(client, url)
    for bad in ("0", "-5", "abc", "1.234", "99999999999"):
        r = client.post(url, data={**form, "amount": bad, "payment_password": PAY_PW})
        assert r.status_code == 400 and refusal_code(r.text) == "invalid_amount", bad
    too_long = client.post(url, data={**form, "amount": "1", "note": "x" * 201, "payment_password": PAY_PW})
    assert too_long.status_code == 400 and "200 characters" in too_long.text
    body = {**form_of(client, url), "amount": "12.34", "note": "table 4", "payment_password": PAY_PW}
    first = client.post(url, data=body, follow_redirects=False)
    assert first.status_code == 303 and re.fullmatch(r"/checkout/trd_\w+\?notice=paid_instant",
                                                      first.headers["location"])
    again = client.post(url, data=body, follow_redirects=False)  # the same form sent twice pays once
    assert again.headers["location"] == first.headers["location"]
    assert t.money(payer, shop)["buyer"] == 20_000 - 1_234

    fixed = f"/pay/{code_of(t, shop.id, 500)}"
    page = client.get(fixed, params={"lang": "en"})
    assert "5.00" in page.text and 'name="amount"' not in page.text
    r = client.post(fixed, data={**form_of(client, fixed), "payment_password": PAY_PW}, follow_redirects=False)
    assert r.status_code == 303
    assert t.money(payer, shop)["buyer"] == 20_000 - 1_234 - 500

    svg = client.get(f"{url}/qr.svg")
    assert svg.status_code == 200 and svg.headers["content-type"].startswith("image/svg+xml")
    assert client.get("/pay/qrc_00000000000000000000000000").status_code == 404


def test_a_disabled_code_is_a_clear_409_page(t: TradeEnv) -> None:
    shop, payer = t.merchant(), t.user("payer@example.com", fund=1_000)
    code = code_of(t, shop.id)
    client = browser(t, payer)
    form = form_of(client, f"/pay/{code}")
    p = t.platform
    p.db.run(lambda conn: collection.disable_code(p, conn, code, shop.id))
    page = client.get(f"/pay/{code}", params={"lang": "en"})
    assert page.status_code == 409 and "switched off by its merchant" in page.text
    assert 'data-testid="collect-form"' not in page.text
    r = client.post(f"/pay/{code}", data={**form, "amount": "1", "payment_password": PAY_PW})
    assert r.status_code == 409 and "switched off by its merchant" in r.text
    assert t.money(payer, shop)["buyer"] == 1_000


def test_donation_page_shows_escaped_messages_and_the_total(t: TradeEnv) -> None:
    charity, payer = t.merchant("charity@example.com"), t.user("payer@example.com", fund=10_000)
    p = t.platform
    page_row = p.db.run(lambda conn: collection.create_page(p, conn, charity.id, NewDonationPage(
        "Wells", "Water for <all>.", "CNY", goal=100_000, suggested_amounts=(1_000,))))
    url = f"/donate/{page_row['id']}"
    client = browser(t, payer)
    r = client.post(url, data={**form_of(client, url), "amount": "30", "note": "<script>x</script>",
                               "anonymous": "on", "payment_password": PAY_PW}, follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"] == f"{url}?notice=thanks"
    shown = TestClient(t.env.app).get(url, params={"lang": "en"})  # signed out: the public page
    assert shown.status_code == 200
    assert "&lt;script&gt;x&lt;/script&gt;" in shown.text and "<script>x" not in shown.text
    assert "Water for &lt;all&gt;." in shown.text
    assert re.search(r'data-testid="raised">[^<]*30\.00<', shown.text)
    assert 'data-testid="donation-count">1<' in shown.text
    assert "Anonymous" in shown.text and "payer@example.com" not in shown.text
    assert 'data-testid="login-to-pay"' in shown.text


def test_merchant_tab_creates_and_switches_off(t: TradeEnv) -> None:
    shop, person = t.merchant(), t.user("person@example.com")
    client = browser(t, shop)
    tab = client.get("/merchant/collect", params={"lang": "en"})
    assert tab.status_code == 200 and 'href="/merchant/collect"' in tab.text
    csrf = form_of_csrf(tab.text)
    r = client.post("/merchant/collect/codes", data={"csrf_token": csrf, "label": "Stall", "currency": "CNY",
                                                     "amount": "8.80"}, follow_redirects=False)
    assert r.status_code == 303
    bad = client.post("/merchant/collect/codes", data={"csrf_token": csrf, "label": "", "currency": "CNY"})
    assert bad.status_code == 400 and "Enter a label" in bad.text
    r = client.post("/merchant/collect/donations", data={
        "csrf_token": csrf, "title": "Wells", "story": "Water.", "currency": "CNY", "goal": "1000",
        "suggested": "10, 50", "public": "on"}, follow_redirects=False)
    assert r.status_code == 303
    p = t.platform
    codes = p.db.run(lambda conn: collection.codes_of(conn, shop.id), write=False)
    pages = p.db.run(lambda conn: collection.pages_of(conn, shop.id), write=False)
    assert [(c["label"], c["fixed_amount"]) for c in codes] == [("Stall", 880)]
    assert [(d["title"], d["goal"], collection.suggested(d)) for d in pages] == [("Wells", 100_000, [1_000, 5_000])]
    r = client.post(f"/merchant/collect/{codes[0]['id']}/disable", data={"csrf_token": csrf},
                    follow_redirects=False)
    assert r.status_code == 303
    assert p.db.run(lambda conn: collection.code(conn, codes[0]["id"]), write=False)["status"] == "disabled"
    other = browser(t, t.merchant("other@example.com"))
    other_csrf = form_of_csrf(other.get("/merchant/collect").text)
    assert other.post(f"/merchant/collect/{pages[0]['id']}/disable",
                      data={"csrf_token": other_csrf}).status_code == 404
    assert browser(t, person).get("/merchant/collect").status_code == 404


def form_of_csrf(html: str) -> str:
    return str(re.findall(r'name="csrf_token" value="([^"]+)"', html)[0])


def test_the_payers_note_reaches_the_merchant_and_the_receipt_reads_like_one(t: TradeEnv) -> None:
    shop, payer = t.merchant(), t.user("payer@example.com", fund=5_000)
    url = f"/pay/{code_of(t, shop.id)}"
    client = browser(t, payer)
    r = client.post(url, data={**form_of(client, url), "amount": "12.34", "note": "table <4>",
                               "payment_password": PAY_PW}, follow_redirects=False)
    receipt_url = r.headers["location"].split("?")[0]
    trade_id = receipt_url.rsplit("/", 1)[1]

    receipt = client.get(receipt_url, params={"lang": "en"}).text
    assert 'data-testid="payer-note">Note: “table &lt;4&gt;”<' in receipt
    assert "Order qrc_" not in receipt  # no machine id as the order number
    assert re.search(rf'data-testid="trade-reference">Reference <code class="hash">{trade_id}</code>', receipt)

    merchant = browser(t, shop)
    listing = merchant.get("/merchant/trades", params={"lang": "en"}).text
    row = re.search(rf'data-id="{trade_id}".*?</li>', listing, re.S)
    assert row is not None and 'data-testid="payer-note">Payer\'s note: “table &lt;4&gt;”<' in row.group(0)
    page = merchant.get(f"/merchant/trades/{trade_id}", params={"lang": "en"}).text
    assert 'data-testid="payer-note">table &lt;4&gt;<' in page


def test_decimals_in_a_currency_without_them_are_named_as_the_mistake(t: TradeEnv) -> None:
    shop, payer = t.merchant(), t.user("payer@example.com")
    client = browser(t, shop)
    csrf = form_of_csrf(client.get("/merchant/collect").text)
    r = client.post("/merchant/collect/codes", params={"lang": "en"}, data={
        "csrf_token": csrf, "label": "Ramen", "currency": "JPY", "amount": "100.5"})
    assert r.status_code == 400 and "JPY amounts have no decimals" in r.text and "greater than zero" not in r.text
    r = client.post("/merchant/collect/donations", params={"lang": "en"}, data={
        "csrf_token": csrf, "title": "Shrine", "story": "Roof.", "currency": "JPY", "goal": "5000.5"})
    assert r.status_code == 400 and "JPY amounts have no decimals" in r.text

    p = t.platform
    code = p.db.run(lambda conn: collection.create_code(p, conn, shop.id, NewCode("Ramen", "JPY")))["id"]
    me = browser(t, payer)
    url = f"/pay/{code}"
    r = me.post(url, params={"lang": "en"}, data={**form_of(me, url), "amount": "100.5", "payment_password": PAY_PW})
    assert r.status_code == 400 and refusal_code(r.text) == "invalid_amount"
    assert "JPY amounts have no decimals" in r.text and "greater than zero" not in r.text
