"""KYC tier 2 over the API, on both engines: identity submission, masks, tier rules,
and no plaintext ID number anywhere in the SQLite database file."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select
from tests.dbs import SqliteFactory
from tests.integration.identity_support import Env, bearer, make_env

from trustpay.db.schema import audit_log, idempotency_keys, users
from trustpay.identity import kyc_service
from trustpay.identity import service as identity

EMAIL = "kyc@example.com"
# GB 11643's published example number: a valid check character and birth date.
ID_NUMBER = "11010519491231002X"
NAME = "张三丰"


@pytest.fixture
def env(db_url: str, tmp_path: Path) -> Iterator[Env]:
    for e in make_env(db_url, tmp_path):
        e.sign_up(EMAIL)
        yield e


def verified_token(env: Env) -> str:
    token = env.token(EMAIL)
    r = env.client.post("/v1/users/me/verifications/confirm",
                        json={"channel": "email", "code": env.last_code(EMAIL)}, headers=bearer(token))
    assert r.status_code == 204, r.text
    return token


def submit(env: Env, token: str, **body: Any) -> Any:
    return env.client.post("/v1/users/me/identity",
                           json={"legal_name": NAME, "id_number": ID_NUMBER, **body}, headers=bearer(token))


def test_tiers_zero_then_one_then_two_with_masked_values(env: Env) -> None:
    token = env.token(EMAIL)
    assert env.me(token).json()["kyc_tier"] == 0
    token = verified_token(env)
    assert env.me(token).json()["kyc_tier"] == 1
    r = submit(env, token)
    assert r.status_code == 200, r.text
    body = r.json()
    assert (body["kyc_tier"], body["legal_name"], body["id_number"], body["id_type"]) == (
        2, "张**", "1101**********002X", "prc_resident")
    me = env.me(token).json()
    assert (me["kyc_tier"], me["legal_name"], me["id_number"]) == (2, "张**", "1101**********002X")
    with env.platform.db.transaction(write=False) as conn:
        assert kyc_service.reveal_identity(env.platform, conn, me["id"]) == (NAME, ID_NUMBER)
        events = conn.execute(select(audit_log.c.event, audit_log.c.resource)
                              .where(audit_log.c.user_id == me["id"])).all()
    assert ("identity.submitted", "prc_resident") in events


def test_unverified_user_gets_403_and_nothing_is_stored(env: Env) -> None:
    token = env.token(EMAIL)
    r = submit(env, token)
    assert (r.status_code, r.json()["error"]["code"]) == (403, "email_unverified")
    with env.platform.db.transaction(write=False) as conn:
        row = conn.execute(select(users).where(users.c.email == EMAIL)).one()
    assert (row.id_number_enc, row.legal_name_enc, row.kyc_tier) == (None, None, 0)


@pytest.mark.parametrize(("field", "value", "code"), [
    ("id_number", "110105194912310021", "invalid_id_number"),   # wrong check character
    ("id_number", "11010519491331002X", "invalid_id_number"),   # 13th month
    ("id_number", "11010520990101002X", "invalid_id_number"),   # born in the future
    ("id_number", "1101051949123100", "invalid_id_number"),     # too short
    ("legal_name", "Robert'); DROP TABLE users;--", "invalid_legal_name"),
    ("legal_name", "  ", "invalid_legal_name"),
])
def test_bad_documents_are_refused_without_partial_state(env: Env, field: str, value: str, code: str) -> None:
    token = verified_token(env)
    r = submit(env, token, **{field: value})
    assert (r.status_code, r.json()["error"]["code"], r.json()["error"]["param"]) == (400, code, field)
    assert value not in r.text or field == "legal_name"
    assert env.me(token).json()["kyc_tier"] == 1


def test_passport_and_second_submission_refused(env: Env) -> None:
    token = verified_token(env)
    r = submit(env, token, legal_name="Jane Q. Public", id_number="e12345678", id_type="passport")
    assert r.status_code == 200, r.text
    assert (r.json()["id_number"], r.json()["legal_name"]) == ("E1*****78", "J" + "*" * 13)
    again = submit(env, token)
    assert (again.status_code, again.json()["error"]["code"]) == (409, "invalid_state")
    assert env.me(token).json()["id_type"] == "passport"


def test_id_number_is_never_returned_logged_or_kept_in_idempotency(env: Env, caplog: pytest.LogCaptureFixture) -> None:
    token = verified_token(env)
    r = env.client.post("/v1/users/me/identity", json={"legal_name": NAME, "id_number": ID_NUMBER},
                        headers=bearer(token, **{"idempotency-key": "kyc-1"}))
    assert r.status_code == 200
    assert ID_NUMBER not in r.text and NAME not in r.text
    assert ID_NUMBER not in caplog.text
    with env.platform.db.transaction(write=False) as conn:
        bodies = conn.execute(select(idempotency_keys.c.response_body)).scalars().all()
    assert bodies and all(ID_NUMBER.encode() not in (b or b"") for b in bodies)


def test_sqlite_file_holds_no_plaintext_identity(sqlite_factory: SqliteFactory, tmp_path: Path) -> None:
    db_url = sqlite_factory.fresh()
    for env in make_env(db_url, tmp_path):
        env.sign_up(EMAIL)
        token = verified_token(env)
        assert submit(env, token).status_code == 200
        env.platform.close()  # checkpoint: the WAL is folded into the main file
    path = Path(db_url.removeprefix("sqlite:///"))
    files = [f for f in path.parent.glob(path.name + "*") if f.is_file()]
    assert path in files
    blob = b"".join(f.read_bytes() for f in files)
    assert "张**".encode() in blob  # the search does see the user's row
    for secret in (ID_NUMBER, ID_NUMBER[:17], NAME):
        for encoding in ("utf-8", "utf-16-le"):
            assert secret.encode(encoding) not in blob


def test_operator_accounts_are_tier_one_from_the_start(env: Env) -> None:
    env.platform.db.run(lambda conn: identity.create_ops_user(env.platform, conn, email="ops@example.com",
                                                              password="ops password 42 strong"))
    assert env.me(env.token("ops@example.com", "ops password 42 strong")).json()["kyc_tier"] == 1
