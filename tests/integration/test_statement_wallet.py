"""The statement over the wallet's real transfers (API, both engines): a transfer is a
line once its undo window has closed, an undone one never is, and its receipts verify."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from tests.integration.wallet_support import Wallet, WalletEnv, make_wallet_env

from trustpay.wallet import receipt


@pytest.fixture
def w(db_url: str, tmp_path: Path) -> Iterator[WalletEnv]:
    yield from make_wallet_env(db_url, tmp_path)


def lines(w: WalletEnv, who: Wallet, query: str = "") -> list[dict[str, Any]]:
    r = w.client.get(f"/v1/transactions{query}", headers=who.auth)
    assert r.status_code == 200, r.text
    data: list[dict[str, Any]] = r.json()["data"]
    return data


def test_transfers_on_the_statement(w: WalletEnv) -> None:
    alice = w.user("alice@example.com", fund=10_000)
    bob = w.user("bob@example.com")
    r = w.transfer(alice, bob.email, 2_500, memo="rent")
    assert r.status_code == 201, r.text
    sent = r.json()["id"]

    # Inside the undo window the money is held, not posted: no line yet, but the balance says so.
    assert [ln["amount"] for ln in lines(w, alice)] == [10_000]
    assert w.balance(alice)["held"] == 2_500 and lines(w, bob) == []

    w.advance(10)
    mine, theirs = lines(w, alice), lines(w, bob)
    assert [(ln["type"], ln["amount"], ln["balance_after"], ln["reference"]) for ln in mine[:1]] == [
        ("transfer_out", -2_500, 7_500, sent)]
    assert [(ln["type"], ln["amount"], ln["balance_after"], ln["reference"]) for ln in theirs] == [
        ("transfer_in", 2_500, 2_500, sent)]

    undone = w.transfer(alice, bob.email, 1_000).json()["id"]
    w.advance(3)
    assert w.client.post(f"/v1/transfers/{undone}/undo", headers=alice.auth).status_code == 200
    w.advance(30)
    assert undone not in [ln["reference"] for ln in lines(w, alice)], "an undone transfer moved no money"
    assert [ln["reference"] for ln in lines(w, alice, "?type=transfer_out")] == [sent]

    for who, line in ((alice, mine[0]), (bob, theirs[0])):
        doc = w.client.get(f"/v1/transactions/{line['id']}/receipt", headers=who.auth).json()
        assert receipt.verify(doc).ok, doc
    w.ledger_ok()
