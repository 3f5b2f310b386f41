"""Cards, top-ups and withdrawals against the in-process sandbox bank, on both
engines: asynchronous settlement by callback and by polling, declines, the
no-answer card, a bank that is down, bad and duplicate callbacks, the fee."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import select
from tests.integration.identity_support import PASSWORD
from tests.integration.wallet_support import PAY_PW, Wallet, WalletEnv, make_wallet_env

from trustpay.banks import signing
from trustpay.banks.registry import sandbox_bank
from trustpay.db.schema import audit_log, ledger_accounts

GOOD = "4111 1111 1111 1111"
DECLINED = "4000000000000002"
NO_ANSWER = "4000000000000028"


@pytest.fixture
def w(db_url: str, tmp_path: Path) -> Iterator[WalletEnv]:
    yield from make_wallet_env(db_url, tmp_path, bank_sandbox_data_dir=str(tmp_path / "bank"),
                               bank_sandbox_settle_seconds=2)


def bind(w: WalletEnv, u: Wallet, number: str = GOOD) -> str:
    r = w.client.post("/v1/bank-cards", json={"bank": "sandbox", "card_number": number, "holder_name": "Li Lei"},
                      headers=u.auth)
    assert r.status_code == 201, r.text
    assert number.replace(" ", "") not in r.text
    return str(r.json()["id"])


def settle_bank(w: WalletEnv, seconds: float = 2) -> None:
    """Let the bank's settle delay pass, let it settle and call back."""
    w.clock.advance(seconds)
    sandbox_bank(w.platform).tick()


def topup(w: WalletEnv, u: Wallet, card: str, amount: int, **headers: str) -> dict[str, object]:
    r = w.client.post("/v1/topups", json={"card": card, "amount": amount, "currency": "CNY"},
                      headers={**u.auth, **headers})
    assert r.status_code == 201, r.text
    return dict(r.json())


def get(w: WalletEnv, u: Wallet, path: str) -> dict[str, object]:
    r = w.client.get(path, headers=u.auth)
    assert r.status_code == 200, r.text
    return dict(r.json())


def test_card_binding_listing_unbinding_and_bad_numbers(w: WalletEnv) -> None:
    alice = w.user("alice@example.com")
    bob = w.user("bob@example.com")
    card = bind(w, alice)
    listed = get(w, alice, "/v1/bank-cards")["data"]
    assert [c["last4"] for c in listed] == ["1111"]  # type: ignore[union-attr, index]
    again = w.client.post("/v1/bank-cards", json={"card_number": GOOD, "holder_name": "Li Lei"}, headers=alice.auth)
    assert again.status_code == 409 and again.json()["error"]["code"] == "already_exists"
    bad = w.client.post("/v1/bank-cards", json={"card_number": "4111111111111112", "holder_name": "X"},
                        headers=alice.auth)
    assert bad.status_code == 400 and bad.json()["error"]["code"] == "invalid_card_number"
    assert "4111111111111112" not in bad.text
    assert w.client.delete(f"/v1/bank-cards/{card}", headers=bob.auth).status_code == 404
    assert w.client.delete(f"/v1/bank-cards/{card}", headers=alice.auth).status_code == 204
    assert get(w, alice, "/v1/bank-cards")["data"] == []
    r = w.client.post("/v1/topups", json={"card": card, "amount": 100}, headers=alice.auth)
    assert r.status_code == 409 and r.json()["error"]["code"] == "invalid_state"


def test_topup_credits_only_when_the_bank_confirms_and_exactly_once(w: WalletEnv) -> None:
    alice = w.user("alice@example.com")
    card = bind(w, alice)
    t = topup(w, alice, card, 50_000)
    assert t["status"] == "pending"
    assert w.balance(alice)["available"] == 0
    settle_bank(w)
    assert get(w, alice, f"/v1/topups/{t['id']}")["status"] == "succeeded"
    assert w.balance(alice)["available"] == 50_000
    # The bank's callback again (a duplicate), then a poll: still credited once.
    bank = sandbox_bank(w.platform)
    body = json.dumps({"reference": t["id"], "bank_ref": "bop_dup", "kind": "debit", "status": "succeeded",
                       "amount": 50_000, "currency": "CNY"}).encode()
    ts = int(time.time())
    headers = {"Bank-Signature": signing.sign(bank.secret, body, ts), "content-type": "application/json"}
    r = w.client.post("/v1/bank-callbacks/sandbox", content=body, headers=headers)
    assert r.status_code == 200, r.text
    w.advance(3600)
    assert w.balance(alice)["available"] == 50_000
    w.ledger_ok()


def test_declined_card_and_no_answer_card(w: WalletEnv) -> None:
    alice = w.user("alice@example.com")
    declined = topup(w, alice, bind(w, alice, DECLINED), 1_000)
    silent = topup(w, alice, bind(w, alice, NO_ANSWER), 2_000)
    settle_bank(w)
    w.advance(2 * 3600)  # every poll has asked by now
    w.relogin(alice)
    d = get(w, alice, f"/v1/topups/{declined['id']}")
    assert d["status"] == "failed" and d["failure_reason"]
    assert get(w, alice, f"/v1/topups/{silent['id']}")["status"] == "pending"
    assert w.balance(alice)["available"] == 0
    w.ledger_ok()


def test_bad_callback_signature_is_rejected_and_audited(w: WalletEnv) -> None:
    alice = w.user("alice@example.com")
    t = topup(w, alice, bind(w, alice), 10_000)
    body = json.dumps({"reference": t["id"], "bank_ref": "bop_x", "kind": "debit", "status": "succeeded",
                       "amount": 10_000, "currency": "CNY"}).encode()
    forged = signing.sign("not-the-secret", body, int(time.time()))
    r = w.client.post("/v1/bank-callbacks/sandbox", content=body, headers={"Bank-Signature": forged})
    assert r.status_code == 400
    assert get(w, alice, f"/v1/topups/{t['id']}")["status"] == "pending"
    assert w.balance(alice)["available"] == 0
    with w.platform.db.transaction(write=False) as conn:
        events = conn.execute(select(audit_log.c.event, audit_log.c.outcome)
                              .where(audit_log.c.event == "bank.callback_rejected")).all()
    assert [tuple(e) for e in events] == [("bank.callback_rejected", "failure")]


def test_bank_down_leaves_it_pending_then_the_poll_finishes_it(w: WalletEnv) -> None:
    alice = w.user("alice@example.com")
    card = bind(w, alice)
    bank = sandbox_bank(w.platform)
    bank.control.fail = True
    t = topup(w, alice, card, 7_000)
    assert t["status"] == "pending"
    bank.control.fail = False
    w.advance(30)  # the first poll: the bank never got it, so it is submitted now
    settle_bank(w)
    assert get(w, alice, f"/v1/topups/{t['id']}")["status"] == "succeeded"
    assert w.balance(alice)["available"] == 7_000
    w.ledger_ok()


def test_withdrawal_holds_amount_plus_fee_then_pays_out(w: WalletEnv) -> None:
    alice = w.user("alice@example.com", fund=100_000)
    card = bind(w, alice)
    quote = get(w, alice, "/v1/withdrawals/quote?amount=50000")
    fee = int(quote["fee"])  # type: ignore[arg-type]
    assert fee == 50 and quote["total"] == 50_050  # 0.06 % + 0.04 % of ¥500, minimum ¥0.10
    r = w.client.post("/v1/withdrawals", headers=alice.auth,
                      json={"card": card, "amount": 50_000, "currency": "CNY", "payment_password": PAY_PW})
    assert r.status_code == 201, r.text
    wd = r.json()
    assert wd["status"] == "pending" and wd["fee"] == fee
    assert w.balance(alice) == {"available": 100_000 - 50_050, "held": 50_050, "pending_in": 0}
    settle_bank(w)
    assert get(w, alice, f"/v1/withdrawals/{wd['id']}")["status"] == "succeeded"
    assert w.balance(alice) == {"available": 49_950, "held": 0, "pending_in": 0}
    with w.platform.db.transaction(write=False) as conn:
        fees = conn.execute(select(ledger_accounts.c.balance).where(ledger_accounts.c.kind == "fee_revenue")).scalar()
    assert fees == fee
    w.ledger_ok()


def test_failed_withdrawal_returns_the_money(w: WalletEnv) -> None:
    alice = w.user("alice@example.com", fund=10_000)
    card = bind(w, alice, DECLINED)
    r = w.client.post("/v1/withdrawals", headers=alice.auth,
                      json={"card": card, "amount": 5_000, "payment_password": PAY_PW})
    assert r.status_code == 201, r.text
    settle_bank(w)
    wd = get(w, alice, f"/v1/withdrawals/{r.json()['id']}")
    assert wd["status"] == "failed"
    assert w.balance(alice) == {"available": 10_000, "held": 0, "pending_in": 0}
    w.advance(0)  # the worker sends queued notifications
    failed_notes = [n for n in w.env.notes() if n.get("subject") == "Withdrawal failed"]
    assert len(failed_notes) == 1
    w.ledger_ok()


@pytest.mark.parametrize(("amount", "password", "status", "code"), [
    (10_000, PAY_PW, 402, "insufficient_funds"),  # 10 000 + fee > 10 000
    (100, "999999", 402, "payment_password_invalid"),
    (0, PAY_PW, 400, "invalid_amount"),
])
def test_bad_withdrawals_move_nothing(w: WalletEnv, amount: int, password: str, status: int, code: str) -> None:
    alice = w.user("alice@example.com", fund=10_000)
    card = bind(w, alice)
    r = w.client.post("/v1/withdrawals", headers=alice.auth,
                      json={"card": card, "amount": amount, "payment_password": password})
    assert r.status_code == status, r.text
    assert r.json()["error"]["code"] == code
    assert w.balance(alice) == {"available": 10_000, "held": 0, "pending_in": 0}


def test_freeze_unbinds_every_card(w: WalletEnv) -> None:
    alice = w.user("alice@example.com", fund=10_000)
    card = bind(w, alice)
    bind(w, alice, DECLINED)
    assert w.client.post("/v1/users/me/freeze", json={"password": PASSWORD}, headers=alice.auth).status_code == 204
    assert get(w, alice, "/v1/bank-cards")["data"] == []
    r = w.client.post("/v1/withdrawals", headers=alice.auth,
                      json={"card": card, "amount": 100, "payment_password": PAY_PW})
    assert r.status_code == 402 and r.json()["error"]["code"] == "account_frozen"
