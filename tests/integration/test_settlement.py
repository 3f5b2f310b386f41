"""Merchant settlement on both engines with the frozen clock and the in-process
sandbox bank: the T+N cutoff to the microsecond, one payout per merchant, a
declined payout voided and its trades batched again, reruns that change nothing,
a merchant without a settlement card, a crash before the bank heard of it,
reconciliation of the payouts, the daily job, and the API (report, BOLA)."""

from __future__ import annotations

import csv
import io
import re
import threading
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select
from tests.integration.trade_support import AMOUNT, FEE, TradeEnv, Wallet, make_trade_env

from trustpay.banks.reconcile import reconcile
from trustpay.banks.registry import sandbox_bank
from trustpay.db.schema import notification_queue, outbox, settlement_items, settlements
from trustpay.errors import InvalidRequest
from trustpay.events.webhook_model import normalize_events
from trustpay.identity.audit import Origin
from trustpay.ledger.model import AccountKind
from trustpay.merchants import service as merchants
from trustpay.merchants import settlement
from trustpay.merchants.settlement_model import cutoff
from trustpay.trades.service import merchant_pending_account
from trustpay.web.auth import SESSION_COOKIE

GOOD = "4111 1111 1111 1111"
DECLINED = "4000000000000002"
NET = AMOUNT - FEE
ZONE = "Asia/Shanghai"
# A business day in the platform's zone, and the instant its run's T+1 cutoff falls on.
RUN_DAY = date(2026, 1, 10)
CUTOFF = cutoff(RUN_DAY, 1, ZONE)  # 2026-01-09 16:00 UTC: local midnight starting the 10th


@pytest.fixture
def t(db_url: str, tmp_path: Path) -> Iterator[TradeEnv]:
    yield from make_trade_env(db_url, tmp_path, bank_sandbox_data_dir=str(tmp_path / "bank"),
                              bank_sandbox_settle_seconds=2)


def bind(t: TradeEnv, u: Wallet, number: str = GOOD) -> str:
    t.relogin(u)  # the test clock may have outrun the session
    r = t.client.post("/v1/bank-cards", json={"bank": "sandbox", "card_number": number, "holder_name": "Li Lei"},
                      headers=u.auth)
    assert r.status_code == 201, r.text
    return str(r.json()["id"])


def choose_card(t: TradeEnv, shop: Wallet, card_id: str) -> None:
    p = t.platform
    p.db.run(lambda conn: merchants.update_profile(p, conn, shop.id, origin=Origin(), settlement_card_id=card_id))


def finished_at(t: TradeEnv, shop: Wallet, buyer: Wallet, when: datetime, no: str, *, mode: str = "escrow") -> str:
    """A trade whose money reaches the merchant's pending account exactly at ``when``."""
    t.clock.set(when - timedelta(hours=1))
    trade = t.create(shop, no, mode=mode)
    if mode == "instant":
        t.clock.set(when)
        t.pay(buyer, trade["id"])
        return str(trade["id"])
    t.pay(buyer, trade["id"])
    t.ship(shop, trade["id"])
    t.clock.set(when)
    t.confirm(buyer, trade["id"])
    return str(trade["id"])


def settle_bank(t: TradeEnv) -> None:
    t.clock.advance(2)
    sandbox_bank(t.platform).tick()


def rows(t: TradeEnv) -> list[Any]:
    with t.platform.db.transaction(write=False) as conn:
        return list(conn.execute(select(settlements).order_by(settlements.c.id)).mappings())


def items_of(t: TradeEnv, settlement_id: str) -> list[tuple[str, str | None]]:
    with t.platform.db.transaction(write=False) as conn:
        return [(r.trade_id, r.active_trade_id) for r in conn.execute(
            select(settlement_items).where(settlement_items.c.settlement_id == settlement_id)
            .order_by(settlement_items.c.trade_id))]


def events(t: TradeEnv) -> list[tuple[str, str | None, str, int]]:
    with t.platform.db.transaction(write=False) as conn:
        found = conn.execute(select(outbox.c.type, outbox.c.owner_id, outbox.c.payload)
                             .where(outbox.c.type.like("settlement.%")).order_by(outbox.c.seq)).all()
    return [(r.type, r.owner_id, r.payload["data"]["object"]["status"], r.payload["data"]["object"]["amount"])
            for r in found]


def told(t: TradeEnv, user: Wallet, subject: str) -> int:
    with t.platform.db.transaction(write=False) as conn:
        return int(conn.execute(select(func.count()).select_from(notification_queue).where(
            notification_queue.c.recipient == user.email, notification_queue.c.subject == subject)).scalar_one())


def pending(t: TradeEnv, shop: Wallet) -> int:
    return t.account(shop.id, AccountKind.SETTLEMENT_PENDING)


def run(t: TradeEnv, day: date = RUN_DAY) -> settlement.RunSummary:
    """Run ``day`` as the daily job would: at its start time, or later if the clock is past it."""
    t.clock.set(max(t.clock.now(), settlement.run_at_for(t.platform, day)))
    return settlement.run(t.platform, day)


def test_t_plus_n_cutoff_one_payout_then_a_rerun_changes_nothing(t: TradeEnv) -> None:
    shop = t.merchant()
    buyer = t.user("buyer@example.com", fund=100_000)
    choose_card(t, shop, bind(t, shop))
    before = finished_at(t, shop, buyer, CUTOFF - timedelta(microseconds=1), "just-before")
    instant = finished_at(t, shop, buyer, CUTOFF - timedelta(hours=3), "instant", mode="instant")
    at = finished_at(t, shop, buyer, CUTOFF, "at-cutoff")
    assert pending(t, shop) == 3 * NET

    summary = run(t)
    assert (summary.merchants, summary.created) == (1, 1)
    [batch] = rows(t)
    assert batch["id"].startswith("stl_") and batch["status"] == "pending"
    assert (batch["gross"], batch["fee"], batch["amount"], batch["trade_count"]) == (
        2 * AMOUNT, 2 * FEE, 2 * NET, 2)
    assert items_of(t, batch["id"]) == sorted([(before, before), (instant, instant)])
    # Held, not yet gone: the balance is unchanged until the bank pays.
    assert pending(t, shop) == 3 * NET

    settle_bank(t)
    [batch] = rows(t)
    assert batch["status"] == "succeeded" and batch["completed_at"] is not None
    assert pending(t, shop) == NET  # what is not yet due: the trade finished at the cutoff
    assert events(t) == [("settlement.paid", shop.id, "succeeded", 2 * NET)]
    assert told(t, shop, "Settlement paid") == 1

    # The same date again, and again after the bank answered: nothing new.
    assert run(t).created == 0
    assert len(rows(t)) == 1 and pending(t, shop) == NET and len(events(t)) == 1
    t.ledger_ok()

    # The next day's run takes the trade that finished at the cutoff.
    t.clock.set(CUTOFF + timedelta(days=1))
    assert run(t, RUN_DAY + timedelta(days=1)).created == 1
    settle_bank(t)
    assert [r["status"] for r in rows(t)] == ["succeeded", "succeeded"]
    assert items_of(t, rows(t)[1]["id"]) == [(at, at)]
    assert pending(t, shop) == 0
    t.ledger_ok()


def test_a_declined_payout_is_voided_and_its_trades_are_batched_again(t: TradeEnv) -> None:
    shop = t.merchant()
    buyer = t.user("buyer@example.com", fund=100_000)
    choose_card(t, shop, bind(t, shop, DECLINED))
    trade = finished_at(t, shop, buyer, CUTOFF - timedelta(hours=1), "order-1")
    assert run(t).created == 1
    settle_bank(t)
    [failed] = rows(t)
    assert (failed["status"], failed["failure_reason"], failed["open_key"]) == ("failed", "card_declined", None)
    assert items_of(t, failed["id"]) == [(trade, None)]  # released
    assert pending(t, shop) == NET
    assert events(t) == [("settlement.failed", shop.id, "failed", NET)]
    assert told(t, shop, "Settlement failed") == 1
    assert normalize_events(["settlement.failed"]) == ["settlement.failed"]  # a webhook may ask for it
    with t.platform.db.transaction(write=False) as conn:
        assert t.platform.book.account(conn, merchant_pending_account(
            t.platform, conn, shop.id, "CNY")).available == NET  # nothing held any more

    # A working card, and the same date runs again: a new batch pays the trade.
    choose_card(t, shop, bind(t, shop))
    assert run(t).created == 1
    settle_bank(t)
    statuses = [(r["status"], r["amount"]) for r in rows(t)]
    assert statuses == [("failed", NET), ("succeeded", NET)]
    assert items_of(t, rows(t)[1]["id"]) == [(trade, trade)]
    assert pending(t, shop) == 0
    assert [e[0] for e in events(t)] == ["settlement.failed", "settlement.paid"]
    t.ledger_ok()


def test_no_settlement_card_no_batch_one_notice_and_the_money_waits(t: TradeEnv) -> None:
    shop = t.merchant()
    buyer = t.user("buyer@example.com", fund=100_000)
    finished_at(t, shop, buyer, CUTOFF - timedelta(hours=1), "order-1")
    assert run(t).no_card == 1
    assert run(t).no_card == 1  # still no card; still told only once for the date
    assert rows(t) == [] and pending(t, shop) == NET
    assert told(t, shop, "Choose a settlement card") == 1
    with t.platform.db.transaction(write=False) as conn:
        [view] = settlement.outlook(t.platform, conn, shop.id)
    assert (view.currency, view.waiting, view.due_now) == ("CNY", NET, NET)


def test_a_crash_before_the_bank_call_is_finished_by_the_poll_job(t: TradeEnv) -> None:
    shop = t.merchant()
    buyer = t.user("buyer@example.com", fund=100_000)
    choose_card(t, shop, bind(t, shop))
    finished_at(t, shop, buyer, CUTOFF - timedelta(hours=1), "order-1")
    t.clock.set(CUTOFF + timedelta(hours=3))
    p = t.platform
    # Step 1 committed, then the process died: the bank never heard of the batch.
    stl_id = p.db.run(lambda conn: settlement.open_batch(p, conn, shop.id, "CNY", RUN_DAY))
    assert stl_id and rows(t)[0]["status"] == "pending"
    bank = sandbox_bank(p)
    bank.control.fail = True  # and the first submit finds the bank down
    assert settlement.submit_quietly(p, stl_id)["status"] == "pending"
    bank.control.fail = False
    t.advance(30)  # the poll job: unknown at the bank, so it is submitted now
    settle_bank(t)
    assert rows(t)[0]["status"] == "succeeded"
    t.advance(3600)  # later polls and duplicate answers change nothing
    assert pending(t, shop) == 0 and len(events(t)) == 1
    t.ledger_ok()


def test_reconciliation_knows_settlement_payouts(t: TradeEnv) -> None:
    shop = t.merchant()
    buyer = t.user("buyer@example.com", fund=100_000)
    choose_card(t, shop, bind(t, shop))
    finished_at(t, shop, buyer, CUTOFF - timedelta(hours=1), "order-1")
    t.clock.set(CUTOFF + timedelta(hours=3))
    run(t)
    settle_bank(t)
    paid_on = t.clock.now().astimezone(UTC).date()
    summary = reconcile(t.platform, "sandbox", paid_on)
    assert (summary.lines, summary.matched, summary.new_exceptions, summary.open_exceptions) == (1, 1, 0, 0)
    assert summary.cleared == 1
    t.ledger_ok()


def test_the_daily_job_settles_each_day_on_the_test_clock(t: TradeEnv) -> None:
    shop = t.merchant()
    buyer = t.user("buyer@example.com", fund=100_000)
    choose_card(t, shop, bind(t, shop))
    finished_at(t, shop, buyer, CUTOFF - timedelta(hours=1), "order-1")  # business date the 9th
    t.advance(0)  # the sweeper books today's run
    assert rows(t) == []
    # The run for the 10th starts at 02:00 local (18:00 UTC on the 9th) and pays it.
    t.clock.set(settlement.run_at_for(t.platform, RUN_DAY) - timedelta(seconds=1))
    t.advance(0)
    assert rows(t) == []
    t.advance(1)
    settle_bank(t)
    [batch] = rows(t)
    assert (batch["business_date"], batch["status"]) == ("2026-01-10", "succeeded")
    t.advance(3 * 24 * 3600)  # later days run too and find nothing
    assert len(rows(t)) == 1 and pending(t, shop) == 0


def test_a_late_booked_t_plus_0_run_pays_at_once_and_the_outlook_says_so(t: TradeEnv) -> None:
    """The first trade after 02:00 books a run that is already due: it pays that money
    today, so the outlook must say today, and tomorrow once the run has run."""
    shop = t.merchant()
    buyer = t.user("buyer@example.com", fund=100_000)
    card = bind(t, shop)
    p = t.platform
    p.db.run(lambda conn: merchants.update_profile(p, conn, shop.id, origin=Origin(), settlement_card_id=card,
                                                   settlement_delay_days=0))

    def next_date() -> date | None:
        with p.db.transaction(write=False) as conn:
            [view] = settlement.outlook(p, conn, shop.id)
        return view.next_date

    run_at = settlement.run_at_for(p, RUN_DAY)
    finished_at(t, shop, buyer, run_at + timedelta(hours=1), "late-1", mode="instant")
    assert next_date() == RUN_DAY  # no run booked yet; the one that will be pays it today
    t.advance(0)  # the sweeper books today's run, already due, and it runs
    t.advance(1)
    settle_bank(t)
    [batch] = rows(t)
    assert (batch["business_date"], batch["status"]) == (RUN_DAY.isoformat(), "succeeded")
    assert pending(t, shop) == 0

    finished_at(t, shop, buyer, run_at + timedelta(hours=3), "late-2", mode="instant")
    assert next_date() == RUN_DAY + timedelta(days=1)  # today's run is over
    t.clock.set(settlement.run_at_for(p, RUN_DAY + timedelta(days=1)))
    t.advance(1)
    settle_bank(t)
    assert [(r["business_date"], r["status"]) for r in rows(t)][-1] == (
        (RUN_DAY + timedelta(days=1)).isoformat(), "succeeded")
    assert pending(t, shop) == 0
    t.ledger_ok()


def test_api_lists_shows_and_reports_only_the_merchants_own(t: TradeEnv) -> None:
    shop = t.merchant()
    other = t.merchant("other@example.com")
    buyer = t.user("buyer@example.com", fund=100_000)
    choose_card(t, shop, bind(t, shop))
    trade = finished_at(t, shop, buyer, CUTOFF - timedelta(hours=1), "-1.5")
    run(t)
    settle_bank(t)
    t.relogin(shop)
    t.relogin(other)
    t.relogin(buyer)
    [batch] = rows(t)
    r = t.client.get("/v1/settlements", headers=shop.auth)
    assert r.status_code == 200, r.text
    body = r.json()
    assert (body["object"], body["has_more"], [s["id"] for s in body["data"]]) == ("list", False, [batch["id"]])
    one = t.client.get(f"/v1/settlements/{batch['id']}", headers=shop.auth).json()
    assert (one["status"], one["amount"], one["fee"], one["gross"]) == ("succeeded", NET, FEE, AMOUNT)
    r = t.client.get(one["report_url"], headers=shop.auth)
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/csv")
    report = list(csv.reader(io.StringIO(r.text)))
    assert report[0] == ["trade_id", "out_trade_no", "finished_at", "amount", "fee", "net"]
    assert report[1] == [trade, "'-1.5", "2026-01-09T15:00:00Z", str(AMOUNT), str(FEE), str(NET)]
    for path in (f"/v1/settlements/{batch['id']}", f"/v1/settlements/{batch['id']}/report.csv"):
        assert t.client.get(path, headers=other.auth).status_code == 404
        assert t.client.get(path, headers=buyer.auth).status_code == 403
    assert t.client.get("/v1/settlements", headers=other.auth).json()["data"] == []
    assert t.client.get("/v1/settlements?starting_after=" + batch["id"], headers=other.auth).status_code == 404


def test_a_future_date_is_refused(t: TradeEnv) -> None:
    t.clock.set(CUTOFF)
    with pytest.raises(InvalidRequest, match="has not begun"):
        settlement.run(t.platform, RUN_DAY + timedelta(days=1))
    assert settlement.run(t.platform, RUN_DAY).merchants == 0


def test_dashboard_tab_shows_waiting_money_batches_and_the_report_to_its_merchant_only(t: TradeEnv) -> None:
    shop = t.merchant()
    other = t.merchant("other@example.com")
    buyer = t.user("buyer@example.com", fund=100_000)
    card = bind(t, shop)
    trade = finished_at(t, shop, buyer, CUTOFF - timedelta(hours=1), "order-1")

    def page(who: Wallet, path: str = "/merchant/settlements", lang: str = "en") -> Any:
        t.relogin(who)
        client = TestClient(t.env.app)
        client.cookies.set(SESSION_COOKIE, who.token)
        return client.get(f"{path}?lang={lang}")

    # Before the run: the money waits, with its date; no card yet, so the page says so.
    t.clock.set(CUTOFF - timedelta(minutes=30))
    r = page(shop)
    assert r.status_code == 200
    assert 'data-testid="no-settlement-card"' in r.text and 'data-testid="no-settlements"' in r.text
    # No promise of a payout date there is no card for.
    assert "CN¥99.40 would be paid out on 2026-01-10, but there is no settlement card to pay it to." in r.text
    assert "Next settlement on" not in r.text
    assert "by the first daily run after you choose a card" in page(shop, "/merchant").text
    assert 'aria-current="page">Settlements</a>' in r.text

    choose_card(t, shop, card)
    assert "Next settlement on 2026-01-10: CN¥99.40." in page(shop).text
    run(t)
    settle_bank(t)
    [batch] = rows(t)
    r = page(shop)
    assert f'data-settlement-id="{batch["id"]}" data-status="succeeded"' in r.text
    assert 'data-testid="nothing-waiting"' in r.text and 'data-testid="no-settlement-card"' not in r.text
    for lang, word in (("zh-Hans", "已打款"), ("zh-Hant", "已撥款")):
        assert word in page(shop, lang=lang).text
    report = page(shop, f"/merchant/settlements/{batch['id']}/report.csv")
    assert report.status_code == 200 and trade in report.text
    # Another merchant: the ordinary 404 page, and an empty tab; a buyer: no dashboard at all.
    assert page(other, f"/merchant/settlements/{batch['id']}/report.csv").status_code == 404
    assert 'data-testid="no-settlements"' in page(other).text
    assert page(buyer).status_code == 404


def test_dashboard_words_the_delay_for_t_plus_0_1_and_n_and_the_header_marks_the_section(t: TradeEnv) -> None:
    shop = t.merchant()
    p = t.platform

    def page(path: str, lang: str = "en") -> str:
        t.relogin(shop)
        client = TestClient(t.env.app)
        client.cookies.set(SESSION_COOKIE, shop.token)
        r = client.get(f"{path}?lang={lang}")
        assert r.status_code == 200
        return r.text

    expected = {
        0: ("paid out by the next daily run at 02:00 (T+0)", "T+0: finished trades are paid out by the next daily run"),
        1: ("paid out 1 day after the day it finished (T+1)", "T+1: finished trades are paid out 1 day later"),
        3: ("paid out 3 days after the day it finished (T+3)", "T+3: finished trades are paid out 3 days later"),
    }
    for days, (tab, overview) in expected.items():
        p.db.run(lambda conn, d=days: merchants.update_profile(p, conn, shop.id, origin=Origin(),
                                                               settlement_delay_days=d))
        assert tab in page("/merchant/settlements")
        assert overview in page("/merchant")
        assert "day(s)" not in page("/merchant/settlements")
    assert "由下一次每日结算（02:00）打款（T+0）" not in page("/merchant/settlements", "zh-Hans")  # T+3 now
    assert "交易完成后第 3 天结算（T+3）" in page("/merchant/settlements", "zh-Hans")

    # The header marks the section the page is in, and only that one.
    def current(html_text: str) -> list[str]:
        nav = html_text.split('class="site-nav"', 1)[1].split("</nav>", 1)[0]
        return re.findall(r'data-testid="([a-z]+-link)" aria-current="page"', nav)

    assert current(page("/merchant/settlements")) == ["merchant-link"]
    assert current(page("/wallet")) == ["wallet-link"]
    assert current(page("/wallet/statement")) == ["wallet-link"]
    assert current(page("/purchases")) == ["purchases-link"]
    assert current(page("/security")) == []

    # The security centre is in the account bar: there, and only there, its links are marked.
    def account_marked(html_text: str) -> list[str]:
        nav = html_text.split('class="account-nav', 1)[1].split("</nav>", 1)[0]
        return re.findall(r'data-testid="([a-z-]+)" aria-current="page"', nav)

    assert account_marked(page("/security")) == ["account-name", "security-link"]
    assert account_marked(page("/wallet")) == []
    assert account_marked(page("/merchant")) == []


def test_two_runs_of_one_date_at_once_make_one_batch(t: TradeEnv) -> None:
    shop = t.merchant()
    buyer = t.user("buyer@example.com", fund=100_000)
    choose_card(t, shop, bind(t, shop))
    for n in range(3):
        finished_at(t, shop, buyer, CUTOFF - timedelta(hours=3 - n), f"order-{n}")
    t.clock.set(settlement.run_at_for(t.platform, RUN_DAY))
    start = threading.Barrier(2)
    made: list[int] = []

    def runner() -> None:
        start.wait()
        made.append(settlement.run(t.platform, RUN_DAY).created)

    threads = [threading.Thread(target=runner) for _ in range(2)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    assert sorted(made) == [0, 1]
    settle_bank(t)
    [batch] = rows(t)
    assert (batch["status"], batch["trade_count"], batch["amount"]) == ("succeeded", 3, 3 * NET)
    assert pending(t, shop) == 0
    t.ledger_ok()


def test_an_instant_payment_in_a_payout_can_no_longer_be_refunded(t: TradeEnv) -> None:
    """Once settlement has taken an instant trade's money, a refund would come out of
    other trades' pending money and jam their payout: refused (409), nothing moves."""
    shop = t.merchant()
    buyer = t.user("buyer@example.com", fund=100_000)
    choose_card(t, shop, bind(t, shop))
    paid = finished_at(t, shop, buyer, CUTOFF - timedelta(hours=3), "instant-1", mode="instant")
    finished_at(t, shop, buyer, CUTOFF + timedelta(hours=1), "instant-2", mode="instant")  # next day's money
    run(t)
    before = pending(t, shop)
    t.relogin(shop)
    r = t.client.post(f"/v1/trades/{paid}/refunds", json={"amount": 100, "reason": "sorry",
                                                        "out_refund_no": "late-1"}, headers=shop.auth)
    assert (r.status_code, r.json()["error"]["code"]) == (409, "invalid_state"), r.text
    assert pending(t, shop) == before
