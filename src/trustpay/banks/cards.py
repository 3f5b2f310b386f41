"""Card numbers, pure: validation (Luhn), brand by prefix, and the bank's
test-card behaviour. A card number lives only in local variables here: it is
never returned whole, logged or put into an exception."""

from __future__ import annotations

from trustpay.banks.errors import InvalidCardNumber

MIN_DIGITS = 13
MAX_DIGITS = 19

# API.md "Sandbox bank test cards" (matched on the last four digits).
DECLINED_SUFFIX = "0002"
NO_ANSWER_SUFFIX = "0028"


def luhn_ok(digits: str) -> bool:
    if not digits.isdigit():
        return False
    total = 0
    for i, ch in enumerate(reversed(digits)):
        d = ord(ch) - 48
        if i % 2 == 1:
            d *= 2
            if d > 9:
                d -= 9
        total += d
    return total % 10 == 0


def normalize_card_number(raw: str) -> str:
    """Digits only (spaces and dashes as people type them are dropped); raises
    :class:`InvalidCardNumber` unless 13–19 digits passing the Luhn check."""
    if not isinstance(raw, str):
        raise InvalidCardNumber()
    digits = raw.replace(" ", "").replace("-", "")
    if not digits.isascii() or not digits.isdigit() or not MIN_DIGITS <= len(digits) <= MAX_DIGITS:
        raise InvalidCardNumber("A card number has 13 to 19 digits.")
    if not luhn_ok(digits):
        raise InvalidCardNumber("The card number is not valid (check digit mismatch).")
    return digits


def brand_of(digits: str) -> str:
    if digits.startswith("62"):
        return "unionpay"
    if digits.startswith("4"):
        return "visa"
    if digits[:2] in {"51", "52", "53", "54", "55"} or 2221 <= int(digits[:4]) <= 2720:
        return "mastercard"
    if digits[:2] in {"34", "37"}:
        return "amex"
    if digits.startswith("35"):
        return "jcb"
    return "unknown"


def last4(digits: str) -> str:
    return digits[-4:]


def sample_card_number(ending: str = "4242", *, length: int = 16, prefix: str = "622202") -> str:
    """A Luhn-valid number of ``length`` digits that starts with ``prefix`` and
    ends with ``ending`` (the sandbox picks behaviour from the last four digits).
    One free digit just before ``ending`` is chosen to satisfy the check: changing
    a single digit walks through every Luhn residue, so one always fits."""
    fill = length - len(prefix) - len(ending) - 1
    if fill < 0:
        raise ValueError("prefix and ending too long for the length")
    for free in "0123456789":
        candidate = prefix + "0" * fill + free + ending
        if luhn_ok(candidate):
            return candidate
    raise AssertionError("unreachable: one digit always fits")
