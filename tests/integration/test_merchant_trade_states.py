"""The merchant's trades list and trade page say where each trade stands, on both engines:
an open dispute stops the Ship form and says to answer the dispute (a stale Ship form is
refused in those words); the page words the money and the dates by state (asked, not paid,
before payment; when paid, by whom, ship by, shipped, finished), and a buyer's refund
request in the merchant's words."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from tests.integration.refund_support import AMOUNT, RefundEnv, Wallet, make_refund_env
from tests.integration.test_dispute_pages import browser, csrf

from trustpay.clock import to_utc
from trustpay.trades import disputes
from trustpay.web.i18n import format_timestamp, translations


@pytest.fixture
def t(db_url: str, tmp_path: Path) -> Iterator[RefundEnv]:
    yield from make_refund_env(db_url, tmp_path)


def open_dispute(t: RefundEnv, buyer: Wallet, trade_id: str) -> None:
    p = t.platform
    p.db.run(lambda conn: disputes.open_dispute(p, conn, trade_id, buyer.id, reason="Never arrived"))


def list_row(html: str, trade_id: str) -> str:
    row = re.search(rf'data-testid="merchant-trade" data-id="{trade_id}".*?</li>', html, re.S)
    assert row is not None, trade_id
    return row.group(0)


def test_an_open_dispute_stops_shipping_and_points_to_the_dispute(t: RefundEnv) -> None:
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


def figures(html: str) -> dict[str, str]:
    """The trade page's figures: each <dt> with its <dd>."""
    block = re.search(r'data-testid="trade-figures">(.*?)</dl>', html, re.S)
    assert block is not None
    return dict(re.findall(r"<dt>([^<]*)</dt><dd[^>]*>([^<]*)</dd>", block.group(1)))


def shown(t: RefundEnv, when: Any) -> str:
    """An instant as the merchant's trade page shows it: in the display zone (Asia/Shanghai
    by default), labelled "UTC+8"."""
    text = format_timestamp(to_utc(when), "en", t.platform.settings.display_timezone)
    assert text.endswith("\u00a0UTC+8")
    return text


def test_the_trade_page_words_the_money_and_dates_by_state(t: RefundEnv) -> None:
    shop, buyer = t.merchant(), t.user("buyer@example.com", fund=AMOUNT)
    tid = str(t.create(shop)["id"])
    merchant = browser(t, shop)
    url = f"/merchant/trades/{tid}"

    unpaid = figures(merchant.get(url, params={"lang": "en"}).text)
    assert set(unpaid) == {"Amount asked", "To be paid by", "Fee when paid", "Net to you when paid"}
    assert unpaid["Amount asked"] == "CN¥100.00" and unpaid["Fee when paid"] == "CN¥0.60"

    t.pay(buyer, tid)
    paid = figures(merchant.get(url, params={"lang": "en"}).text)
    assert paid["The buyer paid"] == "CN¥100.00" and paid["Buyer"] == "b***@example.com"
    trade = t.trade(tid, shop)
    assert paid["Paid on"] == shown(t, trade["paid_at"]) and paid["Ship by"] == shown(t, trade["ship_by"])
    assert paid["Fee"] == "CN¥0.60" and "Amount asked" not in paid and "Shipped on" not in paid

    asked = t.refund(buyer, tid, 2_000)
    page = merchant.get(url, params={"lang": "en"}).text
    heading = re.search(r'data-testid="refund-request-heading">([^<]*)<', page)
    assert heading is not None and heading.group(1).startswith("The buyer asks for a refund: answer by ")
    assert "Waiting for the merchant" not in page
    t.reject(shop, str(asked["id"]))

    t.ship(shop, tid)
    shipped = figures(merchant.get(url, params={"lang": "en"}).text)
    trade = t.trade(tid, shop)
    assert "Ship by" not in shipped and shipped["Shipped on"] == shown(t, trade["shipped_at"])
    assert shipped["The buyer confirms receipt by"] == shown(t, trade["confirm_by"])
    t.confirm(buyer, tid)
    finished = figures(merchant.get(url, params={"lang": "en"}).text)
    assert finished["Finished on"] == shown(t, t.trade(tid, shop)["finished_at"])
    assert "The buyer confirms receipt by" not in finished

    called_off = str(t.create(shop, "o-2")["id"])
    t.close(shop, called_off)
    closed = figures(merchant.get(f"/merchant/trades/{called_off}", params={"lang": "en"}).text)
    assert set(closed) == {"Amount asked", "Closed on", "Fee"} and closed["Fee"] == "Not paid: no fee"


@pytest.mark.parametrize(("lang", "opened", "open_one", "decline"), [
    ("zh-Hans", "已发起争议", "发起争议", "拒绝退款"), ("zh-Hant", "已發起爭議", "發起爭議", "拒絕退款"),
])
def test_chinese_pages_tell_an_open_dispute_from_opening_one(t: RefundEnv, lang: str, opened: str, open_one: str,
                                                             decline: str) -> None:
    shop, buyer = t.merchant(), t.user("buyer@example.com", fund=2 * AMOUNT)
    asked = str(t.create(shop, "o-asked")["id"])
    t.pay(buyer, asked)
    t.refund(buyer, asked, 1_000)
    page = browser(t, shop).get(f"/merchant/trades/{asked}", params={"lang": lang}).text
    # The refund request's button declines the refund; the transfers' "Decline" (refuse money) stays apart.
    assert f'data-testid="reject-refund">{decline}<' in page
    assert translations(lang).gettext("Decline") != decline

    disputed = str(t.create(shop, "o-disputed")["id"])
    t.pay(buyer, disputed)
    open_dispute(t, buyer, disputed)
    row = list_row(browser(t, shop).get("/merchant/trades", params={"lang": lang}).text, disputed)
    assert f'data-testid="dispute-open">{opened}<' in row
    mine = browser(t, buyer).get("/purchases", params={"lang": lang}).text
    link = re.search(rf'href="/trades/{disputed}/dispute" data-testid="dispute-link">([^<]*)<', mine)
    assert link is not None and link.group(1).startswith(opened)
    assert translations(lang).gettext("Open a dispute") == open_one != opened


def test_the_overview_says_what_waits_on_the_merchant_and_what_came_in_today(t: RefundEnv) -> None:
    shop, buyer = t.merchant(), t.user("buyer@example.com", fund=3 * AMOUNT)
    merchant = browser(t, shop)

    def today(lang: str = "en") -> dict[str, str]:
        r = merchant.get("/merchant", params={"lang": lang})
        assert r.status_code == 200, r.text
        page = r.text
        panel = page.split('data-testid="merchant-today"', 1)[1].split("</dl>", 1)[0]
        return {k: re.sub(r"<[^>]+>|\s+", " ", v).strip()
                for k, v in re.findall(r'<dd data-testid="([a-z-]+)">(.*?)</dd>', panel, re.S)}

    assert today() == {"to-ship": "Nothing to ship", "refunds-to-answer": "0", "open-disputes": "0",
                       "paid-today": "No payments yet today", "waiting-settlement": "CN¥0.00"}
    t.paid_trade(shop, buyer, "to-ship")
    asked = t.paid_trade(shop, buyer, "asked", shipped=True)
    t.refund(buyer, asked, AMOUNT)  # the buyer asks; the merchant has to answer
    disputed = t.paid_trade(shop, buyer, "disputed")
    open_dispute(t, buyer, disputed)  # on hold: not to ship, a dispute to answer
    assert today() == {"to-ship": "1 order to ship →", "refunds-to-answer": "1 →", "open-disputes": "1 →",
                       "paid-today": "3 orders, CN¥300.00", "waiting-settlement": "CN¥0.00"}
    assert 'href="/merchant/trades?status=WAIT_SELLER_SEND_GOODS"' in merchant.get("/merchant").text
    assert today("zh-Hans")["paid-today"] == "3 笔，¥300.00"
    t.clock.advance(24 * 3600)  # the next business day: nothing paid yet
    t.relogin(shop)
    merchant = browser(t, shop)
    assert today()["paid-today"] == "No payments yet today"
