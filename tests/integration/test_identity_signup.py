"""Sign-up, e-mail verification codes and the wallet opened with the account, on both engines."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import select
from tests.integration.identity_support import PASSWORD, Env, bearer, make_env

from trustpay.db.schema import ledger_accounts, users


@pytest.fixture
def env(db_url: str, tmp_path: Path) -> Iterator[Env]:
    yield from make_env(db_url, tmp_path)


@pytest.mark.parametrize("password", ["short1abc", "onlyletterslongenough", "1234567890123", ""])
def test_weak_passwords_are_refused(env: Env, password: str) -> None:
    r = env.client.post("/v1/users", json={"email": "a@example.com", "password": password})
    assert r.status_code == 400
    assert r.json()["error"] == {
        "type": "invalid_request_error", "code": "weak_password", "param": "password",
        "message": r.json()["error"]["message"],
    }


@pytest.mark.parametrize("email", ["not-an-email", "a@b", "a b@example.com", "@example.com", "x@.com"])
def test_bad_emails_are_refused(env: Env, email: str) -> None:
    r = env.client.post("/v1/users", json={"email": email, "password": PASSWORD})
    assert r.status_code == 400
    err = r.json()["error"]
    assert (err["code"], err["param"]) == ("invalid_request", "email")


def test_sign_up_returns_the_user_and_opens_a_cny_wallet(env: Env) -> None:
    body = env.sign_up("Alice@Example.COM", kind="merchant")
    assert set(body) == {"id", "email", "name", "kind", "kyc_tier", "created_at"}
    assert body["id"].startswith("usr_") and body["email"] == "alice@example.com"
    assert (body["kind"], body["kyc_tier"], body["created_at"]) == ("merchant", 0, "2026-01-01T00:00:00Z")
    with env.platform.db.transaction(write=False) as conn:
        wallets = conn.execute(select(ledger_accounts).where(ledger_accounts.c.owner_id == body["id"])).all()
        row = conn.execute(select(users).where(users.c.id == body["id"])).one()
    assert [(w.kind, w.currency) for w in wallets] == [("wallet", "CNY")]
    assert row.password_hash.startswith("$argon2id$")


def test_duplicate_email_is_409_without_naming_the_field(env: Env) -> None:
    env.sign_up("bob@example.com")
    r = env.client.post("/v1/users", json={"email": "BOB@example.com", "password": PASSWORD})
    assert r.status_code == 409
    err = r.json()["error"]
    assert err["code"] == "already_exists" and "param" not in err
    assert "mail" not in err["message"].lower()
    with env.platform.db.transaction(write=False) as conn:
        assert len(conn.execute(select(users.c.id)).all()) == 1


def test_phone_is_stored_only_masked_and_keyed(env: Env) -> None:
    body = env.sign_up("p@example.com", phone="+86 138-0013-8021")
    with env.platform.db.transaction(write=False) as conn:
        row = conn.execute(select(users).where(users.c.id == body["id"])).one()
    stored = " ".join(str(v) for v in row)
    assert "8613800138021" not in stored and "13800138021" not in stored
    assert row.phone_masked == "+861********21"
    r = env.client.post("/v1/users", json={"email": "q@example.com", "password": PASSWORD,
                                           "phone": "+8613800138021"})
    assert r.status_code == 409 and r.json()["error"]["code"] == "already_exists"


def test_code_from_the_file_sink_verifies_the_email(env: Env) -> None:
    env.sign_up("c@example.com")
    token = env.token("c@example.com")
    assert env.me(token).json()["email_verified"] is False
    code = env.last_code("c@example.com")
    assert len(code) == 6 and code.isdigit()
    r = env.client.post("/v1/users/me/verifications/confirm", json={"channel": "email", "code": code},
                        headers=bearer(token))
    assert r.status_code == 204, r.text
    me = env.me(token).json()
    assert (me["email_verified"], me["kyc_tier"], me["phone_verified"]) == (True, 1, False)
    assert (me["mfa_enabled"], me["frozen"]) == (False, False)
    again = env.client.post("/v1/users/me/verifications/confirm", json={"channel": "email", "code": code},
                            headers=bearer(token))
    assert again.status_code == 400  # a code works once


def test_wrong_codes_burn_the_code_after_five_attempts(env: Env) -> None:
    env.sign_up("d@example.com")
    token = env.token("d@example.com")
    good = env.last_code("d@example.com")
    bad = f"{(int(good) + 1) % 10**6:06d}"
    for _ in range(5):
        r = env.client.post("/v1/users/me/verifications/confirm", json={"channel": "email", "code": bad},
                            headers=bearer(token))
        assert (r.status_code, r.json()["error"]["code"]) == (400, "invalid_code")
    r = env.client.post("/v1/users/me/verifications/confirm", json={"channel": "email", "code": good},
                        headers=bearer(token))
    assert r.status_code == 400
    assert env.client.post("/v1/users/me/verifications", json={"channel": "email"},
                           headers=bearer(token)).status_code == 202
    fresh = env.last_code("d@example.com")
    r = env.client.post("/v1/users/me/verifications/confirm", json={"channel": "email", "code": fresh},
                        headers=bearer(token))
    assert r.status_code == 204
    assert env.me(token).json()["email_verified"] is True


def test_codes_expire_after_15_minutes(env: Env) -> None:
    env.sign_up("e@example.com")
    code = env.last_code("e@example.com")
    env.advance(minutes=15)
    token = env.token("e@example.com")
    r = env.client.post("/v1/users/me/verifications/confirm", json={"channel": "email", "code": code},
                        headers=bearer(token))
    assert r.status_code == 400
    assert env.me(token).json()["email_verified"] is False


def test_sign_up_with_idempotency_key_takes_effect_once(env: Env) -> None:
    payload = {"email": "f@example.com", "password": PASSWORD}
    first = env.client.post("/v1/users", json=payload, headers={"Idempotency-Key": "k1"})
    second = env.client.post("/v1/users", json=payload, headers={"Idempotency-Key": "k1"})
    assert first.status_code == second.status_code == 201
    assert first.content == second.content and second.headers.get("idempotent-replayed") == "true"
    with env.platform.db.transaction(write=False) as conn:
        assert len(conn.execute(select(users.c.id)).all()) == 1
    assert len([n for n in env.notes() if n["to"] == "f@example.com"]) == 1


def test_resend_after_verification_and_phone_channel_are_refused(env: Env) -> None:
    env.sign_up("g@example.com")
    token = env.token("g@example.com")
    phone = env.client.post("/v1/users/me/verifications", json={"channel": "phone"}, headers=bearer(token))
    assert (phone.status_code, phone.json()["error"]["param"]) == (400, "channel")
    code = env.last_code("g@example.com")
    env.client.post("/v1/users/me/verifications/confirm", json={"channel": "email", "code": code},
                    headers=bearer(token))
    again = env.client.post("/v1/users/me/verifications", json={"channel": "email"}, headers=bearer(token))
    assert (again.status_code, again.json()["error"]["code"]) == (409, "invalid_state")
