"""Transfers over the API on both engines: undo window, acceptance, 24 h return,
bad input, idempotency, limits and freezes — and the ledger stays whole."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select
from tests.integration.wallet_support import PAY_PW, WalletEnv, make_wallet_env

from trustpay.api import idempotency as api_idempotency
from trustpay.db.schema import jobs as jobs_t
from trustpay.db.schema import ledger_entries, transfers
from trustpay.wallet.transfers import SETTLE_JOB


@pytest.fixture
def w(db_url: str, tmp_path: Path) -> Iterator[WalletEnv]:
    yield from make_wallet_env(db_url, tmp_path)


def test_transfer_is_pending_for_the_recipient_until_the_undo_window_closes(w: WalletEnv) -> None:
    alice = w.user("alice@example.com", fund=10_000)
    bob = w.user("bob@example.com")
    r = w.transfer(alice, "bob@example.com", 2_500, memo="lunch")
    assert r.status_code == 201, r.text
    t = r.json()
    assert t["status"] == "completed" and t["undo_until"] and t["amount"] == 2_500
    assert w.balance(alice) == {"available": 7_500, "held": 2_500, "pending_in": 0}
    assert w.balance(bob) == {"available": 0, "held": 0, "pending_in": 2_500}
    w.advance(9.999)
    assert w.balance(bob)["pending_in"] == 2_500
    w.advance(0.001)
    assert w.balance(bob) == {"available": 2_500, "held": 0, "pending_in": 0}
    assert w.balance(alice) == {"available": 7_500, "held": 0, "pending_in": 0}
    # After the window: undo is refused with invalid_state.
    r = w.client.post(f"/v1/transfers/{t['id']}/undo", headers=alice.auth)
    assert r.status_code == 409 and r.json()["error"]["code"] == "invalid_state"
    w.ledger_ok()


def test_undo_inside_the_window_returns_everything(w: WalletEnv) -> None:
    alice = w.user("alice@example.com", fund=10_000)
    bob = w.user("bob@example.com")
    t = w.transfer(alice, bob.id, 4_000).json()
    w.advance(5)
    r = w.client.post(f"/v1/transfers/{t['id']}/undo", headers=alice.auth)
    assert r.status_code == 200 and r.json()["status"] == "reversed"
    assert w.balance(alice) == {"available": 10_000, "held": 0, "pending_in": 0}
    assert w.balance(bob) == {"available": 0, "held": 0, "pending_in": 0}
    w.advance(60)  # the cancelled window-closing job must not post anything
    assert w.balance(bob)["available"] == 0
    # The recipient cannot undo, and a second undo is a conflict.
    assert w.client.post(f"/v1/transfers/{t['id']}/undo", headers=bob.auth).status_code == 404
    assert w.client.post(f"/v1/transfers/{t['id']}/undo", headers=alice.auth).status_code == 409
    w.ledger_ok()


def test_acceptance_flow_accept_decline_and_24h_return(w: WalletEnv) -> None:
    alice = w.user("alice@example.com", fund=10_000)
    bob = w.user("bob@example.com")
    one = w.transfer(alice, bob.id, 1_000, require_acceptance=True).json()
    two = w.transfer(alice, bob.id, 2_000, require_acceptance=True).json()
    three = w.transfer(alice, bob.id, 3_000, require_acceptance=True).json()
    assert {one["status"], two["status"], three["status"]} == {"pending_acceptance"}
    assert w.balance(alice) == {"available": 4_000, "held": 6_000, "pending_in": 0}
    # Only the recipient answers; the sender gets 404.
    assert w.client.post(f"/v1/transfers/{one['id']}/accept", headers=alice.auth).status_code == 404
    assert w.client.post(f"/v1/transfers/{one['id']}/accept", headers=bob.auth).json()["status"] == "completed"
    assert w.client.post(f"/v1/transfers/{two['id']}/decline", headers=bob.auth).json()["status"] == "returned"
    w.advance(24 * 3600 - 1)
    w.relogin(alice)
    w.relogin(bob)  # sessions last 12 h at most
    assert w.client.get(f"/v1/transfers/{three['id']}", headers=bob.auth).json()["status"] == "pending_acceptance"
    w.advance(1)
    assert w.client.get(f"/v1/transfers/{three['id']}", headers=alice.auth).json()["status"] == "returned"
    assert w.balance(alice) == {"available": 9_000, "held": 0, "pending_in": 0}
    assert w.balance(bob) == {"available": 1_000, "held": 0, "pending_in": 0}
    # Answering after the return is a conflict.
    r = w.client.post(f"/v1/transfers/{three['id']}/accept", headers=bob.auth)
    assert r.status_code == 409 and r.json()["error"]["code"] == "invalid_state"
    w.ledger_ok()


@pytest.mark.parametrize(("to", "amount", "status", "code"), [
    ("nobody@example.com", 100, 404, "not_found"),
    ("usr_00000000000000000000000000", 100, 404, "not_found"),
    ("alice@example.com", 100, 400, "transfer_to_self"),
    ("bob@example.com", 0, 400, "invalid_amount"),
    ("bob@example.com", -5, 400, "invalid_amount"),
    ("bob@example.com", 1.5, 400, "invalid_amount"),
    ("bob@example.com", "100", 400, "invalid_amount"),
    ("bob@example.com", 10_001, 402, "insufficient_funds"),
])
def test_bad_transfers_move_nothing(w: WalletEnv, to: str, amount: object, status: int, code: str) -> None:
    alice = w.user("alice@example.com", fund=10_000)
    w.user("bob@example.com")
    r = w.transfer(alice, to, amount)  # type: ignore[arg-type]
    assert r.status_code == status, r.text
    assert r.json()["error"]["code"] == code
    assert w.balance(alice) == {"available": 10_000, "held": 0, "pending_in": 0}
    w.ledger_ok()


def test_currency_without_a_wallet_and_wrong_payment_password(w: WalletEnv) -> None:
    alice = w.user("alice@example.com", fund=10_000)
    bob = w.user("bob@example.com")
    r = w.transfer(alice, bob.id, 100, currency="USD")
    assert r.status_code == 400 and r.json()["error"]["code"] == "invalid_currency"
    r = w.transfer(alice, bob.id, 100, payment_password="135790")
    assert r.status_code == 402 and r.json()["error"]["code"] == "payment_password_invalid"
    r = w.transfer(alice, bob.id, 100, payment_password=None)
    assert r.status_code == 402 and r.json()["error"]["code"] == "payment_password_invalid"
    assert w.balance(alice)["available"] == 10_000


def test_a_recipient_with_no_wallet_in_the_currency_gets_one_and_keeps_it(w: WalletEnv) -> None:
    """The recipient's wallet is read with the recipient; their first money in a
    currency opens it, and the next transfer finds that same wallet."""
    alice = w.user("alice@example.com", fund=10_000)
    w.fund(alice.id, 5_000, "USD")
    bob = w.user("bob@example.com")
    assert [b["currency"] for b in w.client.get("/v1/wallet", headers=bob.auth).json()["balances"]] == ["CNY"]
    for amount in (300, 200):
        r = w.transfer(alice, "bob@example.com", amount, currency="USD")
        assert r.status_code == 201, r.text
    w.advance(10)
    assert w.balance(bob, "USD") == {"available": 500, "held": 0, "pending_in": 0}
    assert w.balance(alice, "USD")["available"] == 4_500
    assert w.balance(bob) == {"available": 0, "held": 0, "pending_in": 0}
    with w.platform.db.transaction(write=False) as conn:
        usd = [a for a in w.platform.book.accounts_of(conn, bob.id) if a.currency == "USD"]
    assert len(usd) == 1 and usd[0].balance == 500
    w.ledger_ok()


def test_unverified_and_frozen_senders_cannot_transfer(w: WalletEnv) -> None:
    carol = w.user("carol@example.com", verify_email=False, fund=5_000)
    bob = w.user("bob@example.com", fund=5_000)
    r = w.transfer(carol, bob.id, 100)
    assert r.status_code == 403 and r.json()["error"]["code"] == "email_unverified"
    from tests.integration.identity_support import PASSWORD
    assert w.client.post("/v1/users/me/freeze", json={"password": PASSWORD}, headers=bob.auth).status_code == 204
    r = w.transfer(bob, carol.id, 100)
    assert r.status_code == 402 and r.json()["error"]["code"] == "account_frozen"
    assert w.balance(bob)["available"] == 5_000


def test_idempotent_transfer_replays_and_moves_money_once(w: WalletEnv) -> None:
    alice = w.user("alice@example.com", fund=10_000)
    bob = w.user("bob@example.com")
    first = w.transfer(alice, bob.id, 700, key="k-1")
    again = w.transfer(alice, bob.id, 700, key="k-1")
    assert first.status_code == again.status_code == 201
    assert first.content == again.content
    other = w.transfer(alice, bob.id, 800, key="k-1")
    assert other.status_code == 422
    assert w.balance(alice)["held"] == 700


def test_the_key_check_reuses_the_body_the_route_already_read(w: WalletEnv,
                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    """The fingerprint needs the body; the transfer route has parsed it already, so
    the key check takes Starlette's copy instead of asking the event loop again."""
    alice = w.user("alice@example.com", fund=10_000)
    bob = w.user("bob@example.com")

    def no_hop(*_: object) -> bytes:
        raise AssertionError("the body was fetched from the event loop again")

    monkeypatch.setattr(api_idempotency.anyio.from_thread, "run", no_hop)
    assert w.transfer(alice, bob.id, 300, key="k-body").status_code == 201
    assert w.transfer(alice, bob.id, 301, key="k-body").status_code == 422  # still fingerprinted by body


def test_password_free_cap_and_own_daily_cap(w: WalletEnv) -> None:
    alice = w.user("alice@example.com", fund=100_000)
    bob = w.user("bob@example.com")
    r = w.client.put("/v1/wallet/preferences", headers=alice.auth,
                     json={"password_free_cap": 500, "daily_cap": 3_000, "payment_password": PAY_PW})
    assert r.status_code == 200, r.text
    assert w.transfer(alice, bob.id, 500, payment_password=None).status_code == 201
    r = w.transfer(alice, bob.id, 501, payment_password=None)
    assert r.json()["error"]["code"] == "payment_password_invalid"
    assert w.transfer(alice, bob.id, 2_500).status_code == 201
    r = w.transfer(alice, bob.id, 1)
    assert r.status_code == 402 and r.json()["error"]["param"] == "own_daily_cap"


def test_tier_limit_names_the_limit(w: WalletEnv) -> None:
    alice = w.user("alice@example.com", fund=1_000_000)
    bob = w.user("bob@example.com")
    single = w.platform.settings.tier_limit_table[1].single
    r = w.transfer(alice, bob.id, single + 1)
    assert r.status_code == 402, r.text
    assert r.json()["error"]["code"] == "limit_exceeded"
    assert r.json()["error"]["param"] == "single_payment"


def test_recipient_notified_only_after_commit(w: WalletEnv) -> None:
    alice = w.user("alice@example.com", fund=10_000)
    w.user("bob@example.com")
    w.transfer(alice, "bob@example.com", 10_001)  # refused: nothing queued
    w.transfer(alice, "bob@example.com", 300)
    w.advance(0)
    received = [n for n in w.env.notes() if n["to"] == "bob@example.com" and n["subject"] == "You received money"]
    assert len(received) == 1


def test_the_recipient_is_found_by_id_e_mail_or_phone(w: WalletEnv) -> None:
    alice = w.user("alice@example.com", fund=10_000)
    bob = w.user("bob@example.com", phone="+86 138-0013-8021")
    for to in (bob.id, "Bob@Example.com", "+86 13800138021", "+8613800138021"):
        r = w.transfer(alice, to, 100)
        assert r.status_code == 201, (to, r.text)
        assert r.json()["recipient"] == bob.id
    for to in ("+86 13900139000", "nobody@example.com", "usr_nobody"):
        r = w.transfer(alice, to, 100)
        assert (r.status_code, r.json()["error"]["code"]) == (404, "not_found"), (to, r.text)
    assert w.balance(bob)["pending_in"] == 400
    w.ledger_ok()


def test_many_undo_windows_close_together_and_one_that_cannot_goes_alone(
    w: WalletEnv, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A busy server's windows close dozens at a time: one mark for the transfers and
    one ledger call (``post_holds``) for their holds. An undone transfer is skipped;
    a hold something else resolved makes that call fail whole, and the jobs then
    close one by one, so only that one is left for a retry."""
    alice = w.user("alice@example.com", fund=100_000)
    bob = w.user("bob@example.com")
    carol = w.user("carol@example.com")
    sent = []
    for n in range(11):
        r = w.transfer(alice, (bob, carol)[n % 2].id, 100 * (n + 1), memo=f"order {n}")
        assert r.status_code == 201, r.text
        sent.append(r.json())
    assert w.client.post(f"/v1/transfers/{sent[3]['id']}/undo", headers=alice.auth).status_code == 200
    p = w.platform

    def resolve_behind_its_back(conn: Any) -> None:
        hold_id = conn.execute(select(transfers.c.hold_id).where(transfers.c.id == sent[6]["id"])).scalar_one()
        p.book.void_hold(conn, hold_id, memo="resolved by someone else")
    p.db.run(resolve_behind_its_back)

    calls: list[int] = []
    real = p.book.post_holds
    def counted(conn: Any, holds: list[tuple[str, str]]) -> Any:
        calls.append(len(holds))
        return real(conn, holds)
    monkeypatch.setattr(p.book, "post_holds", counted)
    w.advance(10)
    assert calls and max(calls) >= 3, calls  # the closes went together (the failed call too)

    closed = [t for n, t in enumerate(sent) if n not in (3, 6)]
    bob_gets = sum(t["amount"] for t in closed if t["recipient"] == bob.id)
    carol_gets = sum(t["amount"] for t in closed if t["recipient"] == carol.id)
    assert w.balance(bob) == {"available": bob_gets, "held": 0, "pending_in": 0}
    assert w.balance(carol) == {"available": carol_gets, "held": 0, "pending_in": 0}
    assert w.balance(alice)["available"] == 100_000 - sum(t["amount"] for t in closed)
    with p.db.transaction(write=False) as conn:
        posted = dict(conn.execute(select(ledger_entries.c.reference, ledger_entries.c.memo)
                                   .where(ledger_entries.c.kind == "post_hold")).all())
        broken = conn.execute(select(jobs_t.c.status, jobs_t.c.last_error)
                              .where(jobs_t.c.dedupe_key == f"{SETTLE_JOB}:{sent[6]['id']}")).one()
    # Each closed transfer's entry carries its memo, as the statement shows it.
    assert posted == {t["id"]: t["memo"] for t in closed}
    assert broken.status == "pending" and "HoldAlreadyResolved" in broken.last_error
    w.ledger_ok()
