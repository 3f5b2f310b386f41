"""Login and payment-password lockout on the frozen platform clock, on both engines (API.md:
5 failures lock for 30 minutes from the fifth; tries while locked do not extend it)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from pydantic import ValidationError
from tests.integration.identity_support import PASSWORD, Env, bearer, make_env

from trustpay.errors import AccountLocked, PaymentFailed
from trustpay.identity import service
from trustpay.settings import Settings

EMAIL = "lock@example.com"
WRONG = "wrong password 99 indeed"


@pytest.fixture
def env(db_url: str, tmp_path: Path) -> Iterator[Env]:
    for e in make_env(db_url, tmp_path):  # one Env; the loop's end closes it
        e.sign_up(EMAIL)
        yield e


def code_of(r: object) -> tuple[int, str]:
    return r.status_code, r.json()["error"]["code"]  # type: ignore[attr-defined]


def fail(env: Env, times: int) -> list[tuple[int, str]]:
    return [code_of(env.login(EMAIL, WRONG)) for _ in range(times)]


def test_unknown_email_and_wrong_password_look_the_same(env: Env) -> None:
    unknown, wrong = env.login("nobody@example.com", WRONG), env.login(EMAIL, WRONG)
    assert unknown.status_code == wrong.status_code == 401
    assert unknown.json() == wrong.json()
    assert wrong.json()["error"]["code"] == "invalid_credentials"


def test_fifth_failure_locks_until_exactly_30_minutes_later(env: Env) -> None:
    assert fail(env, 4) == [(401, "invalid_credentials")] * 4
    assert fail(env, 1) == [(423, "account_locked")]
    env.advance(minutes=29, seconds=59)
    assert code_of(env.login(EMAIL)) == (423, "account_locked")  # even the right password
    env.advance(seconds=1)
    assert env.login(EMAIL).status_code == 201


def test_attempts_while_locked_do_not_extend_the_lock(env: Env) -> None:
    fail(env, 5)
    for _ in range(3):
        env.advance(minutes=9)
        assert fail(env, 2) == [(423, "account_locked")] * 2
    env.advance(minutes=3)  # 30:00 after the fifth failure
    assert env.login(EMAIL).status_code == 201


def test_lock_end_gives_a_fresh_set_of_tries(env: Env) -> None:
    fail(env, 5)
    env.advance(minutes=30)
    assert fail(env, 4) == [(401, "invalid_credentials")] * 4
    assert fail(env, 1) == [(423, "account_locked")]


def test_success_resets_the_count(env: Env) -> None:
    fail(env, 4)
    assert env.login(EMAIL).status_code == 201
    assert fail(env, 4) == [(401, "invalid_credentials")] * 4
    assert env.login(EMAIL).status_code == 201


def test_failures_are_kept_when_the_login_carries_an_idempotency_key(env: Env) -> None:
    for i in range(5):
        env.login(EMAIL, WRONG, **{"Idempotency-Key": f"try-{i}"})
    assert code_of(env.login(EMAIL)) == (423, "account_locked")


def test_lock_settings_are_bounded() -> None:
    with pytest.raises(ValidationError):
        Settings(login_max_attempts=11)
    with pytest.raises(ValidationError):
        Settings(lockout_minutes=29)
    assert (Settings().login_max_attempts, Settings().lockout_minutes) == (5, 30)


def set_payment_password(env: Env, token: str, pp: str, password: str = PASSWORD) -> tuple[int, str]:
    r = env.client.put("/v1/users/me/payment-password", json={"password": password, "payment_password": pp},
                       headers=bearer(token))
    return (r.status_code, "") if r.status_code == 204 else code_of(r)


def test_setting_the_payment_password_needs_the_login_password(env: Env) -> None:
    token = env.token(EMAIL)
    assert set_payment_password(env, token, "123456", WRONG) == (401, "invalid_credentials")
    assert set_payment_password(env, token, "12345a") == (400, "invalid_request")
    assert set_payment_password(env, token, "1234567") == (400, "invalid_request")
    assert set_payment_password(env, token, "123456") == (204, "")
    assert any("payment password was changed" in n["subject"] for n in env.notes())


def test_payment_password_locks_after_five_wrong(env: Env) -> None:
    token = env.token(EMAIL)
    assert set_payment_password(env, token, "246810") == (204, "")
    user_id = env.me(token).json()["id"]
    p = env.platform
    service.require_payment_password(p, user_id, "246810")
    for _ in range(4):
        with pytest.raises(PaymentFailed) as e:
            service.require_payment_password(p, user_id, "000000")
        assert (e.value.status, e.value.code) == (402, "payment_password_invalid")
    with pytest.raises(AccountLocked):
        service.require_payment_password(p, user_id, "000000")
    env.advance(minutes=29, seconds=59)
    with pytest.raises(AccountLocked):
        service.require_payment_password(p, user_id, "246810")
    env.advance(seconds=1)
    service.require_payment_password(p, user_id, "246810")
    assert env.login(EMAIL).status_code == 201  # the login itself was never locked


def test_payment_password_success_resets_the_count(env: Env) -> None:
    token = env.token(EMAIL)
    set_payment_password(env, token, "246810")
    user_id = env.me(token).json()["id"]
    for _ in range(2):
        for _ in range(4):
            with pytest.raises(PaymentFailed):
                service.require_payment_password(env.platform, user_id, "999999")
        service.require_payment_password(env.platform, user_id, "246810")


def test_no_payment_password_yet_is_refused(env: Env) -> None:
    user_id = env.me(env.token(EMAIL)).json()["id"]
    with pytest.raises(PaymentFailed) as e:
        service.require_payment_password(env.platform, user_id, "123456")
    assert e.value.code == "payment_password_invalid"
