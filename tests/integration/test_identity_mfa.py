"""TOTP two-factor (RFC 6238 on real time) and recovery codes, end to end on both engines."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pyotp
import pytest
from sqlalchemy import select
from tests.integration.identity_support import PASSWORD, UA, Env, bearer, make_env

from trustpay.db.schema import recovery_codes, users
from trustpay.errors import AuthenticationFailed
from trustpay.identity import mfa, service, store

EMAIL = "mfa@example.com"


@pytest.fixture
def env(db_url: str, tmp_path: Path) -> Iterator[Env]:
    for e in make_env(db_url, tmp_path):
        e.sign_up(EMAIL)
        yield e


def step_now() -> int:
    return int(time.time() // 30)


def code_at(secret: str, step: int) -> str:
    return pyotp.TOTP(secret).at(step * 30)


def login(env: Env, totp_code: str | None = None, password: str = PASSWORD) -> Any:
    body: dict[str, Any] = {"email": EMAIL, "password": password}
    if totp_code is not None:
        body["totp_code"] = totp_code
    return env.client.post("/v1/sessions", json=body, headers={"user-agent": UA})


def enrol(env: Env, token: str) -> tuple[str, list[str]]:
    """Enrol and verify with the code one step *behind* now, so the tests' own
    'current' codes (steps now and now+1) are still unused."""
    r = env.client.post("/v1/users/me/mfa/totp", headers=bearer(token))
    assert r.status_code == 200, r.text
    secret = r.json()["secret"]
    assert r.json()["otpauth_uri"].startswith("otpauth://totp/") and secret in r.json()["otpauth_uri"]
    v = env.client.post("/v1/users/me/mfa/totp/verify", json={"code": code_at(secret, step_now() - 1)},
                        headers=bearer(token))
    assert v.status_code == 200, v.text
    codes = v.json()["recovery_codes"]
    return secret, codes


def err(r: Any) -> tuple[int, str]:
    return r.status_code, r.json()["error"]["code"]


def test_enrol_verify_and_me_shows_mfa(env: Env) -> None:
    token = env.token(EMAIL)
    assert env.me(token).json()["mfa_enabled"] is False
    r = env.client.post("/v1/users/me/mfa/totp", headers=bearer(token))
    secret = r.json()["secret"]
    qr = env.client.get("/v1/users/me/mfa/totp/qr.svg", headers=bearer(token))
    assert qr.status_code == 200 and qr.headers["content-type"].startswith("image/svg+xml")
    assert b"<svg" in qr.content
    assert env.me(token).json()["mfa_enabled"] is False  # not before verification
    # A code that is wrong for sure: none of the codes valid within ±2 steps of now.
    totp, now = pyotp.TOTP(secret), time.time()
    valid = {totp.at(now + k * 30) for k in range(-2, 3)}
    wrong = next(c for c in (f"{n:06d}" for n in range(1_000_000)) if c not in valid)
    bad = env.client.post("/v1/users/me/mfa/totp/verify", json={"code": wrong}, headers=bearer(token))
    assert err(bad) == (400, "invalid_code")
    v = env.client.post("/v1/users/me/mfa/totp/verify", json={"code": pyotp.TOTP(secret).now()},
                        headers=bearer(token))
    assert v.status_code == 200, v.text
    codes = v.json()["recovery_codes"]
    assert len(codes) == 10 and len(set(codes)) == 10
    assert env.me(token).json()["mfa_enabled"] is True
    # Secret stored sealed, recovery codes stored hashed.
    with env.platform.db.transaction(write=False) as conn:
        enc = conn.execute(select(users.c.totp_secret_enc)).scalar_one()
        hashes = conn.execute(select(recovery_codes.c.code_hash)).scalars().all()
    assert secret not in enc and len(hashes) == 10 and not set(codes) & set(hashes)
    events = [a["event"] for a in env.client.get("/v1/users/me/audit-log", headers=bearer(token)).json()["data"]]
    assert "mfa.enabled" in events
    assert any("Two-factor authentication is on" in n["subject"] for n in env.notes())
    # Once on: no new enrolment, no QR of the live secret.
    assert env.client.post("/v1/users/me/mfa/totp", headers=bearer(token)).status_code == 409
    assert env.client.get("/v1/users/me/mfa/totp/qr.svg", headers=bearer(token)).status_code == 409


def test_login_needs_the_code_and_a_code_works_once(env: Env) -> None:
    secret, _ = enrol(env, env.token(EMAIL))
    r = login(env)
    assert err(r) == (401, "mfa_required") and "token" not in r.json()
    current = code_at(secret, step_now())
    ok = login(env, current)
    assert ok.status_code == 201 and ok.json()["token"]
    replay = login(env, current)
    assert err(replay) == (401, "invalid_credentials") and "token" not in replay.json()


def test_code_two_steps_old_is_refused_one_step_old_accepted(env: Env) -> None:
    token = env.token(EMAIL)
    r = env.client.post("/v1/users/me/mfa/totp", headers=bearer(token))
    secret = r.json()["secret"]
    now = step_now()
    # Verify with a code two steps back: refused.
    old = env.client.post("/v1/users/me/mfa/totp/verify", json={"code": code_at(secret, now - 2)},
                          headers=bearer(token))
    assert err(old) == (400, "invalid_code")
    v = env.client.post("/v1/users/me/mfa/totp/verify", json={"code": code_at(secret, now - 1)},
                        headers=bearer(token))
    assert v.status_code == 200
    assert err(login(env, code_at(secret, now - 2))) == (401, "invalid_credentials")
    # An older step than the last one used is refused even within the drift window.
    assert login(env, code_at(secret, step_now() + 1)).status_code == 201
    assert err(login(env, code_at(secret, step_now()))) == (401, "invalid_credentials")


def test_right_password_wrong_code_gives_no_token_and_counts_toward_the_lock(env: Env) -> None:
    secret, _ = enrol(env, env.token(EMAIL))
    wrong = "000000" if code_at(secret, step_now()) != "000000" else "111111"
    for _ in range(4):
        r = login(env, wrong)
        assert err(r) == (401, "invalid_credentials") and "token" not in r.json()
    assert err(login(env, wrong)) == (423, "account_locked")
    assert err(login(env, code_at(secret, step_now()))) == (423, "account_locked")
    env.advance(minutes=30)
    assert login(env, code_at(secret, step_now())).status_code == 201


def test_recovery_code_stands_in_once(env: Env) -> None:
    _, codes = enrol(env, env.token(EMAIL))
    ok = login(env, codes[0])
    assert ok.status_code == 201
    assert err(login(env, codes[0])) == (401, "invalid_credentials")
    assert login(env, codes[1].upper()).status_code == 201  # case-insensitive
    events = [a["event"] for a in
              env.client.get("/v1/users/me/audit-log", headers=bearer(ok.json()["token"])).json()["data"]]
    assert events.count("mfa.recovery_code_used") == 2


def test_disable_needs_password_and_second_factor(env: Env) -> None:
    token = env.token(EMAIL)
    _, codes = enrol(env, token)
    r = env.client.post("/v1/users/me/mfa/totp/disable", json={"password": PASSWORD, "totp_code": "12"},
                        headers=bearer(token))
    assert err(r) == (401, "invalid_credentials")
    r = env.client.post("/v1/users/me/mfa/totp/disable", json={"password": PASSWORD, "recovery_code": codes[3]},
                        headers=bearer(token))
    assert r.status_code == 204
    assert env.me(token).json()["mfa_enabled"] is False
    assert login(env).status_code == 201
    events = [a["event"] for a in env.client.get("/v1/users/me/audit-log", headers=bearer(token)).json()["data"]]
    assert "mfa.disabled" in events


def test_step_up_helper(env: Env) -> None:
    token = env.token(EMAIL)
    user_id = env.me(token).json()["id"]
    p = env.platform

    def step_up(code: str | None) -> None:
        service.run_keeping_refusal(p, lambda conn: mfa.require_fresh_totp(
            p, conn, store.get_user(conn, user_id), code))

    with pytest.raises(AuthenticationFailed) as e:
        step_up("123456")
    assert e.value.code == "mfa_required"  # MFA is off
    secret, _ = enrol(env, token)
    with pytest.raises(AuthenticationFailed) as e:
        step_up(None)
    assert e.value.code == "mfa_required"
    fresh = code_at(secret, step_now())
    step_up(fresh)
    with pytest.raises(AuthenticationFailed) as e:
        step_up(fresh)  # not twice
    assert e.value.code == "invalid_credentials"


def test_wrong_codes_when_turning_mfa_off_count_toward_the_login_lock(env: Env) -> None:
    token = env.token(EMAIL)
    secret, _ = enrol(env, token)
    wrong = "000000" if code_at(secret, step_now()) != "000000" else "111111"
    body = {"password": PASSWORD, "totp_code": wrong}
    results = [err(env.client.post("/v1/users/me/mfa/totp/disable", json=body, headers=bearer(token)))
               for _ in range(5)]
    assert results == [(401, "invalid_credentials")] * 4 + [(423, "account_locked")]
    assert env.me(token).json()["mfa_enabled"] is True
    assert err(login(env, code_at(secret, step_now()))) == (423, "account_locked")
