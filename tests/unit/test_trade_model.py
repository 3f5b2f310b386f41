"""The trade state machine, deadlines and fee, with no I/O.

Every allowed edge has its own case, and every (mode, status, action, party)
the table does not list is generated from it and must be refused: 404 for a
party that never does the action, 409 invalid_state for one that may, but
not in this mode or from this status."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest

from trustpay.errors import Conflict, InvalidRequest, NotFound
from trustpay.trades.model import (
    CONFIRM_WITHIN_HOURS,
    FROZEN_BY_DISPUTE,
    PAY_WITHIN_MINUTES,
    SHIP_WITHIN_HOURS,
    TRANSITIONS,
    Action,
    DisputeStatus,
    Mode,
    Party,
    TradeFee,
    TradeStatus,
    Windows,
    fee_due,
    parties_for,
    transition,
    windows,
)

S, A, P = TradeStatus, Action, Party
T = "trd_0000000000000000000000000"

EXPECTED_EDGES = {
    (Mode.ESCROW, S.WAIT_BUYER_PAY, A.PAY, P.BUYER): S.WAIT_SELLER_SEND_GOODS,
    (Mode.ESCROW, S.WAIT_BUYER_PAY, A.CLOSE, P.MERCHANT): S.TRADE_CLOSED,
    (Mode.ESCROW, S.WAIT_BUYER_PAY, A.PAY_TIMEOUT, P.SYSTEM): S.TRADE_CLOSED,
    (Mode.ESCROW, S.WAIT_SELLER_SEND_GOODS, A.SHIP, P.MERCHANT): S.WAIT_BUYER_CONFIRM_GOODS,
    (Mode.ESCROW, S.WAIT_SELLER_SEND_GOODS, A.SHIP_TIMEOUT, P.SYSTEM): S.TRADE_CLOSED,
    (Mode.ESCROW, S.WAIT_BUYER_CONFIRM_GOODS, A.CONFIRM, P.BUYER): S.TRADE_FINISHED,
    (Mode.ESCROW, S.WAIT_BUYER_CONFIRM_GOODS, A.CONFIRM_TIMEOUT, P.SYSTEM): S.TRADE_FINISHED,
    (Mode.INSTANT, S.WAIT_BUYER_PAY, A.PAY, P.BUYER): S.TRADE_SUCCESS,
    (Mode.INSTANT, S.WAIT_BUYER_PAY, A.CLOSE, P.MERCHANT): S.TRADE_CLOSED,
    (Mode.INSTANT, S.WAIT_BUYER_PAY, A.PAY_TIMEOUT, P.SYSTEM): S.TRADE_CLOSED,
}
ALL = list(itertools.product(Mode, S, A, P))
FORBIDDEN = [c for c in ALL if c not in EXPECTED_EDGES]


def test_the_table_is_exactly_the_expected_machine() -> None:
    table = {(m, s, a, e.party): e.next for m, t in TRANSITIONS.items() for (s, a), e in t.items()}
    assert table == EXPECTED_EDGES
    # Each action belongs to one party, so "wrong party" and "wrong state" never overlap.
    assert {a: parties_for(a) for a in A} == {
        A.PAY: {P.BUYER}, A.SHIP: {P.MERCHANT}, A.CONFIRM: {P.BUYER}, A.CLOSE: {P.MERCHANT},
        A.PAY_TIMEOUT: {P.SYSTEM}, A.SHIP_TIMEOUT: {P.SYSTEM}, A.CONFIRM_TIMEOUT: {P.SYSTEM},
    }


def test_final_statuses_have_no_way_out() -> None:
    for mode, status in itertools.product(Mode, (S.TRADE_FINISHED, S.TRADE_CLOSED)):
        assert not [k for k in TRANSITIONS[mode] if k[0] is status]
        for action, party in itertools.product(A, P):
            with pytest.raises((Conflict, NotFound)):
                transition(T, mode, status, action, party)


@pytest.mark.parametrize(("mode", "status", "action", "party"), list(EXPECTED_EDGES),
                         ids=lambda v: str(v.value) if hasattr(v, "value") else str(v))
def test_allowed_edge(mode: Mode, status: TradeStatus, action: Action, party: Party) -> None:
    assert transition(T, mode, status, action, party) is EXPECTED_EDGES[(mode, status, action, party)]


@pytest.mark.parametrize(("mode", "status", "action", "party"), FORBIDDEN,
                         ids=lambda v: str(v.value) if hasattr(v, "value") else str(v))
def test_forbidden_combination(mode: Mode, status: TradeStatus, action: Action, party: Party) -> None:
    expected: type[Exception] = Conflict if party in parties_for(action) else NotFound
    with pytest.raises(expected) as caught:
        transition(T, mode, status, action, party)
    err = caught.value
    assert isinstance(err, Conflict | NotFound)
    if expected is Conflict:
        assert (err.status, err.code) == (409, "invalid_state")
        assert status.value in err.message
    else:
        assert (err.status, err.code) == (404, "not_found")
        assert err.message == f"no trade {T}"  # the same words as for a trade that does not exist


def test_the_generated_cases_cover_everything() -> None:
    assert len(FORBIDDEN) + len(EXPECTED_EDGES) == len(Mode) * len(S) * len(A) * len(P) == 252
    # A merchant shipping an instant trade may ship in general, just not this trade: 409.
    with pytest.raises(Conflict):
        transition(T, Mode.INSTANT, S.TRADE_SUCCESS, A.SHIP, P.MERCHANT)
    # A buyer closing a trade never may: 404.
    with pytest.raises(NotFound):
        transition(T, Mode.ESCROW, S.WAIT_BUYER_PAY, A.CLOSE, P.BUYER)


@pytest.mark.parametrize(("status", "action", "party"), [
    (S.WAIT_BUYER_CONFIRM_GOODS, A.CONFIRM, P.BUYER),
    (S.WAIT_BUYER_CONFIRM_GOODS, A.CONFIRM_TIMEOUT, P.SYSTEM),
    (S.WAIT_SELLER_SEND_GOODS, A.SHIP_TIMEOUT, P.SYSTEM),
    (S.WAIT_SELLER_SEND_GOODS, A.SHIP, P.MERCHANT),
])
def test_an_open_dispute_freezes_the_money(status: TradeStatus, action: Action, party: Party) -> None:
    assert action in FROZEN_BY_DISPUTE
    with pytest.raises(Conflict, match="dispute"):
        transition(T, Mode.ESCROW, status, action, party, dispute_status=DisputeStatus.OPEN)
    assert transition(T, Mode.ESCROW, status, action, party, dispute_status=DisputeStatus.RESOLVED)
    # Paying and closing never meet an open dispute (it needs a paid trade), so they stay open.
    assert transition(T, Mode.ESCROW, S.WAIT_BUYER_PAY, A.PAY, P.BUYER,
                      dispute_status=DisputeStatus.OPEN) is S.WAIT_SELLER_SEND_GOODS


# ------------------------------------------------------------------ deadlines
DEFAULTS = Windows(30, 120, 240)
T0 = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)


def test_defaults_and_deadlines() -> None:
    w = windows(DEFAULTS)
    assert w == DEFAULTS
    assert w.pay_by(T0) == T0 + timedelta(minutes=30)
    assert w.ship_by(T0) == T0 + timedelta(hours=120)
    assert w.confirm_by(T0) == T0 + timedelta(hours=240)
    custom = windows(DEFAULTS, pay_within_minutes=5, ship_within_hours=48, confirm_within_hours=72)
    assert (custom.pay_within_minutes, custom.ship_within_hours, custom.confirm_within_hours) == (5, 48, 72)


@pytest.mark.parametrize(("name", "bounds"), [
    ("pay_within_minutes", PAY_WITHIN_MINUTES), ("ship_within_hours", SHIP_WITHIN_HOURS),
    ("confirm_within_hours", CONFIRM_WITHIN_HOURS),
])
def test_overrides_are_bounded(name: str, bounds: object) -> None:
    low, high = bounds.low, bounds.high  # type: ignore[attr-defined]
    assert getattr(windows(DEFAULTS, **{name: low}), name) == low
    assert getattr(windows(DEFAULTS, **{name: high}), name) == high
    bads: list[object] = [low - 1, high + 1, 0, -1, 1.5, True, "12"]
    for bad in bads:
        with pytest.raises(InvalidRequest) as caught:
            windows(DEFAULTS, **{name: bad})  # type: ignore[arg-type]
        assert caught.value.param == name and caught.value.code == "invalid_deadline"


# ------------------------------------------------------------------ fee
@pytest.mark.parametrize(("plan", "amount", "fee"), [
    (TradeFee(Decimal("0.006")), 10_000, 60),
    (TradeFee(Decimal("0.006")), 1_000, 6),
    (TradeFee(Decimal("0.006")), 250, 2),  # 1.5 → 2: half a fen rounds up (not to even)
    (TradeFee(Decimal("0.006")), 249, 1),  # 1.494 → 1: below half stays with the merchant
    (TradeFee(Decimal("0.006")), 83, 0),  # 0.498 → 0
    (TradeFee(Decimal("0.006")), 84, 1),  # 0.504 → 1
    (TradeFee(Decimal("0.01"), fixed=30), 10_000, 130),
    (TradeFee(Decimal("0.006"), minimum=10), 100, 10),
    (TradeFee(Decimal("0.006"), minimum=10), 5, 5),  # never more than the amount
    (TradeFee(Decimal("0")), 10_000, 0),
    (TradeFee(Decimal("0.006")), 10_000_000_000, 60_000_000),
])
def test_fee_rounds_half_up(plan: TradeFee, amount: int, fee: int) -> None:
    assert plan.fee_for(amount) == fee
    assert plan.merchant_gets(amount) + plan.fee_for(amount) == amount


@pytest.mark.parametrize(("fee", "amount", "refunded", "due"), [
    (60, 10_000, 0, 60),
    (60, 10_000, 10_000, 0),
    (60, 10_000, 5_000, 30),
    (61, 10_000, 5_000, 31),  # 30.5 → 31
    (1, 3, 1, 1),  # 0.667 → 1
    (1, 3, 2, 0),  # 0.333 → 0
    (0, 500, 100, 0),
])
def test_fee_due_shrinks_in_proportion_to_refunds(fee: int, amount: int, refunded: int, due: int) -> None:
    assert fee_due(fee, amount, refunded) == due
    with pytest.raises(ValueError):
        fee_due(fee, amount, amount + 1)
