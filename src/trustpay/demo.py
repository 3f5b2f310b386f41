"""Demo data for ``make run``: idempotent, safe to run on every start."""

from __future__ import annotations

from rich.console import Console

from trustpay.ledger.model import AccountKind
from trustpay.platform.context import Platform

PLATFORM_ACCOUNTS = [
    (AccountKind.BANK_CLEARING, "Bank clearing (sandbox bank)", True),
    (AccountKind.ESCROW, "Escrow: buyers' money held for trades", False),
    (AccountKind.FEE_REVENUE, "Fee revenue", False),
]


def seed(console: Console) -> None:
    p = Platform.build()
    try:
        with p.db.transaction() as conn:
            for kind, name, negative in PLATFORM_ACCOUNTS:
                p.book.open_account(conn, currency=p.settings.default_currency, kind=kind, name=name,
                                    allow_negative=negative)
        console.print("[green]demo data ready[/]: platform accounts "
                      + ", ".join(k.value for k, _, _ in PLATFORM_ACCOUNTS))
    finally:
        p.close()
