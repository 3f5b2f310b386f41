"""The webhook routes over HTTP (the real app, frozen clock) on SQLite and PostgreSQL,
and the wallet's own events reaching a merchant's endpoint."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import select
from tests.integration.identity_support import bearer, make_env
from tests.integration.wallet_support import PAY_PW, Wallet, WalletEnv, make_wallet_env
from tests.integration.webhook_support import Receiver, receiver

from trustpay.banks.registry import sandbox_bank
from trustpay.db.schema import idempotency_keys, webhook_endpoints
from trustpay.jobs.runner import run_until_idle


@pytest.fixture
def w(db_url: str, tmp_path: Path) -> Iterator[WalletEnv]:
    yield from make_wallet_env(db_url, tmp_path, webhook_allow_private=True,
                               bank_sandbox_data_dir=str(tmp_path / "bank"), bank_sandbox_settle_seconds=2)


@pytest.fixture
def rx() -> Iterator[Receiver]:
    yield from receiver()


def shop(w: WalletEnv, email: str = "shop@example.com", **kw: object) -> Wallet:
    return w.user(email, kind="merchant", **kw)  # type: ignore[arg-type]


def create(w: WalletEnv, m: Wallet, url: str, events: object = "*", **headers: str) -> dict[str, object]:
    """As the merchant user (or with ``authorization=`` another credential)."""
    r = w.client.post("/v1/webhook-endpoints", json={"url": url, "events": events},
                      headers={**m.auth, **{k.replace("_", "-"): v for k, v in headers.items()}})
    assert r.status_code == 201, r.text
    return dict(r.json())


def test_endpoint_lifecycle(w: WalletEnv, rx: Receiver) -> None:
    m = shop(w)
    made = create(w, m, rx.url, ["topup.succeeded"])
    assert set(made) == {"id", "object", "url", "events", "status", "disabled_reason", "created_at", "secret"}
    assert str(made["id"]).startswith("whe_") and str(made["secret"]).startswith("whsec_")
    assert (made["url"], made["events"], made["status"]) == (rx.url, ["topup.succeeded"], "active")
    ep = made["id"]

    got = w.client.get(f"/v1/webhook-endpoints/{ep}", headers=m.auth).json()
    assert "secret" not in got and got["id"] == ep  # shown once
    listed = w.client.get("/v1/webhook-endpoints", headers=m.auth).json()
    assert listed["object"] == "list" and [e["id"] for e in listed["data"]] == [ep]
    assert "secret" not in json.dumps(listed)

    r = w.client.patch(f"/v1/webhook-endpoints/{ep}", json={"events": "*", "status": "disabled"}, headers=m.auth)
    assert r.status_code == 200, r.text
    assert (r.json()["events"], r.json()["status"]) == ("*", "disabled")
    r = w.client.patch(f"/v1/webhook-endpoints/{ep}", json={"status": "active"}, headers=m.auth)
    assert (r.json()["status"], r.json()["disabled_reason"]) == ("active", None)

    w.clock.advance(1)  # ids sort by creation time: a later millisecond
    second = create(w, m, rx.url)["id"]
    page1 = w.client.get("/v1/webhook-endpoints?limit=1", headers=m.auth).json()
    assert [e["id"] for e in page1["data"]] == [second] and page1["has_more"] is True
    page2 = w.client.get(f"/v1/webhook-endpoints?limit=1&starting_after={second}", headers=m.auth).json()
    assert [e["id"] for e in page2["data"]] == [ep] and page2["has_more"] is False
    assert w.client.delete(f"/v1/webhook-endpoints/{second}", headers=m.auth).status_code == 204

    rolled = w.client.post(f"/v1/webhook-endpoints/{ep}/roll-secret", headers=m.auth)
    assert rolled.status_code == 200 and rolled.json()["secret"] not in (None, made["secret"])

    assert w.client.delete(f"/v1/webhook-endpoints/{ep}", headers=m.auth).status_code == 204
    assert w.client.get(f"/v1/webhook-endpoints/{ep}", headers=m.auth).status_code == 404
    assert w.client.get("/v1/webhook-endpoints", headers=m.auth).json()["data"] == []


def test_bad_input_is_a_clear_400(w: WalletEnv, rx: Receiver) -> None:
    m = shop(w)
    for body, code in [({"url": "ftp://example.com/x", "events": "*"}, "invalid_url"),
                       ({"url": "https://user:pw@example.com/", "events": "*"}, "invalid_url"),
                       ({"url": "https://nowhere.invalid/", "events": "*"}, "invalid_url"),
                       ({"url": rx.url, "events": ["trade.exploded"]}, "invalid_request"),
                       ({"url": rx.url, "events": []}, "invalid_request")]:
        r = w.client.post("/v1/webhook-endpoints", json=body, headers=m.auth)
        assert r.status_code == 400, (body, r.text)
        assert r.json()["error"]["code"] == code, r.text
    r = w.client.post("/v1/webhook-endpoints", json={"url": rx.url}, headers=m.auth)
    assert r.status_code in (400, 422), r.text  # events is required


def test_private_addresses_are_refused_unless_the_operator_allows_them(db_url: str, tmp_path: Path) -> None:
    for env in make_env(db_url, tmp_path, bank_sandbox_data_dir=str(tmp_path / "bank")):
        env.sign_up("shop@example.com", kind="merchant")
        token = env.token("shop@example.com")
        for url in ("http://127.0.0.1:8080/hook", "http://localhost/hook", "http://[::1]/hook",
                    "http://[::ffff:127.0.0.1]/hook", "http://169.254.169.254/latest/meta-data",
                    "http://10.1.2.3/hook", "http://192.168.0.10/hook"):
            r = env.client.post("/v1/webhook-endpoints", json={"url": url, "events": "*"}, headers=bearer(token))
            assert r.status_code == 400, (url, r.text)
            err = r.json()["error"]
            assert (err["code"], err["param"]) == ("url_not_allowed", "url"), err


def test_only_merchants_may_register_and_a_key_works_too(w: WalletEnv, rx: Receiver) -> None:
    person = w.user("person@example.com")
    r = w.client.post("/v1/webhook-endpoints", json={"url": rx.url, "events": "*"}, headers=person.auth)
    assert r.status_code == 403 and r.json()["error"]["code"] == "forbidden"
    assert w.client.get("/v1/webhook-endpoints").status_code == 401
    m = shop(w)
    key = w.client.post("/v1/merchant/api-keys", json={"label": "server"}, headers=m.auth).json()
    made = create(w, m, rx.url, authorization=f"Bearer {key['secret']}")
    listed = w.client.get("/v1/webhook-endpoints", headers=m.auth).json()["data"]
    assert [e["id"] for e in listed] == [made["id"]]  # the key's endpoint is the merchant's
    w.client.delete(f"/v1/merchant/api-keys/{key['id']}", headers=m.auth)
    r = w.client.get("/v1/webhook-endpoints", headers=bearer(str(key["secret"])))
    assert r.status_code == 401


def test_an_idempotent_retry_makes_no_second_endpoint_and_never_replays_the_secret(
        w: WalletEnv, rx: Receiver) -> None:
    m = shop(w)
    first = create(w, m, rx.url, Idempotency_Key="hook-1")
    r = w.client.post("/v1/webhook-endpoints", json={"url": rx.url, "events": "*"},
                      headers={**m.auth, "Idempotency-Key": "hook-1"})
    assert r.status_code == 201 and r.headers.get("Idempotent-Replayed") == "true"
    assert r.json()["id"] == first["id"] and r.json()["secret"] is None
    assert len(w.client.get("/v1/webhook-endpoints", headers=m.auth).json()["data"]) == 1
    # The secret is nowhere in the database in the clear: sealed in its row, absent from the replay store.
    with w.platform.db.transaction(write=False) as conn:
        for table in (webhook_endpoints, idempotency_keys):
            for row in conn.execute(select(table)).all():
                assert str(first["secret"]) not in repr(tuple(row)), table.name


def test_delivery_log_and_resend(w: WalletEnv, rx: Receiver) -> None:
    m = shop(w)
    payer = w.user("payer@example.com", fund=50_000)
    ep = create(w, m, rx.url)["id"]
    rx.script = [500]
    assert w.transfer(payer, m.id, 1_000).status_code == 201
    run_until_idle(w.platform)
    log = w.client.get(f"/v1/webhook-endpoints/{ep}/deliveries", headers=m.auth).json()
    (d,) = log["data"]
    assert (d["event_type"], d["status"], d["attempts"], d["last_status_code"]) == \
        ("transfer.completed", "pending", 1, 500)
    assert d["next_attempt_at"] is not None
    w.advance(6)
    (d,) = w.client.get(f"/v1/webhook-endpoints/{ep}/deliveries?status=succeeded", headers=m.auth).json()["data"]
    assert (d["attempts"], d["last_status_code"], d["next_attempt_at"]) == (2, 200, None)

    r = w.client.post(f"/v1/webhook-deliveries/{d['id']}/resend", headers=m.auth)
    assert r.status_code == 200 and (r.json()["status"], r.json()["attempts"]) == ("pending", 0)
    run_until_idle(w.platform)
    assert len(rx.received) == 3 and len(set(rx.bodies())) == 1
    other = shop(w, "rival@example.com")
    assert w.client.post(f"/v1/webhook-deliveries/{d['id']}/resend", headers=other.auth).status_code == 404
    assert w.client.get(f"/v1/webhook-endpoints/{ep}/deliveries", headers=other.auth).status_code == 404


def test_wallet_events_reach_the_merchants_endpoint(w: WalletEnv, rx: Receiver) -> None:
    m = shop(w, fund=100_000)
    payer = w.user("payer@example.com", fund=50_000)
    create(w, m, rx.url)
    card = w.client.post("/v1/bank-cards", json={"card_number": "4111111111111111", "holder_name": "Shop"},
                         headers=m.auth).json()["id"]
    declined = w.client.post("/v1/bank-cards", json={"card_number": "4000000000000002", "holder_name": "Shop"},
                             headers=m.auth).json()["id"]

    assert w.transfer(payer, m.id, 1_000).status_code == 201
    r = w.client.post("/v1/topups", json={"card": card, "amount": 2_000}, headers=m.auth)
    assert r.status_code == 201, r.text
    for c in (card, declined):
        r = w.client.post("/v1/withdrawals", json={"card": c, "amount": 500, "payment_password": PAY_PW},
                          headers=m.auth)
        assert r.status_code == 201, r.text
    for _ in range(3):  # the sandbox bank settles, calls back; the worker delivers
        w.clock.advance(3)
        sandbox_bank(w.platform).tick()
        run_until_idle(w.platform)

    types = [json.loads(b)["type"] for b in rx.bodies()]
    assert sorted(types) == ["topup.succeeded", "transfer.completed", "withdrawal.failed", "withdrawal.succeeded"]
    # The payer's own events are not the merchant's.
    assert all(json.loads(b)["data"]["object"].get("sender", m.id) != m.id for b in rx.bodies()
               if json.loads(b)["type"] == "transfer.completed")
