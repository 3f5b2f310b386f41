"""Risk control on transfers and withdrawals, over the API, on both engines:
a challenge asks for the strongest factor the user has, a deny is final."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pyotp
import pytest
from tests.integration.identity_support import PASSWORD
from tests.integration.wallet_support import PAY_PW, Wallet, WalletEnv, make_wallet_env


@pytest.fixture
def w(db_url: str, tmp_path: Path) -> Iterator[WalletEnv]:
    yield from make_wallet_env(db_url, tmp_path, risk_velocity_count=2, risk_velocity_amount=1_000_000,
                               risk_new_recipient_amount=5_000, bank_sandbox_data_dir=str(tmp_path / "bank"))


def enable_totp(w: WalletEnv, u: Wallet) -> tuple[pyotp.TOTP, str]:
    """Turns two-factor on; returns the authenticator and the code it was turned on with."""
    secret = w.client.post("/v1/users/me/mfa/totp", headers=u.auth).json()["secret"]
    totp = pyotp.TOTP(secret)
    code = totp.now()
    r = w.client.post("/v1/users/me/mfa/totp/verify", json={"code": code}, headers=u.auth)
    assert r.status_code == 200, r.text
    return totp, code


def test_new_recipient_above_threshold_needs_the_payment_password_then_passes(w: WalletEnv) -> None:
    alice = w.user("alice@example.com", fund=100_000)
    bob = w.user("bob@example.com")
    r = w.client.put("/v1/wallet/preferences", headers=alice.auth,
                     json={"password_free_cap": 10_000, "daily_cap": None, "payment_password": PAY_PW})
    assert r.status_code == 200
    # Within the 免密 cap, but a first payment to Bob above 5 000: the password is asked for.
    r = w.transfer(alice, bob.id, 6_000, payment_password=None)
    assert r.status_code == 402 and r.json()["error"]["code"] == "payment_password_invalid"
    assert "new_recipient" in r.json()["error"]["message"]
    assert w.transfer(alice, bob.id, 6_000).status_code == 201
    w.advance(10)  # settled: Bob is no longer new
    assert w.transfer(alice, bob.id, 6_000, payment_password=None).status_code == 201


def test_velocity_challenge_asks_mfa_users_for_a_fresh_code(w: WalletEnv) -> None:
    alice = w.user("alice@example.com", fund=100_000)
    bob = w.user("bob@example.com")
    totp, used = enable_totp(w, alice)
    assert w.transfer(alice, bob.id, 100).status_code == 201
    assert w.transfer(alice, bob.id, 100).status_code == 201
    r = w.transfer(alice, bob.id, 100)  # the 3rd within the hour: challenge
    assert r.status_code == 401 and r.json()["error"]["code"] == "mfa_required"
    r = w.transfer(alice, bob.id, 100, totp_code=used)  # the enrolment's code again: a replay
    assert r.status_code == 401
    assert w.balance(alice)["available"] == 100_000 - 200
    # TOTP runs on real time: the next step's code (one step of drift is allowed) is fresh.
    r = w.transfer(alice, bob.id, 100, totp_code=totp.at(time.time() + 30))
    assert r.status_code == 201, r.text
    w.ledger_ok()


def test_velocity_far_past_the_line_is_declined(w: WalletEnv) -> None:
    alice = w.user("alice@example.com", fund=100_000)
    bob = w.user("bob@example.com")
    # No MFA: the payment password sent with each transfer is the step-up.
    for _ in range(6):
        assert w.transfer(alice, bob.id, 100).status_code == 201
    r = w.transfer(alice, bob.id, 100)  # the 7th in the hour: past three times the line
    assert r.status_code == 402 and r.json()["error"]["code"] == "risk_declined"
    assert w.balance(alice)["available"] == 100_000 - 600
    w.advance(3600)  # an hour later the window has moved on
    assert w.transfer(alice, bob.id, 100).status_code == 201
    w.ledger_ok()


def test_withdrawals_count_toward_velocity(w: WalletEnv) -> None:
    alice = w.user("alice@example.com", fund=100_000)
    card = w.client.post("/v1/bank-cards", json={"card_number": "4111111111111111", "holder_name": "A"},
                         headers=alice.auth).json()["id"]

    def withdraw() -> int:
        return w.client.post("/v1/withdrawals", headers=alice.auth, json={
            "card": card, "amount": 1_000, "payment_password": PAY_PW}).status_code

    assert withdraw() == 201
    assert withdraw() == 201
    # No MFA: the payment password (given) is the step-up, so the challenge passes.
    assert withdraw() == 201
    assert w.client.post("/v1/users/me/freeze", json={"password": PASSWORD}, headers=alice.auth).status_code == 204


def test_risk_rules_off(db_url: str, tmp_path: Path) -> None:
    for w in make_wallet_env(db_url, tmp_path, risk_rules="off", risk_velocity_count=1,
                             risk_new_recipient_amount=0):
        alice = w.user("alice@example.com", fund=10_000)
        bob = w.user("bob@example.com")
        for _ in range(5):
            assert w.transfer(alice, bob.id, 100).status_code == 201
