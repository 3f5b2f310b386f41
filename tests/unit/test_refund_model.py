"""The refund state machine, amounts and fee reversal, with no I/O.

Every allowed edge has its own case; every (status, action, party) the table
does not list is generated from it and must be refused: 404 for a party that
never does the action, 409 invalid_state for one that may, but not from here."""

from __future__ import annotations

import itertools

import pytest
from hypothesis import given
from hypothesis import strategies as st

from trustpay.errors import Conflict, InvalidRequest, NotFound
from trustpay.trades.model import fee_due
from trustpay.trades.refund_model import (
    OPEN_STATUSES,
    REFUND_TRANSITIONS,
    TIMEOUT_OF,
    RefundAction,
    RefundCloseReason,
    RefundParty,
    RefundStatus,
    check_refund_amount,
    fee_reversal,
    refund_parties_for,
    refund_transition,
    refundable_left,
)

R, RA, RP, CR = RefundStatus, RefundAction, RefundParty, RefundCloseReason
RID = "rf_00000000000000000000000000"

EXPECTED_EDGES = {
    (R.WAIT_SELLER_AGREE, RA.APPROVE, RP.MERCHANT): (R.REFUND_SUCCESS, None),
    (R.WAIT_SELLER_AGREE, RA.APPROVE_WITH_RETURN, RP.MERCHANT): (R.WAIT_BUYER_RETURN_GOODS, None),
    (R.WAIT_SELLER_AGREE, RA.REJECT, RP.MERCHANT): (R.REFUND_CLOSED, CR.SELLER_REJECTED),
    (R.WAIT_SELLER_AGREE, RA.CANCEL, RP.BUYER): (R.REFUND_CLOSED, CR.BUYER_CANCELLED),
    (R.WAIT_SELLER_AGREE, RA.AGREE_TIMEOUT, RP.SYSTEM): (R.REFUND_SUCCESS, None),
    (R.WAIT_BUYER_RETURN_GOODS, RA.RETURN_GOODS, RP.BUYER): (R.WAIT_SELLER_CONFIRM_GOODS, None),
    (R.WAIT_BUYER_RETURN_GOODS, RA.CANCEL, RP.BUYER): (R.REFUND_CLOSED, CR.BUYER_CANCELLED),
    (R.WAIT_BUYER_RETURN_GOODS, RA.RETURN_TIMEOUT, RP.SYSTEM): (R.REFUND_CLOSED, CR.RETURN_TIMEOUT),
    (R.WAIT_SELLER_CONFIRM_GOODS, RA.CONFIRM_GOODS, RP.MERCHANT): (R.REFUND_SUCCESS, None),
    (R.WAIT_SELLER_CONFIRM_GOODS, RA.REFUSE_GOODS, RP.MERCHANT): (R.REFUND_CLOSED, CR.SELLER_REFUSED_GOODS),
    (R.WAIT_SELLER_CONFIRM_GOODS, RA.CONFIRM_GOODS_TIMEOUT, RP.SYSTEM): (R.REFUND_SUCCESS, None),
}
ALL = list(itertools.product(R, RA, RP))
FORBIDDEN = [c for c in ALL if c not in EXPECTED_EDGES]


def _id(v: object) -> str:
    return str(getattr(v, "value", v))


def test_the_table_is_exactly_the_expected_machine() -> None:
    table = {(s, a, e.party): (e.next, e.close_reason) for (s, a), e in REFUND_TRANSITIONS.items()}
    assert table == EXPECTED_EDGES
    # One party per action, so "wrong party" (404) and "wrong status" (409) never overlap.
    assert all(len(refund_parties_for(a)) == 1 for a in RA)
    # Every open status has exactly one deadline, run by the platform, and it is in the table.
    assert set(TIMEOUT_OF) == OPEN_STATUSES
    for status, action in TIMEOUT_OF.items():
        assert REFUND_TRANSITIONS[(status, action)].party is RP.SYSTEM
    # A closed refund always says why; a successful one never does.
    for edge in REFUND_TRANSITIONS.values():
        assert (edge.close_reason is not None) == (edge.next is R.REFUND_CLOSED)


def test_final_statuses_have_no_way_out() -> None:
    for status in (R.REFUND_SUCCESS, R.REFUND_CLOSED):
        assert status not in OPEN_STATUSES
        assert not [k for k in REFUND_TRANSITIONS if k[0] is status]


@pytest.mark.parametrize(("status", "action", "party"), list(EXPECTED_EDGES), ids=_id)
def test_allowed_edge(status: RefundStatus, action: RefundAction, party: RefundParty) -> None:
    edge = refund_transition(RID, status, action, party)
    assert (edge.next, edge.close_reason) == EXPECTED_EDGES[(status, action, party)]


@pytest.mark.parametrize(("status", "action", "party"), FORBIDDEN, ids=_id)
def test_forbidden_combination(status: RefundStatus, action: RefundAction, party: RefundParty) -> None:
    expected: type[Exception] = Conflict if party in refund_parties_for(action) else NotFound
    with pytest.raises(expected) as caught:
        refund_transition(RID, status, action, party)
    err = caught.value
    assert isinstance(err, Conflict | NotFound)
    if expected is Conflict:
        assert (err.status, err.code) == (409, "invalid_state")
        assert status.value in err.message
    else:
        assert (err.status, err.code, err.message) == (404, "not_found", f"no refund {RID}")


def test_the_generated_cases_cover_everything() -> None:
    assert len(FORBIDDEN) + len(EXPECTED_EDGES) == len(R) * len(RA) * len(RP) == 150
    with pytest.raises(NotFound):  # a buyer never approves their own request
        refund_transition(RID, R.WAIT_SELLER_AGREE, RA.APPROVE, RP.BUYER)
    with pytest.raises(Conflict):  # the merchant approves requests, but this one is decided
        refund_transition(RID, R.REFUND_CLOSED, RA.APPROVE, RP.MERCHANT)


# ------------------------------------------------------------------ amounts
def test_what_is_left_to_refund() -> None:
    assert refundable_left(10_000, 0, 0) == 10_000
    assert refundable_left(10_000, 3_000, 2_000) == 5_000
    assert refundable_left(10_000, 10_000, 0) == 0
    check_refund_amount(5_000, 5_000)
    with pytest.raises(InvalidRequest) as over:
        check_refund_amount(5_001, 5_000)
    assert (over.value.status, over.value.code, over.value.param) == (400, "refund_exceeds_paid", "amount")


@pytest.mark.parametrize(("fee", "amount", "before", "refund", "back"), [
    (60, 10_000, 0, 10_000, 60),  # everything: the whole fee
    (60, 10_000, 0, 5_000, 30),
    (61, 10_000, 0, 5_000, 30),  # kept 30.5 → 31: the half unit stays with the platform
    (61, 10_000, 5_000, 5_000, 31),  # …and comes back with the rest
    (1, 3, 0, 1, 0),  # kept 0.667 → 1
    (1, 3, 1, 1, 1),  # kept 0.333 → 0
    (0, 500, 0, 500, 0),
])
def test_fee_reversal_in_proportion(fee: int, amount: int, before: int, refund: int, back: int) -> None:
    assert fee_reversal(fee, amount, before, refund) == back


@given(st.integers(1, 10**9), st.data())
def test_fee_reversals_never_exceed_the_fee(amount: int, data: st.DataObject) -> None:
    fee = data.draw(st.integers(0, amount))
    refunds = data.draw(st.lists(st.integers(1, amount), max_size=8))
    refunded, reversed_total = 0, 0
    for r in refunds:
        r = min(r, amount - refunded)
        if r == 0:
            break
        back = fee_reversal(fee, amount, refunded, r)
        assert 0 <= back <= r  # a refund never gives back more fee than money
        refunded, reversed_total = refunded + r, reversed_total + back
        assert reversed_total == fee - fee_due(fee, amount, refunded) <= fee
    if refunded == amount:
        assert reversed_total == fee
