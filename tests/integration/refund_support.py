"""Refund steps through the services, on top of the trade test set-up."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

from sqlalchemy import select
from tests.integration.trade_support import AMOUNT, FEE, TradeEnv, Wallet, make_trade_env

from trustpay.db.schema import outbox
from trustpay.trades import refunds
from trustpay.trades.refunds import NewRefund


class RefundEnv(TradeEnv):
    def refund(self, who: Wallet, trade_id: str, amount: int, out_refund_no: str = "rf-1",
               reason: str = "Damaged in transit") -> Any:
        """The merchant refunds, or the buyer asks for one (who decides which)."""
        p = self.platform
        new = NewRefund(out_refund_no=out_refund_no, amount=amount, reason=reason)
        return p.db.run(lambda conn: refunds.create(p, conn, trade_id, who.id, new))

    def approve(self, merchant: Wallet, refund_id: str, *, return_goods: bool = False) -> Any:
        p = self.platform
        return p.db.run(lambda conn: refunds.approve(p, conn, refund_id, merchant.id, return_goods=return_goods))

    def reject(self, merchant: Wallet, refund_id: str, answer: str = "Used, not faulty") -> Any:
        p = self.platform
        return p.db.run(lambda conn: refunds.reject(p, conn, refund_id, merchant.id, answer=answer))

    def ship_back(self, buyer: Wallet, refund_id: str) -> Any:
        p = self.platform
        return p.db.run(lambda conn: refunds.return_goods(p, conn, refund_id, buyer.id, carrier="YTO",
                                                          tracking_no="YT998877"))

    def receive(self, merchant: Wallet, refund_id: str) -> Any:
        p = self.platform
        return p.db.run(lambda conn: refunds.confirm_goods(p, conn, refund_id, merchant.id))

    def cancel(self, buyer: Wallet, refund_id: str) -> Any:
        p = self.platform
        return p.db.run(lambda conn: refunds.cancel(p, conn, refund_id, buyer.id))

    def get_refund(self, refund_id: str, user: Wallet) -> Any:
        return self.platform.db.run(lambda conn: refunds.get_for(conn, refund_id, user.id), write=False)

    def refund_events(self) -> list[tuple[str | None, str, int]]:
        """(owner, refund id, amount) of every refund.succeeded, in order."""
        with self.platform.db.transaction(write=False) as conn:
            rows = conn.execute(select(outbox.c.owner_id, outbox.c.payload).where(outbox.c.type == "refund.succeeded")
                                .order_by(outbox.c.seq)).all()
        return [(r.owner_id, r.payload["data"]["object"]["id"], r.payload["data"]["object"]["amount"]) for r in rows]

    def paid_trade(self, shop: Wallet, buyer: Wallet, out_trade_no: str = "order-1", *, shipped: bool = False,
                   **extra: Any) -> str:
        trade = self.create(shop, out_trade_no, **extra)
        self.pay(buyer, trade["id"])
        if shipped:
            self.ship(shop, trade["id"])
        return str(trade["id"])


def make_refund_env(db_url: str, tmp_path: Path, **settings: Any) -> Iterator[RefundEnv]:
    for t in make_trade_env(db_url, tmp_path, **settings):
        yield RefundEnv(t.env)


__all__ = ["AMOUNT", "FEE", "RefundEnv", "Wallet", "make_refund_env"]
