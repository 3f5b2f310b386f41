"""Languages of the web pages: choice, message catalogs, locale-aware formatting.

Three languages: ``zh-Hans`` (Simplified Chinese), ``zh-Hant`` (Traditional
Chinese) and ``en``. A page's language is, in order: the ``?lang=`` query
parameter (which also sets the ``tp_lang`` cookie), the cookie, then the
browser's ``Accept-Language``. The catalogs are the ``.po`` files under
``locales/``, compiled in memory on first use, so a fresh clone needs no
build step.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, tzinfo
from decimal import Decimal
from functools import lru_cache
from io import BytesIO
from pathlib import Path
from zoneinfo import ZoneInfo

from babel.dates import format_datetime
from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po
from babel.support import Translations

from trustpay.money import Money

LANGUAGES: tuple[str, ...] = ("zh-Hans", "zh-Hant", "en")
DEFAULT_LANGUAGE = "en"
COOKIE_NAME = "tp_lang"
COOKIE_MAX_AGE = 365 * 24 * 3600

# Each language's own name, for the language switch (never translated).
ENDONYMS = {"zh-Hans": "简体中文", "zh-Hant": "繁體中文", "en": "English"}
SHORT_NAMES = {"zh-Hans": "简", "zh-Hant": "繁", "en": "EN"}
# The CLDR locale used to format money and dates in each language.
BABEL_LOCALES = {"zh-Hans": "zh_Hans_CN", "zh-Hant": "zh_Hant_TW", "en": "en"}

# Chinese regions that write Traditional characters; every other region
# (CN, SG, MY, or none) gets Simplified.
_HANT_REGIONS = frozenset({"tw", "hk", "mo"})

LOCALES_DIR = Path(__file__).parent / "locales"


def normalize(tag: str | None) -> str | None:
    """The supported language a BCP 47 tag asks for, or ``None``.

    ``zh-Hans*``, ``zh-CN``, ``zh-SG``, bare ``zh`` → ``zh-Hans``;
    ``zh-Hant*``, ``zh-TW``, ``zh-HK``, ``zh-MO`` → ``zh-Hant``; ``en*`` → ``en``.
    """
    if not tag:
        return None
    parts = [p for p in tag.strip().lower().replace("_", "-").split("-") if p]
    if not parts:
        return None
    if parts[0] == "en":
        return "en"
    if parts[0] != "zh":
        return None
    subtags = parts[1:]
    if "hant" in subtags:
        return "zh-Hant"
    if "hans" in subtags:
        return "zh-Hans"
    if any(s in _HANT_REGIONS for s in subtags):
        return "zh-Hant"
    return "zh-Hans"


def parse_quality_list(header: str | None) -> list[str]:
    """Items of an ``Accept``/``Accept-Language`` header, best first, ``q=0`` dropped.

    Items with a malformed ``q`` are ignored (RFC 9110 §12.4.2); equal
    weights keep the order the client sent.
    """
    weighted: list[tuple[float, int, str]] = []
    for index, raw in enumerate((header or "").split(",")):
        value, *params = (p.strip() for p in raw.split(";"))
        if not value:
            continue
        quality = 1.0
        for param in params:
            name, _, number = param.partition("=")
            if name.strip().lower() == "q":
                try:
                    quality = float(number)
                except ValueError:
                    quality = -1.0
        if 0 < quality <= 1:
            weighted.append((-quality, index, value))
    return [value for _, _, value in sorted(weighted)]


def negotiate(accept_language: str | None) -> str:
    """The best supported language for an ``Accept-Language`` header (default ``en``)."""
    for tag in parse_quality_list(accept_language):
        lang = normalize(tag)
        if lang is not None:
            return lang
    return DEFAULT_LANGUAGE


@dataclass(frozen=True, slots=True)
class LanguageChoice:
    lang: str
    # True when ``?lang=`` picked it: the response should remember it in the cookie.
    remember: bool


def choose_language(
    query: str | None, cookie: str | None, accept_language: str | None
) -> LanguageChoice:
    """``?lang=`` beats the ``tp_lang`` cookie beats ``Accept-Language``."""
    from_query = normalize(query)
    if from_query is not None:
        return LanguageChoice(from_query, remember=True)
    if cookie in LANGUAGES:
        return LanguageChoice(cookie, remember=False)
    return LanguageChoice(negotiate(accept_language), remember=False)


def po_path(lang: str) -> Path:
    return LOCALES_DIR / lang / "LC_MESSAGES" / "messages.po"


@lru_cache(maxsize=len(LANGUAGES))
def translations(lang: str) -> Translations:
    """The compiled catalog of ``lang`` (built from its ``.po`` once per process)."""
    if lang not in LANGUAGES:
        raise ValueError(f"unsupported language {lang!r}")
    with po_path(lang).open("rb") as f:
        catalog = read_po(f, locale=BABEL_LOCALES[lang])
    buf = BytesIO()
    write_mo(buf, catalog)
    buf.seek(0)
    return Translations(fp=buf, domain="messages")


def format_money(amount: int, currency: str, lang: str) -> str:
    """``amount`` minor units of ``currency`` as people of ``lang`` write it (¥199.00).
    A negative amount gets the minus sign U+2212 (−¥5.00), as the pages that put the
    sign in themselves write it, not Babel's hyphen; exports do not come through here."""
    if amount < 0:
        return "\u2212" + Money.of(-amount, currency).format(BABEL_LOCALES[lang])
    return Money.of(amount, currency).format(BABEL_LOCALES[lang])


def format_percent(rate: Decimal | str) -> str:
    """A fraction as a percentage: 0.001 → "0.1%", 0.00125 → "0.125%", 0.0006 → "0.06%"
    (exact, no float, no trailing zeros)."""
    text = format((Decimal(rate) * 100).normalize(), "f")
    return f"{text}%"


def zone_label(offset: timedelta | None) -> str:
    """A UTC offset as pages write it: "UTC", "UTC+8", "UTC+5:30", "UTC-3:30".

    An explicit offset rather than a zone name: "CST" means China, Cuba or the US
    Midwest, while "UTC+8" means one thing to every reader."""
    if not offset:
        return "UTC"
    sign = "+" if offset >= timedelta(0) else "-"
    minutes = abs(int(offset.total_seconds())) // 60
    hours, rest = divmod(minutes, 60)
    return f"UTC{sign}{hours}" + (f":{rest:02d}" if rest else "")


def display_zone(zone: str | tzinfo) -> tzinfo:
    return ZoneInfo(zone) if isinstance(zone, str) else zone


def format_timestamp(when: datetime, lang: str, zone: str | tzinfo) -> str:
    """An instant in ``zone`` (the platform's display time zone), in ``lang``'s medium
    date-time style, labelled with the zone's UTC offset at that instant:
    "Dec 4, 2026, 10:35:00 PM UTC+8", "2026年12月4日 22:35:00（UTC+8）".

    A naive ``when`` is UTC (SQLite reads instants back without a zone). Pages only:
    the API, CSV exports, receipt files and webhooks keep RFC 3339 UTC."""
    tz = display_zone(zone)
    local = (when if when.tzinfo is not None else when.replace(tzinfo=UTC)).astimezone(tz)
    text = str(format_datetime(local, "medium", tzinfo=tz, locale=BABEL_LOCALES[lang]))
    label = zone_label(local.utcoffset())
    # English runs the label on after the clock, unbroken ("10:35:00 PM UTC+8"); Chinese
    # sets it in full-width brackets, as the Chinese pages bracket asides ("22:35:00（UTC+8）").
    return f"{text}\u00a0{label}" if lang == "en" else f"{text}（{label}）"
