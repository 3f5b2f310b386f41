"""Wallet forms say the true reason and keep what the person chose, on SQLite and
PostgreSQL: a withdrawal whose amount + fee the balance cannot pay says so (at the
quote, before the payment password) with the most that can be withdrawn; the
single-payment limit is on the amount asked for, the daily limit counts the fee;
a blank payment password is no try; wrong ones say how many are left and a lock
says until when; a top-up with a new card that failed keeps the new card chosen;
amounts over the maximum name it and full-width digits are read; unbinding a
card asks first; a top-up the bank has not answered stays on the wallet home."""

from __future__ import annotations

import html
import re
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path

import httpx
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select
from tests.integration.test_wallet_web import (
    CSRF,
    GOOD_CARD,
    REQUEST_KEY,
    browser,
    form_of,
    refusal_code,
    send,
    transfer_count,
)
from tests.integration.wallet_support import PAY_PW, Wallet, WalletEnv, make_wallet_env

from trustpay.db.schema import audit_log
from trustpay.wallet import store
from trustpay.wallet.model import FeePlan

NO_ANSWER = "4000000000000028"  # the sandbox bank never answers for a card ending 0028 (API.md)
INVALID_NUMBER = "1234567812345678"


@pytest.fixture
def w(db_url: str, tmp_path: Path) -> Iterator[WalletEnv]:
    yield from make_wallet_env(db_url, tmp_path)


def refusal_text(page: str) -> str:
    m = re.search(r'class="refusal-text">([^<]*)<', page)
    assert m, "no refusal on the page"
    return html.unescape(m.group(1))


def bind(client: TestClient, number: str = GOOD_CARD) -> str:
    r = client.post("/wallet/cards", data={**form_of(client, "/wallet"), "card_number": number,
                                           "holder_name": "Alice Li"})
    assert r.status_code == 200, r.text
    last4 = number.replace(" ", "")[-4:]
    for row in re.findall(r'data-testid="card">.*?</li>', r.text, re.S):
        if f"•••• {last4}" in row:
            return str(re.findall(r'action="/wallet/cards/(card_[^/"]+)/unbind"', row)[0])
    raise AssertionError(f"no card ending {last4} on the page")


def quote(client: TestClient, card: str, amount: str) -> httpx.Response:
    r: httpx.Response = client.post("/wallet/withdraw/quote", data={
        **form_of(client, "/wallet/withdraw"), "card": card, "amount": amount, "currency": "CNY"})
    return r


def withdraw(client: TestClient, card: str, amount: str, password: str = PAY_PW) -> httpx.Response:
    token = form_of(client, "/wallet/withdraw")
    r: httpx.Response = client.post("/wallet/withdraw", data={
        **token, "card": card, "amount": amount, "currency": "CNY", "payment_password": password},
        follow_redirects=False)
    return r


def payment_failures(w: WalletEnv, who: Wallet) -> int:
    with w.platform.db.transaction(write=False) as conn:
        return int(conn.execute(select(func.count()).select_from(audit_log).where(
            audit_log.c.user_id == who.id, audit_log.c.event == "payment_password.check",
            audit_log.c.outcome == "failure")).scalar_one())


def save_prefs(client: TestClient, password: str, **fields: str) -> httpx.Response:
    body = {**form_of(client, "/wallet/preferences"), "daily_cap": "", "password_free_cap": "",
            "payment_password": password, **fields}
    r: httpx.Response = client.post("/wallet/preferences", data=body)
    return r


# ------------------------------------------------------------------ 1. withdraw: the balance, not a limit
@pytest.mark.parametrize(("available", "most"), [(499_990, 499_491), (10, 0), (0, 0), (10_010, 10_000),
                                                 (10_009, 9_999)])
def test_most_within_is_the_largest_amount_whose_total_fits(available: int, most: int) -> None:
    plan = FeePlan(fixed=0, bank_rate=Decimal("0.0006"), margin=Decimal("0.0004"), minimum=10)  # the defaults
    assert plan.most_within(available) == most
    if most:
        assert most + plan.fee_for(most) <= available < most + 1 + plan.fee_for(most + 1)


def test_withdrawing_all_of_the_balance_says_the_fee_does_not_fit_and_the_most_there_is(w: WalletEnv) -> None:
    alice = w.user("alice@example.com", fund=499_990)  # ¥4,999.90; tier 1: single ¥5,000, daily ¥10,000
    client = browser(w, alice)
    card = bind(client)

    # The quote step already says it, before any payment password is asked for.
    q = quote(client, card, "4999.90")
    assert q.status_code == 402 and refusal_code(q.text) == "insufficient_funds"
    text = refusal_text(q.text)
    assert "4,999.90" in text and "5.00" in text and "5,004.90" in text and "4,994.91" in text, text
    assert 'data-testid="withdraw-form"' not in q.text and 'data-testid="payment-password"' not in q.text
    assert 'href="/wallet/topup" data-testid="refusal-link"' in q.text
    assert 'value="4999.90"' in q.text  # the amount stays in the form to be changed

    # Sent anyway (an old confirm page): the balance is the reason, not the tier limit.
    r = withdraw(client, card, "4999.90")
    assert r.status_code == 402 and refusal_code(r.text) == "insufficient_funds", refusal_text(r.text)
    assert "4,994.91" in refusal_text(r.text)
    assert w.balance(alice) == {"available": 499_990, "held": 0, "pending_in": 0}
    api = w.client.post("/v1/withdrawals", headers=alice.auth,
                        json={"card": card, "amount": 499_990, "payment_password": PAY_PW})
    assert api.status_code == 402 and api.json()["error"]["code"] == "insufficient_funds"
    assert "CNY 4,994.91" in api.json()["error"]["message"]

    # The most it named can be withdrawn, to the last fen.
    assert quote(client, card, "4994.91").status_code == 200
    done = withdraw(client, card, "4994.91")
    assert done.status_code == 303, refusal_text(done.text)
    assert w.balance(alice) == {"available": 0, "held": 499_990, "pending_in": 0}
    w.ledger_ok()


def test_the_single_payment_limit_is_on_the_amount_and_the_daily_limit_counts_the_fee(w: WalletEnv) -> None:
    alice = w.user("alice@example.com", fund=1_500_000)
    client = browser(w, alice)
    card = bind(client)
    single = w.platform.settings.tier_limit_table[1].single  # ¥5,000.00
    first = w.client.post("/v1/withdrawals", headers=alice.auth,
                          json={"card": card, "amount": single, "payment_password": PAY_PW})
    assert first.status_code == 201, first.text  # ¥5,000 + ¥5 fee: the limit is on the ¥5,000
    fee = first.json()["fee"]
    assert fee == 500
    over = w.client.post("/v1/withdrawals", headers=alice.auth,
                         json={"card": card, "amount": single + 1, "payment_password": PAY_PW})
    assert over.status_code == 402 and over.json()["error"]["param"] == "single_payment"
    # Today so far: ¥5,005.00 left the wallet (amount + fee). A second ¥4,990.00 (fee ¥4.99) would make
    # ¥9,999.99 (allowed); ¥4,995.00 (fee ¥5.00) would make ¥10,005.00, over the ¥10,000 daily limit.
    daily = w.platform.settings.tier_limit_table[1].daily
    refused = w.client.post("/v1/withdrawals", headers=alice.auth,
                            json={"card": card, "amount": 499_500, "payment_password": PAY_PW})
    assert refused.status_code == 402 and refused.json()["error"]["param"] == "daily_outflow"
    assert single + 499_500 <= daily < single + fee + 499_500 + 500  # the fees are what tip it over
    ok = w.client.post("/v1/withdrawals", headers=alice.auth,
                       json={"card": card, "amount": 499_000, "payment_password": PAY_PW})
    assert ok.status_code == 201, ok.text
    w.ledger_ok()


def test_the_quote_names_the_card_and_changing_keeps_the_amount_and_the_form_shows_the_balance(
        w: WalletEnv) -> None:
    alice = w.user("alice@example.com", fund=100_000)
    client = browser(w, alice)
    bind(client)
    second = bind(client, "5555 5555 5555 4444")
    page = client.get("/wallet/withdraw")
    shown = re.search(r'data-testid="withdraw-available-CNY">([^<]*)<', page.text)
    assert shown and "1,000.00" in shown.group(1) and "999.00" in shown.group(1), page.text
    q = quote(client, second, "１２０．５０")  # full-width, as a Chinese input method types it
    assert q.status_code == 200, refusal_text(q.text)
    card = re.search(r'data-testid="quote-card">([^<]*)<', q.text)
    assert card and "4444" in card.group(1)
    change = re.search(r'href="(/wallet/withdraw\?[^"]+)" data-testid="withdraw-change"', q.text)
    assert change
    again = client.get(html.unescape(change.group(1)))
    assert 'value="120.50"' in again.text
    assert re.search(rf'value="{second}" checked', again.text)
    gone = quote(client, "card_nonexistent", "10.00")
    assert gone.status_code == 409 and refusal_code(gone.text) == "card_gone"


# ------------------------------------------------------------------ 3. payment password tries
def test_a_blank_payment_password_is_no_try(w: WalletEnv) -> None:
    alice = w.user("alice@example.com", fund=100_000)
    client = browser(w, alice)
    card = bind(client)
    max_tries = w.platform.settings.login_max_attempts
    for _ in range(max_tries + 1):
        r = save_prefs(client, "", daily_cap="30.00")
        assert r.status_code == 402 and refusal_code(r.text) == "payment_password_invalid"
        assert refusal_text(r.text) == "Enter your 6-digit payment password."
        wd = withdraw(client, card, "10.00", password="")
        assert wd.status_code == 402 and refusal_text(wd.text) == "Enter your 6-digit payment password."
        prefs = w.client.put("/v1/wallet/preferences", headers=alice.auth,
                             json={"daily_cap": 3_000, "password_free_cap": 0, "payment_password": ""})
        assert prefs.status_code == 402 and prefs.json()["error"]["code"] == "payment_password_invalid"
    api = w.client.post("/v1/withdrawals", headers=alice.auth,
                        json={"card": card, "amount": 1_000, "payment_password": ""})
    assert api.status_code == 402 and api.json()["error"]["code"] == "payment_password_invalid"
    assert payment_failures(w, alice) == 0
    saved = save_prefs(client, PAY_PW, daily_cap="30.00")
    assert "Your wallet settings are saved." in saved.text  # not locked


def test_wrong_payment_passwords_say_the_tries_left_and_the_lock_says_until_when(w: WalletEnv) -> None:
    alice = w.user("alice@example.com", fund=100_000)
    client = browser(w, alice)
    max_tries = w.platform.settings.login_max_attempts
    for left in range(max_tries - 1, 0, -1):
        r = save_prefs(client, "000000", daily_cap="30.00")
        assert r.status_code == 402 and refusal_code(r.text) == "payment_password_invalid"
        assert f"Tries left before payments are locked: {left}." in refusal_text(r.text)
    locked = save_prefs(client, "000000", daily_cap="30.00")
    assert locked.status_code == 423 and refusal_code(locked.text) == "account_locked"
    text = refusal_text(locked.text)
    assert "locked until" in text and "for a while" not in text, text
    assert str(w.clock.now().year) in text
    # The transfer page says the same while the lock lasts.
    w.user("bob@example.com")
    t = send(client, "bob@example.com", "10.00")
    assert t.status_code == 423 and "locked until" in refusal_text(t.text)
    assert transfer_count(w) == 0


# ------------------------------------------------------------------ 4. password-free cap
def test_over_the_password_free_cap_without_a_password_says_so_and_the_hint_names_the_cap(w: WalletEnv) -> None:
    alice = w.user("alice@example.com", fund=100_000)
    w.user("bob@example.com")
    client = browser(w, alice)
    assert 'data-testid="password-free-hint"' not in client.get("/wallet/transfer").text  # the cap is off
    off = send(client, "bob@example.com", "5.00", payment_password="")
    assert off.status_code == 402 and refusal_text(off.text) == "Enter your 6-digit payment password."
    assert "Your wallet settings are saved." in save_prefs(client, PAY_PW, password_free_cap="50.00").text
    hint = re.search(r'data-testid="password-free-hint">([^<]*)<', client.get("/wallet/transfer").text)
    assert hint and "50.00" in hint.group(1)
    r = send(client, "bob@example.com", "60.00", payment_password="")
    assert r.status_code == 402 and refusal_code(r.text) == "payment_password_invalid"
    text = refusal_text(r.text)
    assert "password-free cap" in text and "50.00" in text and "wrong" not in text, text
    assert transfer_count(w) == 0
    assert send(client, "bob@example.com", "50.00", payment_password="").status_code == 303


# ------------------------------------------------------------------ 2. top-up with a new card
def test_a_failed_new_card_top_up_keeps_the_new_card_chosen_and_charges_no_saved_card(w: WalletEnv) -> None:
    alice = w.user("alice@example.com")
    client = browser(w, alice)
    saved = bind(client)
    r = client.post("/wallet/topup", data={**form_of(client, "/wallet/topup"), "card": saved,
                                           "card_number": INVALID_NUMBER, "holder_name": "Alice Li",
                                           "amount": "100.00", "currency": "CNY"})
    assert r.status_code == 400 and refusal_code(r.text) == "invalid_card_number"
    assert re.search(r'<details class="bind-card" data-testid="new-card" open>', r.text)
    assert " checked" not in r.text  # no saved card picked for the person
    assert INVALID_NUMBER not in r.text and 'value="100.00"' in r.text and "Alice Li" in r.text
    # Sending the page again as it is (no card chosen, number not typed again) charges nothing.
    again = client.post("/wallet/topup", data={"csrf_token": CSRF.findall(r.text)[0],
                                               "request_key": REQUEST_KEY.findall(r.text)[0],
                                               "card_number": "", "holder_name": "Alice Li",
                                               "amount": "100.00", "currency": "CNY"})
    assert again.status_code == 400 and refusal_code(again.text) == "choose_card"
    with w.platform.db.transaction(write=False) as conn:
        assert conn.execute(select(func.count()).select_from(store.topups)).scalar_one() == 0
    # The first visit still picks the saved card and keeps "Use a new card" closed.
    fresh = client.get("/wallet/topup").text
    assert f'value="{saved}" checked' in fresh and 'data-testid="new-card" open' not in fresh


# ------------------------------------------------------------------ 5. amounts
@pytest.mark.parametrize("typed", ["99999999999", "100000000.01"])
def test_an_amount_over_the_maximum_names_the_maximum(w: WalletEnv, typed: str) -> None:
    alice = w.user("alice@example.com")
    client = browser(w, alice)
    card = bind(client)
    r = client.post("/wallet/topup", data={**form_of(client, "/wallet/topup"), "card": card, "amount": typed,
                                           "currency": "CNY"})
    assert r.status_code == 400 and refusal_code(r.text) == "invalid_amount"
    assert "100,000,000.00" in refusal_text(r.text) and "such as 12.34" not in refusal_text(r.text)


def test_full_width_digits_are_read_as_digits(w: WalletEnv) -> None:
    alice = w.user("alice@example.com", fund=100_000)
    w.user("bob@example.com")
    r = send(browser(w, alice), "bob@example.com", "１００")
    assert r.status_code == 303, refusal_text(r.text)
    assert w.balance(alice) == {"available": 90_000, "held": 10_000, "pending_in": 0}


# ------------------------------------------------------------------ 6. unbind asks first
def test_unbinding_asks_first(w: WalletEnv) -> None:
    alice = w.user("alice@example.com")
    client = browser(w, alice)
    card = bind(client)
    home = client.get("/wallet").text
    assert 'data-testid="unbind-confirm"' in home and 'name="confirm" value="yes"' in home
    asked = client.post(f"/wallet/cards/{card}/unbind", data=form_of(client, "/wallet"))
    assert asked.status_code == 200 and 'data-testid="confirm-unbind"' in asked.text
    assert "•••• 1111" in asked.text
    assert f"/wallet/cards/{card}/unbind" in client.get("/wallet").text  # still bound
    done = client.post(f"/wallet/cards/{card}/unbind", data={**form_of(client, "/wallet"), "confirm": "yes"})
    assert done.status_code == 200 and "The card is unbound." in done.text
    assert 'data-testid="card"' not in done.text


# ------------------------------------------------------------------ 7. a top-up the bank has not answered
def test_a_pending_top_up_stays_on_the_wallet_home_and_its_page_stops_polling(w: WalletEnv) -> None:
    alice = w.user("alice@example.com")
    client = browser(w, alice)
    card = bind(client, NO_ANSWER)
    r = client.post("/wallet/topup", data={**form_of(client, "/wallet/topup"), "card": card, "amount": "88.00",
                                           "currency": "CNY"}, follow_redirects=False)
    assert r.status_code == 303
    url = r.headers["location"]
    topup_id = url.rsplit("/", 1)[1]
    page = client.get(url).text
    assert 'data-status="pending"' in page and 'data-testid="op-slow-note"' in page
    home = client.get("/wallet").text
    row = re.search(r'data-testid="waiting-topup".*?</li>', home, re.S)
    assert row and f'href="/wallet/topups/{topup_id}"' in row.group(0)
    assert "88.00" in row.group(0) and "0028" in row.group(0) and "Waiting for the bank" in row.group(0)
    assert client.get(url + "/status").status_code == 200  # still asking
    w.advance(3 * 60)
    stopped = client.get(url + "/status")
    # htmx: 286 stops the poll; the panel swapped in carries none and says it stopped.
    assert stopped.status_code == 286 and "HX-Reswap" not in stopped.headers
    assert 'hx-get' not in stopped.text and 'data-testid="op-stopped-checking"' in stopped.text
    assert "updates by itself" not in stopped.text
    reloaded = client.get(url).text  # the whole page, opened again later: no poll either
    assert 'hx-get' not in reloaded and 'data-testid="op-stopped-checking"' in reloaded
    assert f'href="/wallet/topups/{topup_id}"' in client.get("/wallet").text
