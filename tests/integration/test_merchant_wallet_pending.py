"""API.md "Wallet": for a merchant, ``GET /v1/wallet``'s ``pending_in`` includes
finished-trade money awaiting settlement (escrow: once finished; instant: once paid),
never the money still in escrow; a buyer's wallet is unchanged by it. Both engines."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from tests.integration.trade_support import AMOUNT, FEE, TradeEnv, make_trade_env


@pytest.fixture
def t(db_url: str, tmp_path: Path) -> Iterator[TradeEnv]:
    yield from make_trade_env(db_url, tmp_path)


def test_a_merchants_pending_in_shows_trade_money_awaiting_settlement(t: TradeEnv) -> None:
    shop = t.merchant()
    buyer = t.user("buyer@example.com", fund=3 * AMOUNT)
    nothing = {"available": 0, "held": 0, "pending_in": 0}
    assert t.balance(shop) == nothing

    escrow = t.create(shop, "order-1")["id"]
    t.pay(buyer, escrow)
    t.ship(shop, escrow)
    assert t.balance(shop) == nothing  # in escrow: not the merchant's yet
    t.confirm(buyer, escrow)
    assert t.balance(shop) == {"available": 0, "held": 0, "pending_in": AMOUNT - FEE}

    instant = t.create(shop, "order-2", mode="instant")["id"]
    t.pay(buyer, instant)
    assert t.balance(shop) == {"available": 0, "held": 0, "pending_in": 2 * (AMOUNT - FEE)}
    assert t.balance(buyer) == {"available": AMOUNT, "held": 0, "pending_in": 0}
    t.ledger_ok()
