"""Demo data for ``make run``: idempotent, safe to run on every start.

Until sign-up and log-in land (the identity capability), the demo consists of
the platform's own ledger accounts and three demo wallets — a buyer, a second
buyer and a shop — funded from the sandbox bank's clearing account through
real ledger entries, so the published digest and ``trustpay ledger verify``
have something to show.
"""

from __future__ import annotations

from rich.console import Console
from rich.table import Table
from sqlalchemy import Connection, select

from trustpay.db.schema import ledger_entries
from trustpay.ledger.model import AccountKind, EntryDraft, credit, debit
from trustpay.money import Money
from trustpay.platform.context import Platform

PLATFORM_ACCOUNTS = [
    (AccountKind.BANK_CLEARING, "Bank clearing (sandbox bank)", True),
    (AccountKind.ESCROW, "Escrow: buyers' money held for trades", False),
    (AccountKind.FEE_REVENUE, "Fee revenue", False),
]
# (owner id, display name, opening balance in minor units)
DEMO_WALLETS = [
    ("demo_alice", "Alice (buyer)", 500_000),
    ("demo_bob", "Bob (buyer)", 200_000),
    ("demo_shop", "Lotus Tea Shop (merchant)", 0),
]


def seed(console: Console) -> None:
    p = Platform.build()
    try:
        with p.db.transaction() as conn:
            ccy = p.settings.default_currency
            accounts = {
                kind: p.book.open_account(conn, currency=ccy, kind=kind, name=name, allow_negative=neg)
                for kind, name, neg in PLATFORM_ACCOUNTS
            }
            bank = accounts[AccountKind.BANK_CLEARING]
            rows = []
            for owner, name, opening in DEMO_WALLETS:
                wallet = p.book.open_account(conn, currency=ccy, kind=AccountKind.WALLET, owner_id=owner, name=name)
                ref = f"demo:opening:{owner}"
                if opening and not _posted(conn, ref):
                    p.book.post(conn, EntryDraft((debit(bank.id, opening, ccy), credit(wallet.id, opening, ccy)),
                                                 reference=ref, memo="demo opening balance"))
                rows.append((name, wallet.id, Money(ccy, p.book.account(conn, wallet.id).balance)))
        table = Table(title="TrustPay demo wallets (ledger accounts)")
        for col in ("who", "ledger account", "balance"):
            table.add_column(col)
        for name, acc_id, bal in rows:
            table.add_row(name, acc_id, bal.format("en"))
        console.print(table)
        console.print("[green]demo data ready[/] (running this again changes nothing).")
        console.print("Demo log-ins: sign-up and log-in arrive with the accounts & security capability; "
                      "until then the demo is the ledger above and the public pages.")
    finally:
        p.close()


def _posted(conn: Connection, reference: str) -> bool:
    q = select(ledger_entries.c.seq).where(ledger_entries.c.reference == reference).limit(1)
    return conn.execute(q).first() is not None
