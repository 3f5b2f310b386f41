"""Wording and display details of the wallet pages, on SQLite and PostgreSQL: the withdrawal
fee plan in percent, transfers whose money went back struck through, the UnionPay brand
named in Chinese, and the statement's sent/received transfer types worded alike in Chinese."""

from __future__ import annotations

import html
import re
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from tests.integration.test_wallet_web import CSRF, browser, form_of, send
from tests.integration.wallet_support import WalletEnv, make_wallet_env

from trustpay.banks.cards import sample_card_number
from trustpay.web.i18n import COOKIE_NAME

VISA = "4111 1111 1111 1111"
UNIONPAY = sample_card_number("4242")  # 622202…4242: the sandbox's always-paying UnionPay card
NO_SCHEME = sample_card_number("7777", prefix="9100")  # no scheme's prefix: brand "unknown"


@pytest.fixture
def w(db_url: str, tmp_path: Path) -> Iterator[WalletEnv]:
    yield from make_wallet_env(db_url, tmp_path)


@pytest.fixture
def w_fixed_fee(db_url: str, tmp_path: Path) -> Iterator[WalletEnv]:
    """A fee plan with a fixed part and a rate of 0.125%."""
    yield from make_wallet_env(db_url, tmp_path, withdrawal_fee_fixed=100,
                               withdrawal_fee_bank_rate=Decimal("0.001"),
                               withdrawal_fee_margin=Decimal("0.00025"))


def text_of(page: str, testid: str) -> str:
    """The text of the element with ``data-testid=testid`` (tags dropped, entities decoded)."""
    m = re.search(rf'<(\w+)[^>]*data-testid="{testid}"[^>]*>(.*?)</\1>', page, re.S)
    assert m, f"no {testid} on the page"
    return html.unescape(re.sub(r"<[^>]+>", "", m.group(2))).strip()


def plain(page: str) -> str:
    """The page's text, tags dropped and entities decoded."""
    return html.unescape(re.sub(r"<[^>]+>", "", page))


def classes_of(page: str, testid: str) -> list[list[str]]:
    """The class lists of every element with ``data-testid=testid``."""
    return [m.split() for m in re.findall(rf'class="([^"]*)"[^>]*data-testid="{testid}"', page)]


def bind(client: TestClient, number: str) -> str:
    r = client.post("/wallet/cards", data={**form_of(client, "/wallet"), "card_number": number,
                                           "holder_name": "Alice Li"})
    assert r.status_code == 200, r.text
    return str(re.findall(r'action="/wallet/cards/(card_[^/"]+)/unbind"', r.text)[-1])


def quote_page(client: TestClient, card: str, lang: str) -> str:
    client.cookies.set(COOKIE_NAME, lang)
    r = client.post("/wallet/withdraw/quote", data={**form_of(client, "/wallet/withdraw"), "card": card,
                                                    "amount": "100.00", "currency": "CNY"})
    assert r.status_code == 200, r.text
    return str(r.text)


# ------------------------------------------------------------------ 1. the fee plan in percent
def test_withdrawal_fee_plan_shows_the_rate_in_percent_without_a_zero_fixed_part(w: WalletEnv) -> None:
    alice = w.user("alice@example.com", fund=100_000)
    client = browser(w, alice)
    card = bind(client, VISA)
    expected = {  # the standard plan: 0.06% + 0.04%, nothing fixed, at least ¥0.10
        "en": "Fee: 0.1% of the amount, at least CN¥0.10.",
        "zh-Hans": "手续费：金额的 0.1%，最低 ¥0.10。",
        "zh-Hant": "手續費：金額的 0.1%，最低 CN¥0.10。",
    }
    for lang, text in expected.items():
        page = quote_page(client, card, lang)
        assert text in plain(page)
        assert text_of(page, "quote-fee-plan") == text
        assert "0.0010" not in page


def test_withdrawal_fee_plan_names_a_fixed_part_and_keeps_every_decimal_of_the_rate(
        w_fixed_fee: WalletEnv) -> None:
    w = w_fixed_fee
    alice = w.user("alice@example.com", fund=100_000)
    client = browser(w, alice)
    card = bind(client, VISA)
    # The ¥0.10 minimum is below the fixed ¥1.00, so it can never apply and is not named.
    for lang, text in (("en", "Fee: CN¥1.00 plus 0.125% of the amount."),
                       ("zh-Hans", "手续费：¥1.00 加金额的 0.125%。")):
        page = quote_page(client, card, lang)
        assert text in plain(page)
        assert text_of(page, "quote-fee-plan") == text


@pytest.mark.parametrize(("plan", "expected"), [
    ({"withdrawal_fee_fixed": 0, "withdrawal_fee_minimum": 0}, ("Fee: 0.1% of the amount.", "手续费：金额的 0.1%。")),
    ({"withdrawal_fee_fixed": 200, "withdrawal_fee_minimum": 50, "withdrawal_fee_bank_rate": Decimal(0),
      "withdrawal_fee_margin": Decimal(0)}, ("Fee: CN¥2.00.", "手续费：¥2.00。")),
    ({"withdrawal_fee_fixed": 0, "withdrawal_fee_minimum": 0, "withdrawal_fee_bank_rate": Decimal(0),
      "withdrawal_fee_margin": Decimal(0)}, ("No fee.", "免手续费。")),
], ids=["no-minimum", "flat", "free"])
def test_withdrawal_fee_plan_names_only_the_parts_that_can_apply(db_url: str, tmp_path: Path, plan: dict[str, object],
                                                                 expected: tuple[str, str]) -> None:
    for w in make_wallet_env(db_url, tmp_path, **plan):
        alice = w.user("alice@example.com", fund=100_000)
        client = browser(w, alice)
        card = bind(client, VISA)
        for lang, text in zip(("en", "zh-Hans"), expected, strict=True):
            page = quote_page(client, card, lang)
            assert text_of(page, "quote-fee-plan") == text
            assert "at least" not in page and "最低" not in page


# ------------------------------------------------------------------ 2. money that went back
def test_reversed_and_returned_transfers_are_struck_through_not_shown_as_moved(w: WalletEnv) -> None:
    alice = w.user("alice@example.com", fund=10_000)
    bob = w.user("bob@example.com")
    alices, bobs = browser(w, alice), browser(w, bob)

    # Sent and undone: reversed.
    undone = send(alices, "bob@example.com", "12.34").headers["location"]
    assert classes_of(alices.get(undone).text, "transfer-amount") == [["order-amount", "line-amount", "out"]]
    page = alices.post(undone + "/undo", data=form_of(alices, undone)).text
    assert 'data-status="reversed"' in page
    assert "went-back" in classes_of(page, "transfer-amount")[0]
    assert text_of(page, "transfer-amount") == "−CN¥12.34"  # the amount stays readable

    # Sent with acceptance and declined: returned, for the sender and the recipient alike.
    declined = send(alices, "bob@example.com", "20.00", require_acceptance="1").headers["location"]
    assert "went-back" not in classes_of(bobs.get(declined).text, "transfer-amount")[0]  # still to answer
    token = {"csrf_token": CSRF.findall(bobs.get("/wallet").text)[0]}
    assert 'data-status="returned"' in bobs.post(declined + "/decline", data=token).text
    for client in (alices, bobs):
        assert "went-back" in classes_of(client.get(declined).text, "transfer-amount")[0]

    # A transfer that went through is shown as money that moved.
    completed = send(alices, "bob@example.com", "5.00").headers["location"]
    w.advance(11)
    assert "went-back" not in classes_of(alices.get(completed).text, "transfer-amount")[0]

    # The wallet home's recent transfers, for both sides (Bob's list once showed
    # "+CN¥12.34 Reversed" as if the undone transfer had paid him).
    for client, sign in ((alices, "−"), (bobs, "+")):
        home = client.get("/wallet").text
        statuses = re.findall(r'data-testid="recent-transfer" data-status="([a-z_]+)"', home)
        struck = ["went-back" in c for c in classes_of(home, "recent-amount")]
        amounts = [html.unescape(a) for a in re.findall(r'data-testid="recent-amount">([^<]*)<', home)]
        assert sorted(zip(statuses, struck, amounts, strict=True)) == [
            ("completed", False, f"{sign}CN¥5.00"),
            ("returned", True, f"{sign}CN¥20.00"),
            ("reversed", True, f"{sign}CN¥12.34"),
        ]


# ------------------------------------------------------------------ 5. card brands
def test_card_brands_unionpay_in_chinese_unknown_as_a_card_others_as_the_scheme_spells_them(w: WalletEnv) -> None:
    alice = w.user("alice@example.com", fund=100_000)
    client = browser(w, alice)
    bind(client, VISA)
    bind(client, UNIONPAY)
    bind(client, NO_SCHEME)
    for lang, unionpay, card in (("en", "UNIONPAY", "Card"), ("zh-Hans", "银联", "银行卡"),
                                 ("zh-Hant", "銀聯", "銀行卡")):
        for url in ("/wallet", "/wallet/withdraw", "/wallet/topup"):
            page = client.get(url, params={"lang": lang}).text
            assert f"{unionpay} •••• 4242" in page, (lang, url)
            assert "VISA •••• 1111" in page, (lang, url)
            assert f"{card} •••• 7777" in page and "UNKNOWN" not in page, (lang, url)
            if lang != "en":
                assert "UNIONPAY" not in page, (lang, url)


# ------------------------------------------------------------------ 6. transfer types on the statement
def test_statement_words_sent_and_received_transfers_alike_in_chinese(w: WalletEnv) -> None:
    alice = w.user("alice@example.com", fund=10_000)
    bob = w.user("bob@example.com")
    alices, bobs = browser(w, alice), browser(w, bob)
    assert send(alices, "bob@example.com", "12.34").status_code == 303
    w.advance(11)
    expected = {"en": ("Transfer sent", "Transfer received"), "zh-Hans": ("转出", "转入"),
                "zh-Hant": ("轉出", "轉入")}
    line = r'data-type="{}".*?<span class="line-type">([^<]*)</span>'
    for lang, (sent, received) in expected.items():
        out = alices.get("/wallet/statement", params={"lang": lang}).text
        into = bobs.get("/wallet/statement", params={"lang": lang}).text
        assert re.findall(line.format("transfer_out"), out, re.S) == [sent]
        assert re.findall(line.format("transfer_in"), into, re.S) == [received]
