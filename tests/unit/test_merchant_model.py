"""Merchant domain rules: secret key format, rate parsing, fee plan overrides over defaults."""

from __future__ import annotations

import string
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest

from trustpay.errors import InvalidRequest
from trustpay.merchants import model
from trustpay.merchants.model import ApiKey, FeeOverrides, KeyMode
from trustpay.wallet.model import FeePlan

NOW = datetime(2026, 1, 1, tzinfo=UTC)


def test_secret_format_and_prefix() -> None:
    live, test = model.new_secret(KeyMode.LIVE), model.new_secret(KeyMode.TEST)
    assert live.startswith("sk_live_") and test.startswith("sk_test_")
    body = live[len("sk_live_"):]
    assert len(body) == model.SECRET_RANDOM_LENGTH and set(body) <= set(string.ascii_letters + string.digits)
    assert model.display_prefix(live) == live[:12] and model.display_prefix(test) == test[:12]
    assert model.looks_like_secret_key(live) and model.looks_like_secret_key(test)
    assert not model.looks_like_secret_key("sk_other_x") and not model.looks_like_secret_key("abc")


def test_secrets_do_not_repeat_and_carry_about_256_bits() -> None:
    assert len({model.new_secret(KeyMode.LIVE) for _ in range(500)}) == 500
    # 62 symbols × 43 positions: at least 256 bits.
    assert 62 ** model.SECRET_RANDOM_LENGTH >= 2 ** 256


def test_secret_hash_is_sha256_hex_and_never_the_secret() -> None:
    s = model.new_secret(KeyMode.LIVE)
    h = model.secret_hash(s)
    assert len(h) == 64 and set(h) <= set("0123456789abcdef") and s not in h
    assert h == model.secret_hash(s) and h != model.secret_hash(s + "x")


def test_last_used_is_touched_once_a_minute() -> None:
    key = ApiKey("key_x", "usr_x", "sk_live_abcd", "", NOW)
    assert key.needs_touch(NOW)  # never used
    used = ApiKey("key_x", "usr_x", "sk_live_abcd", "", NOW, last_used_at=NOW)
    assert not used.needs_touch(NOW + timedelta(seconds=59))
    assert used.needs_touch(NOW + timedelta(seconds=60))


@pytest.mark.parametrize(("text", "expected"), [("0.006", Decimal("0.006")), (" 0 ", Decimal(0)),
                                                ("0.000001", Decimal("0.000001")), ("0.25000", Decimal("0.25"))])
def test_parse_rate_accepts_fractions(text: str, expected: Decimal) -> None:
    assert model.parse_rate(text, param="margin") == expected


@pytest.mark.parametrize("text", ["1", "-0.001", "abc", "NaN", "Infinity", "0.0000001", "", "1e-7"])
def test_parse_rate_refuses_what_is_not_a_fraction(text: str) -> None:
    with pytest.raises(InvalidRequest) as exc:
        model.parse_rate(text, param="margin")
    assert exc.value.param == "margin"


@pytest.mark.parametrize(("rate", "text"), [(Decimal("0.0060"), "0.006"), (Decimal(0), "0"),
                                            (Decimal("1E-6"), "0.000001"), (Decimal("0.25"), "0.25")])
def test_rate_text_is_canonical(rate: Decimal, text: str) -> None:
    assert model.rate_text(rate) == text


def test_overrides_replace_only_what_ops_set() -> None:
    default = FeePlan(fixed=0, bank_rate=Decimal("0.0038"), margin=Decimal("0.0022"), minimum=0)
    assert FeeOverrides().over(default) == default
    plan = FeeOverrides(margin=Decimal("0.001"), fixed=30).over(default)
    assert plan == FeePlan(fixed=30, bank_rate=Decimal("0.0038"), margin=Decimal("0.001"), minimum=0)
    # A zero is an override, not "unset".
    assert FeeOverrides(bank_rate=Decimal(0), minimum=0).over(
        FeePlan(fixed=1, bank_rate=Decimal("0.01"), margin=Decimal(0), minimum=5)).bank_rate == 0


def test_trade_fee_from_the_default_plan_rounds_half_up() -> None:
    plan = FeePlan(fixed=0, bank_rate=Decimal("0.0038"), margin=Decimal("0.0022"), minimum=0)
    assert plan.rate == Decimal("0.006")
    assert plan.fee_for(10_000) == 60
    assert plan.fee_for(250) == 2  # 1.5 → 2: half up, never to even
    assert plan.fee_for(249) == 1  # 1.494
    assert plan.fee_for(83) == 0  # 0.498


@pytest.mark.parametrize(("value", "ok"), [("Shop", True), ("  ", False), ("x" * 121, False)])
def test_display_name_rules(value: str, ok: bool) -> None:
    if ok:
        assert model.check_display_name(f" {value} ") == value
    else:
        with pytest.raises(InvalidRequest):
            model.check_display_name(value)


def test_settlement_delay_bounds() -> None:
    assert model.check_settlement_delay(0) == 0 and model.check_settlement_delay(30) == 30
    for bad in (-1, 31):
        with pytest.raises(InvalidRequest):
            model.check_settlement_delay(bad)
