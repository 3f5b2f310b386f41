"""A password's argon2 work (~0.3 s a hash with the production parameters) runs
with no transaction open: inside a write transaction it held SQLite's one writer
for that long, and every other payment waited behind each sign-in, sign-up and
payment password. Here the hashing is made slow on purpose and another write
must still get through at once, on both engines."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from tests.integration.identity_support import PASSWORD, UA
from tests.integration.wallet_support import PAY_PW, WalletEnv, another_write_during, make_wallet_env

from trustpay.identity import crypto
from trustpay.identity import service as identity

SLOW = 0.6  # seconds each argon2 call takes here
AT_ONCE = 0.3  # what "at once" allows a write on a busy test machine


@pytest.fixture
def w(db_url: str, tmp_path: Path) -> Iterator[WalletEnv]:
    yield from make_wallet_env(db_url, tmp_path)


def slowed(monkeypatch: pytest.MonkeyPatch, started: threading.Event) -> None:
    for name in ("verify_password", "hash_password"):
        real = getattr(crypto, name)

        def slow(*args: Any, _real: Callable[..., Any] = real) -> Any:
            started.set()
            time.sleep(SLOW)
            return _real(*args)

        monkeypatch.setattr(crypto, name, slow)


def a_write_gets_through_during(w: WalletEnv, monkeypatch: pytest.MonkeyPatch, action: Callable[[], Any]) -> Any:
    """Runs ``action`` in a thread; while its argon2 call sleeps, times another write."""
    started = threading.Event()
    slowed(monkeypatch, started)
    took, result = another_write_during(w, started, action)
    assert took < AT_ONCE, f"another write waited {took:.2f} s behind a password check"
    return result


def test_a_payment_password_check_holds_up_no_other_write(w: WalletEnv, monkeypatch: pytest.MonkeyPatch) -> None:
    alice = w.user("alice@example.com", fund=10_000)
    w.user("bob@example.com")
    r = a_write_gets_through_during(w, monkeypatch, lambda: w.transfer(alice, "bob@example.com", 100))
    assert r.status_code == 201, r.text


def test_a_wrong_payment_password_still_counts(w: WalletEnv, monkeypatch: pytest.MonkeyPatch) -> None:
    alice = w.user("alice@example.com", fund=10_000)
    w.user("bob@example.com")
    r = a_write_gets_through_during(
        w, monkeypatch, lambda: w.transfer(alice, "bob@example.com", 100, payment_password="000000"))
    assert r.status_code == 402 and r.json()["error"]["code"] == "payment_password_invalid"
    with w.platform.db.transaction(write=False) as conn:
        from trustpay.identity import store

        assert store.get_user(conn, alice.id).payment.failures == 1


def test_a_sign_in_holds_up_no_other_write(w: WalletEnv, monkeypatch: pytest.MonkeyPatch) -> None:
    w.user("alice@example.com")
    r = a_write_gets_through_during(w, monkeypatch, lambda: w.env.login("alice@example.com"))
    assert r.status_code == 201, r.text
    r = a_write_gets_through_during(w, monkeypatch, lambda: w.env.login("alice@example.com", "wrong password 1"))
    assert r.status_code == 401
    with w.platform.db.transaction(write=False) as conn:
        from trustpay.identity import store

        assert store.get_user(conn, w.wallets[0].id).login.failures == 1


def test_a_sign_up_holds_up_no_other_write(w: WalletEnv, monkeypatch: pytest.MonkeyPatch) -> None:
    r = a_write_gets_through_during(w, monkeypatch, lambda: w.client.post(
        "/v1/users", json={"email": "new@example.com", "password": PASSWORD, "name": "N"},
        headers={"user-agent": UA}))
    assert r.status_code == 201, r.text
    assert w.env.login("new@example.com").status_code == 201


def test_setting_a_payment_password_holds_up_no_other_write(w: WalletEnv, monkeypatch: pytest.MonkeyPatch) -> None:
    alice = w.user("alice@example.com", payment_password=None)
    r = a_write_gets_through_during(w, monkeypatch, lambda: w.client.put(
        "/v1/users/me/payment-password", json={"password": PASSWORD, "payment_password": "135790"},
        headers=alice.auth))
    assert r.status_code == 204, r.text
    r = a_write_gets_through_during(w, monkeypatch, lambda: w.client.put(
        "/v1/users/me/payment-password", json={"password": "wrong password 1", "payment_password": "135790"},
        headers=alice.auth))
    assert r.status_code == 401
    with w.platform.db.transaction(write=False) as conn:
        from trustpay.identity import store

        assert store.get_user(conn, alice.id).login.failures == 1


def test_a_password_changed_meanwhile_is_checked_again_inside(w: WalletEnv) -> None:
    """The outside check is used only against the hash it was made with."""
    alice = w.user("alice@example.com")
    stale = identity.verify_outside(crypto.hash_password("an old payment password"), PAY_PW)
    p = w.platform
    # Made against another hash: ignored, the current one decides (here: the right password passes).
    identity.run_keeping_refusal(p, lambda conn: identity.check_payment_password(p, conn, alice.id, PAY_PW,
                                                                                verified=stale))
    lying = identity.Verified(stale.stored_hash, True)
    with pytest.raises(Exception, match="payment password is wrong"):
        identity.run_keeping_refusal(p, lambda conn: identity.check_payment_password(p, conn, alice.id, "000000",
                                                                                    verified=lying))


def test_a_password_reset_holds_up_no_other_write(w: WalletEnv, monkeypatch: pytest.MonkeyPatch) -> None:
    w.user("alice@example.com")
    assert w.client.post("/v1/password-resets", json={"email": "alice@example.com"}).status_code == 202
    code = w.env.last_code("alice@example.com")
    new = "a brand new pass phrase 7"
    r = a_write_gets_through_during(w, monkeypatch, lambda: w.client.post(
        "/v1/password-resets/confirm", json={"email": "alice@example.com", "code": code, "new_password": new}))
    assert r.status_code == 204, r.text
    assert w.env.login("alice@example.com", new).status_code == 201


def test_a_wrong_reset_code_costs_no_hash_and_still_counts(w: WalletEnv, monkeypatch: pytest.MonkeyPatch) -> None:
    w.user("alice@example.com")
    assert w.client.post("/v1/password-resets", json={"email": "alice@example.com"}).status_code == 202
    code = w.env.last_code("alice@example.com")
    hashed: list[str] = []
    real = crypto.hash_password
    monkeypatch.setattr(crypto, "hash_password", lambda pw: hashed.append(pw) or real(pw))
    wrong = "000000" if code != "000000" else "111111"
    r = w.client.post("/v1/password-resets/confirm",
                      json={"email": "alice@example.com", "code": wrong, "new_password": "a brand new pass phrase 7"})
    assert r.status_code == 400 and r.json()["error"]["code"] == "invalid_code"
    assert hashed == []
    with w.platform.db.transaction(write=False) as conn:
        from sqlalchemy import text

        tries = conn.execute(text("SELECT max(attempts) FROM verification_codes WHERE channel = 'reset'"))
        assert tries.scalar_one() == 1
