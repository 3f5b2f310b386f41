"""Audit log rows (who, what, when, outcome, origin, object), log-line forgery, rate limits."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import select
from tests.integration.identity_support import UA, Env, bearer, make_env

from trustpay.db.schema import audit_log
from trustpay.identity.model import log_safe

EMAIL = "aud@example.com"


@pytest.fixture
def env(db_url: str, tmp_path: Path) -> Iterator[Env]:
    yield from make_env(db_url, tmp_path, auth_rate_limit=6, auth_rate_window_seconds=60)


def test_security_events_are_audited_with_origin(env: Env) -> None:
    user = env.sign_up(EMAIL)
    env.login(EMAIL, "wrong password 1 indeed")
    token = env.token(EMAIL)
    body = {"password": "correct horse 42 battery", "payment_password": "135790"}
    env.client.put("/v1/users/me/payment-password", json=body, headers=bearer(token, **{"user-agent": UA}))
    env.client.delete("/v1/sessions/current", headers=bearer(token, **{"user-agent": UA}))
    token = env.token(EMAIL)
    r = env.client.get("/v1/users/me/audit-log", headers=bearer(token))
    assert r.status_code == 200
    rows = r.json()["data"]
    assert [(x["event"], x["outcome"]) for x in reversed(rows)] == [
        ("user.signed_up", "success"), ("session.login", "failure"), ("session.login", "success"),
        ("payment_password.changed", "success"), ("session.logout", "success"), ("session.login", "success"),
    ]
    assert all(x["ip"] == "testclient" and x["user_agent"] == UA and x["at"] == "2026-01-01T00:00:00Z"
               for x in rows)
    assert rows[-1]["resource"] == user["id"]


def test_a_newline_in_the_user_agent_cannot_forge_a_line(env: Env) -> None:
    env.sign_up(EMAIL)
    forged = "curl/8\n2026-01-01T00:00:00Z session.login success admin\r\x1b[2K"
    env.login(EMAIL, "wrong password 1 indeed", **{"user-agent": forged})
    with env.platform.db.transaction(write=False) as conn:
        rows = conn.execute(select(audit_log).order_by(audit_log.c.seq)).all()
    assert len(rows) == 2
    stored = rows[-1].user_agent
    assert stored == "curl/8\\x0a2026-01-01T00:00:00Z session.login success admin\\x0d\\x1b[2K"
    assert not any(ch in str(v) for r in rows for v in r for ch in "\n\r\x1b")
    assert log_safe("a\\x0ab") == "a\\\\x0ab"  # an escape typed by the client stays distinguishable


def test_audit_log_pages_with_limit_and_starting_after(env: Env) -> None:
    env.sign_up(EMAIL)
    token = ""
    for _ in range(4):
        token = env.token(EMAIL)
    first = env.client.get("/v1/users/me/audit-log?limit=2", headers=bearer(token)).json()
    assert first["object"] == "list" and first["has_more"] is True and len(first["data"]) == 2
    rest = env.client.get(f"/v1/users/me/audit-log?limit=10&starting_after={first['data'][-1]['id']}",
                          headers=bearer(token)).json()
    assert rest["has_more"] is False
    ids = [x["id"] for x in first["data"] + rest["data"]]
    assert len(ids) == len(set(ids)) == 5
    assert rest["data"][-1]["event"] == "user.signed_up"
    assert env.client.get("/v1/users/me/audit-log?limit=101", headers=bearer(token)).status_code == 400


def test_another_users_audit_rows_are_not_listed(env: Env) -> None:
    env.sign_up(EMAIL)
    env.sign_up("other@example.com")
    token = env.token("other@example.com")
    rows = env.client.get("/v1/users/me/audit-log", headers=bearer(token)).json()["data"]
    assert [x["event"] for x in rows] == ["session.login", "user.signed_up"]


def test_login_is_rate_limited_per_ip_within_the_window(env: Env) -> None:
    env.sign_up(EMAIL)  # one sign-up; sign-up and login are counted separately
    statuses = [env.login(EMAIL, "wrong password 1 indeed").status_code for _ in range(7)]
    assert statuses[:4] == [401] * 4 and 423 in statuses[4:6]
    assert statuses[6] == 429
    r = env.login(EMAIL)
    assert r.status_code == 429 and r.json()["error"]["type"] == "rate_limit_error"
    env.advance(minutes=30)
    assert env.login(EMAIL).status_code == 201


def test_sign_up_is_rate_limited_per_ip(env: Env) -> None:
    for i in range(6):
        env.sign_up(f"s{i}@example.com")
    r = env.client.post("/v1/users", json={"email": "s9@example.com", "password": "correct horse 42 battery"})
    assert (r.status_code, r.json()["error"]["code"]) == (429, "rate_limited")
    env.advance(seconds=60)
    env.sign_up("s9@example.com")


def test_notifications_are_one_json_object_per_line(env: Env) -> None:
    env.sign_up(EMAIL, name="Eve\nInjected")
    lines = env.sink.read_text("utf-8").splitlines()
    assert len(lines) == 1
    note = json.loads(lines[0])
    assert set(note) == {"channel", "to", "subject", "body", "code"} and note["channel"] == "email"
    assert note["code"] in note["body"]
