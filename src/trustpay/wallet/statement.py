"""The statement (交易管理): a user's posted wallet money, one line per ledger posting.

A line is a ``balance`` posting on one of the user's wallet accounts: money
that really moved. Holds (``pending_out``/``pending_in``) are not lines; they
become one when the hold is posted. Nothing here is stored: lines are read
straight from the journal, so the statement can never disagree with it.

* ``id``: ``txn_<entry>_<account>`` — the entry id's random part and the
  wallet account's, so it is unique per (entry, wallet account), needs no
  table of its own and leads back to both (the receipt uses that).
* ``type``: from the entry's ``reference`` prefix (the wallet's convention:
  the business object's id) and the sign; a reversal entry is a
  ``reversal`` whatever it reverses.
* ``counterparty``: a display label from the capability that owns the
  reference's prefix (:func:`register_counterparty`); None when unknown.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import ColumnElement, Connection, Row, Select, and_, exists, false, not_, or_, select, true
from sqlalchemy.orm import aliased

from trustpay.clock import rfc3339, to_utc
from trustpay.db.schema import ledger_accounts, ledger_entries, ledger_postings
from trustpay.errors import InvalidRequest, NotFound
from trustpay.ledger.model import AccountKind, EntryKind, Field
from trustpay.money import Money

LINE_PREFIX = "txn_"
MAX_LIMIT = 100


class LineType(StrEnum):
    TOPUP = "topup"
    WITHDRAWAL = "withdrawal"
    WITHDRAWAL_FEE = "withdrawal_fee"
    TRANSFER_IN = "transfer_in"
    TRANSFER_OUT = "transfer_out"
    PAYMENT = "payment"  # paid for a trade
    SALE = "sale"  # a trade's money received by its seller
    REFUND = "refund"
    REVERSAL = "reversal"
    ADJUSTMENT = "adjustment"  # anything else (e.g. an audited reconciliation correction)


# Reference prefix -> (type of money in, type of money out).
_BY_PREFIX: dict[str, tuple[LineType, LineType]] = {
    "top": (LineType.TOPUP, LineType.TOPUP),
    "wd": (LineType.WITHDRAWAL, LineType.WITHDRAWAL),
    "tr": (LineType.TRANSFER_IN, LineType.TRANSFER_OUT),
    # A trade's money reaches its merchant in the merchant's pending-settlement account,
    # never in a wallet; what a trade puts into a wallet is the buyer's money coming back.
    "trd": (LineType.REFUND, LineType.PAYMENT),
    "rf": (LineType.REFUND, LineType.REFUND),
}


def prefix_of(reference: str | None) -> str | None:
    if not reference or "_" not in reference:
        return None
    return reference.split("_", 1)[0]


def classify(reference: str | None, entry_kind: str, amount: int, *, to_fee_account: bool) -> LineType:
    """The statement type of a wallet posting.

    ``to_fee_account``: the same entry credits a fee account — how a withdrawal's
    fee (posted as its own entry, same reference) is told from the withdrawal."""
    if entry_kind == EntryKind.REVERSAL:
        return LineType.REVERSAL
    pair = _BY_PREFIX.get(prefix_of(reference) or "")
    if pair is None:
        return LineType.ADJUSTMENT
    if pair[0] is LineType.WITHDRAWAL and amount < 0 and to_fee_account:
        return LineType.WITHDRAWAL_FEE
    return pair[0] if amount > 0 else pair[1]


def possible_types(reference: str | None, entry_kind: str, amount: int) -> frozenset[LineType]:
    """What :func:`classify` can say when the other accounts' kinds are unknown
    (a receipt checked offline knows the entry's lines, not their accounts' kinds)."""
    return frozenset(classify(reference, entry_kind, amount, to_fee_account=f) for f in (False, True))


# ------------------------------------------------------------ counterparties
Counterparty = Callable[[Connection, str, str], "str | None"]
_COUNTERPARTIES: dict[str, Counterparty] = {}


def register_counterparty(prefix: str, fn: Counterparty) -> None:
    """``fn(conn, reference, user_id)`` names the other side of ``reference``
    for ``user_id`` (e.g. the other user's masked e-mail), or None.
    The capability owning the prefix (``tr``, ``trd`` …) registers it at import."""
    _COUNTERPARTIES[prefix.rstrip("_")] = fn


def counterparty_of(conn: Connection, reference: str | None, user_id: str) -> str | None:
    fn = _COUNTERPARTIES.get(prefix_of(reference) or "")
    return fn(conn, reference, user_id) if fn is not None and reference else None


# ----------------------------------------------------------------- line ids
def line_id(entry_id: str, account_id: str) -> str:
    return f"{LINE_PREFIX}{entry_id.partition('_')[2]}_{account_id.partition('_')[2]}"


def parse_line_id(value: str) -> tuple[str, str] | None:
    """(entry id, account id) of a line id, or None if it cannot be one."""
    if not value.startswith(LINE_PREFIX):
        return None
    entry_part, sep, account_part = value[len(LINE_PREFIX):].partition("_")
    if not sep or not entry_part or not account_part or "_" in account_part:
        return None
    return f"txn_{entry_part}", f"acc_{account_part}"


# ----------------------------------------------------------------- the lines
@dataclass(frozen=True, slots=True)
class StatementLine:
    id: str
    type: LineType
    amount: int  # signed: + into the wallet, - out of it
    currency: str
    balance_after: int
    counterparty: str | None
    reference: str | None
    memo: str
    created_at: datetime
    entry_id: str
    entry_seq: int
    account_id: str

    def as_json(self) -> dict[str, object]:
        return {
            "id": self.id, "object": "transaction", "type": str(self.type), "amount": self.amount,
            "currency": self.currency, "balance_after": self.balance_after,
            "counterparty": self.counterparty, "reference": self.reference, "memo": self.memo,
            "created_at": rfc3339(self.created_at),
        }


@dataclass(frozen=True, slots=True)
class Filters:
    type: LineType | None = None
    currency: str | None = None
    created_gte: datetime | None = None
    created_lt: datetime | None = None


def parse_type(value: str | None) -> LineType | None:
    if value is None or value == "":
        return None
    try:
        return LineType(value)
    except ValueError:
        raise InvalidRequest(
            f"type must be one of {', '.join(t.value for t in LineType)}", param="type") from None


_p, _e, _a = ledger_postings.c, ledger_entries.c, ledger_accounts.c


def _wallet_ids(conn: Connection, user_id: str) -> list[str]:
    return list(conn.execute(
        select(_a.id).where(_a.owner_id == user_id, _a.kind == AccountKind.WALLET).order_by(_a.id)
    ).scalars())


def _to_fee_account(seq: ColumnElement[int]) -> ColumnElement[bool]:
    other, acc = aliased(ledger_postings), aliased(ledger_accounts)
    return exists().where(
        other.c.entry_seq == seq, other.c.field == Field.BALANCE, other.c.delta > 0,
        acc.c.id == other.c.account_id, acc.c.kind == AccountKind.FEE_REVENUE,
    )


def _type_condition(t: LineType) -> ColumnElement[bool]:
    """SQL twin of :func:`classify` (a test checks they agree for every type)."""
    if t is LineType.REVERSAL:
        return _e.kind == EntryKind.REVERSAL
    not_reversal = _e.kind != EntryKind.REVERSAL
    if t is LineType.ADJUSTMENT:
        known = or_(*(_e.reference.startswith(f"{p}_", autoescape=True) for p in _BY_PREFIX))
        return and_(not_reversal, or_(_e.reference.is_(None), not_(known)))
    clauses: list[ColumnElement[bool]] = []
    for prefix, (in_type, out_type) in _BY_PREFIX.items():
        signs = [s for s, ty in ((_p.delta > 0, in_type), (_p.delta < 0, out_type)) if ty is t]
        if prefix == "wd" and t in (LineType.WITHDRAWAL, LineType.WITHDRAWAL_FEE):
            fee = _to_fee_account(_p.entry_seq)
            signs = [_p.delta > 0] if t is LineType.WITHDRAWAL else []
            signs.append(and_(_p.delta < 0, fee if t is LineType.WITHDRAWAL_FEE else not_(fee)))
        if signs:
            clauses.append(and_(_e.reference.startswith(f"{prefix}_", autoescape=True), or_(*signs)))
    return and_(not_reversal, or_(*clauses)) if clauses else false()


def _select_lines(wallets: Sequence[str]) -> Select[Any]:
    return (
        select(_p.entry_seq, _p.account_id, _p.currency, _p.delta, _p.balance_after,
               _e.id, _e.kind, _e.reference, _e.memo, _e.created_at,
               _to_fee_account(_p.entry_seq).label("to_fee"))
        .join(ledger_entries, _e.seq == _p.entry_seq)
        .where(_p.account_id.in_(wallets), _p.field == Field.BALANCE)
    )


def _line(conn: Connection, user_id: str, row: Row[Any]) -> StatementLine:
    amount, reference = int(row.delta), row.reference
    return StatementLine(
        id=line_id(row.id, row.account_id),
        type=classify(reference, row.kind, amount, to_fee_account=bool(row.to_fee)),
        amount=amount, currency=row.currency, balance_after=int(row.balance_after),
        counterparty=counterparty_of(conn, reference, user_id),
        reference=reference, memo=row.memo, created_at=to_utc(row.created_at),
        entry_id=row.id, entry_seq=int(row.entry_seq), account_id=row.account_id,
    )


def _position(conn: Connection, user_id: str, wallets: Sequence[str], value: str) -> tuple[int, str]:
    """(entry seq, account id) of the user's line ``value``; 404 for anyone else's."""
    parsed = parse_line_id(value)
    if parsed is not None and parsed[1] in wallets:
        seq = conn.execute(
            select(_p.entry_seq).join(ledger_entries, _e.seq == _p.entry_seq)
            .where(_e.id == parsed[0], _p.account_id == parsed[1], _p.field == Field.BALANCE)
        ).scalar()
        if seq is not None:
            return int(seq), parsed[1]
    raise NotFound(f"no transaction {value}", param="starting_after")


def list_lines(conn: Connection, user_id: str, filters: Filters = Filters(), *, limit: int = 20,
               starting_after: str | None = None) -> tuple[list[StatementLine], bool]:
    """One page of the statement, newest first: (lines, has_more).

    Walks ix_ledger_postings_account_seq backwards from the cursor, so a page
    costs O(limit) whatever the history's length."""
    if not 1 <= limit <= MAX_LIMIT:
        raise InvalidRequest(f"limit must be between 1 and {MAX_LIMIT}", param="limit")
    wallets = _wallet_ids(conn, user_id)
    if starting_after is not None:
        cursor = _position(conn, user_id, wallets, starting_after)
    if not wallets:
        return [], False
    q = _select_lines(wallets)
    if starting_after is not None:
        seq, account = cursor
        # The plain upper bound on entry_seq is what lets the (account_id, entry_seq)
        # index start at the cursor; the rest orders lines of one entry.
        q = q.where(_p.entry_seq <= seq, or_(_p.entry_seq < seq, _p.account_id < account))
    q = q.where(*_filter_conditions(filters))
    rows = conn.execute(q.order_by(_p.entry_seq.desc(), _p.account_id.desc()).limit(limit + 1)).all()
    return [_line(conn, user_id, r) for r in rows[:limit]], len(rows) > limit


def _filter_conditions(f: Filters) -> list[ColumnElement[bool]]:
    conds: list[ColumnElement[bool]] = [true()]
    if f.type is not None:
        conds.append(_type_condition(f.type))
    if f.currency is not None:
        conds.append(_p.currency == f.currency.upper())
    if f.created_gte is not None:
        conds.append(_e.created_at >= to_utc(f.created_gte))
    if f.created_lt is not None:
        conds.append(_e.created_at < to_utc(f.created_lt))
    return conds


def get_line(conn: Connection, user_id: str, value: str) -> StatementLine:
    """The user's line ``value``; 404 ``not_found`` for another user's or a made-up id."""
    parsed = parse_line_id(value)
    wallets = _wallet_ids(conn, user_id) if parsed is not None else []
    if parsed is not None and parsed[1] in wallets:
        row = conn.execute(
            _select_lines([parsed[1]]).where(_e.id == parsed[0])
        ).first()
        if row is not None:
            return _line(conn, user_id, row)
    raise NotFound(f"no transaction {value}")


# ---------------------------------------------------------------------- CSV
# Amounts in minor units (as the API gives them) and, for a spreadsheet, in major units too.
CSV_COLUMNS = ("id", "created_at", "type", "amount", "amount_major", "currency", "balance_after",
               "balance_after_major", "counterparty", "reference", "memo")


def _cell(text: str | None) -> str:
    """Text a spreadsheet must not run as a formula (CSV injection: memos are user-written)."""
    if not text:
        return ""
    return "'" + text if text[0] in "=+-@\t\r" else text


def csv_row(line: StatementLine) -> list[str]:
    return [
        line.id, rfc3339(line.created_at), str(line.type), str(line.amount),
        Money(line.currency, line.amount).to_major(), line.currency, str(line.balance_after),
        Money(line.currency, line.balance_after).to_major(),
        _cell(line.counterparty), _cell(line.reference), _cell(line.memo),
    ]


def export_csv(read_page: Callable[[str | None], tuple[list[StatementLine], bool]]) -> Iterator[str]:
    """The statement as CSV text chunks, a page at a time (``read_page(cursor)``
    is called with a short transaction of its own per page, so a long export
    never holds one open)."""
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\r\n")
    writer.writerow(CSV_COLUMNS)
    cursor: str | None = None
    while True:
        lines, more = read_page(cursor)
        for line in lines:
            writer.writerow(csv_row(line))
        yield buf.getvalue()
        buf.seek(0)
        buf.truncate()
        if not more or not lines:
            return
        cursor = lines[-1].id
