"""Security-centre forms for identity (KYC tier 2), limits shown, 2FA off and the audit
labels, through TestClient on both engines."""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from pathlib import Path

import pyotp
import pytest
from tests.integration.identity_support import PASSWORD, Env, make_env
from tests.integration.test_web_auth import sign_up, token_in

EMAIL = "webkyc@example.com"
ID_NUMBER = "11010519491231002X"


@pytest.fixture
def env(db_url: str, tmp_path: Path) -> Iterator[Env]:
    for e in make_env(db_url, tmp_path):
        assert sign_up(e.client, EMAIL).status_code == 303
        yield e


def verify(env: Env) -> None:
    page = env.client.get("/verify")
    r = env.client.post("/verify", data={"csrf_token": token_in(page.text), "code": env.last_code(EMAIL)},
                        follow_redirects=False)
    assert r.status_code == 303


def post(env: Env, path: str, **data: str) -> tuple[int, str]:
    page = env.client.get("/security?lang=en")
    r = env.client.post(path + "?lang=en", data={"csrf_token": token_in(page.text), **data})
    return r.status_code, r.text


def test_unverified_user_sees_tier_zero_limits_and_no_identity_form(env: Env) -> None:
    html = env.client.get("/security?lang=en").text
    assert "Tier 0" in html and "¥1,000.00" in html
    assert 'action="/security/identity' not in html
    status, html = post(env, "/security/identity", legal_name="张三", id_number=ID_NUMBER)
    assert status == 403 and "Verify your e-mail address first" in html


def test_identity_form_shows_masked_values_and_tier_two_limits(env: Env) -> None:
    verify(env)
    html = env.client.get("/security?lang=en").text
    assert "Tier 1" in html and "¥5,000.00" in html and 'action="/security/identity' in html
    status, html = post(env, "/security/identity", legal_name="张三", id_number="110105194912310021")
    assert status == 400 and "This ID number is not valid" in html
    assert "110105194912310021" not in html and 'value="张三"' in html  # the name is kept, the number not
    status, html = post(env, "/security/identity", legal_name="张三", id_number=ID_NUMBER.lower())
    assert status == 200, html
    assert re.search(r'data-testid="legal-name">张\*<', html)
    assert re.search(r'data-testid="id-number">1101\*{10}002X<', html)
    assert "Tier 2" in html and "¥50,000.00" in html and ID_NUMBER not in html
    assert 'title="identity.submitted"' in html and "Identity submitted" in html


def test_audit_log_has_translated_labels_with_the_raw_code_as_title(env: Env) -> None:
    html = env.client.get("/security?lang=zh-Hans").text
    assert re.search(r'title="user.signed_up"[^>]*>账户已创建<', html)
    assert re.search(r'title="session.login"[^>]*>登录<', html)


def test_turning_two_step_verification_off_from_the_page(env: Env) -> None:
    verify(env)
    status, html = post(env, "/security/mfa/start")
    assert status == 200
    found = re.search(r'data-testid="mfa-secret">([A-Z2-7]+)<', html)
    assert found
    totp = pyotp.TOTP(found.group(1))
    now = time.time()  # TOTP steps follow the wall clock, as authenticator apps do
    status, html = post(env, "/security/mfa/confirm", code=totp.at(now - 30))
    assert status == 200 and 'data-testid="recovery-codes"' in html
    assert 'action="/security/mfa/disable' in env.client.get("/security").text
    status, html = post(env, "/security/mfa/disable", password="wrong password 1 two", code=totp.at(now))
    assert status == 401 and "still on" in html
    status, html = post(env, "/security/mfa/disable", password=PASSWORD, code=totp.at(now))
    assert status == 200 and "Two-step verification is off" in html
    assert 'data-testid="mfa-status">Off<' in html
