"""Phone verification (channel "phone"): the code is texted through the notification sink
to the sealed phone number, and a verified phone reaches KYC tier 1. Both engines."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import select
from tests.integration.identity_support import Env, bearer, make_env

from trustpay.db.schema import users

EMAIL = "phone@example.com"
PHONE = "+8613800138021"


@pytest.fixture
def env(db_url: str, tmp_path: Path) -> Iterator[Env]:
    yield from make_env(db_url, tmp_path)


def send(env: Env, token: str) -> tuple[int, dict[str, str]]:
    r = env.client.post("/v1/users/me/verifications", json={"channel": "phone"}, headers=bearer(token))
    return r.status_code, (r.json().get("error", {}) if r.content else {})


def confirm(env: Env, token: str, code: str) -> int:
    return env.client.post("/v1/users/me/verifications/confirm", json={"channel": "phone", "code": code},
                           headers=bearer(token)).status_code


def test_phone_code_is_texted_and_verifies_the_phone_to_tier_one(env: Env) -> None:
    user = env.sign_up(EMAIL, phone="+86 138-0013-8021")
    token = env.token(EMAIL)
    assert send(env, token)[0] == 202
    texts = [n for n in env.notes() if n["channel"] == "sms"]
    assert [t["to"] for t in texts] == [PHONE] and texts[0]["code"] in texts[0]["body"]
    wrong = "000000" if texts[0]["code"] != "000000" else "111111"
    assert confirm(env, token, wrong) == 400
    assert confirm(env, token, env.last_code(EMAIL)) == 400  # the e-mail code is for the e-mail only
    assert confirm(env, token, texts[0]["code"]) == 204
    me = env.me(token).json()
    assert (me["phone_verified"], me["email_verified"], me["kyc_tier"]) == (True, False, 1)
    status, error = send(env, token)
    assert (status, error["code"]) == (409, "invalid_state")
    with env.platform.db.transaction(write=False) as conn:
        row = conn.execute(select(users).where(users.c.id == user["id"])).one()
    assert row.phone_enc and "13800138021" not in " ".join(str(v) for v in row)


def test_a_verified_phone_is_enough_to_submit_identity(env: Env) -> None:
    env.sign_up(EMAIL, phone=PHONE)
    token = env.token(EMAIL)
    send(env, token)
    code = [n["code"] for n in env.notes() if n["channel"] == "sms"][-1]
    assert confirm(env, token, code) == 204
    r = env.client.post("/v1/users/me/identity", json={"legal_name": "张三", "id_number": "11010519491231002X"},
                        headers=bearer(token))
    assert (r.status_code, r.json()["kyc_tier"]) == (200, 2)


def test_no_phone_on_file_is_a_clear_400(env: Env) -> None:
    env.sign_up(EMAIL)
    token = env.token(EMAIL)
    status, error = send(env, token)
    assert (status, error["param"]) == (400, "channel") and "no phone number" in error["message"]
    assert not [n for n in env.notes() if n["channel"] == "sms"]
