"""The wallet's tables: bank cards, top-ups, withdrawals, transfers, preferences.

Rows are read ``FOR UPDATE`` (PostgreSQL) before a state change; on SQLite the
writer's ``BEGIN IMMEDIATE`` already serialises. Every status change is also
guarded by the old status in its WHERE, so a change that lost a race is seen
(rowcount 0) rather than silently applied twice.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any, NamedTuple

from sqlalchemy import Connection, Table, and_, bindparam, or_, select, update

from trustpay.db import prepared
from trustpay.db.schema import (
    bank_cards,
    ledger_accounts,
    topups,
    transfers,
    users,
    wallet_preferences,
    withdrawals,
)
from trustpay.errors import NotFound
from trustpay.ledger.model import AccountKind


def insert(conn: Connection, table: Table, values: Mapping[str, Any]) -> None:
    prepared.insert(conn, table, values)


def get_row(conn: Connection, table: Table, obj_id: str, *, owner_col: str | None = None,
            owner_id: str | None = None, for_update: bool = False) -> Any:
    """One row by id; with an owner, another user's row is simply not found (404)."""
    where = {"id": obj_id} if owner_col is None else {"id": obj_id, owner_col: owner_id}
    stmt = prepared.select_where(table, *where, for_update=for_update)
    row = prepared.mapping(conn, stmt, prepared.where_params(**where))
    if row is None:
        raise NotFound(f"no {table.name.rstrip('s').replace('_', ' ')} {obj_id[:40]}")
    return row


def set_status(conn: Connection, table: Table, obj_id: str, *, from_status: str | tuple[str, ...],
               **values: Any) -> bool:
    """Move a row on only if it is still in ``from_status``; False if it was not."""
    olds = (from_status,) if isinstance(from_status, str) else from_status
    res = conn.execute(update(table).where(table.c.id == obj_id, table.c.status.in_(olds)).values(**values))
    return bool(res.rowcount)


# ------------------------------------------------------------------ ledger lookups
def wallet_account_id(conn: Connection, user_id: str, currency: str) -> str | None:
    row = prepared.first(conn, ledger_accounts,
                         {"owner_id": user_id, "kind": AccountKind.WALLET.value, "currency": currency},
                         columns=("id",))
    return None if row is None else str(row.id)


def wallet_accounts(conn: Connection, user_id: str) -> list[Any]:
    return list(conn.execute(
        select(ledger_accounts).where(
            ledger_accounts.c.owner_id == user_id, ledger_accounts.c.kind == AccountKind.WALLET.value,
        ).order_by(ledger_accounts.c.currency)
    ).mappings())


def settlement_pending_accounts(conn: Connection, user_id: str) -> list[Any]:
    """A merchant's trade money awaiting settlement, one account per currency."""
    return list(conn.execute(
        select(ledger_accounts).where(
            ledger_accounts.c.owner_id == user_id,
            ledger_accounts.c.kind == AccountKind.SETTLEMENT_PENDING.value,
        ).order_by(ledger_accounts.c.currency)
    ).mappings())


# ------------------------------------------------------------------ people
_PERSON = ("id", "email", "name", "kind", "deleted_at")


def user_by(conn: Connection, *, user_id: str | None = None, email: str | None = None,
            phone_hmac: str | None = None) -> Any | None:
    by, value = _key(user_id, email, phone_hmac)
    row = prepared.first(conn, users, {by: value}, columns=_PERSON)
    return None if row is None or row.deleted_at is not None else row


def _key(user_id: str | None, email: str | None, phone_hmac: str | None) -> tuple[str, str | None]:
    """The column a person is looked up by, and its value."""
    return (("id", user_id) if user_id is not None
            else ("email", email) if email is not None else ("phone_hmac", phone_hmac))


def person_by(conn: Connection, *, user_id: str | None = None, email: str | None = None,
              phone_hmac: str | None = None, currency: str | None = None) -> Any | None:
    """:func:`user_by` with every column of the live user (what identity's
    ``as_user`` reads: tier, freeze), for a payment that checks them too; and,
    given a ``currency``, their wallet in it (see :func:`wallet_of`)."""
    by, value = _key(user_id, email, phone_hmac)
    return prepared.row(conn, _LIVE_PERSON_BY[by], {"k": value, "currency": currency})


class WalletTotals(NamedTuple):
    id: str
    balance: int
    pending_in: int


def wallet_of(person: Any) -> WalletTotals | None:
    """The wallet :func:`person_by` read with the person (None: they hold none in that currency)."""
    if person.wallet_id is None:
        return None
    return WalletTotals(person.wallet_id, int(person.wallet_balance), int(person.wallet_pending_in))


# A transfer's recipient and their wallet in the currency (what the payment
# credits, and its totals for the balance limit), in one statement: it runs in
# every transfer's transaction. No currency given: NULL joins no wallet.
_RECIPIENT_WALLET = ledger_accounts.alias("recipient_wallet")
_LIVE_PERSON_BY = {
    col: select(users, _RECIPIENT_WALLET.c.id.label("wallet_id"),
                _RECIPIENT_WALLET.c.balance.label("wallet_balance"),
                _RECIPIENT_WALLET.c.pending_in.label("wallet_pending_in"))
    .select_from(users.outerjoin(_RECIPIENT_WALLET, and_(
        _RECIPIENT_WALLET.c.owner_id == users.c.id, _RECIPIENT_WALLET.c.kind == AccountKind.WALLET.value,
        _RECIPIENT_WALLET.c.currency == bindparam("currency", type_=ledger_accounts.c.currency.type))))
    .where(users.c.deleted_at.is_(None), users.c[col] == bindparam("k"))
    for col in ("id", "email", "phone_hmac")
}

# What a money-out action reads about the payer before anything else, in one
# statement (built once): the live user (freeze, e-mail, tier), the wallet in
# the currency (NULL if none), the daily cap they set themselves (NULL if none)
# and their 免密 cap (NULL if they never set one: off).
_PAYER = select(
    users,
    select(ledger_accounts.c.id).where(
        ledger_accounts.c.owner_id == users.c.id, ledger_accounts.c.kind == AccountKind.WALLET.value,
        ledger_accounts.c.currency == bindparam("currency"),
    ).scalar_subquery().label("wallet_id"),
    wallet_preferences.c.daily_cap.label("own_daily_cap"),
    wallet_preferences.c.password_free_cap.label("own_password_free_cap"),
).select_from(users.outerjoin(wallet_preferences, wallet_preferences.c.user_id == users.c.id)).where(
    users.c.deleted_at.is_(None), users.c.id == bindparam("k"))


def payer(conn: Connection, user_id: str, currency: str) -> Any | None:
    """The live user's row plus ``wallet_id``, ``own_daily_cap`` and ``own_password_free_cap`` (see ``_PAYER``)."""
    return prepared.row(conn, _PAYER, {"k": user_id, "currency": currency})


# ------------------------------------------------------------------ cards
def active_cards(conn: Connection, user_id: str) -> list[Any]:
    return list(conn.execute(
        select(bank_cards).where(bank_cards.c.user_id == user_id, bank_cards.c.status == "active")
        .order_by(bank_cards.c.id)
    ).mappings())


def active_card_by_token(conn: Connection, user_id: str, bank: str, token: str) -> Any | None:
    return conn.execute(
        select(bank_cards).where(bank_cards.c.user_id == user_id, bank_cards.c.bank == bank,
                                 bank_cards.c.token == token, bank_cards.c.status == "active")
    ).mappings().first()


# ------------------------------------------------------------------ lists
def page(conn: Connection, table: Table, owner_cols: tuple[str, ...], user_id: str, *, limit: int,
         starting_after: str | None) -> tuple[list[Any], bool]:
    """Newest first, API.md list conventions (``starting_after`` = last id seen)."""
    mine = or_(*[table.c[col] == user_id for col in owner_cols])
    q = select(table).where(mine)
    if starting_after:
        # The cursor must be one of the caller's own objects (404 otherwise, like any other id).
        if conn.execute(select(table.c.id).where(table.c.id == starting_after, mine)).first() is None:
            raise NotFound(f"no {table.name.rstrip('s').replace('_', ' ')} {starting_after[:40]}")
        q = q.where(table.c.id < starting_after)
    rows = list(conn.execute(q.order_by(table.c.id.desc()).limit(limit + 1)).mappings())
    return rows[:limit], len(rows) > limit


# ------------------------------------------------------------------ preferences
def preferences(conn: Connection, user_id: str) -> Any | None:
    return prepared.mapping(conn, prepared.select_where(wallet_preferences, "user_id"),
                            prepared.where_params(user_id=user_id))


def save_preferences(conn: Connection, user_id: str, *, daily_cap: int | None, password_free_cap: int,
                     now: datetime) -> None:
    values = {"daily_cap": daily_cap, "password_free_cap": password_free_cap, "updated_at": now}
    res = conn.execute(update(wallet_preferences).where(wallet_preferences.c.user_id == user_id).values(**values))
    if not res.rowcount:
        conn.execute(wallet_preferences.insert().values(user_id=user_id, **values))


def pending_older_than(conn: Connection, table: Table, before: datetime, *, limit: int) -> list[str]:
    return list(conn.execute(
        select(table.c.id).where(table.c.status == "pending", table.c.created_at < before)
        .order_by(table.c.created_at).limit(limit)
    ).scalars())


__all__ = ["bank_cards", "topups", "transfers", "withdrawals"]
