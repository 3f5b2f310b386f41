"""How the pages name a bank card's brand: as the scheme spells it (VISA, MASTERCARD), except
where a language has a name of its own for it (UnionPay is 银联 / 銀聯 in Chinese)."""

from __future__ import annotations

from collections.abc import Callable


def _(message: str) -> str:
    """Marks ``message`` for the catalogs; translated when rendered."""
    return message


BRAND_LABELS = {
    "unionpay": _("UNIONPAY"),
    "unknown": _("Card"),  # a number no scheme's prefix matches: "Card •••• 1234", not "UNKNOWN"
}


def brand_label(gettext: Callable[[str], str], brand: str) -> str:
    """``brand`` (as stored: "unionpay", "visa") as the page's language names it."""
    label = BRAND_LABELS.get(brand.lower())
    return gettext(label) if label is not None else brand.upper()
