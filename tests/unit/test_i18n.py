"""Language choice, the message catalogs, and locale-aware formatting of the web pages."""

from __future__ import annotations

import re
from datetime import UTC, datetime

import pytest
from babel.messages.catalog import Catalog, Message
from babel.messages.pofile import read_po
from pydantic import ValidationError
from starlette.requests import Request

from trustpay.ledger.digest import Digest
from trustpay.settings import Settings
from trustpay.web.catalogs import extract, message_ids
from trustpay.web.i18n import (
    BABEL_LOCALES,
    LANGUAGES,
    choose_language,
    format_money,
    format_timestamp,
    negotiate,
    normalize,
    po_path,
    translations,
)
from trustpay.web.notfound import is_api_path, prefers_html
from trustpay.web.templating import render

# --- choosing the language ---------------------------------------------------------------


@pytest.mark.parametrize(("header", "expected"), [
    (None, "en"),
    ("", "en"),
    ("zh-CN", "zh-Hans"),
    ("zh-SG", "zh-Hans"),
    ("zh", "zh-Hans"),
    ("zh-Hans", "zh-Hans"),
    ("zh-Hans-HK", "zh-Hans"),  # an explicit script beats the region
    ("zh-TW", "zh-Hant"),
    ("zh-HK", "zh-Hant"),
    ("zh-MO", "zh-Hant"),
    ("zh-Hant", "zh-Hant"),
    ("zh-Hant-CN", "zh-Hant"),
    ("ZH-tw", "zh-Hant"),
    ("zh_TW", "zh-Hant"),
    ("en-US", "en"),
    ("en-GB,en;q=0.9", "en"),
    ("fr-FR", "en"),
    ("de, fr;q=0.9", "en"),
    ("*", "en"),
    ("ja, zh-TW;q=0.5", "zh-Hant"),  # the first language we have
    ("en;q=0.5, zh-CN;q=0.9", "zh-Hans"),  # highest weight wins, not first listed
    ("zh-TW, zh-CN", "zh-Hant"),  # equal weights keep the client's order
    ("zh-CN;q=0, en", "en"),  # q=0 means "not this"
    ("zh-TW;q=abc, zh-CN;q=0.1", "zh-Hans"),  # a malformed weight drops that item
    ("zh-HK;q=1.5, en", "en"),  # out of range
])
def test_accept_language_negotiation(header: str | None, expected: str) -> None:
    assert negotiate(header) == expected


@pytest.mark.parametrize("tag", ["fr", "ja-JP", "", "-", "x-klingon"])
def test_unsupported_tags_normalize_to_none(tag: str) -> None:
    assert normalize(tag) is None


def test_query_beats_cookie_beats_header() -> None:
    choice = choose_language("zh-Hant", "en", "zh-CN")
    assert (choice.lang, choice.remember) == ("zh-Hant", True)
    choice = choose_language(None, "en", "zh-CN")
    assert (choice.lang, choice.remember) == ("en", False)
    choice = choose_language(None, None, "zh-CN")
    assert (choice.lang, choice.remember) == ("zh-Hans", False)


def test_bad_query_or_cookie_is_ignored() -> None:
    assert choose_language("klingon", "zh-Hant", "en").lang == "zh-Hant"
    assert choose_language(None, "zh-TW", "en").lang == "en"  # cookies hold exact codes only
    assert choose_language("", "garbage", "zh-HK").lang == "zh-Hant"


def test_query_accepts_any_spelling_of_a_language() -> None:
    assert choose_language("zh-tw", None, None).lang == "zh-Hant"
    assert choose_language("zh-Hans", None, None).lang == "zh-Hans"


@pytest.mark.parametrize(("accept", "html"), [
    ("text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8", True),
    ("application/json", False),
    ("*/*", False),
    (None, False),
    ("application/json, text/html;q=0.5", False),
    ("text/html;q=0.9, application/json;q=0.5", True),
    ("text/html;q=0", False),
])
def test_only_browsers_get_html_errors(accept: str | None, html: bool) -> None:
    assert prefers_html(accept) is html


def test_api_paths() -> None:
    assert is_api_path("/v1") and is_api_path("/v1/") and is_api_path("/v1/trades/x")
    assert not is_api_path("/v10") and not is_api_path("/") and not is_api_path("/docs")


# --- the catalogs --------------------------------------------------------------------------

PLACEHOLDER = re.compile(r"%\((\w+)\)[sd]")
TAG = re.compile(r"</?([a-zA-Z][a-zA-Z0-9]*)\b[^>]*>")


def _catalog(lang: str) -> Catalog:
    with po_path(lang).open("rb") as f:
        return read_po(f, locale=BABEL_LOCALES[lang])


def _messages(catalog: Catalog) -> list[Message]:
    return [m for m in catalog if m.id]


def _ids(message: Message) -> list[str]:
    return [message.id] if isinstance(message.id, str) else list(message.id)


def _strings(message: Message) -> list[str]:
    return [message.string] if isinstance(message.string, str) else list(message.string)


@pytest.fixture(scope="module")
def extracted() -> Catalog:
    return extract()


def test_extraction_finds_the_pages_strings(extracted: Catalog) -> None:
    ids = message_ids(extracted)
    assert "What is escrow?" in ids
    assert "Requested address: %(path)s" in ids
    assert ("The seller must ship within %(count)s day.",
            "The seller must ship within %(count)s days.") in ids
    assert len(ids) > 50


@pytest.mark.parametrize("lang", LANGUAGES)
def test_catalog_has_exactly_the_extracted_messages(lang: str, extracted: Catalog) -> None:
    have, want = message_ids(_catalog(lang)), message_ids(extracted)
    assert not want - have, f"{lang}: untranslated, run python -m trustpay.web.catalogs"
    assert not have - want, f"{lang}: stale messages, run python -m trustpay.web.catalogs"


@pytest.mark.parametrize("lang", LANGUAGES)
def test_every_message_is_translated(lang: str) -> None:
    catalog = _catalog(lang)
    assert catalog.num_plurals == (2 if lang == "en" else 1)
    for message in _messages(catalog):
        assert not message.fuzzy, f"{lang}: fuzzy {message.id!r}"
        strings = _strings(message)
        expected_forms = catalog.num_plurals if message.pluralizable else 1
        assert len(strings) == expected_forms, f"{lang}: {message.id!r} has {len(strings)} forms"
        assert all(s.strip() for s in strings), f"{lang}: {message.id!r} is not translated"


@pytest.mark.parametrize("lang", LANGUAGES)
def test_translations_keep_placeholders_and_markup(lang: str) -> None:
    catalog = _catalog(lang)
    for message in _messages(catalog):
        source = " ".join(_ids(message))
        wanted_names = set(PLACEHOLDER.findall(source))
        wanted_tags = sorted(TAG.findall(source))
        for text in _strings(message):
            assert set(PLACEHOLDER.findall(text)) == wanted_names, f"{lang}: {message.id!r}"
            assert sorted(TAG.findall(text)) == wanted_tags, f"{lang}: {message.id!r}"
            # With newstyle gettext every string is %-formatted: a lone % would crash.
            assert "%" not in PLACEHOLDER.sub("", text).replace("%%", ""), f"{lang}: {text!r}"
    assert not [err for _, errs in catalog.check() for err in errs]


# Characters that exist in only one of the two scripts (common ones in a payment UI).
SIMPLIFIED_ONLY = set("这个们说时对钱账户货买卖单发会动务现认据录证码网实设开关还进过运无线费额页"
                      "长图门问间样头条难边将应变该话读写汇币银绑续结处详选择确键购订")
TRADITIONAL_ONLY = set("這個們說時對錢帳戶貨買賣單發會動務現認據錄證碼網實設開關還進過運無線費額頁"
                       "長圖門問間樣頭條難邊將應變該話讀寫匯幣銀綁續結處詳選擇確鍵購訂")


@pytest.mark.parametrize(("lang", "foreign"), [
    ("zh-Hans", TRADITIONAL_ONLY), ("zh-Hant", SIMPLIFIED_ONLY),
])
def test_chinese_catalogs_use_their_own_script(lang: str, foreign: set[str]) -> None:
    for message in _messages(_catalog(lang)):
        for text in _strings(message):
            wrong = sorted(set(text) & foreign)
            assert not wrong, f"{lang}: {text!r} uses {''.join(wrong)}"


@pytest.mark.parametrize("lang", ["zh-Hans", "zh-Hant"])
def test_chinese_catalogs_address_the_reader_one_way(lang: str) -> None:
    """你 throughout, as the wallet pages began: a page that says 你 in one line and the
    formal 您 in the next reads as two voices."""
    formal = [text for message in _messages(_catalog(lang)) for text in _strings(message) if "您" in text]
    assert not formal, formal


@pytest.mark.parametrize(("lang", "wallet"), [
    ("zh-Hans", "钱包"), ("zh-Hant", "錢包"), ("en", "Wallet"),
])
def test_compiled_catalogs_translate(lang: str, wallet: str) -> None:
    t = translations(lang)
    assert t.gettext("Wallet") == wallet
    days = t.ngettext("The seller must ship within %(count)s day.",
                      "The seller must ship within %(count)s days.", 3)
    assert days % {"count": 3} == {
        "zh-Hans": "卖家须在 3 天内发货。", "zh-Hant": "賣家須在 3 天內出貨。",
        "en": "The seller must ship within 3 days.",
    }[lang]


# --- rendering: the runtime finds every extracted message ----------------------------------

def _request(path: str = "/", query: str = "") -> Request:
    return Request({
        "type": "http", "method": "GET", "path": path, "raw_path": path.encode(),
        "query_string": query.encode(), "headers": [], "scheme": "http",
        "server": ("testserver", 80), "root_path": "",
    })


def _render_all(lang: str) -> str:
    at = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
    pages = [
        render(_request(query=f"lang={lang}"), "landing.html",
               {"currency": "CNY", "example_amount": 19_900, "ship_days": 3}),
        render(_request("/missing", f"lang={lang}"), "404.html", status_code=404),
        render(_request("/fragments/ledger-digest", f"lang={lang}"),
               "fragments/ledger_digest.html", {"digest": Digest(7, "ab" * 32), "at": at}),
    ]
    for page in pages:
        assert page.headers["content-language"] == lang
        assert f"tp_lang={lang}" in page.headers["set-cookie"]
    return "\n".join(bytes(page.body).decode() for page in pages)


# Terms the Chinese text quotes on purpose, e.g. "默克尔根（Merkle root）".
KEPT_IN_ENGLISH = {"Merkle root"}


@pytest.mark.parametrize("lang", ["zh-Hans", "zh-Hant"])
def test_rendered_chinese_pages_have_no_english_left(lang: str, extracted: Catalog) -> None:
    html = _render_all(lang)
    assert f'<html lang="{lang}">' in html
    for message in _messages(extracted):
        for english in _ids(message):
            if english in KEPT_IN_ENGLISH:
                continue
            plain = PLACEHOLDER.sub("", english).replace("'", "&#39;")
            for fragment in filter(None, (s.strip() for s in plain.split("  "))):
                assert fragment not in html, f"{lang}: {english!r} was not translated"


def test_rendered_english_page() -> None:
    html = _render_all("en")
    assert '<html lang="en">' in html
    assert "The seller must ship within 3 days." in html
    assert "Requested address: /missing" in html
    # 03:04:05 UTC in the default display zone, Asia/Shanghai, labelled by the formatter.
    assert "Jan 2, 2026, 11:04:05\u202fAM\u00a0UTC+8" in html
    assert "(UTC)" not in html


# --- money in the reader's locale ----------------------------------------------------------

@pytest.mark.parametrize(("amount", "currency", "lang", "text"), [
    (19_900, "CNY", "zh-Hans", "¥199.00"),
    (19_900, "CNY", "zh-Hant", "CN¥199.00"),
    (19_900, "CNY", "en", "CN¥199.00"),
    (123_450, "USD", "en", "$1,234.50"),
    (123_450, "USD", "zh-Hans", "US$1,234.50"),
    (500, "JPY", "en", "¥500"),
    (1, "CNY", "zh-Hans", "¥0.01"),
    (-500, "CNY", "en", "\u2212CN¥5.00"),  # the minus sign, as the transfer pages write it
    (-500, "CNY", "zh-Hans", "\u2212¥5.00"),
])
def test_format_money(amount: int, currency: str, lang: str, text: str) -> None:
    assert format_money(amount, currency, lang) == text


# --- times in the display time zone ---------------------------------------------------------

# 14:35 UTC on 4 December 2026: 22:35 in Shanghai, 20:05 in Kolkata (UTC+5:30).
AT = datetime(2026, 12, 4, 14, 35, tzinfo=UTC)


@pytest.mark.parametrize(("zone", "lang", "text"), [
    ("Asia/Shanghai", "en", "Dec 4, 2026, 10:35:00\u202fPM\u00a0UTC+8"),
    ("Asia/Shanghai", "zh-Hans", "2026年12月4日 22:35:00（UTC+8）"),
    ("Asia/Shanghai", "zh-Hant", "2026年12月4日 晚上10:35:00（UTC+8）"),
    ("UTC", "en", "Dec 4, 2026, 2:35:00\u202fPM\u00a0UTC"),
    ("UTC", "zh-Hans", "2026年12月4日 14:35:00（UTC）"),
    ("UTC", "zh-Hant", "2026年12月4日 下午2:35:00（UTC）"),
    ("Asia/Kolkata", "en", "Dec 4, 2026, 8:05:00\u202fPM\u00a0UTC+5:30"),
    ("Asia/Kolkata", "zh-Hans", "2026年12月4日 20:05:00（UTC+5:30）"),
    ("Asia/Kolkata", "zh-Hant", "2026年12月4日 晚上8:05:00（UTC+5:30）"),
    ("America/St_Johns", "en", "Dec 4, 2026, 11:05:00\u202fAM\u00a0UTC-3:30"),
])
def test_format_timestamp_shows_the_display_zone_and_says_which(zone: str, lang: str, text: str) -> None:
    assert format_timestamp(AT, lang, zone) == text


def test_format_timestamp_crosses_the_date_line_into_the_local_day() -> None:
    # 16:30 UTC on 4 Dec is already 5 Dec in Shanghai: the page shows the local date.
    assert format_timestamp(datetime(2026, 12, 4, 16, 30, tzinfo=UTC), "zh-Hans", "Asia/Shanghai") == \
        "2026年12月5日 00:30:00（UTC+8）"


def test_format_timestamp_reads_a_naive_time_as_utc() -> None:
    # SQLite hands instants back without a zone; they were stored as UTC.
    naive = AT.replace(tzinfo=None)
    assert format_timestamp(naive, "en", "Asia/Shanghai") == format_timestamp(AT, "en", "Asia/Shanghai")


def test_format_timestamp_labels_summer_and_winter_time_by_their_own_offset() -> None:
    assert format_timestamp(datetime(2026, 7, 1, 12, tzinfo=UTC), "en", "Europe/Berlin").endswith("UTC+2")
    assert format_timestamp(datetime(2026, 1, 1, 12, tzinfo=UTC), "en", "Europe/Berlin").endswith("UTC+1")


def test_display_timezone_defaults_to_the_business_days_zone(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("TRUSTPAY_DISPLAY_TIMEZONE", raising=False)
    monkeypatch.delenv("TRUSTPAY_LIMITS_TIMEZONE", raising=False)
    assert Settings().display_timezone == "Asia/Shanghai"
    assert Settings(limits_timezone="Europe/Berlin").display_timezone == "Europe/Berlin"
    monkeypatch.setenv("TRUSTPAY_DISPLAY_TIMEZONE", "UTC")
    assert Settings().display_timezone == "UTC"
    monkeypatch.setenv("TRUSTPAY_DISPLAY_TIMEZONE", "Asia/Nowhere")
    with pytest.raises(ValidationError, match="unknown time zone"):
        Settings()
