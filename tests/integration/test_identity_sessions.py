"""Sessions on the platform clock: login/logout, expiry, listing and revoking, on both engines."""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select, update
from tests.integration.identity_support import Env, bearer, make_env

from trustpay.app import create_app
from trustpay.clock import to_utc
from trustpay.db.schema import sessions, users
from trustpay.identity import touch
from trustpay.platform.context import Platform
from trustpay.settings import Settings


@pytest.fixture
def env(db_url: str, tmp_path: Path) -> Iterator[Env]:
    for e in make_env(db_url, tmp_path):  # one Env; the loop's end closes it
        e.sign_up("u@example.com")
        yield e


def err(r: object) -> tuple[int, str]:
    return r.status_code, r.json()["error"]["code"]  # type: ignore[attr-defined]


def test_login_returns_a_token_for_the_user(env: Env) -> None:
    r = env.login("U@example.com")
    assert r.status_code == 201
    body = r.json()
    assert body["expires_at"] == "2026-01-01T12:00:00Z"
    assert body["user"]["email"] == "u@example.com" and len(body["token"]) >= 40
    assert env.me(body["token"]).json()["email"] == "u@example.com"


def test_every_login_mints_a_new_token_and_both_work(env: Env) -> None:
    a, b = env.token("u@example.com"), env.token("u@example.com")
    assert a != b
    assert env.me(a).status_code == env.me(b).status_code == 200


def test_logout_kills_the_token_at_once(env: Env) -> None:
    a, b = env.token("u@example.com"), env.token("u@example.com")
    assert env.client.delete("/v1/sessions/current", headers=bearer(a)).status_code == 204
    assert err(env.me(a)) == (401, "session_expired")
    assert env.me(b).status_code == 200  # only the current session ends


def test_missing_or_unknown_token_is_invalid_credentials(env: Env) -> None:
    assert err(env.client.get("/v1/users/me")) == (401, "invalid_credentials")
    assert err(env.me("not-a-real-token")) == (401, "invalid_credentials")


def test_a_deleted_users_live_session_is_an_unknown_token(env: Env) -> None:
    # The session and its user are one read (an outer join): a missing user must
    # not pass for a live one, nor read as an ended session.
    token = env.token("u@example.com")
    with env.platform.db.transaction() as conn:
        conn.execute(update(users).where(users.c.email == "u@example.com").values(deleted_at=env.platform.clock.now()))
    assert err(env.me(token)) == (401, "invalid_credentials")


def test_an_ended_session_of_a_deleted_user_still_reads_as_ended(env: Env) -> None:
    token = env.token("u@example.com")
    assert env.client.delete("/v1/sessions/current", headers=bearer(token)).status_code == 204
    with env.platform.db.transaction() as conn:
        conn.execute(update(users).where(users.c.email == "u@example.com").values(deleted_at=env.platform.clock.now()))
    assert err(env.me(token)) == (401, "session_expired")


def test_idle_session_lives_at_14_59_and_dies_at_15_00(env: Env) -> None:
    token = env.token("u@example.com")
    env.advance(minutes=14, seconds=59)
    assert env.me(token).status_code == 200  # and this use restarts the idle timer
    env.advance(minutes=14, seconds=59)
    assert env.me(token).status_code == 200
    env.advance(minutes=15)
    assert err(env.me(token)) == (401, "session_expired")
    env.advance(seconds=1)
    assert err(env.me(token)) == (401, "session_expired")


def test_last_use_is_written_at_most_once_a_second(env: Env) -> None:
    """Reads do not each become a write: within a second of the stored last use the
    idle timer is left alone, so a session is dead 15:00 after the first use of its
    last second of activity (at most a second early), never late."""
    token = env.token("u@example.com")
    env.advance(minutes=10)
    assert env.me(token).status_code == 200  # stored: 10:00
    env.advance(seconds=0.9)
    assert env.me(token).status_code == 200  # within the second: not stored
    env.advance(minutes=14, seconds=59.0)  # 14:59.9 after the last use, 14:59.9 after the stored one
    assert env.me(token).status_code == 200  # stored again
    env.advance(seconds=0.5)
    assert env.me(token).status_code == 200  # 0.5 s later: not stored
    env.advance(minutes=14, seconds=59.5)  # 15:00.0 after the stored use, 14:59.5 after the last
    assert err(env.me(token)) == (401, "session_expired")


def stored_last_use(env: Env) -> datetime:
    with env.platform.db.transaction(write=False) as conn:
        return to_utc(conn.execute(select(sessions.c.last_seen_at)).scalar_one())


def test_a_request_only_notes_its_last_use_and_the_next_grouped_write_stores_it(
        env: Env, monkeypatch: pytest.MonkeyPatch) -> None:
    """The idle timer's refresh is written behind the request (identity/touch.py): the
    request waits for no write, and the next grouped transaction carries the note."""
    monkeypatch.setattr(touch, "CARRY_WITHIN", 60.0)  # no timer carries it meanwhile
    token = env.token("u@example.com")
    signed_in = env.platform.clock.now()
    env.advance(minutes=10)
    assert env.me(token).status_code == 200
    assert stored_last_use(env) == signed_in  # noted, not written
    listed = env.client.get("/v1/users/me/sessions", headers=bearer(token)).json()["data"]
    assert listed[0]["last_seen_at"] == "2026-01-01T00:10:00Z"  # the note shows all the same
    env.platform.db.run_grouped(lambda conn: None)  # any grouped write (a transfer, say)
    assert stored_last_use(env) == signed_in + timedelta(minutes=10)


def test_notes_no_grouped_write_carries_are_written_within_carry_within(
        env: Env, monkeypatch: pytest.MonkeyPatch) -> None:
    """A process that only answers reads: a timer starts a grouped transaction for the
    notes, so another process serving the session next reads a recent last use."""
    monkeypatch.setattr(touch, "CARRY_WITHIN", 0.05)
    token = env.token("u@example.com")
    env.advance(minutes=14)
    assert env.me(token).status_code == 200
    deadline = time.monotonic() + 10
    while stored_last_use(env) != env.platform.clock.now() and time.monotonic() < deadline:
        time.sleep(0.02)
    assert stored_last_use(env) == env.platform.clock.now()


def test_a_stopping_server_writes_its_notes(db_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(touch, "CARRY_WITHIN", 60.0)  # no timer carries it meanwhile
    for env in make_env(db_url, tmp_path):
        env.sign_up("u@example.com")
        token = env.token("u@example.com")
        env.advance(minutes=3)
        with TestClient(create_app(platform=env.platform, start_worker=False)) as client:
            assert client.get("/v1/users/me", headers=bearer(token)).status_code == 200
            assert stored_last_use(env) < env.platform.clock.now()
        # The lifespan's end stored it (and closed the platform: read with a new one).
        reader = Platform.build(Settings(database_url=db_url))
        try:
            with reader.db.transaction(write=False) as conn:
                assert to_utc(conn.execute(select(sessions.c.last_seen_at)).scalar_one()) == env.platform.clock.now()
        finally:
            reader.close()


def test_session_ends_after_12_hours_however_busy(env: Env) -> None:
    token = env.token("u@example.com")
    for _ in range(71):  # 71 x 10 min = 11 h 50 min, always active
        env.advance(minutes=10)
        assert env.me(token).status_code == 200
    env.advance(minutes=9, seconds=59)
    assert env.me(token).status_code == 200
    env.advance(seconds=1)
    assert err(env.me(token)) == (401, "session_expired")


def test_list_and_revoke_sessions(env: Env) -> None:
    a = env.token("u@example.com")
    env.advance(seconds=1)
    b = env.token("u@example.com")
    r = env.client.get("/v1/users/me/sessions", headers=bearer(a, **{"user-agent": "lister"}))
    assert r.status_code == 200
    body = r.json()
    assert body["object"] == "list" and body["has_more"] is False
    assert [s["current"] for s in body["data"]] == [False, True]  # newest (b) first
    assert all(s["ip"] == "testclient" and s["user_agent"] == "pytest-agent/1.0" for s in body["data"])
    page = env.client.get("/v1/users/me/sessions?limit=1", headers=bearer(a)).json()
    assert page["has_more"] is True and len(page["data"]) == 1
    rest = env.client.get(f"/v1/users/me/sessions?limit=1&starting_after={page['data'][0]['id']}",
                          headers=bearer(a)).json()
    assert rest["has_more"] is False and rest["data"][0]["id"] == body["data"][1]["id"]

    b_id = body["data"][0]["id"]
    assert env.client.delete(f"/v1/users/me/sessions/{b_id}", headers=bearer(a)).status_code == 204
    assert err(env.me(b)) == (401, "session_expired")
    left = env.client.get("/v1/users/me/sessions", headers=bearer(a)).json()["data"]
    assert [s["current"] for s in left] == [True]


def test_another_users_session_is_404_and_untouched(env: Env) -> None:
    env.sign_up("other@example.com")
    theirs = env.token("other@example.com")
    mine = env.token("u@example.com")
    their_id = env.client.get("/v1/users/me/sessions", headers=bearer(theirs)).json()["data"][0]["id"]
    r = env.client.delete(f"/v1/users/me/sessions/{their_id}", headers=bearer(mine))
    assert err(r) == (404, "not_found")
    assert env.me(theirs).status_code == 200
    assert err(env.client.delete("/v1/users/me/sessions/ses_nope", headers=bearer(mine))) == (404, "not_found")


def test_idempotency_keys_are_scoped_to_the_user_not_the_token(env: Env) -> None:
    a, b = env.token("u@example.com"), env.token("u@example.com")
    body = {"channel": "email"}
    first = env.client.post("/v1/users/me/verifications", json=body, headers=bearer(a, **{"Idempotency-Key": "v1"}))
    second = env.client.post("/v1/users/me/verifications", json=body, headers=bearer(b, **{"Idempotency-Key": "v1"}))
    assert first.status_code == second.status_code == 202
    assert second.headers.get("idempotent-replayed") == "true"
    assert len([n for n in env.notes() if n["to"] == "u@example.com"]) == 2  # sign-up + one resend
    env.sign_up("v@example.com")
    c = env.token("v@example.com")
    third = env.client.post("/v1/users/me/verifications", json=body, headers=bearer(c, **{"Idempotency-Key": "v1"}))
    assert third.status_code == 202 and "idempotent-replayed" not in third.headers
