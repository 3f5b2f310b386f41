"""Money.format lays the digits into a pattern taken apart once; Babel's own
``NumberPattern.apply`` is the reference it must equal, character for character."""

from __future__ import annotations

from decimal import Decimal

import pytest
from babel import Locale
from hypothesis import given, settings
from hypothesis import strategies as st

from trustpay.money import Money, _layout

# The site's three languages, plus locales whose patterns differ: Indian grouping
# (3, 2), the symbol after the number, other group and decimal symbols, a
# narrow no-break space.
LOCALES = ["en", "zh_Hans_CN", "zh_Hant_TW", "hi_IN", "de_DE", "fr_FR", "de_CH", "ja_JP", "ar_EG", "nl_NL",
           "pt_BR", "sv_SE"]
CURRENCIES = ["CNY", "USD", "EUR", "JPY", "KWD", "TWD", "HKD", "INR", "CLF", "BHD"]


def babel(amount: int, currency: str, locale: str) -> str:
    loc = Locale.parse(locale)
    major = Decimal(Money(currency, amount).to_major())  # what format gave Babel before the shortcut
    return str(loc.currency_formats["standard"].apply(major, loc, currency=currency, currency_digits=True))


@pytest.mark.parametrize("locale", LOCALES)
def test_every_locale_here_takes_the_shortcut(locale: str) -> None:
    # Otherwise the comparisons below would compare Babel with itself.
    assert _layout(locale, "CNY") is not None


@pytest.mark.parametrize("locale", LOCALES)
@pytest.mark.parametrize("currency", CURRENCIES)
def test_edges_equal_babel(locale: str, currency: str) -> None:
    for amount in (0, 1, 9, 10, 99, 100, 101, 999, 1000, 1001, 99_999, 100_000, 1_234_567, 10**12, 10**17 + 3,
                   -1, -100, -1_234_567):
        assert Money(currency, amount).format(locale) == babel(amount, currency, locale), (amount, currency, locale)


@settings(max_examples=300, deadline=None)
@given(amount=st.integers(min_value=-(10**18), max_value=10**18), currency=st.sampled_from(CURRENCIES),
       locale=st.sampled_from(LOCALES))
def test_any_amount_equals_babel(amount: int, currency: str, locale: str) -> None:
    assert Money(currency, amount).format(locale) == babel(amount, currency, locale)


def test_the_sites_languages_read_as_expected() -> None:
    assert Money("CNY", 123_456_789).format("en") == "CN¥1,234,567.89"
    assert Money("CNY", 1).format("zh_Hans_CN") == "¥0.01"
    assert Money("JPY", 1000).format("en") == "¥1,000"
