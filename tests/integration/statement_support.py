"""Money for statement tests: posted straight through the ledger, as the wallet would."""

from __future__ import annotations

from sqlalchemy import Connection

from trustpay.ids import new_id
from trustpay.ledger import AccountKind, EntryDraft, credit, debit
from trustpay.ledger.model import Account
from trustpay.platform.context import Platform


def wallet_of(p: Platform, conn: Connection, user_id: str, currency: str = "CNY") -> Account:
    return p.book.open_account(conn, currency=currency, kind=AccountKind.WALLET, owner_id=user_id)


def clearing(p: Platform, conn: Connection, currency: str = "CNY") -> Account:
    return p.book.open_account(conn, currency=currency, kind=AccountKind.BANK_CLEARING,
                               name="sandbox bank clearing", allow_negative=True)


def fee_account(p: Platform, conn: Connection, currency: str = "CNY") -> Account:
    return p.book.open_account(conn, currency=currency, kind=AccountKind.FEE_REVENUE, name="fees")


def top_up(p: Platform, user_id: str, amount: int, currency: str = "CNY", memo: str = "") -> str:
    """A confirmed top-up: bank clearing → the user's wallet. Returns its reference."""
    reference = new_id("top", p.clock.now())
    with p.db.transaction() as conn:
        bank, wallet = clearing(p, conn, currency), wallet_of(p, conn, user_id, currency)
        p.book.post(conn, EntryDraft((debit(bank.id, amount, currency), credit(wallet.id, amount, currency)),
                                     reference=reference, memo=memo))
    return reference


def withdraw(p: Platform, user_id: str, amount: int, fee: int, currency: str = "CNY") -> str:
    """A paid-out withdrawal and its fee, as two entries with the same reference."""
    reference = new_id("wd", p.clock.now())
    with p.db.transaction() as conn:
        bank, wallet = clearing(p, conn, currency), wallet_of(p, conn, user_id, currency)
        fees = fee_account(p, conn, currency)
        p.book.post(conn, EntryDraft((debit(wallet.id, amount, currency), credit(bank.id, amount, currency)),
                                     reference=reference))
        p.book.post(conn, EntryDraft((debit(wallet.id, fee, currency), credit(fees.id, fee, currency)),
                                     reference=reference, memo="withdrawal fee"))
    return reference


def transfer(p: Platform, sender: str, recipient: str, amount: int, currency: str = "CNY",
             memo: str = "") -> str:
    """A completed transfer (hold on the sender, then posted), as the wallet records one."""
    reference = new_id("tr", p.clock.now())
    with p.db.transaction() as conn:
        src, dst = wallet_of(p, conn, sender, currency), wallet_of(p, conn, recipient, currency)
        hold = p.book.hold(conn, debit_account_id=src.id, credit_account_id=dst.id, amount=amount,
                           currency=currency, reference=reference)
        p.book.post_hold(conn, hold.id, memo=memo)
    return reference
