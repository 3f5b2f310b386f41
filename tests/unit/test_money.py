"""Money: strict parsing of what a person types, exact major-unit text, ISO codes, Babel display."""

from __future__ import annotations

from decimal import Decimal

import pytest
from babel.numbers import format_currency
from hypothesis import given
from hypothesis import strategies as st

from trustpay.errors import InvalidAmount, InvalidCurrency
from trustpay.money import Money, check_amount, check_currency, exponent

MAX = 10_000_000_000


@pytest.mark.parametrize(
    ("text", "currency", "minor"),
    [
        ("12", "CNY", 1200),
        ("12.3", "CNY", 1230),
        ("12.34", "CNY", 1234),
        ("0.01", "CNY", 1),
        ("0.5", "CNY", 50),
        ("100000000", "CNY", 10_000_000_000),  # exactly the maximum
        ("5", "JPY", 5),
        ("1.234", "KWD", 1234),
        ("1.2", "KWD", 1200),
        ("0.001", "KWD", 1),
        ("9.99", "USD", 999),
    ],
)
def test_parse_accepts_plain_amounts(text: str, currency: str, minor: int) -> None:
    m = Money.parse(text, currency, max_amount=MAX)
    assert (m.amount, m.currency) == (minor, currency)
    assert type(m.amount) is int


@pytest.mark.parametrize(
    ("text", "currency"),
    [
        ("1e3", "CNY"),
        ("-0", "CNY"),
        ("-1", "CNY"),
        ("+5", "CNY"),
        (" 1", "CNY"),
        ("1 ", "CNY"),
        ("12.345", "CNY"),  # more decimals than the currency has
        ("5.0", "JPY"),  # JPY has none
        ("1.2345", "KWD"),
        ("1.", "CNY"),
        (".5", "CNY"),
        ("00.5", "CNY"),
        ("01", "CNY"),
        ("0", "CNY"),
        ("0.00", "CNY"),
        ("0", "JPY"),
        ("１２", "CNY"),  # full-width digits
        ("١٢", "CNY"),  # Arabic-Indic digits
        ("12\n", "CNY"),
        ("\n12", "CNY"),
        ("12.3\n", "CNY"),
        ("1,000", "CNY"),
        ("1_000", "CNY"),
        ("0x10", "CNY"),
        ("", "CNY"),
        ("nan", "CNY"),
        ("inf", "CNY"),
        ("12.34 CNY", "CNY"),
        ("100000000.01", "CNY"),  # one minor unit over the maximum
        ("99999999999999999999", "CNY"),
    ],
)
def test_parse_rejects(text: str, currency: str) -> None:
    with pytest.raises(InvalidAmount) as ei:
        Money.parse(text, currency, max_amount=MAX)
    assert ei.value.code == "invalid_amount"


@pytest.mark.parametrize("value", [12, 12.5, Decimal("12"), b"12", None])
def test_parse_rejects_non_text(value: object) -> None:
    with pytest.raises(InvalidAmount):
        Money.parse(value, "CNY")  # type: ignore[arg-type]


def test_parse_rejects_unknown_currency() -> None:
    with pytest.raises(InvalidCurrency):
        Money.parse("12", "cny")


def test_parse_takes_zero_only_when_asked() -> None:
    # A ruling may give one side nothing; an amount to pay never is nothing.
    assert Money.parse("0", "CNY", allow_zero=True) == Money.of(0, "CNY")
    assert Money.parse("0.00", "CNY", allow_zero=True) == Money.of(0, "CNY")
    with pytest.raises(InvalidAmount):
        Money.parse("0", "CNY")
    for text in ("-0", "-1", "0.000", "0.", "zero"):
        with pytest.raises(InvalidAmount):
            Money.parse(text, "CNY", allow_zero=True)


CURRENCIES = st.sampled_from(["CNY", "JPY", "KWD", "USD"])


@given(minor=st.integers(1, 10**15), currency=CURRENCIES)
def test_parse_inverts_to_major(minor: int, currency: str) -> None:
    text = Money.of(minor, currency).to_major()
    assert Money.parse(text, currency) == Money.of(minor, currency)
    # The text is exact: as a Decimal it is the amount scaled by the exponent.
    assert Decimal(text) == Decimal(minor).scaleb(-exponent(currency))


def test_exponents_come_from_iso_data() -> None:
    assert [exponent(c) for c in ("CNY", "JPY", "KWD", "USD")] == [2, 0, 3, 2]


@pytest.mark.parametrize(
    ("minor", "currency", "major"),
    [(1234, "CNY", "12.34"), (1, "CNY", "0.01"), (-5, "CNY", "-0.05"), (0, "CNY", "0.00"),
     (5, "JPY", "5"), (1234, "KWD", "1.234"), (7, "KWD", "0.007")],
)
def test_to_major(minor: int, currency: str, major: str) -> None:
    assert Money.of(minor, currency).to_major() == major


@pytest.mark.parametrize("code", ["CNY", "USD", "JPY", "KWD", "EUR"])
def test_check_currency_accepts_iso_codes(code: str) -> None:
    assert check_currency(code) == code


@pytest.mark.parametrize("code", ["ABC", "cny", "Cny", "", "CNY ", " CNY", "CN", "CNYY", "￥", None, 156])
def test_check_currency_rejects_non_codes(code: object) -> None:
    with pytest.raises(InvalidCurrency) as ei:
        check_currency(code)  # type: ignore[arg-type]
    assert ei.value.code == "invalid_currency"


@pytest.mark.parametrize("amount", [0, -1, MAX + 1, 1.0, "1", True, False, Decimal(1), None])
def test_check_amount_rejects(amount: object) -> None:
    with pytest.raises(InvalidAmount):
        check_amount(amount, MAX)


@pytest.mark.parametrize("amount", [1, MAX])
def test_check_amount_accepts(amount: int) -> None:
    assert check_amount(amount, MAX) == amount


def test_money_rejects_float_and_bool_amounts() -> None:
    with pytest.raises(InvalidAmount):
        Money.of(1.5, "CNY")  # type: ignore[arg-type]
    with pytest.raises(InvalidAmount):
        Money.of(True, "CNY")
    with pytest.raises(InvalidCurrency):
        Money.of(1, "XYZ")


def test_arithmetic_keeps_currency() -> None:
    assert Money.of(150, "CNY") + Money.of(50, "CNY") == Money.of(200, "CNY")
    assert Money.of(150, "CNY") - Money.of(200, "CNY") == Money.of(-50, "CNY")
    assert -Money.of(3, "JPY") == Money.of(-3, "JPY")
    with pytest.raises(InvalidCurrency):
        Money.of(1, "CNY") + Money.of(1, "USD")


@pytest.mark.parametrize(
    ("minor", "currency", "locale", "shown"),
    [
        (1234, "CNY", "en", "CN¥12.34"),
        (1234, "CNY", "zh_Hans_CN", "¥12.34"),
        (123456, "USD", "en", "$1,234.56"),
        (5, "JPY", "en", "¥5"),
        (1234, "KWD", "en", "KWD1.234"),
        # The locale's pattern is looked up once and kept: other locales must not inherit it.
        (-350, "HKD", "zh_Hant", "-HK$3.50"),
        (1, "EUR", "zh_Hans", "€0.01"),
        # Past float precision: must still be exact to the last minor unit.
        (123456789012345678, "CNY", "en", "CN¥1,234,567,890,123,456.78"),
    ],
)
def test_format_is_babels_output(minor: int, currency: str, locale: str, shown: str) -> None:
    money = Money.of(minor, currency)
    assert money.format(locale) == shown
    assert money.format(locale) == format_currency(Decimal(money.to_major()), currency, locale=locale)
