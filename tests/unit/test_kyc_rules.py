"""KYC and tier-limit rules with no I/O: ID number checks, masks, tiers, day bounds, limit checks."""

from __future__ import annotations

from datetime import UTC, date, datetime

import pytest

from trustpay.errors import InvalidRequest, PaymentFailed
from trustpay.identity.kyc import (
    IdType,
    check_legal_name,
    check_passport,
    check_prc_id,
    identity_document,
    kyc_tier,
    mask_id_number,
    mask_name,
    prc_check_digit,
)
from trustpay.identity.limits import TierLimits, check_limits, day_bounds, format_amount, limits_for
from trustpay.identity.model import User, UserKind, tier_of
from trustpay.settings import Settings

TODAY = date(2026, 1, 1)


def test_check_digit_matches_published_examples() -> None:
    assert prc_check_digit("11010519491231002") == "X"
    assert prc_check_digit("44052418800101001") == "4"  # GB 11643 annex example


def test_every_wrong_check_character_is_refused() -> None:
    body = "11010519491231002"
    for c in "0123456789X":
        if c == "X":
            assert check_prc_id(body + c, today=TODAY) == body + "X"
        else:
            with pytest.raises(InvalidRequest) as e:
                check_prc_id(body + c, today=TODAY)
            assert (e.value.code, e.value.param) == ("invalid_id_number", "id_number")


def test_prc_id_normalises_case_and_spaces() -> None:
    assert check_prc_id(" 110105 19491231 002x ", today=TODAY) == "11010519491231002X"


@pytest.mark.parametrize("number", [
    "11010518991231002",   # 17 characters
    "1101051949123100211",  # 19
    "01010519491231002X",  # no province starts with 0
    "11010519490230002X",  # 30 February
    "11010518991231002X",  # born before 1900
    "1101051949123100AX",  # a letter in the body
])
def test_implausible_prc_ids_are_refused(number: str) -> None:
    with pytest.raises(InvalidRequest):
        check_prc_id(number, today=TODAY)


def test_birth_date_after_today_is_refused_even_with_a_right_check_digit() -> None:
    body = "11010520260102001"
    with pytest.raises(InvalidRequest):
        check_prc_id(body + prc_check_digit(body), today=TODAY)
    assert check_prc_id(body + prc_check_digit(body), today=date(2026, 1, 2))


def test_passport_numbers() -> None:
    assert check_passport("e 1234567") == "E1234567"
    for bad in ("ABCDEFG", "E12", "E1234567890", "E123-4567"):
        with pytest.raises(InvalidRequest):
            check_passport(bad)


def test_legal_names() -> None:
    assert check_legal_name("  张  三 ") == "张 三"
    assert check_legal_name("买买提·艾力") == "买买提·艾力"
    assert check_legal_name("Anne-Marie O'Neil") == "Anne-Marie O'Neil"
    assert check_legal_name("a\nb") == "a b"  # whitespace is folded, so no line break is kept
    for bad in ("", "   ", "Bob 2", "a\x00b", "a\u202eb", "x" * 61, "<script>"):
        with pytest.raises(InvalidRequest):
            check_legal_name(bad)


def test_masks_show_only_the_edges() -> None:
    assert mask_name("张三") == "张*"
    assert mask_name("张") == "张*"  # a one-character name still shows as masked
    assert mask_id_number("110105194912311234") == "1101**********1234"
    assert mask_id_number("E1234567") == "E1****67"
    doc = identity_document(legal_name="李四", id_number="11010519491231002x", id_type=IdType.PRC_RESIDENT,
                            today=TODAY)
    assert (doc.legal_name_masked, doc.id_number_masked) == ("李*", "1101**********002X")


def test_tiers() -> None:
    assert kyc_tier(email_verified=False, phone_verified=False, identity_submitted=False) == 0
    assert kyc_tier(email_verified=False, phone_verified=False, identity_submitted=True) == 0
    assert kyc_tier(email_verified=True, phone_verified=False, identity_submitted=False) == 1
    assert kyc_tier(email_verified=False, phone_verified=True, identity_submitted=False) == 1
    assert kyc_tier(email_verified=False, phone_verified=True, identity_submitted=True) == 2
    at = datetime(2026, 1, 1, tzinfo=UTC)
    u = User(id="usr_1", email="a@b.cn", name="", kind=UserKind.PERSONAL, kyc_tier=0, created_at=at)
    assert tier_of(u) == 0
    assert tier_of(User(**{**u.__dict__, "email_verified_at": at})) == 1
    assert tier_of(User(**{**u.__dict__, "email_verified_at": at, "identity_submitted_at": at})) == 2


def test_day_bounds_are_shanghai_midnights_in_utc() -> None:
    # 15:59:59 UTC is 23:59:59 in Shanghai; 16:00 UTC is the next day there.
    start, end = day_bounds(datetime(2026, 3, 1, 15, 59, 59, tzinfo=UTC), "Asia/Shanghai")
    assert (start, end) == (datetime(2026, 2, 28, 16, tzinfo=UTC), datetime(2026, 3, 1, 16, tzinfo=UTC))
    assert day_bounds(datetime(2026, 3, 1, 16, tzinfo=UTC), "Asia/Shanghai")[0] == end


def test_day_bounds_across_a_dst_change_are_wall_clock_midnights() -> None:
    start, end = day_bounds(datetime(2026, 3, 29, 12, tzinfo=UTC), "Europe/Berlin")
    assert (start, end) == (datetime(2026, 3, 28, 23, tzinfo=UTC), datetime(2026, 3, 29, 22, tzinfo=UTC))


TIER1 = TierLimits(balance=2_000_000, single_payment=500_000, daily_outflow=1_000_000)


def refusal(**kw: int) -> PaymentFailed:
    args = {"outflow": 0, "inflow": 0, "spent_today": 0, "balance": 0, **kw}
    with pytest.raises(PaymentFailed) as e:
        check_limits(TIER1, 1, "CNY", **args)
    assert e.value.code == "limit_exceeded"
    return e.value


def test_limit_checks_at_the_edges() -> None:
    check_limits(TIER1, 1, "CNY", outflow=500_000, inflow=0, spent_today=500_000, balance=0)
    check_limits(TIER1, 1, "CNY", outflow=0, inflow=1, spent_today=0, balance=1_999_999)
    single = refusal(outflow=500_001)
    assert single.param == "single_payment"
    assert "CNY 5,000.00" in single.message and "verify your identity" in single.message
    assert refusal(outflow=1, spent_today=1_000_000).param == "daily_outflow"
    assert refusal(inflow=1, balance=2_000_000).param == "balance"


def test_tier_zero_may_not_pay_at_all_and_is_told_to_verify_contact() -> None:
    limits = limits_for(Settings(), 0)
    with pytest.raises(PaymentFailed) as e:
        check_limits(limits, 0, "CNY", outflow=1, inflow=0, spent_today=0, balance=0)
    assert e.value.param == "single_payment" and "verify your e-mail" in e.value.message


def test_amounts_are_formatted_in_the_currency_exponent() -> None:
    assert format_amount(123_456, "CNY") == "CNY 1,234.56"
    assert format_amount(1500, "JPY") == "JPY 1,500"


def test_limit_table_from_json_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TRUSTPAY_TIER_LIMIT_TABLE", '{"0": {"balance": 1, "single": 0, "daily": 0}, '
                       '"1": {"balance": 2, "single": 1, "daily": 1}, "2": {"balance": 3, "single": 2, "daily": 2}}')
    assert limits_for(Settings(), 2) == TierLimits(balance=3, single_payment=2, daily_outflow=2)
    monkeypatch.setenv("TRUSTPAY_TIER_LIMIT_TABLE", '{"0": {"balance": 1, "single": 0, "daily": 0}}')
    with pytest.raises(ValueError, match="tiers 0, 1 and 2"):
        Settings()
