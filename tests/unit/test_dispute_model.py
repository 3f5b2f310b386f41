"""Pure dispute rules: who may open when, the split and its fee, file sniffing."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from trustpay.errors import Conflict, InvalidRequest
from trustpay.trades.dispute_model import (
    DISPUTABLE,
    IN_ESCROW,
    WITH_MERCHANT,
    check_file,
    check_may_open,
    rule,
    sniff,
)
from trustpay.trades.model import DisputeStatus, TradeStatus

S = TradeStatus
NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
DAYS15 = timedelta(days=15)


@pytest.mark.parametrize("status", sorted(DISPUTABLE))
def test_paid_trades_may_be_disputed(status: TradeStatus) -> None:
    since = NOW if status in WITH_MERCHANT else None
    check_may_open(status, DisputeStatus.NONE, 100, with_merchant_since=since, now=NOW, protection=DAYS15)


@pytest.mark.parametrize("status", sorted(set(S) - DISPUTABLE))
def test_unpaid_and_closed_trades_may_not(status: TradeStatus) -> None:
    with pytest.raises(Conflict, match=status.value):
        check_may_open(status, DisputeStatus.NONE, 100, with_merchant_since=NOW, now=NOW, protection=DAYS15)


@pytest.mark.parametrize("dispute", [DisputeStatus.OPEN, DisputeStatus.RESOLVED])
def test_a_trade_is_disputed_once(dispute: DisputeStatus) -> None:
    with pytest.raises(Conflict, match="once"):
        check_may_open(S.WAIT_BUYER_CONFIRM_GOODS, dispute, 100, with_merchant_since=None, now=NOW,
                       protection=DAYS15)


def test_nothing_left_to_dispute() -> None:
    with pytest.raises(Conflict, match="refunded"):
        check_may_open(S.WAIT_SELLER_SEND_GOODS, DisputeStatus.NONE, 0, with_merchant_since=None, now=NOW,
                       protection=DAYS15)


@pytest.mark.parametrize("status", sorted(WITH_MERCHANT))
def test_protection_period_boundary(status: TradeStatus) -> None:
    since = NOW - DAYS15
    check_may_open(status, DisputeStatus.NONE, 1, with_merchant_since=since, now=NOW, protection=DAYS15)
    with pytest.raises(Conflict, match="15-day protection period"):
        check_may_open(status, DisputeStatus.NONE, 1, with_merchant_since=since - timedelta(microseconds=1),
                       now=NOW, protection=DAYS15)


def test_escrow_trades_have_no_protection_period() -> None:
    for status in IN_ESCROW:
        check_may_open(status, DisputeStatus.NONE, 1, with_merchant_since=None, now=NOW + 1000 * DAYS15,
                       protection=DAYS15)


# ------------------------------------------------------------------ the split
def test_split_fee_in_proportion_round_half_up() -> None:
    # 10000 paid, fee 60: the seller's 7500 carries 45; the buyer's 2500 takes 15 of the fee back.
    r = rule(disputed=10000, amount=10000, fee=60, refunded=0, buyer_amount=2500, seller_amount=7500)
    assert (r.seller_fee, r.fee_charged_before, r.fee_given_back) == (45, 60, 15)
    assert r.trade_status is S.TRADE_FINISHED
    # fee 5 on 10000, seller 1000: 0.5 rounds up to 1.
    assert rule(disputed=10000, amount=10000, fee=5, refunded=0, buyer_amount=9000, seller_amount=1000).seller_fee == 1
    # fee 5, seller 999: 0.4995 rounds down to 0.
    assert rule(disputed=10000, amount=10000, fee=5, refunded=0, buyer_amount=9001, seller_amount=999).seller_fee == 0


def test_split_after_a_partial_refund() -> None:
    # 10000 paid, 4000 refunded (fee 60 → 36 still due); ruling on the 6000 left.
    r = rule(disputed=6000, amount=10000, fee=60, refunded=4000, buyer_amount=6000, seller_amount=0)
    assert (r.seller_fee, r.fee_charged_before, r.fee_given_back) == (0, 36, 36)
    assert r.trade_status is S.TRADE_CLOSED
    r = rule(disputed=6000, amount=10000, fee=60, refunded=4000, buyer_amount=0, seller_amount=6000)
    assert (r.seller_fee, r.fee_given_back) == (36, 0)


@pytest.mark.parametrize(("buyer", "seller"), [(1, 1), (6000, 1), (-1, 6001), (0, 5999), ("3000", 3000),
                                               (3000.0, 3000), (True, 5999), (None, 6000)])
def test_split_must_sum_to_the_disputed_amount(buyer: object, seller: object) -> None:
    with pytest.raises(InvalidRequest) as e:
        rule(disputed=6000, amount=6000, fee=36, refunded=0, buyer_amount=buyer, seller_amount=seller)
    assert e.value.code == "invalid_split"


# ------------------------------------------------------------------ files
PNG = b"\x89PNG\r\n\x1a\n" + b"\0" * 20
JPEG = b"\xff\xd8\xff\xe0" + b"\0" * 20
PDF = b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n"


def test_sniffed_from_the_bytes() -> None:
    assert sniff(PNG) == "image/png"
    assert sniff(JPEG) == "image/jpeg"
    assert sniff(PDF) == "application/pdf"
    assert sniff("我没有收到货\r\n\tline 2".encode()) == "text/plain"
    assert sniff(b"MZ\x90\x00\x03") is None  # a Windows program
    assert sniff(b"GIF89a\x01\x00") is None
    assert sniff(b"\xff\xfe\x00h") is None  # not UTF-8
    assert sniff(b"<html>\x00") is None


def test_file_checks() -> None:
    assert check_file(PNG, max_bytes=1024) == "image/png"
    for data, code in ((b"", "empty_file"), (PNG + b"\0" * 1024, "file_too_large"),
                       (b"\x7fELF\x02", "unsupported_file_type")):
        with pytest.raises(InvalidRequest) as e:
            check_file(data, max_bytes=1024)
        assert e.value.code == code
