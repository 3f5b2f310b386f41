"""A form's address opened as a page, on SQLite and PostgreSQL. The language switch
on a page that answered a form (a POST showing what to correct) leads back to the
page the form was on, in the chosen language — not a GET of the POST-only address,
which answered a JSON 405. A browser opening such an address (a bookmark, reload)
goes to the page the form belongs to; API clients still get the JSON error."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from tests.integration.test_wallet_web import browser, form_of
from tests.integration.wallet_support import WalletEnv, make_wallet_env

HTML = {"accept": "text/html,application/xhtml+xml,*/*;q=0.8"}


@pytest.fixture
def w(db_url: str, tmp_path: Path) -> Iterator[WalletEnv]:
    yield from make_wallet_env(db_url, tmp_path)


def switch_links(page: str) -> dict[str, str]:
    nav = page.split('class="lang-switch"', 1)[1].split("</nav>", 1)[0]
    found = re.findall(r'href="([^"]+)"[^>]*data-lang="([^"]+)"', nav)
    return {lang: href.replace("&amp;", "&") for href, lang in found}


def test_the_language_switch_after_a_form_error_opens_the_forms_page(w: WalletEnv) -> None:
    alice = w.user("alice@example.com", fund=10_000)
    client = browser(w, alice)
    form = form_of(client, "/wallet/withdraw?currency=CNY")
    answered = client.post("/wallet/withdraw/quote", data={**form, "amount": "abc", "currency": "CNY"},
                           headers={**HTML, "referer": "http://testserver/wallet/withdraw?currency=CNY"})
    assert answered.status_code == 400, answered.text
    links = switch_links(answered.text)
    assert links["zh-Hans"] == "/wallet/withdraw?currency=CNY&lang=zh-Hans", links
    opened = client.get(links["zh-Hans"], headers=HTML)
    assert opened.status_code == 200 and opened.headers["content-language"] == "zh-Hans"

    # No Referer (or another site's): the page the form's address belongs to.
    for referer in ({}, {"referer": "https://elsewhere.example/wallet/withdraw"}):
        answered = client.post("/wallet/withdraw/quote", data={**form, "amount": "abc", "currency": "CNY"},
                               headers={**HTML, **referer})
        assert switch_links(answered.text)["en"] == "/wallet/withdraw?lang=en"

    # On a page opened with GET the switch keeps the page and its query, as before.
    page = client.get("/wallet/statement?currency=CNY", headers=HTML)
    assert switch_links(page.text)["zh-Hant"] == "/wallet/statement?currency=CNY&lang=zh-Hant"


def test_a_browser_opening_a_forms_address_goes_to_its_page_api_clients_get_json(w: WalletEnv) -> None:
    alice = w.user("alice@example.com", fund=10_000)
    client = browser(w, alice)
    r = client.get("/wallet/withdraw/quote?lang=zh-Hans", headers=HTML, follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"] == "/wallet/withdraw?lang=zh-Hans"
    assert client.get("/checkout/trd_x/pay", headers=HTML, follow_redirects=False).headers["location"] == \
        "/checkout/trd_x"
    assert client.get("/logout", headers=HTML, follow_redirects=False).headers["location"] == "/"
    api = client.get("/wallet/withdraw/quote", headers={"accept": "application/json"})
    assert api.status_code == 405 and api.json()["error"]["code"] == "method_not_allowed"
    assert client.get("/v1/transfers/tr_x/undo", headers=HTML).status_code == 405  # /v1 stays JSON


def test_a_missing_page_leads_a_signed_in_person_back_to_their_wallet(w: WalletEnv) -> None:
    alice = w.user("alice@example.com")
    missing = browser(w, alice).get("/wallet/transfers/tr_nosuch", headers=HTML, params={"lang": "en"})
    assert missing.status_code == 404
    assert re.search(r'href="/wallet" data-testid="back-home">Back to your wallet<', missing.text)
    assert 'href="/docs"' not in missing.text.split('class="actions"', 1)[1].split("</div>", 1)[0]
    stranger = w.client.get("/no/such/page", headers=HTML, params={"lang": "en"})
    assert stranger.status_code == 404
    assert re.search(r'href="/" data-testid="back-home">Back to the home page<', stranger.text)
