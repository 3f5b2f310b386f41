"""The merchant's trades list and trade page say where each trade stands, on both engines:
an open dispute stops the Ship form and says to answer the dispute (a stale Ship form is
refused in those words)."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from tests.integration.test_dispute_pages import browser, csrf
from tests.integration.trade_support import AMOUNT, TradeEnv, Wallet, make_trade_env

from trustpay.trades import disputes


@pytest.fixture
def t(db_url: str, tmp_path: Path) -> Iterator[TradeEnv]:
    yield from make_trade_env(db_url, tmp_path)


def open_dispute(t: TradeEnv, buyer: Wallet, trade_id: str) -> None:
    p = t.platform
    p.db.run(lambda conn: disputes.open_dispute(p, conn, trade_id, buyer.id, reason="Never arrived"))


def list_row(html: str, trade_id: str) -> str:
    row = re.search(rf'data-testid="merchant-trade" data-id="{trade_id}".*?</li>', html, re.S)
    assert row is not None, trade_id
    return row.group(0)


def test_an_open_dispute_stops_shipping_and_points_to_the_dispute(t: TradeEnv) -> None:
    shop, buyer = t.merchant(), t.user("buyer@example.com", fund=AMOUNT)
    tid = str(t.create(shop)["id"])
    t.pay(buyer, tid)
    merchant = browser(t, shop)
    url = f"/merchant/trades/{tid}"
    assert 'data-testid="ship-form"' in merchant.get(url, params={"lang": "en"}).text
    stale = csrf(merchant, url)  # the Ship form as drawn before the dispute
    open_dispute(t, buyer, tid)

    row = list_row(merchant.get("/merchant/trades", params={"lang": "en"}).text, tid)
    assert 'data-testid="dispute-open">Dispute opened<' in row
    assert "Paid: on hold for the dispute" in row and "ship it" not in row
    page = merchant.get(url, params={"lang": "en"}).text
    assert 'data-testid="ship-form"' not in page
    assert "Paid: on hold for the dispute" in page and 'data-testid="dispute-open"' in page
    assert f'href="/trades/{tid}/dispute" data-testid="dispute-link">Answer the dispute' in page

    r = merchant.post(f"{url}/ship", data={"csrf_token": stale, "carrier": "SF", "tracking_no": "SF1"})
    assert r.status_code == 409 and "A dispute about this order is open" in r.text
    assert t.trade(tid, shop)["status"] == "WAIT_SELLER_SEND_GOODS"
