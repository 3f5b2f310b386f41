"""Merchant secret API keys and the merchant caller, over the API on both engines:
create (secret once), list (never the secret), revoke (401 at once, even mid-flight),
personal users refused, secrets only ever stored as hashes."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi import APIRouter, Request, Response
from sqlalchemy import Connection, MetaData, select
from tests.integration.identity_support import Env, bearer, make_env

from trustpay.api.idempotency import idempotent
from trustpay.db.schema import merchant_api_keys
from trustpay.merchants.auth import MerchantCaller, ensure_key_active
from trustpay.merchants.model import LAST_USED_GRANULARITY, secret_hash


@pytest.fixture
def env(db_url: str, tmp_path: Path) -> Iterator[Env]:
    yield from make_env(db_url, tmp_path)


def merchant(env: Env, email: str = "shop@example.com") -> str:
    env.sign_up(email, kind="merchant")
    return env.token(email)


def new_key(env: Env, token: str, label: str = "", **headers: str) -> dict[str, Any]:
    r = env.client.post("/v1/merchant/api-keys", json={"label": label}, headers=bearer(token, **headers))
    assert r.status_code == 201, r.text
    body: dict[str, Any] = r.json()
    return body


def profile(env: Env, credential: str) -> Any:
    return env.client.get("/v1/merchant/profile", headers=bearer(credential))


def test_a_new_key_is_shown_once_and_authenticates_as_its_merchant(env: Env) -> None:
    token = merchant(env)
    me = env.me(token).json()
    key = new_key(env, token, "checkout server")
    assert key["secret"].startswith("sk_live_") and len(key["secret"]) == len("sk_live_") + 43
    assert key["prefix"] == key["secret"][:12] and key["label"] == "checkout server"
    assert key["status"] == "active" and key["id"].startswith("key_") and key["last_used_at"] is None
    r = profile(env, key["secret"])
    assert r.status_code == 200, r.text
    assert r.json()["id"] == me["id"]
    # Lists and single reads never carry the secret.
    listed = env.client.get("/v1/merchant/api-keys", headers=bearer(token)).json()
    assert listed["object"] == "list" and listed["has_more"] is False
    assert [k["id"] for k in listed["data"]] == [key["id"]]
    assert "secret" not in listed["data"][0] and key["secret"] not in str(listed)
    one = env.client.get(f"/v1/merchant/api-keys/{key['id']}", headers=bearer(token)).json()
    assert "secret" not in one and one["last_used_at"] is not None


def test_several_keys_work_at_once_and_revoking_one_leaves_the_others(env: Env) -> None:
    token = merchant(env)
    keys = []
    for label in ("a", "b", "c"):
        env.advance(seconds=1)  # ids of one millisecond do not sort by creation
        keys.append(new_key(env, token, label))
    a, b, c = keys
    assert len({a["secret"], b["secret"], c["secret"]}) == 3
    for k in (a, b, c):
        assert profile(env, k["secret"]).status_code == 200
    r = env.client.delete(f"/v1/merchant/api-keys/{b['id']}", headers=bearer(token))
    assert r.status_code == 200 and r.json()["status"] == "revoked" and r.json()["revoked_at"]
    refused = profile(env, b["secret"])
    assert refused.status_code == 401
    assert refused.json()["error"] == {"type": "authentication_error", "code": "invalid_credentials",
                                       "message": refused.json()["error"]["message"]}
    assert profile(env, a["secret"]).status_code == 200 and profile(env, c["secret"]).status_code == 200
    # Active only by default (newest first); revoked ones on request; paging follows API.md.
    listed = env.client.get("/v1/merchant/api-keys", headers=bearer(token)).json()["data"]
    assert [k["id"] for k in listed] == [c["id"], a["id"]]
    page1 = env.client.get("/v1/merchant/api-keys?include_revoked=true&limit=2", headers=bearer(token)).json()
    assert [k["id"] for k in page1["data"]] == [c["id"], b["id"]] and page1["has_more"] is True
    page2 = env.client.get(f"/v1/merchant/api-keys?include_revoked=true&limit=2&starting_after={b['id']}",
                           headers=bearer(token)).json()
    assert [k["id"] for k in page2["data"]] == [a["id"]] and page2["has_more"] is False
    # Revoking again changes nothing.
    again = env.client.delete(f"/v1/merchant/api-keys/{b['id']}", headers=bearer(token))
    assert again.status_code == 200 and again.json()["revoked_at"] == r.json()["revoked_at"]


def test_unknown_and_malformed_keys_are_401(env: Env) -> None:
    merchant(env)
    for credential in ("sk_live_" + "A" * 43, "sk_test_x", "nonsense"):
        r = profile(env, credential)
        assert r.status_code == 401 and r.json()["error"]["code"] == "invalid_credentials", credential
    assert env.client.get("/v1/merchant/profile").status_code == 401


def test_a_personal_user_is_forbidden_and_a_key_cannot_mint_or_manage_keys(env: Env) -> None:
    env.sign_up("alice@example.com")
    alice = env.token("alice@example.com")
    for r in (profile(env, alice), env.client.post("/v1/merchant/api-keys", headers=bearer(alice)),
              env.client.get("/v1/merchant/api-keys", headers=bearer(alice))):
        assert r.status_code == 403 and r.json()["error"]["code"] == "forbidden", r.text
    token = merchant(env)
    key = new_key(env, token)
    for r in (env.client.post("/v1/merchant/api-keys", headers=bearer(key["secret"])),
              env.client.delete(f"/v1/merchant/api-keys/{key['id']}", headers=bearer(key["secret"])),
              env.client.patch("/v1/merchant/profile", json={"display_name": "x"}, headers=bearer(key["secret"]))):
        assert r.status_code == 403 and r.json()["error"]["code"] == "forbidden", r.text
    assert profile(env, key["secret"]).status_code == 200  # still alive: none of that touched it


def test_another_merchants_key_is_not_found(env: Env) -> None:
    mine = merchant(env, "one@example.com")
    theirs = merchant(env, "two@example.com")
    key = new_key(env, theirs)
    assert env.client.delete(f"/v1/merchant/api-keys/{key['id']}", headers=bearer(mine)).status_code == 404
    assert env.client.get(f"/v1/merchant/api-keys/{key['id']}", headers=bearer(mine)).status_code == 404
    assert profile(env, key["secret"]).status_code == 200


def test_a_key_revoked_while_its_request_is_under_way_is_refused_before_commit(env: Env) -> None:
    """The dependency let the request in; the revoke lands before its effect; ensure_key_active
    (what money-moving services call inside their transaction) refuses it with 401."""
    token = merchant(env)
    key = new_key(env, token)
    router = APIRouter()
    p = env.platform

    @router.post("/_probe/merchant-effect")
    def probe(caller: MerchantCaller) -> dict[str, str]:
        env.client.delete(f"/v1/merchant/api-keys/{key['id']}", headers=bearer(token))  # mid-flight

        def effect(conn: Connection) -> dict[str, str]:
            ensure_key_active(conn, caller)
            return {"merchant": caller.merchant_id}

        return p.db.run(effect)

    env.app.include_router(router)
    r = env.client.post("/_probe/merchant-effect", headers=bearer(key["secret"]))
    assert r.status_code == 401 and r.json()["error"]["code"] == "invalid_credentials", r.text


def test_last_used_is_recorded_at_most_once_a_minute(env: Env) -> None:
    token = merchant(env)
    key = new_key(env, token)

    def last_used() -> Any:
        return env.platform.db.run(lambda conn: conn.execute(
            select(merchant_api_keys.c.last_used_at).where(merchant_api_keys.c.id == key["id"])).scalar())

    assert profile(env, key["secret"]).status_code == 200
    first = last_used()
    assert first is not None
    env.advance(seconds=LAST_USED_GRANULARITY.total_seconds() - 1)
    assert profile(env, key["secret"]).status_code == 200
    assert last_used() == first
    env.advance(seconds=1)
    assert profile(env, key["secret"]).status_code == 200
    assert last_used() > first


def test_idempotent_creation_makes_one_key_and_never_stores_the_secret(env: Env) -> None:
    token = merchant(env)
    first = env.client.post("/v1/merchant/api-keys", json={"label": "ci"},
                            headers=bearer(token, **{"Idempotency-Key": "mint-1"}))
    again = env.client.post("/v1/merchant/api-keys", json={"label": "ci"},
                            headers=bearer(token, **{"Idempotency-Key": "mint-1"}))
    assert first.status_code == again.status_code == 201
    assert first.json()["secret"].startswith("sk_") and again.json()["secret"] is None
    assert again.json()["id"] == first.json()["id"] and again.headers["idempotent-replayed"] == "true"
    listed = env.client.get("/v1/merchant/api-keys", headers=bearer(token)).json()["data"]
    assert len(listed) == 1
    different = env.client.post("/v1/merchant/api-keys", json={"label": "other"},
                                headers=bearer(token, **{"Idempotency-Key": "mint-1"}))
    assert different.status_code == 422
    assert_nowhere_in_database(env, first.json()["secret"])
    stored = env.platform.db.run(lambda conn: conn.execute(
        select(merchant_api_keys.c.secret_hash).where(merchant_api_keys.c.id == first.json()["id"])).scalar())
    assert stored == secret_hash(first.json()["secret"])


def test_no_secret_is_stored_in_plaintext_anywhere(env: Env) -> None:
    token = merchant(env)
    secrets = [new_key(env, token, f"k{i}")["secret"] for i in range(3)]
    for s in secrets:
        assert profile(env, s).status_code == 200
    newest = env.client.get("/v1/merchant/api-keys", headers=bearer(token)).json()["data"][0]
    assert env.client.delete(f"/v1/merchant/api-keys/{newest['id']}", headers=bearer(token)).status_code == 200
    for s in secrets:
        assert_nowhere_in_database(env, s)
        assert_nowhere_in_database(env, s[len("sk_live_"):])  # nor its random part alone


def assert_nowhere_in_database(env: Env, needle: str) -> None:
    """Every text-ish column of every table, read back and searched."""
    md = MetaData()

    def scan(conn: Connection) -> list[str]:
        md.reflect(conn)
        hits = []
        for table in md.sorted_tables:
            for row in conn.execute(select(table)).all():
                for value in row:
                    blob = value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)
                    if needle in blob:
                        hits.append(table.name)
        return hits

    assert env.platform.db.run(scan, write=False) == []
    if env.platform.db.engine.dialect.name == "sqlite":  # and the raw file, free pages included
        path = env.platform.db.engine.url.database
        assert path
        for suffix in ("", "-wal"):
            f = Path(path + suffix)
            if f.exists():
                assert needle.encode() not in f.read_bytes()


def test_idempotency_keys_sent_with_a_secret_key_belong_to_its_merchant(env: Env) -> None:
    """A retry that switches from the merchant's key to its session (or to another of its keys)
    is the same caller: replayed, not run twice. Another merchant has a key space of its own."""
    token = merchant(env)
    k1, k2 = new_key(env, token), new_key(env, token)
    other = new_key(env, merchant(env, "other@example.com"))
    runs: list[str] = []
    router = APIRouter()
    p = env.platform

    @router.post("/_probe/merchant-idempotent")
    def probe(request: Request, caller: MerchantCaller) -> Response:
        def effect(conn: Connection) -> tuple[int, dict[str, str]]:
            runs.append(caller.merchant_id)
            return 201, {"merchant": caller.merchant_id}
        return idempotent(request, p, effect=effect)

    env.app.include_router(router)
    key = {"Idempotency-Key": "order-42"}
    first = env.client.post("/_probe/merchant-idempotent", json={}, headers=bearer(k1["secret"], **key))
    assert first.status_code == 201, first.text
    for credential in (k2["secret"], token):
        again = env.client.post("/_probe/merchant-idempotent", json={}, headers=bearer(credential, **key))
        assert again.status_code == 201 and again.headers["idempotent-replayed"] == "true"
        assert again.content == first.content
    theirs = env.client.post("/_probe/merchant-idempotent", json={}, headers=bearer(other["secret"], **key))
    assert theirs.status_code == 201 and "idempotent-replayed" not in theirs.headers
    assert len(runs) == 2 and runs[0] != runs[1]
