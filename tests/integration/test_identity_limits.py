"""Per-tier limits (identity.limits.enforce_limits) against real ledger rows, on both engines,
with the frozen clock: daily outflow, the Shanghai day boundary, holds, balance, tiers, off switch."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import Connection

from trustpay.clock import FrozenClock
from trustpay.errors import PaymentFailed
from trustpay.identity import kyc_service, limits, store
from trustpay.identity import service as identity
from trustpay.identity.limits import enforce_limits
from trustpay.ledger.model import EntryDraft, credit, debit
from trustpay.platform.context import Platform
from trustpay.settings import Settings, TierLimit

CNY = "CNY"
PASSWORD = "correct horse 42 battery"
# 23:00 in Shanghai on 1 March 2026 (UTC+8, no DST).
LATE_EVENING = datetime(2026, 3, 1, 15, 0, tzinfo=UTC)


class Wallet:
    """A user's wallet and a bank account to move money against, as the wallet module would."""

    def __init__(self, p: Platform, user_id: str) -> None:
        self.p, self.user_id = p, user_id
        with p.db.transaction() as conn:
            self.id = p.book.open_account(conn, currency=CNY, kind="wallet", owner_id=user_id).id
            self.bank = p.book.open_account(conn, currency=CNY, kind="bank_clearing", allow_negative=True).id

    def top_up(self, amount: int) -> None:
        self._post(debit(self.bank, amount, CNY), credit(self.id, amount, CNY))

    def pay_out(self, amount: int) -> None:
        self._post(debit(self.id, amount, CNY), credit(self.bank, amount, CNY))

    def hold(self, amount: int) -> str:
        with self.p.db.transaction() as conn:
            return self.p.book.hold(conn, debit_account_id=self.id, credit_account_id=self.bank,
                                    amount=amount, currency=CNY).id

    def _post(self, *postings: object) -> None:
        with self.p.db.transaction() as conn:
            self.p.book.post(conn, EntryDraft(tuple(postings)))  # type: ignore[arg-type]

    def spent_today(self) -> int:
        with self.p.db.transaction(write=False) as conn:
            return limits.daily_outflow(self.p, conn, self.user_id, CNY)

    def enforce(self, **kw: int) -> None:
        with self.p.db.transaction(write=False) as conn:
            enforce_limits(self.p, conn, self.user_id, currency=CNY, **kw)


def refused(w: Wallet, **kw: int) -> str | None:
    try:
        w.enforce(**kw)
    except PaymentFailed as exc:
        assert exc.code == "limit_exceeded"
        return exc.param
    return None


def make_user(p: Platform, email: str, tier: int) -> str:
    def work(conn: Connection) -> str:
        user = identity.sign_up(p, conn, email=email, password=PASSWORD)
        if tier >= 1:
            store.set_user_fields(conn, user.id, email_verified_at=p.clock.now(), kyc_tier=1)
        if tier >= 2:
            kyc_service.submit_identity(p, conn, store.get_user(conn, user.id), legal_name="王五",
                                        id_number="11010519491231002X")
        return user.id
    return p.db.run(work)


@pytest.fixture
def wallet(platform: Platform, clock: FrozenClock) -> Callable[[int], Wallet]:
    clock.set(LATE_EVENING)
    count = iter(range(100))
    return lambda tier: Wallet(platform, make_user(platform, f"lim{next(count)}@example.com", tier))


def test_daily_outflow_counts_todays_debits_and_pending_holds_not_credits(wallet: Callable[[int], Wallet],
                                                                          clock: FrozenClock) -> None:
    w = wallet(1)
    w.top_up(1_500_000)
    assert w.spent_today() == 0
    w.pay_out(300_000)
    hold = w.hold(200_000)
    assert w.spent_today() == 500_000
    with w.p.db.transaction() as conn:
        w.p.book.post_hold(conn, hold, 150_000)  # posted: counts once, as the posted debit
    assert w.spent_today() == 450_000
    w.hold(100_000)
    voided = w.hold(50_000)
    with w.p.db.transaction() as conn:
        w.p.book.void_hold(conn, voided)  # a voided hold no longer counts
    assert w.spent_today() == 550_000


def test_daily_limit_at_the_edge_and_the_next_day_starts_at_shanghai_midnight(
        wallet: Callable[[int], Wallet], clock: FrozenClock) -> None:
    w = wallet(1)  # tier 1: single ¥5,000, daily ¥10,000
    w.top_up(2_000_000)
    w.pay_out(500_000)
    w.pay_out(400_000)
    assert refused(w, outflow=100_000) is None            # exactly ¥10,000 in the day
    assert refused(w, outflow=100_001) == "daily_outflow"
    clock.set(datetime(2026, 3, 1, 15, 59, 59, 999999, tzinfo=UTC))  # 23:59:59.999999 Shanghai
    assert refused(w, outflow=100_001) == "daily_outflow"
    clock.set(datetime(2026, 3, 1, 16, 0, tzinfo=UTC))  # midnight in Shanghai: a new day
    assert w.spent_today() == 0
    assert refused(w, outflow=500_000) is None
    w.pay_out(500_000)
    assert w.spent_today() == 500_000


def test_a_hold_created_yesterday_counts_on_the_day_it_is_posted(wallet: Callable[[int], Wallet],
                                                                 clock: FrozenClock) -> None:
    w = wallet(1)
    w.top_up(1_000_000)
    hold = w.hold(300_000)
    assert w.spent_today() == 300_000
    clock.advance(timedelta(hours=2).total_seconds())  # 01:00 the next day in Shanghai
    assert w.spent_today() == 0
    with w.p.db.transaction() as conn:
        w.p.book.post_hold(conn, hold)
    assert w.spent_today() == 300_000


def test_single_payment_limit_per_tier(wallet: Callable[[int], Wallet]) -> None:
    zero, one, two = wallet(0), wallet(1), wallet(2)
    assert refused(zero, outflow=1) == "single_payment"
    assert refused(one, outflow=500_000) is None
    assert refused(one, outflow=500_001) == "single_payment"
    assert refused(two, outflow=5_000_000) is None
    assert refused(two, outflow=5_000_001) == "single_payment"


def test_balance_limit_counts_posted_held_and_incoming(wallet: Callable[[int], Wallet]) -> None:
    w = wallet(0)  # balance ¥1,000
    w.top_up(60_000)
    assert refused(w, inflow=40_000) is None
    other = wallet(1)
    other.top_up(30_000)
    with w.p.db.transaction() as conn:  # ¥300 on its way in to w
        w.p.book.hold(conn, debit_account_id=other.id, credit_account_id=w.id, amount=30_000, currency=CNY)
    assert refused(w, inflow=10_000) is None
    assert refused(w, inflow=10_001) == "balance"
    assert refused(w, outflow=0, inflow=0) is None


def test_the_message_says_the_limit_and_how_to_raise_it(wallet: Callable[[int], Wallet]) -> None:
    w = wallet(1)
    with pytest.raises(PaymentFailed) as e:
        w.enforce(outflow=600_000)
    assert e.value.status == 402 and e.value.param == "single_payment"
    assert "CNY 5,000.00" in e.value.message and "verify your identity" in e.value.message
    assert e.value.to_dict()["error"]["code"] == "limit_exceeded"


def test_submitting_identity_raises_the_limits(wallet: Callable[[int], Wallet]) -> None:
    w = wallet(1)
    assert refused(w, outflow=600_000) == "single_payment"
    with w.p.db.transaction() as conn:
        kyc_service.submit_identity(w.p, conn, store.get_user(conn, w.user_id), legal_name="赵六",
                                    id_number="11010519491231002X")
    assert refused(w, outflow=600_000) is None


def test_limits_off_and_a_custom_table(db_url: str, clock: FrozenClock) -> None:
    clock.set(LATE_EVENING)
    base = Settings(database_url=db_url)
    table = {**base.tier_limit_table, 0: TierLimit(balance=100_000, single=10, daily=15)}
    custom = Platform.build(base.model_copy(update={"tier_limit_table": table}), clock=clock)
    off = Platform.build(base.model_copy(update={"tier_limits": "off"}), clock=clock)
    try:
        w = Wallet(custom, make_user(custom, "custom@example.com", 0))
        w.top_up(100_000)
        assert refused(w, outflow=10) is None
        assert refused(w, outflow=11) == "single_payment"
        w.pay_out(10)
        assert refused(w, outflow=6) == "daily_outflow"
        assert refused(w, inflow=10) is None  # back to exactly ¥1,000
        assert refused(w, inflow=11) == "balance"
        unlimited = Wallet(off, w.user_id)
        assert refused(unlimited, outflow=10**9, inflow=10**9) is None
    finally:
        custom.close()
        off.close()
