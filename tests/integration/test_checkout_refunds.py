"""The checkout page of a trade whose money (some or all) went back, on both engines: a
trade closed by a full refund says "Refunded", not just "Closed", with the amount and
each refund; a partly refunded one lists what came back and what the merchant keeps; a
dispute ruling's share for the buyer is a line of its own. The fee and the merchant's
net shrink as the statement and settlement count them."""

from __future__ import annotations

import html
import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from tests.integration.test_dispute_pages import browser
from tests.integration.test_disputes import ops, rule
from tests.integration.trade_support import AMOUNT, TradeEnv, Wallet, make_trade_env

from trustpay.trades import disputes, refunds
from trustpay.trades.refunds import NewRefund
from trustpay.web.i18n import translations


@pytest.fixture
def t(db_url: str, tmp_path: Path) -> Iterator[TradeEnv]:
    yield from make_trade_env(db_url, tmp_path)


def refund(t: TradeEnv, shop: Wallet, trade_id: str, amount: int, no: str, reason: str) -> None:
    p = t.platform
    p.db.run(lambda conn: refunds.create(p, conn, trade_id, shop.id, NewRefund(no, amount, reason)))


def by_testid(page: str, testid: str) -> list[str]:
    """The text of every element with this data-testid (tags stripped, entities decoded)."""
    found = re.findall(rf'data-testid="{testid}"[^>]*>(.*?)</(?:span|dd|p|div|li)>', page, re.S)
    return [html.unescape(re.sub(r"\s+", " ", re.sub(r"<[^>]+>", "", f))).strip() for f in found]


def test_full_refund_shows_refunded_with_the_amount_and_the_refund(t: TradeEnv) -> None:
    shop, buyer = t.merchant(), t.user("buyer@example.com", fund=AMOUNT)
    tid = str(t.create(shop, "order-1")["id"])
    t.pay(buyer, tid)
    refund(t, shop, tid, AMOUNT, "rf-1", "Out of stock")
    page = browser(t, buyer).get(f"/checkout/{tid}", params={"lang": "en"}).text
    assert by_testid(page, "trade-status") == ["Refunded"]
    assert by_testid(page, "close-reason") == ["Everything paid was refunded to the buyer's TrustPay wallet."]
    assert by_testid(page, "refunded-total") == ["−CN¥100.00"]
    assert by_testid(page, "fee") == ["CN¥0.00"]  # the whole fee went back to the merchant
    assert "CN¥100.00 came back to your TrustPay wallet" in page
    assert by_testid(page, "refund-line-amount") == ["CN¥100.00"]
    assert "Out of stock" in page and by_testid(page, "kept") == []
    zh = browser(t, buyer).get(f"/checkout/{tid}", params={"lang": "zh-Hans"}).text
    assert "已退回你的信付钱包" in zh
    assert by_testid(zh, "trade-status") == [translations("zh-Hans").gettext("Refunded")] != ["Refunded"]
    # The merchant looking at the same page reads it from its side.
    theirs = browser(t, shop).get(f"/checkout/{tid}", params={"lang": "en"}).text
    assert "CN¥100.00 went back to the buyer's TrustPay wallet" in theirs


def test_partial_refunds_and_a_ruling_are_listed_with_what_the_merchant_keeps(t: TradeEnv) -> None:
    shop, buyer = t.merchant(), t.user("buyer@example.com", fund=AMOUNT)
    tid = str(t.create(shop, "order-1")["id"])
    t.pay(buyer, tid)
    refund(t, shop, tid, 1_000, "rf-1", "Lid chipped")
    t.ship(shop, tid)
    p = t.platform
    dispute = p.db.run(lambda conn: disputes.open_dispute(p, conn, tid, buyer.id, reason="One cup broken"))
    assert rule(t, ops(t), str(dispute["id"]), 1_500, 7_500, note="Cup broken in transit").status_code == 200
    page = browser(t, buyer).get(f"/checkout/{tid}", params={"lang": "en"}).text
    assert by_testid(page, "trade-status") == ["Finished"]
    assert by_testid(page, "refunded-total") == ["−CN¥25.00"]
    assert "CN¥25.00 came back to your TrustPay wallet" in page
    lines = re.findall(r'data-testid="refund-line" data-what="([a-z]+)"', page)
    assert lines == ["refund", "ruling"] and by_testid(page, "refund-line-amount") == ["CN¥10.00", "CN¥15.00"]
    assert "Lid chipped" in page and "Cup broken in transit" in page
    assert by_testid(page, "kept") == ["The merchant keeps CN¥75.00 of this order."]
    # Fee 60 × 7 500 / 10 000 = 45; the merchant's net 7 500 − 45.
    assert by_testid(page, "fee") == ["CN¥0.45"] and "CN¥74.55" in page


def test_refund_details_link_opens_the_buyers_refund_page(t: TradeEnv) -> None:
    shop, buyer = t.merchant(), t.user("buyer@example.com", fund=AMOUNT)
    tid = str(t.create(shop, "order-1")["id"])
    t.pay(buyer, tid)
    refund(t, shop, tid, 1_000, "rf-1", "Late")
    me = browser(t, buyer)
    link = re.findall(r'href="([^"]+)" data-testid="refund-details"', me.get(f"/checkout/{tid}").text)
    assert link == [f"/purchases/{tid}/refund"]
    page = me.get(link[0])
    assert page.status_code == 200 and 'data-testid="refund-order"' in page.text
