"""Web sessions and CSRF on the account pages, through TestClient, on both engines."""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from fastapi.testclient import TestClient
from tests.integration.identity_support import PASSWORD, Env, bearer, make_env

from trustpay.web.auth import NONCE_COOKIE, SESSION_COOKIE, csrf_token, csrf_valid

EMAIL = "web@example.com"


@pytest.fixture
def env(db_url: str, tmp_path: Path) -> Iterator[Env]:
    yield from make_env(db_url, tmp_path)


def token_in(html: str) -> str:
    found = re.search(r'name="csrf_token" value="([^"]+)"', html)
    assert found, "no CSRF field in the page"
    return found.group(1)


def set_cookie(r: httpx.Response, name: str) -> str:
    headers = [h for h in r.headers.get_list("set-cookie") if h.startswith(f"{name}=")]
    assert headers, f"no {name} cookie set"
    return headers[-1]


def sign_up(client: TestClient, email: str = EMAIL, password: str = PASSWORD) -> httpx.Response:
    page = client.get("/signup")
    r: httpx.Response = client.post("/signup", data={
        "csrf_token": token_in(page.text), "kind": "personal", "name": "Wen", "email": email,
        "password": password, "phone": ""}, follow_redirects=False)
    return r


def test_csrf_token_is_bound_to_its_binding() -> None:
    t = csrf_token("k", "nonce-1")
    assert csrf_valid("k", "nonce-1", t)
    assert not csrf_valid("k", "nonce-2", t)
    assert not csrf_valid("other-key", "nonce-1", t)
    assert not csrf_valid("k", "nonce-1", None) and not csrf_valid("k", None, t)
    assert not csrf_valid("k", "nonce-1", "")


def test_form_page_sets_a_pre_session_nonce_cookie(env: Env) -> None:
    r = env.client.get("/login")
    cookie = set_cookie(r, NONCE_COOKIE).lower()
    assert "httponly" in cookie and "samesite=lax" in cookie and "secure" not in cookie
    assert csrf_valid(env.platform.settings.secret_key, r.cookies[NONCE_COOKIE], token_in(r.text))


def test_post_without_or_with_a_wrong_token_is_refused(env: Env) -> None:
    env.client.get("/login")
    for data in ({}, {"csrf_token": "0" * 64}):
        r = env.client.post("/login", data={**data, "email": EMAIL, "password": PASSWORD})
        assert r.status_code == 403
        assert "This form has expired" in r.text and SESSION_COOKIE not in r.cookies


def test_sign_up_sets_the_api_session_token_as_a_strict_cookie(env: Env) -> None:
    r = sign_up(env.client)
    assert r.status_code == 303 and r.headers["location"] == "/verify"
    cookie = set_cookie(r, SESSION_COOKIE).lower()
    assert "httponly" in cookie and "samesite=lax" in cookie and "path=/" in cookie
    assert "secure" not in cookie
    token = r.cookies[SESSION_COOKIE]
    assert env.me(token).json()["email"] == EMAIL  # the same opaque token the API issues


def test_cookie_is_secure_over_https(env: Env) -> None:
    client = TestClient(env.app, base_url="https://testserver")
    r = sign_up(client)
    assert r.status_code == 303
    assert "; secure" in set_cookie(r, SESSION_COOKIE).lower()


def test_logged_in_form_token_is_bound_to_the_session(env: Env) -> None:
    pre_session = token_in(env.client.get("/login").text)
    sign_up(env.client)
    r = env.client.post("/logout", data={"csrf_token": pre_session}, follow_redirects=False)
    assert r.status_code == 403


def test_logout_revokes_the_token_at_once(env: Env) -> None:
    token = sign_up(env.client).cookies[SESSION_COOKIE]
    page = env.client.get("/verify")
    r = env.client.post("/logout", data={"csrf_token": token_in(page.text)}, follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"].startswith("/login")
    assert SESSION_COOKIE in set_cookie(r, SESSION_COOKIE) and "max-age=0" in set_cookie(r, SESSION_COOKIE).lower()
    assert env.me(token).status_code == 401


def test_idle_session_ends_after_15_minutes(env: Env) -> None:
    sign_up(env.client)
    assert env.client.get("/verify").status_code == 200
    env.advance(minutes=15)
    r = env.client.get("/security", follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"] == "/login?notice=expired&next=%2Fsecurity"


def test_each_login_gets_a_new_token(env: Env) -> None:
    first = sign_up(env.client).cookies[SESSION_COOKIE]
    other = TestClient(env.app)
    page = other.get("/login")
    r = other.post("/login", data={"csrf_token": token_in(page.text), "email": EMAIL,
                                   "password": PASSWORD}, follow_redirects=False)
    assert r.status_code == 303
    second = r.cookies[SESSION_COOKIE]
    assert second != first and env.me(first).status_code == env.me(second).status_code == 200


def test_wrong_password_gets_a_generic_message(env: Env) -> None:
    sign_up(env.client)
    other = TestClient(env.app)
    page = other.get("/login")
    for email in (EMAIL, "nobody@example.com"):
        r = other.post("/login", data={"csrf_token": token_in(page.text), "email": email,
                                       "password": "wrong 12345"})
        assert r.status_code == 401
        assert "The e-mail or the password is wrong" in r.text


def test_sign_up_errors_are_shown_by_field(env: Env) -> None:
    r = sign_up(env.client, password="short")
    assert r.status_code == 400 and 'data-testid="error-password"' in r.text
    r = sign_up(env.client, email="not-an-address")
    assert r.status_code == 400 and 'data-testid="error-email"' in r.text
    assert sign_up(env.client).status_code == 303
    r = sign_up(TestClient(env.app))
    assert r.status_code == 409 and "already exists" in r.text


def test_security_centre_needs_a_session(env: Env) -> None:
    r = env.client.get("/security", follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"] == "/login?notice=signin&next=%2Fsecurity"
    token = sign_up(env.client).cookies[SESSION_COOKIE]
    page = env.client.get("/security")
    assert page.status_code == 200 and EMAIL in page.text
    assert page.headers["cache-control"] == "no-store"
    assert env.client.get("/v1/users/me", headers=bearer(token)).status_code == 200


def test_login_asks_for_the_authenticator_code_when_mfa_is_on(env: Env) -> None:
    import pyotp
    token = sign_up(env.client).cookies[SESSION_COOKIE]
    r = env.client.post("/v1/users/me/mfa/totp", headers=bearer(token))
    assert r.status_code == 200, r.text
    secret = r.json()["secret"]
    totp = pyotp.TOTP(secret)
    earlier = totp.at(int(time.time()) - 30)
    v = env.client.post("/v1/users/me/mfa/totp/verify", json={"code": earlier}, headers=bearer(token))
    assert v.status_code == 200, v.text

    other = TestClient(env.app)
    page = other.get("/login")
    r = other.post("/login", data={"csrf_token": token_in(page.text), "email": EMAIL,
                                   "password": PASSWORD}, follow_redirects=False)
    assert r.status_code == 401 and 'name="totp_code"' in r.text
    assert PASSWORD not in r.text  # a ticket stands for the password
    ticket = re.search(r'name="ticket" value="([^"]+)"', r.text)
    assert ticket
    wrong = "000000" if totp.now() != "000000" else "111111"
    r = other.post("/login", data={"csrf_token": token_in(r.text), "ticket": ticket.group(1),
                                   "totp_code": wrong}, follow_redirects=False)
    assert r.status_code == 401 and "The code is wrong or too old" in r.text
    r = other.post("/login", data={"csrf_token": token_in(r.text), "ticket": ticket.group(1),
                                   "totp_code": totp.now()}, follow_redirects=False)
    assert r.status_code == 303 and SESSION_COOKIE in r.cookies
    r = other.post("/login", data={"csrf_token": token_in(page.text), "ticket": ticket.group(1),
                                   "totp_code": totp.now()}, follow_redirects=False)
    assert r.status_code == 401 and "This step has expired" in r.text  # a ticket works once


def test_two_step_verification_enrolment_shows_a_qr_and_recovery_codes(env: Env) -> None:
    import pyotp
    sign_up(env.client)
    page = env.client.get("/security")
    r = env.client.post("/security/mfa/start", data={"csrf_token": token_in(page.text)})
    assert r.status_code == 200 and 'src="data:image/svg+xml;base64,' in r.text
    secret = re.search(r'data-testid="mfa-secret">([A-Z2-7]+)<', r.text)
    assert secret
    r = env.client.post("/security/mfa/confirm", data={"csrf_token": token_in(r.text), "code": "000000"})
    assert r.status_code == 400 and "The code is wrong or too old" in r.text
    r = env.client.post("/security/mfa/confirm", data={"csrf_token": token_in(r.text),
                                                       "code": pyotp.TOTP(secret.group(1)).now()})
    assert r.status_code == 200 and 'data-testid="recovery-codes"' in r.text
    assert 'data-testid="mfa-status">On<' in env.client.get("/security").text


def test_freeze_revokes_other_sessions_and_an_emailed_code_unfreezes(env: Env) -> None:
    sign_up(env.client)
    other = env.token(EMAIL)
    page = env.client.get("/security")
    r = env.client.post("/security/freeze", data={"csrf_token": token_in(page.text), "password": "wrong 123"})
    assert r.status_code == 401 and "Your login password is wrong" in r.text
    r = env.client.post("/security/freeze", data={"csrf_token": token_in(r.text), "password": PASSWORD})
    assert r.status_code == 200 and 'data-testid="frozen-status"' in r.text
    assert env.me(other).status_code == 401  # the other device is signed out
    r = env.client.post("/security/unfreeze/code", data={"csrf_token": token_in(r.text)})
    assert r.status_code == 200 and "We e-mailed you a 6-digit code" in r.text
    r = env.client.post("/security/unfreeze", data={"csrf_token": token_in(r.text), "password": PASSWORD,
                                                    "code": env.last_code(EMAIL)})
    assert r.status_code == 200 and "Your account is unfrozen" in r.text
    assert 'data-testid="frozen-status"' not in r.text


def test_forgot_password_resets_with_an_emailed_code(env: Env) -> None:
    old = sign_up(env.client).cookies[SESSION_COOKIE]
    anon = TestClient(env.app)
    page = anon.get("/forgot-password")
    r = anon.post("/forgot-password", data={"csrf_token": token_in(page.text), "email": EMAIL})
    assert r.status_code == 200 and "If an account uses this address" in r.text
    r2 = anon.post("/forgot-password", data={"csrf_token": token_in(page.text), "email": "no@example.com"})
    assert r2.status_code == 200 and "If an account uses this address" in r2.text  # says nothing
    r = anon.post("/forgot-password/reset", data={"csrf_token": token_in(r.text), "email": EMAIL,
                                                  "code": env.last_code(EMAIL), "new_password": "short"})
    assert r.status_code == 400 and "letters and digits" in r.text
    r = anon.post("/forgot-password/reset", data={"csrf_token": token_in(r.text), "email": EMAIL,
                                                  "code": env.last_code(EMAIL), "new_password": "new secret 99"},
                  follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"] == "/login?notice=reset_done"
    assert env.me(old).status_code == 401
    assert env.login(EMAIL, "new secret 99").status_code == 201
