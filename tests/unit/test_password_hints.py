"""The pages' password hints state the rule the server enforces: they said 8
characters while sign-up and reset refused anything under 12."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from babel.messages.pofile import read_po

from trustpay.identity.model import PASSWORD_MIN_LENGTH

LOCALES = Path(__file__).resolve().parents[2] / "src" / "trustpay" / "web" / "locales"
HINTS = ("characters, with letters and digits.", "characters with both letters and digits.")


@pytest.mark.parametrize("lang", ["en", "zh-Hans", "zh-Hant"])
def test_every_password_hint_names_the_enforced_minimum(lang: str) -> None:
    with (LOCALES / lang / "LC_MESSAGES" / "messages.po").open("rb") as f:
        catalog = read_po(f)
    hints = [m for m in catalog if isinstance(m.id, str) and m.id.endswith(HINTS)]
    assert len(hints) == 2
    for m in hints:
        for text in (m.id, m.string):
            assert [int(n) for n in re.findall(r"\d+", text)] == [PASSWORD_MIN_LENGTH], (lang, text)
