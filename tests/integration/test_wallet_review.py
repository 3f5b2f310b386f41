"""Findings of the wallet pages' usability review, on SQLite and PostgreSQL: a card bound
without the name on it says the name is missing (the API refuses it before the bank), a
new card already bound is chosen for the top-up instead of being cleared, a bank
operation's "stops checking" note goes once the bank has answered, the minus sign is
the transfer pages' one on the statement and receipt (the exports keep a hyphen), the
"on the way in" figure is named "Transfers arriving" and says top-ups are not in it, and the withdrawal quote refuses
an amount over today's remaining daily cap or limit and names it."""

from __future__ import annotations

import html
import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select
from tests.integration.test_wallet_banking import settle_bank
from tests.integration.test_wallet_form_ux import (
    bind,
    payment_failures,
    quote,
    refusal_text,
    save_prefs,
    withdraw,
)
from tests.integration.test_wallet_web import CSRF, GOOD_CARD, REQUEST_KEY, browser, form_of, refusal_code
from tests.integration.wallet_support import PAY_PW, WalletEnv, make_wallet_env

from trustpay.wallet import bank_ops, store


@pytest.fixture
def w(db_url: str, tmp_path: Path) -> Iterator[WalletEnv]:
    yield from make_wallet_env(db_url, tmp_path)


def card_count(w: WalletEnv) -> int:
    with w.platform.db.transaction(write=False) as conn:
        return int(conn.execute(select(func.count()).select_from(store.bank_cards)).scalar_one())


def topup_count(w: WalletEnv) -> int:
    with w.platform.db.transaction(write=False) as conn:
        return int(conn.execute(select(func.count()).select_from(store.topups)).scalar_one())


# ------------------------------------------------------------------ 1. the name on the card
@pytest.mark.parametrize("name", ["", "   "])
def test_a_card_without_the_name_on_it_says_the_name_is_missing(w: WalletEnv, name: str) -> None:
    alice = w.user("alice@example.com")
    client = browser(w, alice)
    home = client.get("/wallet").text
    assert re.search(r'name="holder_name"[^>]* required', home)
    r = client.post("/wallet/cards", data={**form_of(client, "/wallet"), "card_number": GOOD_CARD,
                                           "holder_name": name})
    assert r.status_code == 400 and refusal_code(r.text) == "missing_field"
    assert refusal_text(r.text) == "Enter the name as printed on the card."
    assert "4111 1111 1111 1111" not in r.text and "4111111111111111" not in r.text
    assert card_count(w) == 0

    # Top-up with "Use a new card": the same words; the amount stays, "Use a new card" stays open.
    saved = bind(client, "5555 5555 5555 4444")
    t = client.post("/wallet/topup", data={**form_of(client, "/wallet/topup"), "card": saved,
                                           "card_number": GOOD_CARD, "holder_name": name, "amount": "30.00",
                                           "currency": "CNY"})
    assert t.status_code == 400 and refusal_text(t.text) == "Enter the name as printed on the card."
    assert 'data-testid="new-card" open' in t.text and 'value="30.00"' in t.text
    assert "4111111111111111" not in t.text
    assert card_count(w) == 1 and topup_count(w) == 0

    # The API refuses it before the bank, as a missing field (it was bank_rejected).
    api = w.client.post("/v1/bank-cards", json={"card_number": GOOD_CARD.replace(" ", ""), "holder_name": name},
                        headers=alice.auth)
    assert api.status_code == 400, api.text
    assert api.json()["error"]["code"] == "missing_field" and api.json()["error"]["param"] == "holder_name"
    assert card_count(w) == 1


def test_the_top_up_without_saved_cards_requires_the_name_and_the_new_card_section_does_not(
        w: WalletEnv) -> None:
    alice = w.user("alice@example.com")
    client = browser(w, alice)
    assert re.search(r'name="holder_name"[^>]* required', client.get("/wallet/topup").text)
    bind(client)
    # Inside the closed "Use a new card" a required field would stop a top-up from the saved card.
    assert not re.search(r'name="holder_name"[^>]* required', client.get("/wallet/topup").text)


# ------------------------------------------------------------------ 2. a new card that is a saved one
def test_a_new_card_already_saved_is_chosen_and_one_more_press_tops_up_with_it(w: WalletEnv) -> None:
    alice = w.user("alice@example.com")
    client = browser(w, alice)
    other = bind(client, "5555 5555 5555 4444")
    saved = bind(client)
    r = client.post("/wallet/topup", data={**form_of(client, "/wallet/topup"), "card": other,
                                           "card_number": GOOD_CARD, "holder_name": "Alice Li",
                                           "amount": "30.00", "currency": "CNY"})
    assert r.status_code == 409 and refusal_code(r.text) == "already_exists"
    assert "already saved" in refusal_text(r.text) and "chosen above" in refusal_text(r.text)
    assert re.search(rf'value="{saved}" checked', r.text) and f'value="{other}" checked' not in r.text
    assert 'data-testid="new-card" open' not in r.text and 'value="30.00"' in r.text
    assert "4111111111111111" not in r.text and GOOD_CARD not in r.text
    assert topup_count(w) == 0  # nothing charged before the person presses again
    # Pressing Top up on that page as it is tops up from the saved card.
    again = client.post("/wallet/topup", data={"csrf_token": CSRF.findall(r.text)[0],
                                               "request_key": REQUEST_KEY.findall(r.text)[0], "card": saved,
                                               "card_number": "", "holder_name": "Alice Li",
                                               "amount": "30.00", "currency": "CNY"}, follow_redirects=False)
    assert again.status_code == 303, refusal_text(again.text)
    with w.platform.db.transaction(write=False) as conn:
        assert [r["card_id"] for r in conn.execute(select(store.topups)).mappings()] == [saved]


# ------------------------------------------------------------------ 3. the "stops checking" note
NO_ANSWER = "4000000000000028"  # the sandbox bank never answers for a card ending 0028 (API.md)


def top_up(client: TestClient, card: str, amount: str = "30.00") -> str:
    r = client.post("/wallet/topup", data={**form_of(client, "/wallet/topup"), "card": card, "amount": amount,
                                           "currency": "CNY"}, follow_redirects=False)
    assert r.status_code == 303, refusal_text(r.text)
    return str(r.headers["location"])


def test_the_stops_checking_note_is_in_the_polled_panel_so_it_goes_with_the_pending_status(
        w: WalletEnv) -> None:
    alice = w.user("alice@example.com")
    client = browser(w, alice)
    waiting = top_up(client, bind(client, NO_ANSWER))
    # htmx swaps the panel for what /status answers: the note is part of it while pending ...
    fragment = client.get(waiting + "/status").text
    assert 'data-status="pending"' in fragment and 'data-testid="op-slow-note"' in fragment
    page = client.get(waiting).text
    assert page.count('data-testid="op-slow-note"') == 1
    # ... and the answer once the bank has paid carries none.
    paid = top_up(client, bind(client))
    assert 'data-testid="op-slow-note"' in client.get(paid + "/status").text
    settle_bank(w)
    answered = client.get(paid + "/status").text
    assert 'data-status="succeeded"' in answered and "op-slow-note" not in answered
    assert "op-slow-note" not in client.get(paid).text


# ------------------------------------------------------------------ 7. the withdrawal and today's caps
def most_shown(page: str) -> str:
    shown = re.search(r'data-testid="withdraw-available-CNY">([^<]*)<', page)
    assert shown, "no 'up to' figure on the page"
    return html.unescape(shown.group(1)).split("up to")[1]


def test_the_withdrawal_quote_refuses_past_the_own_daily_cap_and_the_up_to_figure_counts_it(
        w: WalletEnv) -> None:
    alice = w.user("alice@example.com", fund=588_492)  # ¥5,884.92
    client = browser(w, alice)
    card = bind(client)
    assert "5,879.04" in most_shown(client.get("/wallet/withdraw").text)  # the balance is the bound
    assert "Your wallet settings are saved." in save_prefs(client, PAY_PW, daily_cap="300.00").text
    most = bank_ops.most_withdrawable(w.platform, 30_000)
    assert most == 29_970  # ¥299.70 + the ¥0.30 fee = ¥300.00
    assert "299.70" in most_shown(client.get("/wallet/withdraw").text)

    q = quote(client, card, "400.00")
    assert q.status_code == 402 and refusal_code(q.text) == "limit_exceeded"
    text = refusal_text(q.text)
    assert "daily cap you set yourself" in text and "300.00 is left today" in text and "299.70" in text, text
    assert 'href="/wallet/preferences" data-testid="refusal-link"' in q.text
    assert 'data-testid="payment-password"' not in q.text and 'value="400.00"' in q.text
    assert payment_failures(w, alice) == 0
    assert quote(client, card, "299.71").status_code == 402  # ¥299.71 + ¥0.30 passes ¥300.00

    # What fits is quoted; once some of today's cap is used, the figures follow.
    assert quote(client, card, "200.00").status_code == 200
    assert withdraw(client, card, "200.00").status_code == 303  # ¥200.00 + ¥0.20 fee
    page = client.get("/wallet/withdraw").text
    assert bank_ops.most_withdrawable(w.platform, 9_980) == 9_970 and "99.70" in most_shown(page)
    again = quote(client, card, "100.00")
    assert again.status_code == 402 and "99.80 is left today" in refusal_text(again.text)
    # The confirm step stays the guard: sent anyway, it is refused as before.
    late = withdraw(client, card, "100.00")
    assert late.status_code == 402 and refusal_code(late.text) == "limit_exceeded"
    assert w.balance(alice)["held"] == 20_020


def test_the_withdrawal_quote_refuses_past_the_tiers_daily_limit_with_what_is_left_today(w: WalletEnv) -> None:
    alice = w.user("alice@example.com", fund=1_500_000)
    client = browser(w, alice)
    card = bind(client)
    limits = w.platform.settings.tier_limit_table[1]  # single ¥5,000, daily ¥10,000
    over_single = quote(client, card, "5000.01")
    assert over_single.status_code == 402 and refusal_code(over_single.text) == "limit_exceeded"
    assert "limit for your verification level" in refusal_text(over_single.text)
    first = w.client.post("/v1/withdrawals", headers=alice.auth,
                          json={"card": card, "amount": limits.single, "payment_password": PAY_PW})
    assert first.status_code == 201, first.text  # ¥5,000.00 + ¥5.00 fee left the wallet today
    left = limits.daily - limits.single - 500
    assert left == 499_500
    most = bank_ops.most_withdrawable(w.platform, left)
    assert most == 499_001  # ¥4,990.01 + the ¥4.99 fee = ¥4,995.00
    assert "4,990.01" in most_shown(client.get("/wallet/withdraw").text)
    q = quote(client, card, "4995.00")
    assert q.status_code == 402 and refusal_code(q.text) == "limit_exceeded"
    text = refusal_text(q.text)
    assert "daily limit for your verification level" in text and "4,995.00 is left today" in text, text
    assert "4,990.01" in text and 'href="/security#identity" data-testid="refusal-link"' in q.text
    assert quote(client, card, "4990.01").status_code == 200


# ------------------------------------------------------------------ 6. the figure above a waiting top-up
def test_the_pending_in_figure_says_it_is_transfers_not_top_ups_in_every_language(w: WalletEnv) -> None:
    alice = w.user("alice@example.com")
    client = browser(w, alice)
    top_up(client, bind(client, NO_ANSWER))
    home = client.get("/wallet").text
    assert 'data-testid="waiting-topup"' in home
    assert "On the way in" not in home
    label = re.search(r'<dt>([^<]*)</dt><dd data-testid="pending-in-CNY">', home)
    assert label and label.group(1) == "Transfers arriving"
    hint = re.search(r'data-testid="pending-in-hint-CNY">([^<]*)<', home)
    assert hint and "Top-ups are not counted here." in hint.group(1) and "accept" in hint.group(1)
    for lang, words in (("zh-Hans", "待到账转账"), ("zh-Hant", "待入帳轉帳")):
        page = client.get(f"/wallet?lang={lang}").text
        assert f"<dt>{words}</dt>" in page and "在途" not in page
    # The API's field is unchanged.
    assert set(w.client.get("/v1/wallet", headers=alice.auth).json()["balances"][0]) >= {"pending_in"}


# ------------------------------------------------------------------ 5. one minus sign
LINE = re.compile(r'href="/wallet/transactions/(txn_[a-z0-9_]+)"')


def test_the_statement_and_receipt_write_the_minus_sign_as_the_transfer_pages_and_exports_keep_a_hyphen(
        w: WalletEnv) -> None:
    alice = w.user("alice@example.com", fund=10_000)
    w.user("bob@example.com")
    sent = w.transfer(alice, "bob@example.com", 500)
    assert sent.status_code == 201, sent.text
    w.advance(60)  # past the undo window
    client = browser(w, alice)
    assert "−CN¥5.00" in client.get(f"/wallet/transfers/{sent.json()['id']}").text
    statement = client.get("/wallet/statement").text
    amounts = re.findall(r'class="line-amount (?:in|out)">([^<]*)<', statement)
    assert "−CN¥5.00" in amounts and not any(a.startswith("-") for a in amounts), amounts
    line = next(i for i in LINE.findall(statement) if "−CN¥5.00" in statement.split(i)[1][:1500])
    for url in (f"/wallet/transactions/{line}", f"/wallet/transactions/{line}/verify"):
        page = client.get(url).text
        shown = re.search(r'data-testid="receipt-amount">([^<]*)<', page)
        assert shown and shown.group(1) == "−CN¥5.00", url
        assert "-CN¥" not in page
    # Exports stay machine-readable: integer minor units with an ASCII minus.
    exported = client.get("/wallet/statement.csv").text
    assert "\u2212" not in exported and ",-500," in exported
    doc = client.get(f"/wallet/transactions/{line}/receipt.json").json()
    assert doc["amount"] == -500


def test_the_statement_says_why_a_line_balance_can_exceed_what_is_available(w: WalletEnv) -> None:
    alice = w.user("alice@example.com", fund=10_000)
    bob = w.user("bob@example.com")
    r = w.transfer(alice, "bob@example.com", 1_500, require_acceptance=True)
    assert r.status_code == 201, r.text
    sender = browser(w, alice).get("/wallet/statement", params={"lang": "en"}).text
    assert 'data-testid="held-explained"' in sender and "still counts money on hold" in sender
    assert "CN¥15.00 on hold" in sender
    recipient = browser(w, bob).get("/wallet/statement", params={"lang": "en"}).text
    assert "CN¥15.00 in transfers arriving" in recipient and 'data-testid="held-explained"' not in recipient
    assert "待到账转账 ¥15.00" in browser(w, bob).get("/wallet/statement", params={"lang": "zh-Hans"}).text
