"""Wallet pages over the app (cookie sessions, CSRF), on SQLite and PostgreSQL: every
refusal says what to do next and moves nothing; the forms move money once; undo is
judged by the server; a card number is never echoed back."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select
from tests.integration.wallet_support import PAY_PW, Wallet, WalletEnv, make_wallet_env

from trustpay.wallet import store
from trustpay.web.auth import SESSION_COOKIE

CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')
REQUEST_KEY = re.compile(r'name="request_key" value="([^"]+)"')
GOOD_CARD = "4111 1111 1111 1111"
BAD_LUHN = "4111111111111112"


@pytest.fixture
def w(db_url: str, tmp_path: Path) -> Iterator[WalletEnv]:
    yield from make_wallet_env(db_url, tmp_path)


def browser(w: WalletEnv, who: Wallet) -> TestClient:
    client = TestClient(w.env.app)
    client.cookies.set(SESSION_COOKIE, who.token)
    return client


def form_of(client: TestClient, url: str) -> dict[str, str]:
    """The hidden fields a page's form carries (CSRF token, one-time request key)."""
    r = client.get(url)
    assert r.status_code == 200, r.text
    fields = {"csrf_token": CSRF.findall(r.text)[0]}
    keys = REQUEST_KEY.findall(r.text)
    if keys:
        fields["request_key"] = keys[0]
    return fields


def refusal_code(html: str) -> str | None:
    m = re.search(r'data-testid="refusal" data-code="([^"]+)"', html)
    return m.group(1) if m else None


def transfer_count(w: WalletEnv) -> int:
    with w.platform.db.transaction(write=False) as conn:
        return int(conn.execute(select(func.count()).select_from(store.transfers)).scalar_one())


def send(client: TestClient, to: str, amount: str, **extra: str) -> httpx.Response:
    body = {**form_of(client, "/wallet/transfer"), "to": to, "amount": amount, "payment_password": PAY_PW, **extra}
    r: httpx.Response = client.post("/wallet/transfer", data=body, follow_redirects=False)
    return r


def test_wallet_home_shows_balances_actions_and_is_for_signed_in_people(w: WalletEnv) -> None:
    alice = w.user("alice@example.com", fund=12_345)
    page = browser(w, alice).get("/wallet")
    assert page.status_code == 200
    assert 'data-testid="available-CNY"' in page.text and "123.45" in page.text
    for href in ("/wallet/topup", "/wallet/withdraw", "/wallet/transfer", "/wallet/statement"):
        assert f'href="{href}"' in page.text
    assert 'href="/wallet" data-testid="wallet-link"' in page.text  # the header links it when signed in
    anon = TestClient(w.env.app)
    for url in ("/wallet", "/wallet/topup", "/wallet/withdraw", "/wallet/transfer", "/wallet/preferences"):
        r = anon.get(url, follow_redirects=False)
        assert r.status_code == 303 and r.headers["location"].startswith("/login"), url


def test_insufficient_funds_shows_the_top_up_link_and_moves_nothing(w: WalletEnv) -> None:
    alice = w.user("alice@example.com", fund=1_000)
    w.user("bob@example.com")
    client = browser(w, alice)
    r = send(client, "bob@example.com", "500.00")
    assert r.status_code == 402
    html = r.text
    assert refusal_code(html) == "insufficient_funds"
    assert 'href="/wallet/topup" data-testid="refusal-link"' in html
    assert transfer_count(w) == 0
    assert w.balance(alice) == {"available": 1_000, "held": 0, "pending_in": 0}


def test_form_without_csrf_token_is_refused(w: WalletEnv) -> None:
    alice = w.user("alice@example.com", fund=10_000)
    w.user("bob@example.com")
    client = browser(w, alice)
    r = client.post("/wallet/transfer", data={"to": "bob@example.com", "amount": "10.00",
                                              "payment_password": PAY_PW}, follow_redirects=False)
    assert r.status_code == 403
    card = client.post("/wallet/cards", data={"card_number": GOOD_CARD, "holder_name": "Alice"})
    assert card.status_code == 403
    assert transfer_count(w) == 0 and w.balance(alice)["available"] == 10_000
    assert 'data-testid="card"' not in client.get("/wallet").text


def test_wrong_payment_password_and_unknown_recipient_say_what_to_do(w: WalletEnv) -> None:
    alice = w.user("alice@example.com", fund=10_000)
    w.user("bob@example.com")
    client = browser(w, alice)
    r = send(client, "bob@example.com", "10.00", payment_password="000000")
    assert r.status_code == 402 and refusal_code(r.text) == "payment_password_invalid"
    assert 'href="/security#payment-password"' in r.text
    r = send(client, "nobody@example.com", "10.00")
    assert r.status_code == 404 and refusal_code(r.text) == "not_found"
    r = send(client, "alice@example.com", "10.00")
    assert r.status_code == 400 and refusal_code(r.text) == "transfer_to_self"
    r = send(client, "bob@example.com", "12.345")
    assert r.status_code == 400 and refusal_code(r.text) == "invalid_amount"
    assert transfer_count(w) == 0 and w.balance(alice)["available"] == 10_000


def test_unverified_email_links_to_verification(w: WalletEnv) -> None:
    alice = w.user("alice@example.com", fund=10_000, verify_email=False)
    w.user("bob@example.com")
    r = send(browser(w, alice), "bob@example.com", "10.00")
    assert refusal_code(r.text) == "email_unverified"
    assert 'href="/verify" data-testid="refusal-link"' in r.text
    assert transfer_count(w) == 0


def test_transfer_undo_within_the_window_and_too_late_after_it(w: WalletEnv) -> None:
    alice = w.user("alice@example.com", fund=10_000)
    bob = w.user("bob@example.com")
    client = browser(w, alice)
    r = send(client, "bob@example.com", "12.34", memo="noodles")
    assert r.status_code == 303, r.text
    result_url = r.headers["location"]
    page = client.get(result_url)
    assert 'data-testid="undo"' in page.text and "data-undo-left=\"10\"" in page.text
    assert w.balance(alice) == {"available": 8_766, "held": 1_234, "pending_in": 0}
    w.advance(5)
    undone = client.post(result_url + "/undo", data=form_of(client, result_url))
    assert undone.status_code == 200 and 'data-status="reversed"' in undone.text
    assert "The transfer was reversed" in undone.text
    assert w.balance(alice) == {"available": 10_000, "held": 0, "pending_in": 0}
    assert w.balance(bob)["pending_in"] == 0

    r = send(client, bob.id, "12.34")
    second = r.headers["location"]
    token = form_of(client, second)
    w.advance(11)  # the window closes; the job posts the money to Bob
    late = client.post(second + "/undo", data=token)
    assert late.status_code == 409 and refusal_code(late.text) == "too_late"
    assert 'data-testid="undo"' not in late.text
    assert w.balance(bob)["available"] == 1_234
    assert w.balance(alice)["available"] == 10_000 - 1_234
    w.ledger_ok()


def test_a_resent_transfer_form_moves_money_once(w: WalletEnv) -> None:
    alice = w.user("alice@example.com", fund=10_000)
    w.user("bob@example.com")
    client = browser(w, alice)
    body = {**form_of(client, "/wallet/transfer"), "to": "bob@example.com", "amount": "20.00",
            "payment_password": PAY_PW}
    first = client.post("/wallet/transfer", data=body, follow_redirects=False)
    again = client.post("/wallet/transfer", data=body, follow_redirects=False)
    assert first.status_code == again.status_code == 303
    assert first.headers["location"] == again.headers["location"]
    assert transfer_count(w) == 1 and w.balance(alice)["available"] == 8_000


def test_acceptance_accept_and_decline_from_the_wallet_home(w: WalletEnv) -> None:
    alice = w.user("alice@example.com", fund=10_000)
    bob = w.user("bob@example.com")
    client = browser(w, alice)
    for amount in ("10.00", "20.00"):
        assert send(client, "bob@example.com", amount, require_acceptance="1").status_code == 303
    bobs = browser(w, bob)
    home = bobs.get("/wallet")
    ids = re.findall(r'action="/wallet/transfers/(tr_[^/"]+)/accept"', home.text)
    assert len(set(ids)) == 2 and 'data-testid="incoming"' in home.text
    token = {"csrf_token": CSRF.findall(home.text)[0]}
    ten = next(i for i in ids if "10.00" in bobs.get(f"/wallet/transfers/{i}").text)
    twenty = next(i for i in ids if i != ten)
    assert "You accepted" in bobs.post(f"/wallet/transfers/{ten}/accept", data=token).text
    assert "You declined" in bobs.post(f"/wallet/transfers/{twenty}/decline", data=token).text
    again = bobs.post(f"/wallet/transfers/{twenty}/accept", data=token)
    assert again.status_code == 409 and refusal_code(again.text) == "already_answered"
    assert w.balance(bob)["available"] == 1_000
    assert w.balance(alice)["available"] == 9_000
    # Alice cannot answer for Bob.
    assert client.post(f"/wallet/transfers/{twenty}/accept", data=form_of(client, "/wallet")).status_code == 404


def test_own_daily_cap_links_to_the_settings_and_needs_the_payment_password(w: WalletEnv) -> None:
    alice = w.user("alice@example.com", fund=10_000)
    w.user("bob@example.com")
    client = browser(w, alice)
    wrong = client.post("/wallet/preferences", data={**form_of(client, "/wallet/preferences"),
                                                     "daily_cap": "30.00", "payment_password": "111111"})
    assert wrong.status_code == 402 and refusal_code(wrong.text) == "payment_password_invalid"
    saved = client.post("/wallet/preferences", data={**form_of(client, "/wallet/preferences"),
                                                     "daily_cap": "30.00", "payment_password": PAY_PW})
    assert saved.status_code == 200 and "Your wallet settings are saved." in saved.text
    assert 'value="30.00"' in saved.text
    r = send(client, "bob@example.com", "40.00")
    assert r.status_code == 402 and refusal_code(r.text) == "limit_exceeded"
    assert 'href="/wallet/preferences" data-testid="refusal-link"' in r.text
    assert transfer_count(w) == 0


def test_card_number_is_never_echoed_and_withdrawal_shows_the_fee_first(w: WalletEnv) -> None:
    alice = w.user("alice@example.com", fund=100_000)
    client = browser(w, alice)
    bad = client.post("/wallet/cards", data={**form_of(client, "/wallet"), "card_number": BAD_LUHN,
                                             "holder_name": "Alice Li"})
    assert bad.status_code == 400 and refusal_code(bad.text) == "invalid_card_number"
    assert BAD_LUHN not in bad.text and "Alice Li" in bad.text
    good = client.post("/wallet/cards", data={**form_of(client, "/wallet"), "card_number": GOOD_CARD,
                                              "holder_name": "Alice Li"})
    assert good.status_code == 200 and "•••• 1111" in good.text
    # The masked holder name says what it is (it stood alone, as a bare "A*******").
    assert re.search(r'data-testid="card-holder">Holder A\*+<', client.get("/wallet", params={"lang": "en"}).text)
    assert "4111 1111 1111 1111" not in good.text and "4111111111111111" not in good.text
    card = re.findall(r'action="/wallet/cards/(card_[^/"]+)/unbind"', good.text)[0]

    quote = client.post("/wallet/withdraw/quote", data={**form_of(client, "/wallet/withdraw"), "card": card,
                                                        "amount": "100.00", "currency": "CNY"})
    assert quote.status_code == 200 and 'data-testid="quote-fee"' in quote.text
    fee = w.client.get("/v1/withdrawals/quote?amount=10000", headers=alice.auth).json()["fee"]
    assert w.balance(alice)["available"] == 100_000  # nothing moved at the confirm step
    confirm = {"csrf_token": CSRF.findall(quote.text)[0], "request_key": REQUEST_KEY.findall(quote.text)[0],
               "card": card, "amount": "100.00", "currency": "CNY"}
    wrong = client.post("/wallet/withdraw", data={**confirm, "payment_password": "000000"})
    assert wrong.status_code == 402 and refusal_code(wrong.text) == "payment_password_invalid"
    assert w.balance(alice)["available"] == 100_000
    done = client.post("/wallet/withdraw", data={**confirm, "payment_password": PAY_PW}, follow_redirects=False)
    assert done.status_code == 303 and done.headers["location"].startswith("/wallet/withdrawals/wd_")
    page = client.get(done.headers["location"])
    assert page.status_code == 200 and 'data-testid="op-fee"' in page.text
    assert w.balance(alice)["available"] == 100_000 - 10_000 - fee
    # Someone else's withdrawal page is not found.
    bob = w.user("bob@example.com")
    assert browser(w, bob).get(done.headers["location"], headers={"accept": "text/html"}).status_code == 404


def test_top_up_with_an_inline_card_goes_pending_then_polls(w: WalletEnv) -> None:
    alice = w.user("alice@example.com")
    client = browser(w, alice)
    declined_amount = client.post("/wallet/topup", data={**form_of(client, "/wallet/topup"),
                                                         "card_number": GOOD_CARD, "holder_name": "Alice",
                                                         "amount": "abc", "currency": "CNY"})
    assert declined_amount.status_code == 400 and refusal_code(declined_amount.text) == "invalid_amount"
    assert "4111" not in declined_amount.text  # not put back into the re-rendered form
    r = client.post("/wallet/topup", data={**form_of(client, "/wallet/topup"), "card_number": GOOD_CARD,
                                           "holder_name": "Alice", "amount": "500.00", "currency": "CNY"},
                    follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"].startswith("/wallet/topups/top_")
    page = client.get(r.headers["location"])
    assert page.status_code == 200 and 'data-testid="op-status"' in page.text
    status = client.get(r.headers["location"] + "/status")
    assert status.status_code == 200 and "<html" not in status.text
    assert ('hx-trigger="every 1s"' in status.text) == ('data-status="pending"' in status.text)


def test_password_free_cap_lets_small_transfers_through_without_the_password(w: WalletEnv) -> None:
    alice = w.user("alice@example.com", fund=10_000)
    w.user("bob@example.com")
    client = browser(w, alice)
    r = send(client, "bob@example.com", "5.00", payment_password="")
    assert r.status_code == 402 and refusal_code(r.text) == "payment_password_invalid"
    saved = client.post("/wallet/preferences", data={**form_of(client, "/wallet/preferences"), "daily_cap": "",
                                                     "password_free_cap": "10.00", "payment_password": PAY_PW})
    assert "Your wallet settings are saved." in saved.text
    assert send(client, "bob@example.com", "5.00", payment_password="").status_code == 303
    r = send(client, "bob@example.com", "10.01", payment_password="")
    assert r.status_code == 402 and refusal_code(r.text) == "payment_password_invalid"
    off = client.post("/wallet/preferences", data={**form_of(client, "/wallet/preferences"), "daily_cap": "",
                                                   "password_free_cap": "0.00", "payment_password": PAY_PW})
    assert "Your wallet settings are saved." in off.text
    assert send(client, "bob@example.com", "5.00", payment_password="").status_code == 402
    assert transfer_count(w) == 1


def test_unbinding_a_card_removes_it_and_a_second_unbind_says_so(w: WalletEnv) -> None:
    alice = w.user("alice@example.com")
    client = browser(w, alice)
    bound = client.post("/wallet/cards", data={**form_of(client, "/wallet"), "card_number": GOOD_CARD,
                                               "holder_name": "Alice"})
    card = re.findall(r'action="/wallet/cards/(card_[^/"]+)/unbind"', bound.text)[0]
    token = {**form_of(client, "/wallet"), "confirm": "yes"}  # the card row's "Yes, unbind"
    gone = client.post(f"/wallet/cards/{card}/unbind", data=token)
    assert gone.status_code == 200 and "The card is unbound." in gone.text and 'data-testid="card"' not in gone.text
    again = client.post(f"/wallet/cards/{card}/unbind", data=token)
    assert again.status_code == 409 and refusal_code(again.text) == "card_gone"
    # Someone else's card is not found, and stays bound.
    bob = w.user("bob@example.com")
    bobs = browser(w, bob)
    theirs = bobs.post("/wallet/cards", data={**form_of(bobs, "/wallet"), "card_number": GOOD_CARD,
                                              "holder_name": "Bob"})
    bob_card = re.findall(r'action="/wallet/cards/(card_[^/"]+)/unbind"', theirs.text)[0]
    foreign = client.post(f"/wallet/cards/{bob_card}/unbind", data=token)
    assert foreign.status_code == 404 and refusal_code(foreign.text) == "card_gone"
    topup = client.post("/wallet/topup", data={**form_of(client, "/wallet/topup"), "card": bob_card,
                                               "amount": "10.00", "currency": "CNY"})
    assert topup.status_code == 404 and refusal_code(topup.text) == "card_gone"
    with w.platform.db.transaction(write=False) as conn:
        assert conn.execute(select(func.count()).select_from(store.topups)).scalar_one() == 0
    assert f"/wallet/cards/{bob_card}/unbind" in bobs.get("/wallet").text
