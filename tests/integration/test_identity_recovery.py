"""Password recovery by e-mailed code, on both engines: no enumeration, one use, expiry on the
platform clock, bounded tries, every session revoked."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from tests.integration.identity_support import Env, bearer, make_env

EMAIL = "reset@example.com"
NEW = "brand new secret 2027"


@pytest.fixture
def env(db_url: str, tmp_path: Path) -> Iterator[Env]:
    for e in make_env(db_url, tmp_path):
        e.sign_up(EMAIL)
        yield e


def err(r: Any) -> tuple[int, str]:
    return r.status_code, r.json()["error"]["code"]


def request_reset(env: Env, email: str = EMAIL) -> Any:
    return env.client.post("/v1/password-resets", json={"email": email})


def confirm(env: Env, code: str, new_password: str = NEW, email: str = EMAIL) -> Any:
    return env.client.post("/v1/password-resets/confirm",
                           json={"email": email, "code": code, "new_password": new_password})


def reset_codes(env: Env) -> list[str]:
    return [n["code"] for n in env.notes() if n["to"] == EMAIL and "code" in n and "reset" in n["subject"].lower()]


def wrong_for(code: str) -> str:
    return "000000" if code != "000000" else "111111"


def test_no_enumeration(env: Env) -> None:
    known, unknown, bad = request_reset(env), request_reset(env, "nobody@example.com"), request_reset(env, "x")
    assert known.status_code == unknown.status_code == bad.status_code == 202
    assert known.json() == unknown.json() == bad.json()
    assert len(reset_codes(env)) == 1
    assert not [n for n in env.notes() if n["to"] == "nobody@example.com"]
    assert err(confirm(env, "123456", email="nobody@example.com")) == (400, "invalid_code")


def test_reset_sets_the_password_once_and_revokes_every_session(env: Env) -> None:
    t1, t2 = env.token(EMAIL), env.token(EMAIL)
    request_reset(env)
    code = reset_codes(env)[-1]
    assert err(confirm(env, code, new_password="short")) == (400, "weak_password")
    r = confirm(env, code)
    assert r.status_code == 204, r.text
    assert env.me(t1).status_code == 401 and env.me(t2).status_code == 401
    assert env.login(EMAIL).status_code == 401  # the old password is gone
    token = env.token(EMAIL, NEW)
    assert err(confirm(env, code, new_password="another password 99")) == (400, "invalid_code")  # once only
    assert env.login(EMAIL, "another password 99").status_code == 401
    events = [a["event"] for a in env.client.get("/v1/users/me/audit-log", headers=bearer(token)).json()["data"]]
    assert "password.reset" in events
    assert any("password was changed" in n["subject"] for n in env.notes())


def test_code_expires_after_15_minutes_on_the_platform_clock(env: Env) -> None:
    request_reset(env)
    code = reset_codes(env)[-1]
    env.advance(minutes=14, seconds=59)
    request_reset(env, "nobody@example.com")  # unrelated traffic changes nothing
    env.advance(seconds=1)
    assert err(confirm(env, code)) == (400, "invalid_code")
    assert env.login(EMAIL).status_code == 201


def test_code_still_works_at_14_59(env: Env) -> None:
    request_reset(env)
    env.advance(minutes=14, seconds=59)
    assert confirm(env, reset_codes(env)[-1]).status_code == 204


def test_tries_are_bounded(env: Env) -> None:
    request_reset(env)
    code = reset_codes(env)[-1]
    for _ in range(5):
        assert err(confirm(env, wrong_for(code))) == (400, "invalid_code")
    assert err(confirm(env, code)) == (400, "invalid_code")  # burnt after five wrong tries
    assert env.login(EMAIL).status_code == 201


def test_a_new_code_retires_the_old_one(env: Env) -> None:
    request_reset(env)
    first = reset_codes(env)[-1]
    request_reset(env)
    second = reset_codes(env)[-1]
    if first != second:
        assert err(confirm(env, first)) == (400, "invalid_code")
    assert confirm(env, second).status_code == 204


def test_requests_per_address_are_rate_limited(env: Env) -> None:
    statuses = [request_reset(env).status_code for _ in range(6)]
    assert statuses == [202] * 5 + [429]
    assert request_reset(env, "nobody@example.com").status_code == 202
    env.advance(minutes=15)
    assert request_reset(env).status_code == 202
