"""Demo data for ``make run``: idempotent, safe to run on every start.

Creates three demo people who can log in (a buyer, a second buyer and a
shop), with verified e-mail, a payment password, a sandbox test card for the
buyers, and wallets funded through real ledger entries from a "demo funding"
equity account (so the bank's clearing account, which reconciliation brings
back to zero, holds only real bank traffic).
"""

from __future__ import annotations

from dataclasses import dataclass

from rich.console import Console
from sqlalchemy import Connection, select

from trustpay.banks.registry import SANDBOX
from trustpay.db.schema import ledger_entries
from trustpay.identity import crypto, store
from trustpay.identity.model import UserKind
from trustpay.identity.service import sign_up
from trustpay.ledger.model import AccountKind, EntryDraft, credit, debit
from trustpay.merchants import service as merchants
from trustpay.money import Money
from trustpay.platform.context import Platform
from trustpay.wallet import cards, common
from trustpay.wallet import store as wallet_store

DEMO_FUNDING = "Demo funding (not real money)"
# The sandbox bank's always-succeeding test card (API.md), bound for the buyers.
DEMO_CARD = "4111111111111111"
# Demo credentials are printed on purpose: this is local demo data only.
DEMO_PASSWORD = "trustpay-demo-2026"  # noqa: S105
DEMO_PAYMENT_PASSWORD = "246810"  # noqa: S105


@dataclass(frozen=True)
class DemoUser:
    email: str
    name: str
    kind: UserKind
    opening: int  # minor units


DEMO_USERS = [
    DemoUser("alice@demo.trustpay.test", "Alice (buyer)", UserKind.PERSONAL, 500_000),
    DemoUser("bob@demo.trustpay.test", "Bob (buyer)", UserKind.PERSONAL, 200_000),
    DemoUser("shop@demo.trustpay.test", "Lotus Tea Shop", UserKind.MERCHANT, 0),
]
BUYERS = {"alice@demo.trustpay.test", "bob@demo.trustpay.test"}


def seed(console: Console, platform: Platform | None = None) -> None:
    p = platform or Platform.build()
    try:
        rows = []
        user_ids: dict[str, str] = {}
        with p.db.transaction() as conn:
            ccy = p.settings.default_currency
            common.clearing_account(p, conn, SANDBOX, ccy)
            common.fee_revenue_account(p, conn, ccy)
            bank = p.book.open_account(conn, currency=ccy, kind=AccountKind.EQUITY, owner_id=common.PLATFORM_OWNER,
                                       name=DEMO_FUNDING, allow_negative=True)
            for demo in DEMO_USERS:
                user_id = user_ids[demo.email] = _ensure_user(p, conn, demo)
                if demo.kind is UserKind.MERCHANT:
                    merchants.ensure_profile(p, conn, user_id)  # the standard fee plan, T+N from settings
                wallet = p.book.open_account(conn, currency=ccy, kind=AccountKind.WALLET, owner_id=user_id)
                ref = f"demo:opening:{demo.email}"
                if demo.opening and not _posted(conn, ref):
                    p.book.post(conn, EntryDraft((debit(bank.id, demo.opening, ccy),
                                                  credit(wallet.id, demo.opening, ccy)),
                                                 reference=ref, memo="demo opening balance"))
                rows.append((demo, Money(ccy, p.book.account(conn, wallet.id).balance)))
        for email in BUYERS:
            _ensure_card(p, user_ids[email])
        console.print("[bold]TrustPay demo log-ins[/] (local demo data)", soft_wrap=True)
        console.print(f"  password: {DEMO_PASSWORD}    payment password: {DEMO_PAYMENT_PASSWORD}", soft_wrap=True)
        for demo, balance in rows:
            console.print(f"  {demo.email:<28} {demo.name:<16} {demo.kind.value:<9} {balance.format('en')}",
                          soft_wrap=True, highlight=False)
        console.print("[green]demo data ready[/] (running this again changes nothing). "
                      "Log in: POST /v1/sessions {email, password} — or open http://127.0.0.1:8000", soft_wrap=True)
    finally:
        if platform is None:
            p.close()


def _ensure_user(p: Platform, conn: Connection, demo: DemoUser) -> str:
    row = store.user_row(conn, email=demo.email)
    if row is not None:
        return str(row.id)
    # Sign-up mails a verification code (to the console sink); the demo marks the
    # address verified straight away so the accounts are ready to use.
    user = sign_up(p, conn, email=demo.email, password=DEMO_PASSWORD, name=demo.name, kind=demo.kind)
    store.set_user_fields(conn, user.id, email_verified_at=p.clock.now(), kyc_tier=1,
                          payment_password_hash=crypto.hash_password(DEMO_PAYMENT_PASSWORD))
    return user.id


def _ensure_card(p: Platform, user_id: str) -> None:
    has_card = p.db.run(lambda conn: bool(wallet_store.active_cards(conn, user_id)), write=False)
    if not has_card:
        cards.bind(p, user_id, bank=SANDBOX, card_number=DEMO_CARD, holder_name="Demo Card")


def _posted(conn: Connection, reference: str) -> bool:
    q = select(ledger_entries.c.seq).where(ledger_entries.c.reference == reference).limit(1)
    return conn.execute(q).first() is not None
