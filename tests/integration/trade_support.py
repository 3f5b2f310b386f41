"""Shared set-up for the trade tests: a merchant, buyers with money, trades made and
moved through the services, and where the money is in the ledger."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

from sqlalchemy import select
from tests.integration.wallet_support import PAY_PW, Wallet, WalletEnv, make_wallet_env

from trustpay.db.schema import ledger_accounts, outbox
from trustpay.ledger.model import AccountKind
from trustpay.trades import service
from trustpay.trades.service import NewTrade
from trustpay.wallet.common import PLATFORM_OWNER

AMOUNT = 10_000
FEE = 60  # the default plan: 0.38 % bank base rate + 0.22 % margin = 0.6 %


class TradeEnv(WalletEnv):
    def merchant(self, email: str = "shop@example.com") -> Wallet:
        return self.user(email, kind="merchant")

    def create(self, merchant: Wallet, out_trade_no: str = "order-1", *, amount: int = AMOUNT,
               mode: str = "escrow", **extra: Any) -> Any:
        p = self.platform
        new = NewTrade(out_trade_no=out_trade_no, amount=amount, currency="CNY", subject="Tea set", mode=mode,
                       **extra)
        return p.db.run(lambda conn: service.create(p, conn, merchant.id, new))

    def pay(self, buyer: Wallet, trade_id: str, payment_password: str | None = PAY_PW) -> Any:
        p = self.platform
        stepped_up = service.authorise_pay(p, buyer.id, trade_id, payment_password=payment_password, totp_code=None)
        return p.db.run(lambda conn: service.pay(p, conn, trade_id, buyer.id, stepped_up=stepped_up))

    def ship(self, merchant: Wallet, trade_id: str) -> Any:
        p = self.platform
        return p.db.run(lambda conn: service.ship(p, conn, trade_id, merchant.id, carrier="SF Express",
                                                  tracking_no="SF1234567890"))

    def confirm(self, buyer: Wallet, trade_id: str) -> Any:
        p = self.platform
        service.authorise_confirm(p, buyer.id, trade_id, payment_password=PAY_PW)
        return p.db.run(lambda conn: service.confirm(p, conn, trade_id, buyer.id))

    def close(self, merchant: Wallet, trade_id: str) -> Any:
        p = self.platform
        return p.db.run(lambda conn: service.close(p, conn, trade_id, merchant.id))

    def trade(self, trade_id: str, user: Wallet) -> Any:
        return self.platform.db.run(lambda conn: service.get_for(conn, trade_id, user.id), write=False)

    def account(self, owner: str, kind: AccountKind) -> int:
        """The posted balance of one account in CNY (0 if it was never opened)."""
        with self.platform.db.transaction(write=False) as conn:
            value = conn.execute(select(ledger_accounts.c.balance).where(
                ledger_accounts.c.owner_id == owner, ledger_accounts.c.kind == kind.value,
                ledger_accounts.c.currency == "CNY")).scalar()
        return int(value or 0)

    def money(self, buyer: Wallet, merchant: Wallet) -> dict[str, int]:
        return {
            "buyer": self.account(buyer.id, AccountKind.WALLET),
            "merchant_pending": self.account(merchant.id, AccountKind.SETTLEMENT_PENDING),
            "fee_revenue": self.account(PLATFORM_OWNER, AccountKind.FEE_REVENUE),
            "escrow": self.account(PLATFORM_OWNER, AccountKind.ESCROW),
        }

    def events(self, trade_id: str) -> list[tuple[str, str | None, str]]:
        """(type, owner, status in the event) of every event about the trade, in order."""
        with self.platform.db.transaction(write=False) as conn:
            rows = conn.execute(select(outbox.c.type, outbox.c.owner_id, outbox.c.payload)
                                .order_by(outbox.c.seq)).all()
        return [(r.type, r.owner_id, r.payload["data"]["object"]["status"]) for r in rows
                if r.type.startswith("trade.") and r.payload["data"]["object"]["id"] == trade_id]


def make_trade_env(db_url: str, tmp_path: Path, **settings: Any) -> Iterator[TradeEnv]:
    for w in make_wallet_env(db_url, tmp_path, **settings):
        yield TradeEnv(w.env)


__all__ = ["AMOUNT", "FEE", "PAY_PW", "TradeEnv", "Wallet", "make_trade_env"]
