"""A merchant's secret key revoked while its request to the trade API is under way, on
both engines (issue 5 "merchant key revoked mid-flight (401)"): the key passed the
route's authentication, the revocation commits before the effect's transaction, and
the re-check inside that transaction (merchants.auth.ensure_key_active) answers 401
invalid_credentials with nothing changed. Each request here would succeed without
that re-check: the revocation lands after the dependency let it in.

Then the narrower race: a revocation that arrives while the effect's transaction is
open (after its re-check) waits for it, so no trade is written after the key's
revocation committed."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from tests.integration.identity_support import bearer
from tests.integration.test_trades_api import new_trade
from tests.integration.trade_support import AMOUNT, PAY_PW, TradeEnv, Wallet, make_trade_env

from trustpay.identity.audit import Origin
from trustpay.merchants import auth as merchant_auth
from trustpay.merchants import service as merchants
from trustpay.trades import service as trades
from trustpay.trades import store

WAIT_S = 30.0
BLOCKED_FOR_S = 0.5


@pytest.fixture
def t(db_url: str, tmp_path: Path) -> Iterator[TradeEnv]:
    yield from make_trade_env(db_url, tmp_path)


def new_key(t: TradeEnv, shop: Wallet) -> tuple[str, dict[str, str]]:
    r = t.client.post("/v1/merchant/api-keys", json={"label": "shop backend"}, headers=shop.auth)
    assert r.status_code == 201, r.text
    return str(r.json()["id"]), bearer(r.json()["secret"])


def revoke(t: TradeEnv, shop: Wallet, key_id: str) -> None:
    p = t.platform
    p.db.run(lambda conn: merchants.revoke_key(p, conn, shop.id, key_id, origin=Origin()))


def revoked_once_authenticated(t: TradeEnv, shop: Wallet, key_id: str,
                               monkeypatch: pytest.MonkeyPatch) -> None:
    """From now on, the key is revoked right after authentication lets its next request in."""
    real = merchant_auth.authenticate_key

    def authenticate_then_revoke(p: Any, secret: str) -> merchant_auth.MerchantPrincipal:
        principal = real(p, secret)
        revoke(t, shop, key_id)  # committed in its own transaction before the route's effect
        return principal

    monkeypatch.setattr(merchant_auth, "authenticate_key", authenticate_then_revoke)


def refused(r: httpx.Response) -> bool:
    return r.status_code == 401 and r.json()["error"]["code"] == "invalid_credentials"


@pytest.mark.parametrize("action", ["create", "ship", "close", "refund"])
def test_a_key_revoked_after_authentication_gets_401_and_changes_nothing(
        t: TradeEnv, monkeypatch: pytest.MonkeyPatch, action: str) -> None:
    shop, buyer = t.merchant(), t.user("buyer@example.com", fund=AMOUNT)
    key_id, key = new_key(t, shop)
    tid = new_trade(t, key, "order-1").json()["id"]
    if action in ("ship", "refund"):
        assert t.client.post(f"/v1/trades/{tid}/pay", json={"payment_password": PAY_PW},
                             headers=buyer.auth).status_code == 200
    before = dict(t.trade(tid, shop))
    money = t.money(buyer, shop)
    revoked_once_authenticated(t, shop, key_id, monkeypatch)
    calls: dict[str, Callable[[], httpx.Response]] = {
        "create": lambda: new_trade(t, key, "order-2"),
        "ship": lambda: t.client.post(f"/v1/trades/{tid}/ship", json={"carrier": "SF", "tracking_no": "SF1"},
                                      headers=key),
        "close": lambda: t.client.post(f"/v1/trades/{tid}/close", headers=key),
        "refund": lambda: t.client.post(f"/v1/trades/{tid}/refunds", headers=key, json={
            "amount": AMOUNT, "reason": "Out of stock", "out_refund_no": "rf-1"}),
    }
    r = calls[action]()
    assert refused(r), r.text
    assert dict(t.trade(tid, shop)) == before
    assert t.money(buyer, shop) == money
    with t.platform.db.transaction(write=False) as conn:
        assert store.by_out_trade_no(conn, shop.id, "order-2") is None
    assert new_trade(t, key, "order-3").status_code == 401  # and it stays refused


def test_a_revocation_during_the_effect_waits_for_it(t: TradeEnv, monkeypatch: pytest.MonkeyPatch) -> None:
    shop = t.merchant()
    key_id, key = new_key(t, shop)
    inside, go = threading.Event(), threading.Event()
    real_create = trades.create

    def create_and_hold(*args: Any, **kwargs: Any) -> Any:
        row = real_create(*args, **kwargs)  # after the re-check, in the effect's transaction
        inside.set()
        assert go.wait(WAIT_S)
        return row

    monkeypatch.setattr(trades, "create", create_and_hold)
    outcome: dict[str, Any] = {}
    creating = threading.Thread(target=lambda: outcome.update(r=new_trade(t, key, "order-1")), daemon=True)
    creating.start()
    assert inside.wait(WAIT_S)
    revoking = threading.Thread(target=lambda: revoke(t, shop, key_id), daemon=True)
    revoking.start()
    revoking.join(BLOCKED_FOR_S)
    assert revoking.is_alive(), "the key was revoked while a request it let in was still writing"
    go.set()
    creating.join(WAIT_S)
    revoking.join(WAIT_S)
    assert outcome["r"].status_code == 201, outcome["r"].text  # it was in before the revocation
    monkeypatch.undo()
    assert refused(new_trade(t, key, "order-2"))
