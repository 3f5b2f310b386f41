"""The merchant profile on both engines: defaults from settings, display name, settlement
card (only the merchant's own active card) and T+N, the fee plan only ops may set, and
``fee_plan()`` as the trade code reads it."""

from __future__ import annotations

import io
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from rich.console import Console
from sqlalchemy import select, update
from tests.integration.identity_support import Env, bearer, make_env

from trustpay.db.schema import audit_log, merchant_profiles, users
from trustpay.demo import DEMO_PASSWORD, seed
from trustpay.merchants import service
from trustpay.wallet.model import FeePlan

SETTINGS: dict[str, Any] = dict(merchant_fee_bank_rate=Decimal("0.0035"), merchant_fee_margin=Decimal("0.0025"),
                                merchant_fee_fixed=0, merchant_fee_minimum=1, merchant_settlement_delay_days=2)


@pytest.fixture
def env(db_url: str, tmp_path: Path) -> Iterator[Env]:
    yield from make_env(db_url, tmp_path, bank_sandbox_data_dir=str(tmp_path / "bank"), **SETTINGS)


def merchant(env: Env, email: str = "shop@example.com", name: str = "T") -> tuple[str, str]:
    r = env.client.post("/v1/users", json={"email": email, "password": "correct horse 42 battery",
                                          "name": name, "kind": "merchant"})
    assert r.status_code == 201, r.text
    return str(r.json()["id"]), env.token(email)


def ops(env: Env) -> str:
    body = env.sign_up("ops@example.com")
    env.platform.db.run(lambda conn: conn.execute(update(users).where(users.c.id == body["id"]).values(kind="ops")))
    return env.token("ops@example.com")


def card(env: Env, token: str, number: str = "4111111111111111") -> str:
    r = env.client.post("/v1/bank-cards", json={"bank": "sandbox", "card_number": number, "holder_name": "Li"},
                        headers=bearer(token))
    assert r.status_code == 201, r.text
    return str(r.json()["id"])


def get(env: Env, token: str) -> dict[str, Any]:
    r = env.client.get("/v1/merchant/profile", headers=bearer(token))
    assert r.status_code == 200, r.text
    body: dict[str, Any] = r.json()
    return body


def patch(env: Env, token: str, **body: Any) -> Any:
    return env.client.patch("/v1/merchant/profile", json=body, headers=bearer(token))


def test_a_new_merchant_sees_the_operators_defaults(env: Env) -> None:
    mid, token = merchant(env, name="Tea House")
    prof = get(env, token)
    assert prof == {"object": "merchant_profile", "id": mid, "display_name": "Tea House",
                    "fee_plan": {"bank_rate": "0.0035", "margin": "0.0025", "rate": "0.006", "fixed": 0,
                                 "minimum": 1, "is_default": True},
                    "settlement_card_id": None, "settlement_delay_days": 2, "updated_at": None}
    plan = env.platform.db.run(lambda conn: service.fee_plan(env.platform, conn, mid), write=False)
    assert plan == FeePlan(fixed=0, bank_rate=Decimal("0.0035"), margin=Decimal("0.0025"), minimum=1)
    assert plan.fee_for(10_000) == 60 and plan.fee_for(10) == 1  # the minimum


def test_the_merchant_sets_name_card_and_delay(env: Env) -> None:
    mid, token = merchant(env)
    c = card(env, token)
    r = patch(env, token, display_name="  Tea House  ", settlement_card_id=c, settlement_delay_days=0)
    assert r.status_code == 200, r.text
    assert (r.json()["display_name"], r.json()["settlement_card_id"], r.json()["settlement_delay_days"]) == \
        ("Tea House", c, 0)
    p = env.platform
    assert p.db.run(lambda conn: service.settlement_card_id(conn, mid), write=False) == c
    assert p.db.run(lambda conn: service.settlement_delay_days(p, conn, mid), write=False) == 0
    # Fields not sent stay; null clears the card and restores the default delay.
    r = patch(env, token, settlement_card_id=None, settlement_delay_days=None)
    assert r.json()["display_name"] == "Tea House" and r.json()["settlement_card_id"] is None
    assert r.json()["settlement_delay_days"] == 2
    events = p.db.run(lambda conn: conn.execute(select(audit_log.c.event).where(
        audit_log.c.user_id == mid, audit_log.c.event == "merchant.profile.updated")).scalars().all())
    assert len(events) == 2


def test_a_card_that_is_not_the_merchants_own_and_active_is_refused(env: Env) -> None:
    _, token = merchant(env)
    _, other = merchant(env, "other@example.com")
    theirs = card(env, other)
    r = patch(env, token, settlement_card_id=theirs)
    assert r.status_code == 404 and r.json()["error"]["code"] == "not_found"
    mine = card(env, token, "5500000000000004")
    assert env.client.delete(f"/v1/bank-cards/{mine}", headers=bearer(token)).status_code == 204
    r = patch(env, token, settlement_card_id=mine)
    assert r.status_code == 409 and r.json()["error"]["code"] == "invalid_state"
    assert get(env, token)["settlement_card_id"] is None


def test_a_card_unbound_after_it_was_chosen_is_no_settlement_target(env: Env) -> None:
    mid, token = merchant(env)
    c = card(env, token)
    assert patch(env, token, settlement_card_id=c).status_code == 200
    assert env.client.delete(f"/v1/bank-cards/{c}", headers=bearer(token)).status_code == 204
    assert env.platform.db.run(lambda conn: service.settlement_card_id(conn, mid), write=False) is None


@pytest.mark.parametrize("body", [{"display_name": ""}, {"settlement_delay_days": 31},
                                  {"settlement_delay_days": -1}, {"display_name": "x" * 121}])
def test_bad_profile_input_is_400_or_422(env: Env, body: dict[str, Any]) -> None:
    _, token = merchant(env)
    r = patch(env, token, **body)
    assert r.status_code in {400, 422}, r.text
    assert get(env, token)["updated_at"] is None


def test_only_ops_set_the_fee_plan_and_unset_parts_follow_the_defaults(env: Env) -> None:
    mid, token = merchant(env)
    url = f"/v1/ops/merchants/{mid}/fee-plan"
    # The merchant itself, or any non-ops user: the same 404 as an unknown merchant.
    for who in (token, env.token(env.sign_up("alice@example.com")["email"])):
        r = env.client.put(url, json={"margin": "0"}, headers=bearer(who))
        assert r.status_code == 404, r.text
    staff = ops(env)
    r = env.client.put(url, json={"margin": "0.0010", "fixed": 50}, headers=bearer(staff))
    assert r.status_code == 200, r.text
    assert r.json()["fee_plan"] == {"bank_rate": "0.0035", "margin": "0.001", "rate": "0.0045", "fixed": 50,
                                    "minimum": 1, "is_default": False}
    assert get(env, token)["fee_plan"] == r.json()["fee_plan"]  # the merchant reads it
    plan = env.platform.db.run(lambda conn: service.fee_plan(env.platform, conn, mid), write=False)
    assert plan.fee_for(10_000) == 50 + 45
    # Both trails record it: the merchant can see who changed its price.
    trail = env.client.get("/v1/users/me/audit-log", headers=bearer(token)).json()["data"]
    assert "merchant.fee_plan.set" in [e["event"] for e in trail]
    # PUT replaces: an empty plan is the defaults again.
    r = env.client.put(url, json={}, headers=bearer(staff))
    assert r.json()["fee_plan"]["is_default"] is True and r.json()["fee_plan"]["rate"] == "0.006"


@pytest.mark.parametrize("body", [{"bank_rate": "1"}, {"margin": "-0.1"}, {"margin": "abc"}, {"fixed": -1},
                                  {"bank_rate": "0.00000001"}])
def test_bad_fee_plans_are_refused(env: Env, body: dict[str, Any]) -> None:
    mid, _ = merchant(env)
    r = env.client.put(f"/v1/ops/merchants/{mid}/fee-plan", json=body, headers=bearer(ops(env)))
    assert r.status_code in {400, 422}, r.text


def test_fee_plan_of_a_personal_user_or_nobody_is_404_for_ops(env: Env) -> None:
    staff = ops(env)
    alice = env.sign_up("alice@example.com")
    for target in (alice["id"], "usr_doesnotexist"):
        r = env.client.put(f"/v1/ops/merchants/{target}/fee-plan", json={}, headers=bearer(staff))
        assert r.status_code == 404 and r.json()["error"]["code"] == "not_found"


def test_fee_plan_for_a_merchant_without_a_profile_row_is_the_default(env: Env) -> None:
    mid, _ = merchant(env)
    p = env.platform
    assert p.db.run(lambda conn: service.fee_plan(p, conn, mid), write=False) == service.default_fee_plan(p)
    assert p.db.run(lambda conn: service.settlement_delay_days(p, conn, mid), write=False) == 2


def test_demo_seeding_gives_the_demo_shop_a_profile(env: Env) -> None:
    for _ in range(2):  # idempotent
        seed(Console(file=io.StringIO()), env.platform)
    rows = env.platform.db.run(lambda conn: conn.execute(select(merchant_profiles)).all(), write=False)
    assert [r.display_name for r in rows] == ["Lotus Tea Shop"]
    token = env.token("shop@demo.trustpay.test", DEMO_PASSWORD)
    assert get(env, token)["fee_plan"]["rate"] == "0.006"
