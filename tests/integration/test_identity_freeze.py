"""Lost-phone freeze and unfreeze (self-service and ops CLI), on both engines."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pyotp
import pytest
from sqlalchemy import create_engine, select
from tests.integration.identity_support import PASSWORD, Env, bearer, make_env
from typer.testing import CliRunner

from trustpay.cli import app
from trustpay.db.schema import audit_log, users
from trustpay.errors import Forbidden, PaymentFailed
from trustpay.identity import freeze
from trustpay.identity import store as identity_store
from trustpay.settings import get_settings

EMAIL = "freeze@example.com"
WRONG = "wrong password 99 indeed"


@pytest.fixture
def env(db_url: str, tmp_path: Path) -> Iterator[Env]:
    for e in make_env(db_url, tmp_path):
        e.sign_up(EMAIL)
        yield e


def err(r: Any) -> tuple[int, str]:
    return r.status_code, r.json()["error"]["code"]


def verify_email(env: Env, token: str) -> None:
    r = env.client.post("/v1/users/me/verifications/confirm",
                        json={"channel": "email", "code": env.last_code(EMAIL)}, headers=bearer(token))
    assert r.status_code == 204, r.text


def can_move_money(env: Env, user_id: str) -> None:
    with env.platform.db.transaction(write=False) as conn:
        freeze.ensure_can_move_money(identity_store.get_user(conn, user_id))


def test_freeze_revokes_other_sessions_keeps_current_and_blocks_money(env: Env) -> None:
    phone, laptop = env.token(EMAIL), env.token(EMAIL)
    verify_email(env, laptop)
    user_id = env.me(laptop).json()["id"]
    can_move_money(env, user_id)
    assert err(env.client.post("/v1/users/me/freeze", json={"password": WRONG},
                               headers=bearer(laptop))) == (401, "invalid_credentials")
    assert env.me(laptop).json()["frozen"] is False
    r = env.client.post("/v1/users/me/freeze", json={"password": PASSWORD}, headers=bearer(laptop))
    assert r.status_code == 204, r.text
    assert env.me(phone).status_code == 401  # the lost phone is signed out
    me = env.me(laptop)
    assert me.status_code == 200 and me.json()["frozen"] is True
    with pytest.raises(PaymentFailed) as e:
        can_move_money(env, user_id)
    assert (e.value.status, e.value.code) == (402, "account_frozen")
    events = [a["event"] for a in env.client.get("/v1/users/me/audit-log", headers=bearer(laptop)).json()["data"]]
    assert "user.frozen" in events
    assert any("frozen" in n["subject"] for n in env.notes())
    assert env.login(EMAIL).status_code == 201  # a frozen user can still sign in to unfreeze


def test_unverified_email_cannot_move_money(env: Env) -> None:
    user_id = env.me(env.token(EMAIL)).json()["id"]
    with pytest.raises(Forbidden) as e:
        can_move_money(env, user_id)
    assert (e.value.status, e.value.code) == (403, "email_unverified")


def test_unfreeze_without_mfa_needs_password_and_emailed_code(env: Env) -> None:
    token = env.token(EMAIL)
    assert env.client.post("/v1/users/me/unfreeze/code", headers=bearer(token)).status_code == 409  # not frozen
    env.client.post("/v1/users/me/freeze", json={"password": PASSWORD}, headers=bearer(token))
    r = env.client.post("/v1/users/me/unfreeze", json={"password": PASSWORD, "code": "123456"},
                        headers=bearer(token))
    assert err(r) == (400, "invalid_code")  # no code sent yet
    assert env.client.post("/v1/users/me/unfreeze/code", headers=bearer(token)).status_code == 202
    code = env.last_code(EMAIL)
    wrong = "000000" if code != "000000" else "111111"
    assert err(env.client.post("/v1/users/me/unfreeze", json={"password": PASSWORD, "code": wrong},
                               headers=bearer(token))) == (400, "invalid_code")
    assert err(env.client.post("/v1/users/me/unfreeze", json={"password": WRONG, "code": code},
                               headers=bearer(token))) == (401, "invalid_credentials")
    env.advance(minutes=15)  # the code has expired on the platform clock (and the idle session)
    token = env.token(EMAIL)
    assert err(env.client.post("/v1/users/me/unfreeze", json={"password": PASSWORD, "code": code},
                               headers=bearer(token))) == (400, "invalid_code")
    env.client.post("/v1/users/me/unfreeze/code", headers=bearer(token))
    code = env.last_code(EMAIL)
    r = env.client.post("/v1/users/me/unfreeze", json={"password": PASSWORD, "code": code}, headers=bearer(token))
    assert r.status_code == 204, r.text
    assert env.me(token).json()["frozen"] is False
    assert err(env.client.post("/v1/users/me/unfreeze", json={"password": PASSWORD, "code": code},
                               headers=bearer(token))) == (409, "invalid_state")


def test_unfreeze_with_mfa_needs_a_second_factor(env: Env) -> None:
    token = env.token(EMAIL)
    secret = env.client.post("/v1/users/me/mfa/totp", headers=bearer(token)).json()["secret"]
    step = int(time.time() // 30)
    v = env.client.post("/v1/users/me/mfa/totp/verify", json={"code": pyotp.TOTP(secret).at((step - 1) * 30)},
                        headers=bearer(token))
    recovery = v.json()["recovery_codes"]
    env.client.post("/v1/users/me/freeze", json={"password": PASSWORD}, headers=bearer(token))
    assert env.client.post("/v1/users/me/unfreeze/code", headers=bearer(token)).status_code == 409
    assert err(env.client.post("/v1/users/me/unfreeze", json={"password": PASSWORD},
                               headers=bearer(token))) == (401, "mfa_required")
    assert err(env.client.post("/v1/users/me/unfreeze", json={"password": PASSWORD, "recovery_code": "nope-nope"},
                               headers=bearer(token))) == (401, "invalid_credentials")
    assert env.me(token).json()["frozen"] is True
    r = env.client.post("/v1/users/me/unfreeze", json={"password": PASSWORD, "recovery_code": recovery[0]},
                        headers=bearer(token))
    assert r.status_code == 204, r.text
    assert env.me(token).json()["frozen"] is False
    env.client.post("/v1/users/me/freeze", json={"password": PASSWORD}, headers=bearer(token))
    r = env.client.post("/v1/users/me/unfreeze", json={"password": PASSWORD,
                                                       "totp_code": pyotp.TOTP(secret).at(step * 30 + 30)},
                        headers=bearer(token))
    assert r.status_code == 204, r.text


@pytest.fixture
def cli_url(db_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    monkeypatch.setenv("TRUSTPAY_DATABASE_URL", db_url)
    monkeypatch.setenv("TRUSTPAY_NOTIFY_SINK", f"file:{tmp_path / 'cli.jsonl'}")
    get_settings.cache_clear()
    yield db_url
    get_settings.cache_clear()


def test_ops_unfreeze_cli_unfreezes_and_audits(cli_url: str, tmp_path: Path) -> None:
    for env in make_env(cli_url, tmp_path / "app"):
        env.sign_up(EMAIL)
        token = env.token(EMAIL)
        env.client.post("/v1/users/me/freeze", json={"password": PASSWORD}, headers=bearer(token))
    runner = CliRunner()
    no_reason = runner.invoke(app, ["ops", "unfreeze", "--email", EMAIL, "--reason", " "])
    assert no_reason.exit_code == 1
    unknown = runner.invoke(app, ["ops", "unfreeze", "--email", "x@example.com", "--reason", "ticket 7"])
    assert unknown.exit_code == 1
    ok = runner.invoke(app, ["ops", "unfreeze", "--email", EMAIL.upper(), "--reason", "ticket 42\nforged"])
    assert ok.exit_code == 0, ok.output
    engine = create_engine(cli_url)
    try:
        with engine.connect() as conn:
            assert conn.execute(select(users.c.frozen_at)).scalar_one() is None
            row = conn.execute(select(audit_log).where(audit_log.c.event == "user.unfrozen")).one()
    finally:
        engine.dispose()
    assert row.outcome == "success" and row.resource == "ops:ticket 42\\x0aforged"
    assert runner.invoke(app, ["ops", "unfreeze", "--email", EMAIL, "--reason", "again"]).exit_code == 1
