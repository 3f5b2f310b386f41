"""The merchant's trades list and trade page show each line's fee and net the way the
settlement report counts them (issue 5 part 6), on both engines: the trade row's fee,
shrunk in proportion to what was refunded (round half up), net = what is left − fee;
no fee on a trade closed before anyone paid. The finished line's figures are the
ones its settlement report row carries."""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from tests.integration.test_dispute_pages import browser
from tests.integration.test_settlement import bind, choose_card, rows, run
from tests.integration.trade_support import AMOUNT, TradeEnv, make_trade_env

from trustpay.merchants import settlement
from trustpay.trades import refunds
from trustpay.trades.refunds import NewRefund


@pytest.fixture
def t(db_url: str, tmp_path: Path) -> Iterator[TradeEnv]:
    yield from make_trade_env(db_url, tmp_path, bank_sandbox_data_dir=str(tmp_path / "bank"),
                              bank_sandbox_settle_seconds=2)


def refund(t: TradeEnv, merchant_id: str, trade_id: str, amount: int, no: str) -> None:
    p = t.platform
    p.db.run(lambda conn: refunds.create(p, conn, trade_id, merchant_id, NewRefund(no, amount, "Chipped cup")))


def figures(html: str, trade_id: str) -> dict[str, str]:
    """The list row's figures by data-testid (line-fee, line-net, line-refunded, line-unpaid)."""
    row = re.search(rf'data-testid="merchant-trade" data-id="{trade_id}".*?</li>', html, re.S)
    assert row is not None, trade_id
    return dict(re.findall(r'data-testid="(line-[a-z]+)">([^<]*)<', row.group(0)))


def test_every_line_shows_the_fee_and_net_the_settlement_report_counts(t: TradeEnv) -> None:
    shop, buyer = t.merchant(), t.user("buyer@example.com", fund=4 * AMOUNT)
    unpaid = str(t.create(shop, "o-unpaid")["id"])
    called_off = str(t.create(shop, "o-called-off")["id"])
    t.close(shop, called_off)
    full = str(t.create(shop, "o-full")["id"])
    t.pay(buyer, full)
    refund(t, shop.id, full, AMOUNT, "rf-full")
    part = str(t.create(shop, "o-part")["id"])
    t.pay(buyer, part)
    refund(t, shop.id, part, 2_500, "rf-part")
    t.ship(shop, part)
    t.confirm(buyer, part)

    page = browser(t, shop).get("/merchant/trades", params={"lang": "en"})
    assert page.status_code == 200
    # Unpaid: what paying it will bring (0.6 % of ¥100.00 = ¥0.60).
    assert figures(page.text, unpaid) == {"line-fee": "Fee CN¥0.60", "line-net": "Net CN¥99.40"}
    assert figures(page.text, called_off) == {"line-unpaid": "Not paid: no fee"}
    # All of it refunded: the whole fee went back, nothing is due.
    assert figures(page.text, full) == {"line-refunded": "Refunded CN¥100.00", "line-fee": "Fee CN¥0.00",
                                         "line-net": "Net CN¥0.00"}
    # A quarter refunded: fee 60 × 7 500 / 10 000 = 45, net 7 500 − 45 = 7 455 (not 10 000 − 60).
    assert figures(page.text, part) == {"line-refunded": "Refunded CN¥25.00", "line-fee": "Fee CN¥0.45",
                                        "line-net": "Net CN¥74.55"}
    detail = browser(t, shop).get(f"/merchant/trades/{part}", params={"lang": "en"}).text
    assert 'data-testid="fee">CN¥0.45<' in detail and 'data-testid="net">CN¥74.55<' in detail
    zh = browser(t, shop).get("/merchant/trades", params={"lang": "zh-Hans"}).text
    assert figures(zh, part)["line-net"] == "实收 ¥74.55"

    # The same figures as the settlement report's row for the trade.
    choose_card(t, shop, bind(t, shop))
    t.clock.advance(int(timedelta(days=3).total_seconds()))
    run(t, settlement.today(t.platform))
    with t.platform.db.transaction(write=False) as conn:
        report = settlement.report(conn, str(rows(t)[0]["id"]), shop.id)
    lines = {r["trade_id"]: r for r in csv.DictReader(io.StringIO(report))}
    assert (lines[part]["fee"], lines[part]["net"]) == ("45", "7455")
