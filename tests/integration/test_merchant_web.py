"""Merchant dashboard pages over the app (cookie sessions, CSRF) on both engines: only
merchants see them, a new key's secret is on the creating response only, revoke works,
settlement settings refuse a card that is not the merchant's own, the nav shows the link."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.routing import iter_route_contexts
from fastapi.testclient import TestClient
from tests.integration.identity_support import Env, bearer, make_env

from trustpay.web.auth import SESSION_COOKIE
from trustpay.web.merchant_pages import SECTIONS

CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')
SECRET = re.compile(r'data-testid="new-secret">(sk_[a-z]+_[A-Za-z0-9]+)<')


@pytest.fixture
def env(db_url: str, tmp_path: Path) -> Iterator[Env]:
    yield from make_env(db_url, tmp_path, bank_sandbox_data_dir=str(tmp_path / "bank"))


def browser(env: Env, email: str, kind: str = "merchant") -> tuple[TestClient, str]:
    env.sign_up(email, kind=kind)
    token = env.token(email)
    client = TestClient(env.app)
    client.cookies.set(SESSION_COOKIE, token)
    return client, token


def csrf(client: TestClient, url: str) -> str:
    r = client.get(url)
    assert r.status_code == 200, r.text
    return str(CSRF.findall(r.text)[-1])


def test_overview_shows_the_fee_plan_in_words_and_the_nav_links_here(env: Env) -> None:
    client, _ = browser(env, "shop@example.com")
    r = client.get("/merchant")
    assert r.status_code == 200
    assert 'data-testid="merchant-link"' in r.text
    assert 'data-testid="fee-bank-rate">0.38%<' in r.text and 'data-testid="fee-margin">0.22%<' in r.text
    assert 'data-testid="fee-rate">0.6%<' in r.text
    # Tabs: the ones this module serves always; the others (webhooks, trades) once their page is mounted.
    tabs = r.text[r.text.index('data-testid="merchant-tabs"'):r.text.index("</nav>", r.text.index("merchant-tabs"))]
    assert '<a href="/merchant" aria-current="page">Overview</a>' in tabs
    mounted = {ctx.path for ctx in iter_route_contexts(env.app.routes)}
    for path, _label in SECTIONS:
        assert (f'href="{path}"' in tabs) is (path in mounted), path
    assert 'href="/merchant/api-keys"' in tabs and 'href="/merchant/settlement"' in tabs
    r = client.get("/merchant?lang=zh-Hans")
    assert "商家后台" in r.text and "银行费率" in r.text


def test_personal_users_get_404_and_no_nav_link_and_strangers_go_to_login(env: Env) -> None:
    client, _ = browser(env, "alice@example.com", kind="personal")
    for url in ("/merchant", "/merchant/api-keys", "/merchant/settlement"):
        assert client.get(url).status_code == 404
    assert 'data-testid="merchant-link"' not in client.get("/wallet").text
    r = TestClient(env.app).get("/merchant", follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"].startswith("/login")


def test_a_key_made_on_the_page_is_shown_once_works_and_can_be_revoked(env: Env) -> None:
    client, _ = browser(env, "shop@example.com")
    r = client.post("/merchant/api-keys", data={"csrf_token": csrf(client, "/merchant/api-keys"),
                                                "label": "web shop"})
    assert r.status_code == 201 and r.headers["cache-control"] == "no-store"
    (secret,) = SECRET.findall(r.text)
    assert env.client.get("/v1/merchant/profile", headers=bearer(secret)).status_code == 200
    again = client.get("/merchant/api-keys")
    assert secret not in again.text and secret[:12] in again.text and "web shop" in again.text
    (key_id,) = re.findall(r'data-key-id="(key_[0-9a-z]+)" data-status="active"', again.text)
    # Without the CSRF token: refused, key untouched.
    assert client.post(f"/merchant/api-keys/{key_id}/revoke", data={}).status_code == 403
    r = client.post(f"/merchant/api-keys/{key_id}/revoke", data={"csrf_token": csrf(client, "/merchant/api-keys")},
                    follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"] == "/merchant/api-keys?notice=revoked"
    assert env.client.get("/v1/merchant/profile", headers=bearer(secret)).status_code == 401
    assert f'data-key-id="{key_id}" data-status="revoked"' in client.get("/merchant/api-keys").text


def test_another_merchants_key_cannot_be_revoked_from_the_page(env: Env) -> None:
    mine, _ = browser(env, "one@example.com")
    _, theirs = browser(env, "two@example.com")
    key = env.client.post("/v1/merchant/api-keys", headers=bearer(theirs)).json()
    r = mine.post(f"/merchant/api-keys/{key['id']}/revoke", data={"csrf_token": csrf(mine, "/merchant/api-keys")})
    assert r.status_code == 404
    assert env.client.get("/v1/merchant/profile", headers=bearer(key["secret"])).status_code == 200


def test_settlement_settings_save_and_refuse_bad_input(env: Env) -> None:
    client, token = browser(env, "shop@example.com")
    card = env.client.post("/v1/bank-cards", json={"bank": "sandbox", "card_number": "4111111111111111",
                                                   "holder_name": "Li"}, headers=bearer(token)).json()["id"]
    r = client.post("/merchant/settlement", data={"csrf_token": csrf(client, "/merchant/settlement"),
                                                  "display_name": "Tea", "card": card, "delay": "3"},
                    follow_redirects=False)
    assert r.status_code == 303
    prof = env.client.get("/v1/merchant/profile", headers=bearer(token)).json()
    assert (prof["display_name"], prof["settlement_card_id"], prof["settlement_delay_days"]) == ("Tea", card, 3)
    for bad in ({"delay": "abc"}, {"delay": "31"}, {"card": "card_doesnotexist"}, {"display_name": " "}):
        body = {"csrf_token": csrf(client, "/merchant/settlement"), "display_name": "Tea", "card": card,
                "delay": "3", **bad}
        r = client.post("/merchant/settlement", data=body)
        assert r.status_code in {400, 404, 409} and 'data-testid="alert-error"' in r.text, bad
    after = env.client.get("/v1/merchant/profile", headers=bearer(token)).json()
    assert after == prof
