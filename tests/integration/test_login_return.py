"""Signed out at a signed-in page: the log-in page says why (an ended session, or just
"please log in") and sends the person back to the page they asked for, on both engines."""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest
from fastapi.testclient import TestClient
from tests.integration.identity_support import PASSWORD, Env, bearer, make_env

from trustpay.identity import service as identity
from trustpay.web.auth import SESSION_COOKIE

EMAIL = "back@example.com"
DEEP = "/wallet/statement?type=transfer"
ENDED = "Your session has ended"
PLEASE = "Please log in to continue."


@pytest.fixture
def env(db_url: str, tmp_path: Path) -> Iterator[Env]:
    yield from make_env(db_url, tmp_path)


def verified(env: Env, email: str = EMAIL, **extra: str) -> str:
    """A user with a verified e-mail address (``extra``: more sign-up fields, a ``kind``);
    returns an API token of theirs."""
    env.sign_up(email, **extra)
    token = env.token(email)
    r = env.client.post("/v1/users/me/verifications/confirm", headers=bearer(token),
                        json={"channel": "email", "code": env.last_code(email)})
    assert r.status_code == 204, r.text
    return token


def field(html: str, name: str) -> str:
    found = re.search(rf'name="{name}" value="([^"]*)"', html)
    assert found, f"no {name} field in the page"
    return found.group(1)


def next_of(location: str) -> str | None:
    return parse_qs(urlsplit(location).query).get("next", [None])[0]


def log_in_at(client: TestClient, login_url: str, email: str = EMAIL, **extra: str) -> str:
    """Fills in the log-in page at ``login_url`` as a browser would; returns where it redirects."""
    page = client.get(login_url)
    assert page.status_code == 200
    r = client.post("/login", data={"csrf_token": field(page.text, "csrf_token"), "next": field(page.text, "next"),
                                    "email": email, "password": PASSWORD, **extra}, follow_redirects=False)
    assert r.status_code == 303, r.text
    return str(r.headers["location"])


def test_deep_link_while_signed_out_comes_back_after_logging_in(env: Env) -> None:
    verified(env)
    anon = TestClient(env.app)
    r = anon.get(DEEP, follow_redirects=False)
    assert r.status_code == 303 and next_of(r.headers["location"]) == DEEP
    page = anon.get(r.headers["location"])
    assert PLEASE in page.text and ENDED not in page.text  # never signed in: nothing "ended"
    assert log_in_at(anon, r.headers["location"]) == DEEP
    landed = anon.get(DEEP)
    assert landed.status_code == 200 and str(landed.url).endswith(DEEP)


@pytest.mark.parametrize("url", ["/wallet", "/security", "/wallet/transactions/txn_x1/verify",
                                 "/wallet/statement?type=transfer&start=2026-01-01&end=2026-01-31"])
def test_no_cookie_gets_the_neutral_notice_and_keeps_the_target(env: Env, url: str) -> None:
    r = TestClient(env.app).get(url, follow_redirects=False)
    assert r.status_code == 303
    location = r.headers["location"]
    assert location.startswith("/login?notice=signin&") and next_of(location) == url


def test_expired_session_cookie_says_the_session_ended_and_comes_back(env: Env) -> None:
    verified(env)
    browser = TestClient(env.app)
    assert log_in_at(browser, "/login") == "/wallet"  # no next: a person lands on their wallet
    assert browser.get(DEEP).status_code == 200
    env.advance(minutes=15)  # idle timeout
    r = browser.get(DEEP, follow_redirects=False)
    assert r.status_code == 303
    location = r.headers["location"]
    assert location.startswith("/login?notice=expired&") and next_of(location) == DEEP
    page = browser.get(location)
    assert ENDED in page.text and PLEASE not in page.text
    assert log_in_at(browser, location) == DEEP


def test_unverified_address_is_verified_first_then_on_to_the_target(env: Env) -> None:
    env.sign_up(EMAIL)
    anon = TestClient(env.app)
    login_url = anon.get(DEEP, follow_redirects=False).headers["location"]
    to_verify = log_in_at(anon, login_url)
    assert urlsplit(to_verify).path == "/verify" and next_of(to_verify) == DEEP
    page = anon.get(to_verify)
    r = anon.post("/verify", data={"csrf_token": field(page.text, "csrf_token"), "next": field(page.text, "next"),
                                   "code": env.last_code(EMAIL)}, follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"] == DEEP


def test_two_step_login_comes_back_to_the_target(env: Env) -> None:
    import pyotp
    token = verified(env)
    secret = env.client.post("/v1/users/me/mfa/totp", headers=bearer(token)).json()["secret"]
    totp = pyotp.TOTP(secret)
    r = env.client.post("/v1/users/me/mfa/totp/verify", json={"code": totp.at(int(time.time()) - 30)},
                        headers=bearer(token))
    assert r.status_code == 200, r.text
    anon = TestClient(env.app)
    login_url = anon.get(DEEP, follow_redirects=False).headers["location"]
    page = anon.get(login_url)
    step = anon.post("/login", data={"csrf_token": field(page.text, "csrf_token"), "next": field(page.text, "next"),
                                     "email": EMAIL, "password": PASSWORD})
    assert step.status_code == 401 and field(step.text, "next") == DEEP
    r = anon.post("/login", data={"csrf_token": field(step.text, "csrf_token"), "next": field(step.text, "next"),
                                  "ticket": field(step.text, "ticket"), "totp_code": totp.now()},
                  follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"] == DEEP


def test_form_post_without_a_session_returns_to_the_page_the_form_was_on(env: Env) -> None:
    verified(env)
    stale = TestClient(env.app)
    stale.cookies.set(SESSION_COOKIE, "ended-session-token")
    form = {"csrf_token": "x", "password": PASSWORD, "payment_password": "123456", "confirm": "123456"}

    def post_from(referer: str | None) -> str:
        headers = {"referer": referer} if referer is not None else {}
        r = stale.post("/security/payment-password", data=form, headers=headers, follow_redirects=False)
        assert r.status_code == 303 and r.headers["location"].startswith("/login?notice=expired")
        return str(r.headers["location"])

    location = post_from("http://testserver/security?tab=pay")
    assert next_of(location) == "/security?tab=pay"
    assert log_in_at(TestClient(env.app), location) == "/security?tab=pay"
    # Not a page to go back to: another site, a POST-only path, no Referer at all.
    for referer in ("https://evil.example/security", "http://evil.example/security",
                    "http://testserver/security/payment-password", "http://testserver//evil.example", None):
        assert next_of(post_from(referer)) is None, referer


# Each value is put into the log-in URL's query string as it is (so %2F%2F arrives as //).
ATTACKS = ["//evil.example", "https://evil.example", "/\\evil.example", "%2F%2Fevil.example", "/%5Cevil.example",
           "%252F%252Fevil.example", "/%09/evil.example", "javascript:alert(1)", "http:/evil.example"]


@pytest.mark.parametrize("attack", ATTACKS)
def test_open_redirect_attempts_land_on_the_default_page(env: Env, attack: str) -> None:
    verified(env)
    anon = TestClient(env.app)
    honest = anon.get(DEEP, follow_redirects=False).headers["location"]
    assert next_of(honest) == DEEP  # the deep link is carried ...
    forged = re.sub(r"next=[^&]*", lambda _m: f"next={attack}", honest)
    assert log_in_at(anon, forged) == "/wallet"  # ... but never off this site
    # Posted straight to the form, it is refused too.
    other = TestClient(env.app)
    page = other.get("/login")
    value = parse_qs(f"next={attack}")["next"][0]  # as the query string decodes it
    r = other.post("/login", data={"csrf_token": field(page.text, "csrf_token"), "next": value,
                                   "email": EMAIL, "password": PASSWORD}, follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"] == "/wallet", value
    # Signed in already, /login?next= goes to the default page as well.
    r = other.get(f"/login?next={attack}", follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"] == "/wallet"


def test_with_no_next_a_person_lands_on_the_wallet_a_merchant_on_the_dashboard_ops_on_disputes(env: Env) -> None:
    verified(env, "person@example.com")
    verified(env, "seller@example.com", kind="merchant")
    p = env.platform
    p.db.run(lambda conn: identity.create_ops_user(p, conn, email="ops@example.com", password=PASSWORD))
    for email, home in (("person@example.com", "/wallet"), ("seller@example.com", "/merchant"),
                        ("ops@example.com", "/ops/disputes")):
        browser = TestClient(env.app)
        assert log_in_at(browser, "/login", email) == home, email
        again = browser.get("/login", follow_redirects=False)  # signed in already
        assert again.status_code == 303 and again.headers["location"] == home, email
        assert browser.get(home).status_code == 200, email


PAYER_PANELS = ('id="payment-password"', 'id="identity"', 'data-testid="payment-status"', 'data-testid="kyc-tier"')


def test_operations_staff_get_their_consoles_in_the_header_and_no_payment_settings(env: Env) -> None:
    """Staff keep no wallet: the header offers the dispute queue and the reconciliation
    exceptions (each marked where it is the page), and the security centre leaves out
    the payment password, KYC tier and limits, which only matter to someone who pays."""
    p = env.platform
    p.db.run(lambda conn: identity.create_ops_user(p, conn, email="ops@example.com", password=PASSWORD))
    verified(env, "person@example.com")

    def nav_links(client: TestClient, path: str) -> list[tuple[str, bool]]:
        page = client.get(path, params={"lang": "en"})
        assert page.status_code == 200, page.text
        nav = page.text.split('class="site-nav"', 1)[1].split("</nav>", 1)[0]
        found = re.finditer(r'data-testid="([a-z-]+-link)"( aria-current)?', nav)
        return [(m.group(1), bool(m.group(2))) for m in found]

    ops = TestClient(env.app)
    log_in_at(ops, "/login", "ops@example.com")
    assert nav_links(ops, "/ops/disputes") == [("ops-disputes-link", True), ("ops-reconciliation-link", False)]
    assert nav_links(ops, "/ops/reconciliation") == [("ops-disputes-link", False), ("ops-reconciliation-link", True)]
    staff_security = ops.get("/security").text
    for personal in PAYER_PANELS:
        assert personal not in staff_security, personal
    assert 'id="mfa"' in staff_security and 'id="freeze"' in staff_security

    person = TestClient(env.app)
    log_in_at(person, "/login", "person@example.com")
    assert nav_links(person, "/wallet") == [("wallet-link", True), ("purchases-link", False)]
    own_security = person.get("/security").text
    for personal in PAYER_PANELS:
        assert personal in own_security, personal
    assert "/ops/" not in person.get("/wallet").text
