"""Card numbers: Luhn, normalisation, brands, test-card endings — and that a
rejected number is never echoed back."""

from __future__ import annotations

import pytest

from trustpay.banks import cards
from trustpay.banks.connector import CardToken
from trustpay.banks.errors import InvalidCardNumber


def test_luhn_accepts_known_valid_numbers() -> None:
    assert cards.luhn_ok("4111111111111111")
    assert cards.luhn_ok("5555555555554444")
    assert cards.luhn_ok("378282246310005")
    assert cards.luhn_ok("79927398713")  # the textbook example


@pytest.mark.parametrize("number", ["4111111111111112", "5555555555554440", "79927398710", "12a4"])
def test_luhn_rejects_wrong_check_digit_and_non_digits(number: str) -> None:
    assert not cards.luhn_ok(number)


def test_every_single_digit_change_breaks_the_check() -> None:
    base = "4111111111111111"
    for i in range(len(base)):
        for d in "0123456789":
            if d != base[i]:
                assert not cards.luhn_ok(base[:i] + d + base[i + 1:]), (i, d)


def test_normalize_drops_spaces_and_dashes() -> None:
    assert cards.normalize_card_number("4111 1111-1111 1111") == "4111111111111111"


@pytest.mark.parametrize(
    "raw", ["", "411111111111", "4" * 20, "4111111111111112", "４１１１１１１１１１１１１１１１", "4111x11111111111"]
)
def test_normalize_rejects_bad_numbers_without_echoing_them(raw: str) -> None:
    with pytest.raises(InvalidCardNumber) as info:
        cards.normalize_card_number(raw)
    err = info.value
    assert err.code == "invalid_card_number" and err.status == 400 and err.param == "card_number"
    digits = raw.replace(" ", "")
    for text in (str(err), repr(err), err.message, str(err.to_dict())):
        assert (digits == "" or digits not in text) and "111111" not in text


def test_lengths_13_to_19_are_accepted() -> None:
    for length in range(13, 20):
        number = cards.sample_card_number("4242", length=length, prefix="4")
        assert len(number) == length and cards.normalize_card_number(number) == number


def test_sample_numbers_end_as_asked_and_pass_luhn() -> None:
    for ending in ("0002", "0028", "4242", "0000"):
        number = cards.sample_card_number(ending)
        assert number.endswith(ending) and len(number) == 16 and cards.luhn_ok(number)


def test_brands_by_prefix() -> None:
    assert cards.brand_of("4111111111111111") == "visa"
    assert cards.brand_of("5555555555554444") == "mastercard"
    assert cards.brand_of("2223003122003222") == "mastercard"
    assert cards.brand_of("378282246310005") == "amex"
    assert cards.brand_of("6222020000050002") == "unionpay"
    assert cards.brand_of("9999999999999995") == "unknown"


def test_card_token_carries_only_token_last4_and_brand() -> None:
    number = cards.sample_card_number("4242")
    token = CardToken(token="tok_abc", last4=cards.last4(number), brand=cards.brand_of(number))
    assert number not in repr(token) and number[:12] not in repr(token)
    assert set(token.__slots__) == {"token", "last4", "brand"}  # type: ignore[attr-defined]
