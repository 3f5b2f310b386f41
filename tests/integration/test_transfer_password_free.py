"""A 免密 transfer (no payment password, no TOTP code in the request) is tried in
its money transaction at once, without the checks that run before it; a refusal
rolls that try back and the request runs again the long way. These tests hold
the answers to what they were before the try existed, on both engines: which
refusal comes first, what is stored under the key, what a retry gets."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import func, select
from tests.integration.test_wallet_risk import enable_totp
from tests.integration.wallet_support import PAY_PW, Wallet, WalletEnv, make_wallet_env

from trustpay.db.schema import idempotency_keys, transfers

CAP = 1_000


@pytest.fixture
def w(db_url: str, tmp_path: Path) -> Iterator[WalletEnv]:
    yield from make_wallet_env(db_url, tmp_path, risk_velocity_count=2, risk_velocity_amount=1_000_000,
                               risk_new_recipient_amount=5_000)


def password_free(w: WalletEnv, u: Wallet, cap: int = CAP) -> None:
    r = w.client.put("/v1/wallet/preferences", headers=u.auth,
                     json={"password_free_cap": cap, "daily_cap": None, "payment_password": PAY_PW})
    assert r.status_code == 200, r.text


def count(w: WalletEnv, table: object) -> int:
    with w.platform.db.transaction(write=False) as c:
        return int(c.execute(select(func.count()).select_from(table)).scalar_one())  # type: ignore[arg-type]


def error(r: object) -> tuple[int, str]:
    return r.status_code, r.json()["error"]["code"]  # type: ignore[attr-defined]


def test_a_password_free_transfer_completes_and_is_replayed(w: WalletEnv) -> None:
    alice = w.user("alice@example.com", fund=10_000)
    bob = w.user("bob@example.com")
    password_free(w, alice)
    first = w.transfer(alice, bob.id, 300, key="k1", payment_password=None)
    assert first.status_code == 201, first.text
    again = w.transfer(alice, bob.id, 300, key="k1", payment_password=None)
    assert again.status_code == 201 and again.headers.get("idempotent-replayed") == "true"
    assert again.json() == first.json()
    assert count(w, transfers) == 1
    assert w.balance(alice)["available"] == 10_000 - 300
    w.ledger_ok()


def test_over_the_cap_the_password_is_asked_before_the_recipient_is_looked_up(w: WalletEnv) -> None:
    alice = w.user("alice@example.com", fund=10_000)
    password_free(w, alice)
    # As before: the missing password is the answer even when nobody has that address.
    assert error(w.transfer(alice, "nobody@example.com", CAP + 1, payment_password=None)) == (
        402, "payment_password_invalid")
    assert error(w.transfer(alice, "nobody@example.com", CAP, payment_password=None)) == (404, "not_found")
    w.user("bob@example.com")
    assert error(w.transfer(alice, "bob@example.com", CAP + 1, payment_password=None)) == (
        402, "payment_password_invalid")
    assert count(w, transfers) == 0 and count(w, idempotency_keys) == 0


def test_a_refusal_of_the_money_transaction_is_stored_once_and_moves_nothing(w: WalletEnv) -> None:
    alice = w.user("alice@example.com", fund=500)
    bob = w.user("bob@example.com")
    password_free(w, alice)
    first = w.transfer(alice, bob.id, 600, key="short", payment_password=None)
    assert error(first) == (402, "insufficient_funds")
    again = w.transfer(alice, bob.id, 600, key="short", payment_password=None)
    assert again.headers.get("idempotent-replayed") == "true" and again.content == first.content
    assert count(w, transfers) == 0 and count(w, idempotency_keys) == 1
    assert w.balance(alice) == {"available": 500, "held": 0, "pending_in": 0}
    assert w.balance(bob) == {"available": 0, "held": 0, "pending_in": 0}
    w.ledger_ok()


def test_a_risk_challenge_is_not_stored_so_the_same_key_can_step_up(w: WalletEnv) -> None:
    alice = w.user("alice@example.com", fund=10_000)
    bob = w.user("bob@example.com")
    password_free(w, alice)
    totp, _ = enable_totp(w, alice)
    for i in range(2):
        assert w.transfer(alice, bob.id, 100, key=f"ok{i}", payment_password=None).status_code == 201
    # The third within the hour: a challenge. Refused before the key is used.
    r = w.transfer(alice, bob.id, 100, key="third", payment_password=None)
    assert error(r) == (401, "mfa_required")
    assert count(w, idempotency_keys) == 2 and count(w, transfers) == 2
    # The next step's code: the enrolment's own would be a replay (one step of drift is allowed).
    r = w.transfer(alice, bob.id, 100, key="third", payment_password=None, totp_code=totp.at(time.time() + 30))
    assert r.status_code == 201, r.text
    assert w.balance(alice)["available"] == 10_000 - 300
    w.ledger_ok()


def test_without_two_factor_a_challenge_asks_for_the_payment_password(w: WalletEnv) -> None:
    alice = w.user("alice@example.com", fund=10_000)
    bob = w.user("bob@example.com")
    password_free(w, alice)
    for _ in range(2):
        assert w.transfer(alice, bob.id, 100, payment_password=None).status_code == 201
    r = w.transfer(alice, bob.id, 100, payment_password=None)
    assert error(r) == (402, "payment_password_invalid") and "velocity" in r.json()["error"]["message"]
    assert w.transfer(alice, bob.id, 100).status_code == 201  # with the password: stepped up
    assert count(w, transfers) == 3
