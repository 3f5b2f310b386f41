"""The book: the only place that writes ledger rows.

Every method takes ``conn``, a connection inside the caller's transaction, so
a ledger entry commits or rolls back together with the business row that
caused it and the outbox event that announces it.

How one entry is appended (the hot path):
1. the append lock: PostgreSQL takes an advisory lock that queues every
   appender; on SQLite the writer lock (``BEGIN IMMEDIATE``) already is one;
2. one guarded UPDATE per account, in account-id order (the fixed lock
   order); the overdraft rule is part of the UPDATE's WHERE, so checking and
   changing are one step. PostgreSQL changes all the accounts in one
   ``UPDATE … RETURNING`` (one round trip); SQLite runs one short UPDATE per
   account after one SELECT of the journal's end and of the totals the entry
   changes (SQLite's RETURNING costs more than that read);
3. the entry, sealed onto the hash chain, and its lines are inserted.
Any failure raises before commit; the caller's transaction rolls it all back.
"""

from __future__ import annotations

import functools
import gc
import itertools
from collections.abc import Callable, Iterable, Sequence
from datetime import datetime
from hashlib import sha256 as _sha256
from operator import attrgetter, itemgetter
from typing import Any, NamedTuple, NoReturn

from sqlalchemy import Connection, bindparam, select, update

from trustpay.clock import Clock, to_utc
from trustpay.db import prepared
from trustpay.db.raw import Raw, Sql
from trustpay.db.schema import ledger_accounts, ledger_entries, ledger_holds, ledger_postings
from trustpay.errors import TrustPayError
from trustpay.ids import new_id, new_ids
from trustpay.ledger.chain import (
    GENESIS,
    CanonicalParts,
    canonical_from_body,
    canonical_sorted,
    chain_hash,
    known_line_head,
    line_head,
    timestamp,
)
from trustpay.ledger.errors import (
    AccountClosed,
    AccountNotEmpty,
    AccountNotFound,
    AlreadyReversed,
    CurrencyMismatch,
    EntryNotFound,
    HoldAlreadyResolved,
    HoldNotFound,
    MalformedEntry,
    NotReversible,
    Overdraft,
)
from trustpay.ledger.model import (
    Account,
    Entry,
    EntryDraft,
    EntryKind,
    Field,
    Hold,
    HoldStatus,
    Line,
    Posting,
    Side,
    check_hold_postable,
    check_resolvable,
    is_expired,
    validate_draft,
)
from trustpay.money import check_amount, check_currency
from trustpay.platform.sql import insert_or_ignore

# (balance delta, pending_out delta, pending_in delta) for one account.
Deltas = tuple[int, int, int]
# Line((…)) without the NamedTuple's Python-level __new__: the hot paths make many.
_new_line: Callable[[tuple[str, str, str, int, int]], Line] = functools.partial(tuple.__new__, Line)
_SHA256 = _sha256()
_ACCOUNT_OF_ROW = itemgetter(1)  # of a row for _INSERT_BALANCE_LINES
_KIND_TEXT: dict[str, str] = {kind: str(kind) for kind in EntryKind}  # str() of an enum member costs more than a lookup

def _apply_sql(n: int) -> Sql:
    """PostgreSQL: one guarded UPDATE for all ``n`` accounts of an entry.

    Each account's row changes only if it exists, is open, holds the entry's
    currency and — when the change lowers its available balance — may go
    negative or stays ≥ 0 (the same rule as ``model.may_change``). Rows that
    fail the guard are simply not updated; RETURNING tells which ones were.
    """
    def case(col: str) -> str:
        whens = " ".join(f"WHEN :id{i} THEN :{col}{i}" for i in range(n))
        return f"CASE id {whens} END"

    guards = " OR ".join(
        f"(id = :id{i} AND currency = :ccy{i} AND closed_at IS NULL AND (allow_negative "
        f"OR :db{i} - :dpo{i} >= 0 OR balance + :db{i} - pending_out - :dpo{i} >= 0))"
        for i in range(n)
    )
    return Sql(
        f"UPDATE ledger_accounts SET balance = balance + {case('db')}, "
        f"pending_out = pending_out + {case('dpo')}, pending_in = pending_in + {case('dpi')}, "
        f"last_seq = :seq WHERE {guards} RETURNING id, balance, pending_out, pending_in"
    )


_MAX_ACCOUNTS = 16
_APPLY = {n: _apply_sql(n) for n in range(1, _MAX_ACCOUNTS + 1)}
_PARAM_NAMES = [(f"id{i}", f"ccy{i}", f"db{i}", f"dpo{i}", f"dpi{i}") for i in range(_MAX_ACCOUNTS)]
# SQLite: the same guard for one account (parameters: db, dpo, dpi, seq, id, currency).
_APPLY_ONE_SQLITE = (
    "UPDATE ledger_accounts SET balance = balance + ?1, pending_out = pending_out + ?2, "
    "pending_in = pending_in + ?3, last_seq = ?4 WHERE id = ?5 AND currency = ?6 AND closed_at IS NULL "
    "AND (allow_negative OR ?1 - ?2 >= 0 OR balance + ?1 - pending_out - ?2 >= 0)"
)


@functools.cache
def _read_before_sqlite(fields: tuple[tuple[str, ...], ...]) -> str:
    """SQLite: the journal's end and, for account ``?k`` (k = 1, 2, …), the
    totals named in ``fields[k-1]`` as they stand before the entry: one statement."""
    reads = "".join(
        f", (SELECT {field} FROM ledger_accounts WHERE id = ?{k})"
        for k, account_fields in enumerate(fields, start=1)
        for field in account_fields
    )
    return (
        "SELECT (SELECT COALESCE(MAX(seq), 0) FROM ledger_entries), "
        f"(SELECT hash FROM ledger_entries ORDER BY seq DESC LIMIT 1){reads}"
    )


# SQLite, the common two-account transfer (see _transfer_shape): the journal's end
# and both balances in one read (no row while the journal is empty: then the
# general read); each balance moved under _APPLY_ONE_SQLITE's guard with no
# pending change (parameters: delta, seq, id, currency).
_READ_TRANSFER_SQLITE = (
    "SELECT seq, hash, (SELECT balance FROM ledger_accounts WHERE id = ?1), "
    "(SELECT balance FROM ledger_accounts WHERE id = ?2) FROM ledger_entries ORDER BY seq DESC LIMIT 1"
)
_READ_FIRST_TRANSFER_SQLITE = _read_before_sqlite((("balance",), ("balance",)))
_MOVE_BALANCE_SQLITE = (
    "UPDATE ledger_accounts SET balance = balance + ?1, last_seq = ?2 WHERE id = ?3 AND currency = ?4 "
    "AND closed_at IS NULL AND (allow_negative OR ?1 >= 0 OR balance + ?1 - pending_out >= 0)"
)
_UNDO_ONE = Sql(
    "UPDATE ledger_accounts SET balance = balance - :db, pending_out = pending_out - :dpo, "
    "pending_in = pending_in - :dpi, last_seq = COALESCE((SELECT MAX(entry_seq) FROM ledger_postings "
    "WHERE account_id = :id), 0) WHERE id = :id"
)
# The chain's end is the last entry. SQLite's BEGIN IMMEDIATE already admits
# one writer at a time; PostgreSQL serialises appenders on an advisory lock.
_LAST_ENTRY = Sql("SELECT seq, hash FROM ledger_entries ORDER BY seq DESC LIMIT 1")
_CHAIN_LOCK_PG = Sql("SELECT pg_advisory_xact_lock(:key)")
_CHAIN_LOCK_KEY = 0x7472757374706179  # "trustpay"


def _insert_entry_sql(reference: bool, hold_id: bool) -> Sql:
    # An absent reference or hold is NULL in the statement itself: sqlite3
    # spends ~1 µs adapting each None parameter, and most entries lack a hold.
    return Sql(
        "INSERT INTO ledger_entries (seq, id, kind, reference, hold_id, memo, created_at, prev_hash, hash) "
        f"VALUES (?, ?, ?, {'?' if reference else 'NULL'}, {'?' if hold_id else 'NULL'}, ?, ?, ?, ?)"
    )


# By (has a reference, has a hold); see _entry_row for the matching parameters.
_INSERT_ENTRY = {(r, h): _insert_entry_sql(r, h) for r in (False, True) for h in (False, True)}
_INSERT_ENTRY_SQLITE = _INSERT_ENTRY[False, False].sqlite
_INSERT_REFERRING_ENTRY_SQLITE = _INSERT_ENTRY[True, False].sqlite
# A transfer without reference, hold or memo, the batch's usual entry: every
# parameter sqlite3 binds costs (text is copied), so its kind and memo are in the statement.
_INSERT_PLAIN_TRANSFER = Sql(
    "INSERT INTO ledger_entries (seq, id, kind, reference, hold_id, memo, created_at, prev_hash, hash) "
    "VALUES (?, ?, 'transfer', NULL, NULL, '', ?, ?, ?)"
)


class _Chunked(NamedTuple):
    """SQLite: a batch's rows for ``one`` (a one-row INSERT) written ``size``
    rows per statement by ``sql``, the same INSERT with ``size`` rows of
    VALUES. Each statement run costs ~10k instructions beyond its rows'
    work (binding, stepping, resetting through sqlite3): a batch's journal
    and line rows take ~22% fewer instructions and ~15-20% less CPU time
    than one statement run per row (rows that do not fill a chunk take ``one``)."""

    one: Sql
    sql: str
    size: int


def _chunked(one: Sql, size: int, *, keep_earlier_rows: bool = False) -> _Chunked:
    head, values = one.sqlite.split(" VALUES ")
    if keep_earlier_rows:
        # OR FAIL: a failing row ends the statement without undoing the rows
        # before it, as a run of one-row statements would leave them; then
        # SQLite needs no statement journal for it. (Any such failure fails
        # the batch, and the caller's transaction or savepoint undoes it all.)
        head = head.replace("INSERT INTO", "INSERT OR FAIL INTO")
    return _Chunked(one, f"{head} VALUES {', '.join([values] * size)}", size)


# The journal's rows 16 at a time (ledger_entries has no foreign keys: with OR
# FAIL no statement journal). The lines' rows 4 at a time: their foreign keys
# are checked when each statement ends, so SQLite keeps each statement's first
# changes to a page to undo it, in memory while that stays under 64 KiB
# (SQLITE_STMTJRNL_SPILL) and in a temporary file beyond: 4 rows touch a
# handful of pages; 8 already spilled (~30 writes a statement, slower than one row at a time).
_INSERT_PLAIN_TRANSFERS = _chunked(_INSERT_PLAIN_TRANSFER, 16, keep_earlier_rows=True)
_INSERT_LINES = Sql(
    "INSERT INTO ledger_postings (entry_seq, account_id, field, currency, delta, balance_after) "
    "VALUES (?, ?, ?, ?, ?, ?)"
)
_INSERT_LINES_CHUNKED = _chunked(_INSERT_LINES, 4)
# Any journal rows, 16 a statement, for the entries a call writes together (post_holds).
_INSERT_ENTRIES = {sql: _chunked(sql, 16, keep_earlier_rows=True) for sql in _INSERT_ENTRY.values()}
# A batch posts money only: every line it writes moves a balance.
_INSERT_BALANCE_LINES = Sql(
    "INSERT INTO ledger_postings (entry_seq, account_id, field, currency, delta, balance_after) "
    "VALUES (?, ?, 'balance', ?, ?, ?)"
)
_INSERT_BALANCE_LINES_CHUNKED = _chunked(_INSERT_BALANCE_LINES, 4)
_INSERT_TWO_BALANCE_LINES = _chunked(_INSERT_BALANCE_LINES, 2).sql  # a two-account transfer's
_SET_TOTALS = Sql(
    "UPDATE ledger_accounts SET balance = ?, pending_out = ?, pending_in = ?, last_seq = ? WHERE id = ?"
)
_TOTALS_COLUMNS = (
    "SELECT id, currency, allow_negative, closed_at, balance, pending_out, pending_in, last_seq "
    "FROM ledger_accounts WHERE id IN "
)
_LOCK_CHUNK = 500


@functools.cache
def _lock_totals_sql(n: int, pg: bool) -> Sql:
    # PostgreSQL locks the rows (in id order); SQLite's writer lock already covers them.
    return Sql(_TOTALS_COLUMNS + f"({', '.join('?' * n)}) ORDER BY id" + (" FOR UPDATE" if pg else ""))


class _Chain:
    """The journal's end while this transaction appends to it (lock held)."""

    __slots__ = ("hash", "seq")

    def __init__(self, seq: int, hash: str) -> None:
        self.seq, self.hash = seq, hash

    @classmethod
    def lock(cls, raw: Raw) -> _Chain:
        if raw.is_pg:
            raw.run(_CHAIN_LOCK_PG, {"key": _CHAIN_LOCK_KEY})
        last = raw.rows(_LAST_ENTRY)
        return cls(int(last[0][0]), str(last[0][1])) if last else cls(0, GENESIS)


class _Totals:
    """An account's running totals, held in memory by a batch (rows locked)."""

    __slots__ = ("allow_negative", "balance", "currency", "id", "is_open", "last_seq", "line_head",
                 "pending_in", "pending_out")

    def __init__(self, row: Any) -> None:
        self.id, self.currency = row[0], row[1]
        self.allow_negative, self.is_open = bool(row[2]), row[3] is None
        self.balance, self.pending_out, self.pending_in = int(row[4]), int(row[5]), int(row[6])
        self.last_seq = int(row[7])
        # The canonical text of this account's balance lines, up to the delta.
        self.line_head = line_head(self.id, "balance", self.currency)


class BatchResult(NamedTuple):
    """One result of :meth:`Book.post_batch`: the entry, or why it was refused.

    (A NamedTuple: a batch makes tens of thousands a second.)"""

    entry: Entry | None
    error: TrustPayError | None


_FIND_OWNED = select(ledger_accounts).where(
    ledger_accounts.c.kind == bindparam("kind"), ledger_accounts.c.currency == bindparam("currency"),
    ledger_accounts.c.owner_id == bindparam("owner_id"),
)
_FIND_UNOWNED = select(ledger_accounts).where(
    ledger_accounts.c.kind == bindparam("kind"), ledger_accounts.c.currency == bindparam("currency"),
    ledger_accounts.c.owner_id.is_(None),
)


class Book:
    def __init__(self, clock: Clock, *, max_amount: int) -> None:
        self.clock = clock
        self.max_amount = max_amount

    # ------------------------------------------------------------ accounts
    def open_account(
        self,
        conn: Connection,
        *,
        currency: str,
        kind: str,
        owner_id: str | None = None,
        name: str = "",
        allow_negative: bool = False,
    ) -> Account:
        """Open an account, or return the existing one for (owner, kind, currency)."""
        check_currency(currency)
        existing = self._find(conn, owner_id, kind, currency)
        if existing is not None:
            return existing
        row = {
            "id": new_id("acc", self.clock.now()),
            "owner_id": owner_id,
            "currency": currency,
            "kind": kind,
            "name": name,
            "allow_negative": allow_negative,
            "balance": 0,
            "pending_out": 0,
            "pending_in": 0,
            "created_at": self.clock.now(),
            "closed_at": None,
        }
        if owner_id is None:
            # No uniqueness to lean on (NULL owners never collide): a plain insert.
            conn.execute(ledger_accounts.insert(), row)
            return _account(row)
        # Two first-ever openings at once (the first withdrawal opening the bank's
        # clearing account, say): ON CONFLICT lets the loser wait for the winner
        # and then read its row instead of failing on the unique constraint.
        if insert_or_ignore(conn, ledger_accounts, row, ("owner_id", "kind", "currency")):
            return _account(row)
        winner = self._find(conn, owner_id, kind, currency)
        assert winner is not None  # the conflicting row has committed
        return winner

    def close_account(self, conn: Connection, account_id: str) -> Account:
        acc = self.account(conn, account_id, for_update=True)
        if not acc.is_open:
            raise AccountClosed(f"account {account_id} is already closed")
        if acc.balance or acc.pending_in or acc.pending_out:
            raise AccountNotEmpty(f"account {account_id} still holds money or open holds")
        now = self.clock.now()
        conn.execute(
            ledger_accounts.update().where(ledger_accounts.c.id == account_id).values(closed_at=now)
        )
        return self.account(conn, account_id)

    def account(self, conn: Connection, account_id: str, *, for_update: bool = False) -> Account:
        q = select(ledger_accounts).where(ledger_accounts.c.id == account_id)
        if for_update:
            q = q.with_for_update()
        row = conn.execute(q).mappings().first()
        if row is None:
            raise AccountNotFound(f"no ledger account {account_id}")
        return _account(row)

    def accounts_of(self, conn: Connection, owner_id: str) -> list[Account]:
        rows = conn.execute(
            select(ledger_accounts)
            .where(ledger_accounts.c.owner_id == owner_id)
            .order_by(ledger_accounts.c.kind, ledger_accounts.c.currency)
        ).mappings()
        return [_account(r) for r in rows]

    def _find(self, conn: Connection, owner_id: str | None, kind: str, currency: str) -> Account | None:
        # Built once (db/prepared.py): every transfer looks up its recipient's wallet here.
        params = {"kind": kind, "currency": currency}
        if owner_id is None:
            row = prepared.mapping(conn, _FIND_UNOWNED, params)
        else:
            row = prepared.mapping(conn, _FIND_OWNED, {**params, "owner_id": owner_id})
        return _account(row) if row else None

    # ------------------------------------------------------------- posting
    def post(self, conn: Connection, draft: EntryDraft) -> Entry:
        """Record a balanced entry: all its postings or none of them."""
        shape = _transfer_shape(draft, self.max_amount)
        if shape is not None:
            raw = Raw.of(conn)
            if not raw.is_pg:
                return self._transfer_sqlite(conn, raw, draft, *shape)
        net = validate_draft(draft, self.max_amount)  # in posting order, each account once
        changes = {a: ((net[a], 0, 0), c) for a, _, _, c in draft.postings}
        return self._append(conn, draft.kind, draft.reference, None, draft.memo, changes)

    def post_batch(self, conn: Connection, drafts: Sequence[EntryDraft]) -> list[BatchResult]:
        """Many independent entries in one transaction, each all-or-nothing.

        The batch locks every account it touches once (in id order), checks
        each entry against the running totals in memory with the same rule
        as the single-entry UPDATE guard, and writes accepted entries, their
        lines and each account's final totals in bulk. A refused entry
        changes nothing and reports its error; the others commit together.
        """
        # A batch keeps tens of thousands of new tuples alive until it returns
        # (lines, entries, results, rows): none can be part of a cycle, yet
        # every 700 of them set off a cyclic collection that walked them all
        # again (~4% of a batch's instructions under callgrind). The collector
        # is paused for the batch and turned back on only if it was on, so a
        # caller that turned it off keeps it off.
        collecting = gc.isenabled()
        gc.disable()
        try:
            return self._post_batch(conn, drafts)
        finally:
            if collecting:
                gc.enable()

    def _post_batch(self, conn: Connection, drafts: Sequence[EntryDraft]) -> list[BatchResult]:
        raw = Raw.of(conn)
        max_amount = self.max_amount
        debit_side, credit_side = Side.DEBIT, Side.CREDIT
        # Each draft, checked before any I/O: a refusal, or (draft, net) from
        # validate_draft, or — the common shape, one debit and one credit of
        # the same amount and currency between two accounts — the 6-tuple
        # (draft, lower account id, its delta, higher account id, its delta,
        # currency), which is exactly what validate_draft would accept.
        prepared: list[tuple[Any, ...] | TrustPayError] = []
        wanted: set[str] = set()
        for draft in drafts:
            postings = draft.postings
            if len(postings) == 2:
                (a, side_a, amount, currency), (b, side_b, amount_b, currency_b) = postings
                if (type(amount) is int and type(amount_b) is int and amount == amount_b
                        and 0 < amount <= max_amount and currency == currency_b and a != b
                        and len(draft.memo) <= 500
                        and ((side_a is debit_side and side_b is credit_side)
                             or (side_a is credit_side and side_b is debit_side))):
                    delta = -amount if side_a is debit_side else amount
                    prepared.append((draft, a, delta, b, -delta, currency) if a < b
                                    else (draft, b, -delta, a, delta, currency))
                    wanted.add(a)
                    wanted.add(b)
                    continue
            try:
                net = validate_draft(draft, max_amount)
            except TrustPayError as exc:
                prepared.append(exc)
                continue
            prepared.append((draft, net))
            wanted.update(net)
        # Chain lock first, then the accounts: every appender takes them in this order.
        chain = _Chain.lock(raw)
        totals = _lock_totals(raw, wanted)
        find = totals.get
        now = self.clock.now()
        stamp = timestamp(now)  # one commit, one time for all its entries
        db_time = now if raw.is_pg else _sqlite_time(stamp)
        parts = CanonicalParts(stamp)
        head, kind_part, tail_part = parts.head, parts.kind_part, parts.tail_part
        seq, prev_hash = chain.seq, chain.hash
        prev_digest = bytes.fromhex(prev_hash)
        results: list[BatchResult] = []
        # Journal rows of plain transfers (no reference or memo: the usual
        # batch entry, whose kind and memo are written in the statement), and
        # of other entries without and with a reference (a batch holds no holds): see _entry_row.
        transfer_kind = _KIND_TEXT[EntryKind.TRANSFER]
        transfer_part, plain_tail = kind_part(transfer_kind), tail_part("", None)
        transfer_rows: list[tuple[Any, ...]] = []
        plain_rows: list[tuple[Any, ...]] = []
        referring_rows: list[tuple[Any, ...]] = []
        line_rows: list[tuple[Any, ...]] = []
        # One CSPRNG read for every id the batch may need (refused entries leave theirs unused).
        fresh_ids = iter(new_ids("txn", now, sum(1 for p in prepared if not isinstance(p, TrustPayError))))
        fresh_hasher = _SHA256.copy  # a copy of an empty hasher: cheaper than sha256() looking SHA-256 up again
        make = tuple.__new__  # Line((…)) etc. without the NamedTuples' Python-level __new__ (or a partial's call)
        for item in prepared:
            if isinstance(item, TrustPayError):
                results.append(BatchResult(None, item))
                continue
            # The entry is checked, applied, sealed and its rows built right
            # here (no per-entry helper calls for the common shape): this loop
            # runs tens of thousands of times a second.
            draft = item[0]
            lines: tuple[Line, ...]
            if len(item) == 6:
                _, low, low_delta, high, high_delta, currency = item
                lt, ht = find(low), find(high)
                # _refusal's rule, written out for two accounts.
                if (lt is None or ht is None or lt.currency != currency or ht.currency != currency
                        or not lt.is_open or not ht.is_open
                        or not (lt.allow_negative or low_delta >= 0 or lt.balance + low_delta - lt.pending_out >= 0)
                        or not (ht.allow_negative or high_delta >= 0
                                or ht.balance + high_delta - ht.pending_out >= 0)):
                    results.append(BatchResult(None, _refusal(
                        totals, ((low, low_delta, 0, currency), (high, high_delta, 0, currency)))))
                    continue
                seq += 1
                lt.balance = low_after = lt.balance + low_delta
                ht.balance = high_after = ht.balance + high_delta
                lt.last_seq = ht.last_seq = seq
                line_rows.append((seq, low, currency, low_delta, low_after))
                line_rows.append((seq, high, currency, high_delta, high_after))
                lines = (make(Line, (low, "balance", currency, low_delta, low_after)),
                         make(Line, (high, "balance", currency, high_delta, high_after)))
                body = f"{lt.line_head}{low_delta}],{ht.line_head}{high_delta}]"
            else:
                try:
                    lines, body = _apply_in_memory(totals, item[1], draft.postings, seq + 1, line_rows)
                except TrustPayError as exc:
                    results.append(BatchResult(None, exc))
                    continue
                seq += 1
            entry_id = next(fresh_ids)  # [0-9a-z_] only: needs no JSON escaping
            kind, reference, memo = _KIND_TEXT.get(draft.kind) or str(draft.kind), draft.reference, draft.memo
            # chain_hash(prev, canonical_from_body(…)), with the previous digest kept as bytes.
            plain_transfer = kind is transfer_kind and reference is None and not memo
            if plain_transfer:
                text = f"{head}{entry_id}{transfer_part}{body}{plain_tail}{seq}}}"
            else:
                text = f"{head}{entry_id}{kind_part(kind)}{body}{tail_part(memo, reference)}{seq}}}"
            hasher = fresh_hasher()
            hasher.update(prev_digest + text.encode())
            sealed = hasher.digest()
            digest = sealed.hex()
            if plain_transfer:
                transfer_rows.append((seq, entry_id, db_time, prev_hash, digest))
            elif reference is None:
                plain_rows.append((seq, entry_id, kind, memo, db_time, prev_hash, digest))
            else:
                referring_rows.append((seq, entry_id, kind, reference, memo, db_time, prev_hash, digest))
            results.append(make(BatchResult, (make(Entry, (seq, entry_id, kind, reference, None, memo, now, prev_hash,
                                                           digest, lines)), None)))
            prev_hash, prev_digest = digest, sealed
        if line_rows:
            if transfer_rows:
                _insert_rows(raw, _INSERT_PLAIN_TRANSFERS, transfer_rows)
            if plain_rows:
                raw.many(_INSERT_ENTRY[False, False], plain_rows)
            if referring_rows:
                raw.many(_INSERT_ENTRY[True, False], referring_rows)
            # By account (stable: then by entry): each account's leaf of the
            # postings' account index is then visited once, its inserts in a run,
            # not 200 leaves in random order (~10% less time in this INSERT).
            line_rows.sort(key=_ACCOUNT_OF_ROW)
            _insert_rows(raw, _INSERT_BALANCE_LINES_CHUNKED, line_rows)
            # Each changed account once, with its final totals (the batch's last entry on it in last_seq).
            raw.many(_SET_TOTALS, [
                (t.balance, t.pending_out, t.pending_in, t.last_seq, t.id)
                for t in sorted(totals.values(), key=attrgetter("id")) if t.last_seq > chain.seq
            ])
        return results

    def reverse(self, conn: Connection, entry_id: str, *, memo: str = "") -> Entry:
        """Undo a posted money movement with an opposite entry (the journal never changes)."""
        original = self.entry(conn, entry_id)
        if original.kind == EntryKind.REVERSAL:
            raise NotReversible("a reversal is corrected by a new entry, not reversed")
        moves = [ln for ln in original.lines if ln.field == Field.BALANCE]
        if not moves:
            raise NotReversible(f"entry {entry_id} moved no posted money")
        changes = {ln.account_id: ((-ln.delta, 0, 0), ln.currency) for ln in moves}

        def not_yet_reversed(c: Connection) -> None:
            # Runs under the chain lock and before any balance changes, so two
            # reversals of one entry cannot both pass, and a refused second
            # one says "already reversed" even if the money has moved on since.
            dup = c.execute(
                select(ledger_entries.c.id).where(
                    ledger_entries.c.kind == EntryKind.REVERSAL,
                    ledger_entries.c.reference == entry_id,
                )
            ).first()
            if dup:
                raise AlreadyReversed(f"entry {entry_id} was already reversed by {dup.id}")

        return self._append(
            conn, EntryKind.REVERSAL, entry_id, original.hold_id, memo or f"reversal of {entry_id}",
            changes, under_chain_lock=not_yet_reversed,
        )

    # --------------------------------------------------------------- holds
    def hold(
        self,
        conn: Connection,
        *,
        debit_account_id: str,
        credit_account_id: str,
        amount: int,
        currency: str,
        expires_at: datetime | None = None,
        reference: str | None = None,
        memo: str = "",
    ) -> Hold:
        """Reserve ``amount`` from one account for another (TigerBeetle's pending transfer)."""
        check_amount(amount, self.max_amount)
        if debit_account_id == credit_account_id:
            raise MalformedEntry("a hold needs two different accounts")
        now = self.clock.now()
        hold_id = new_id("hold", now)
        if expires_at is not None:
            expires_at = to_utc(expires_at)  # SQLite keeps no offset: store UTC
        changes = {
            debit_account_id: ((0, amount, 0), currency),
            credit_account_id: ((0, 0, amount), currency),
        }
        self._append(conn, EntryKind.HOLD, reference, hold_id, memo, changes)
        row = {
            "id": hold_id,
            "debit_account_id": debit_account_id,
            "credit_account_id": credit_account_id,
            "currency": currency,
            "amount": amount,
            "status": HoldStatus.PENDING.value,
            "posted_amount": 0,
            "expires_at": expires_at,
            "reference": reference,
            "created_at": now,
            "resolved_at": None,
        }
        prepared.insert(conn, ledger_holds, row)
        return _hold(row)

    def post_hold(self, conn: Connection, hold_id: str, amount: int | None = None, *, memo: str = "") -> Entry:
        """Complete a hold for ``amount`` (default: all of it); the rest goes back."""
        h = self.get_hold(conn, hold_id, for_update=True)
        amount = h.amount if amount is None else check_amount(amount, self.max_amount)
        check_hold_postable(h, amount, self.clock.now())
        changes = {
            h.debit_account_id: ((-amount, -h.amount, 0), h.currency),
            h.credit_account_id: ((amount, 0, -h.amount), h.currency),
        }
        entry = self._append(conn, EntryKind.POST_HOLD, h.reference, h.id, memo, changes)
        self._resolve(conn, h, HoldStatus.POSTED, amount)
        return entry

    def post_holds(self, conn: Connection, holds: Sequence[tuple[str, str]]) -> list[Entry]:
        """Complete many holds in full, each ``(hold id, memo)`` with its memo: the
        entries :meth:`post_hold` would append one by one, in this order, written
        with a fixed number of statements for the lot instead of ~8 each (the job
        worker closes a busy server's undo windows dozens at a time).

        All or nothing: the first hold that cannot be posted — unknown, resolved,
        expired, listed twice — raises :meth:`post_hold`'s error, before anything
        is written."""
        if not holds:
            return []
        raw = Raw.of(conn)
        now = self.clock.now()
        # The holds' rows first, then the chain, then the accounts: post_hold's lock order.
        found = _lock_holds(conn, {hold_id for hold_id, _ in holds})
        posted: set[str] = set()
        for hold_id, _ in holds:
            h = found.get(hold_id)
            if h is None:
                raise HoldNotFound(f"no hold {hold_id}")
            if hold_id in posted:
                raise HoldAlreadyResolved(f"hold {hold_id} is already {HoldStatus.POSTED}")
            check_hold_postable(h, h.amount, now)
            posted.add(hold_id)
        chain = _Chain.lock(raw)
        totals = _lock_totals(raw, {a for h in found.values() for a in (h.debit_account_id, h.credit_account_id)})
        stamp = timestamp(now)
        created_at = now if raw.is_pg else _sqlite_time(stamp)
        kind = _KIND_TEXT[EntryKind.POST_HOLD]
        seq, prev_hash = chain.seq, chain.hash
        entries: list[Entry] = []
        entry_rows: dict[Sql, list[tuple[Any, ...]]] = {}
        line_rows: list[tuple[Any, ...]] = []
        for (hold_id, memo), entry_id in zip(holds, new_ids("txn", now, len(holds)), strict=True):
            h = found[hold_id]
            # post_hold's changes, in account-id order: the payer's pending money
            # leaves its balance, the payee's pending money arrives in its balance.
            changes = sorted([(h.debit_account_id, -h.amount, -h.amount, 0),
                              (h.credit_account_id, h.amount, 0, -h.amount)])
            refused = _refusal(totals, [(a, db, dpo, h.currency) for a, db, dpo, _ in changes])
            if refused is not None:
                raise refused
            seq += 1
            lines: list[Line] = []
            for account_id, db, dpo, dpi in changes:
                t = totals[account_id]
                t.balance, t.pending_out, t.pending_in = t.balance + db, t.pending_out + dpo, t.pending_in + dpi
                t.last_seq = seq
                _add_lines(lines, account_id, h.currency, db, dpo, dpi, t.balance, t.pending_out, t.pending_in)
            digest = chain_hash(prev_hash, canonical_sorted(seq, entry_id, kind, h.reference, h.id, memo, stamp, lines))
            sql, row = _entry_row(seq, entry_id, kind, h.reference, h.id, memo, created_at, prev_hash, digest)
            entry_rows.setdefault(sql, []).append(row)
            line_rows.extend((seq, *line) for line in lines)
            entries.append(Entry(seq, entry_id, kind, h.reference, h.id, memo, now, prev_hash, digest, tuple(lines)))
            prev_hash = digest
        for sql, rows in entry_rows.items():
            _insert_rows(raw, _INSERT_ENTRIES[sql], rows)
        _insert_rows(raw, _INSERT_LINES_CHUNKED, line_rows)
        raw.many(_SET_TOTALS, [(t.balance, t.pending_out, t.pending_in, t.last_seq, t.id)
                               for t in sorted(totals.values(), key=attrgetter("id"))])
        resolved = conn.execute(
            update(ledger_holds)
            .where(ledger_holds.c.id.in_(sorted(posted)), ledger_holds.c.status == HoldStatus.PENDING.value)
            .values(status=HoldStatus.POSTED.value, posted_amount=ledger_holds.c.amount, resolved_at=now)
        ).rowcount
        if resolved != len(posted):  # cannot happen under the row locks; _resolve's guard, kept
            raise HoldAlreadyResolved("a hold was resolved concurrently")
        return entries

    def void_hold(self, conn: Connection, hold_id: str, *, memo: str = "") -> Entry:
        """Cancel a pending hold: the whole amount becomes available again."""
        h = self.get_hold(conn, hold_id, for_update=True)
        check_resolvable(h, self.clock.now())
        return self._release(conn, h, HoldStatus.VOIDED, EntryKind.VOID_HOLD, memo)

    def expire_due_holds(self, conn: Connection, *, limit: int = 500) -> int:
        """Release every pending hold whose expiry has passed; returns how many."""
        now = self.clock.now()
        rows = conn.execute(
            select(ledger_holds.c.id)
            .where(ledger_holds.c.status == HoldStatus.PENDING.value, ledger_holds.c.expires_at <= now)
            .order_by(ledger_holds.c.expires_at, ledger_holds.c.id)
            .limit(limit)
        ).all()
        done = 0
        for (hold_id,) in rows:
            h = self.get_hold(conn, hold_id, for_update=True)
            if h.status is HoldStatus.PENDING and is_expired(h, now):
                self._release(conn, h, HoldStatus.EXPIRED, EntryKind.EXPIRE_HOLD, "expired")
                done += 1
        return done

    def get_hold(self, conn: Connection, hold_id: str, *, for_update: bool = False) -> Hold:
        stmt = prepared.select_where(ledger_holds, "id", for_update=for_update)
        row = prepared.mapping(conn, stmt, prepared.where_params(id=hold_id))
        if row is None:
            raise HoldNotFound(f"no hold {hold_id}")
        return _hold(row)

    def _release(self, conn: Connection, h: Hold, status: HoldStatus, kind: str, memo: str) -> Entry:
        changes = {
            h.debit_account_id: ((0, -h.amount, 0), h.currency),
            h.credit_account_id: ((0, 0, -h.amount), h.currency),
        }
        entry = self._append(conn, kind, h.reference, h.id, memo, changes)
        self._resolve(conn, h, status, 0)
        return entry

    def _resolve(self, conn: Connection, h: Hold, status: HoldStatus, posted: int) -> None:
        # The status guard makes a concurrent second resolution a no-op we can detect.
        changed = prepared.change(
            conn, ledger_holds, {"id": h.id, "status": HoldStatus.PENDING.value},
            {"status": status.value, "posted_amount": posted, "resolved_at": self.clock.now()},
        )
        if changed != 1:
            raise HoldAlreadyResolved(f"hold {h.id} was resolved concurrently")

    # --------------------------------------------------------------- reads
    def entry(self, conn: Connection, entry_id: str) -> Entry:
        row = conn.execute(select(ledger_entries).where(ledger_entries.c.id == entry_id)).mappings().first()
        if row is None:
            raise EntryNotFound(f"no ledger entry {entry_id}")
        lines = conn.execute(
            select(ledger_postings)
            .where(ledger_postings.c.entry_seq == row["seq"])
            .order_by(ledger_postings.c.account_id, ledger_postings.c.field)
        ).mappings()
        return _entry(row, [_line(r) for r in lines])

    def head(self, conn: Connection) -> tuple[int, str]:
        """(height, hash) of the journal's last entry; (0, GENESIS) when empty."""
        last = Raw.of(conn).rows(_LAST_ENTRY)
        return (int(last[0][0]), str(last[0][1])) if last else (0, GENESIS)

    # ------------------------------------------------------------ internals
    def _append(
        self,
        conn: Connection,
        kind: str,
        reference: str | None,
        hold_id: str | None,
        memo: str,
        changes: dict[str, tuple[Deltas, str]],
        *,
        under_chain_lock: Callable[[Connection], None] | None = None,
    ) -> Entry:
        raw = Raw.of(conn)
        ids = sorted(changes)  # fixed order: by account id
        if len(ids) > _MAX_ACCOUNTS:
            raise MalformedEntry(f"an entry may touch at most {_MAX_ACCOUNTS} accounts")
        apply = self._apply_pg if raw.is_pg else self._apply_sqlite
        seq, prev_hash, lines = apply(conn, raw, ids, changes, under_chain_lock)
        # Sealed: the next place in the journal, the hash chained to the last.
        # ``lines`` are in canonical order (by account, then field name).
        now = self.clock.now()
        entry_id = new_id("txn", now)
        kind = str(kind)
        stamp = timestamp(now)
        digest = chain_hash(
            prev_hash, canonical_sorted(seq, entry_id, kind, reference, hold_id, memo, stamp, lines)
        )
        sql, row = _entry_row(seq, entry_id, kind, reference, hold_id, memo,
                              now if raw.is_pg else _sqlite_time(stamp), prev_hash, digest)
        raw.run(sql, row)
        _insert_lines(raw, seq, lines)
        return Entry(seq, entry_id, kind, reference, hold_id, memo, now, prev_hash, digest, lines)

    def _transfer_sqlite(
        self, conn: Connection, raw: Raw, draft: EntryDraft, low: str, low_delta: int, high: str,
        high_delta: int, currency: str,
    ) -> Entry:
        """:meth:`_append` for the common draft on SQLite (see :func:`_transfer_shape`),
        with its steps written out: the same statements but one read, guards,
        lines, hash and rows as ``_apply_sqlite`` and ``_append`` make them."""
        cursor = raw.sqlite_cursor
        before = cursor.execute(_READ_TRANSFER_SQLITE, (low, high)).fetchone()
        if before is None:  # the journal is empty
            before = cursor.execute(_READ_FIRST_TRANSFER_SQLITE, (low, high)).fetchone()
        head_seq, head_hash, low_balance, high_balance = before
        seq = head_seq + 1
        if cursor.execute(_MOVE_BALANCE_SQLITE, (low_delta, seq, low, currency)).rowcount != 1:
            self._refuse(conn, raw, _transfer_changes(low, low_delta, high, high_delta, currency), [], low)
        if cursor.execute(_MOVE_BALANCE_SQLITE, (high_delta, seq, high, currency)).rowcount != 1:
            self._refuse(conn, raw, _transfer_changes(low, low_delta, high, high_delta, currency), [low], high)
        low_after, high_after = low_balance + low_delta, high_balance + high_delta
        now = self.clock.now()
        stamp = timestamp(now)
        entry_id = new_id("txn", now)
        kind, reference, memo = _KIND_TEXT.get(draft.kind) or str(draft.kind), draft.reference, draft.memo
        prev_hash = head_hash or GENESIS
        low_head, high_head = known_line_head(low, "balance", currency), known_line_head(high, "balance", currency)
        digest = chain_hash(prev_hash, canonical_from_body(
            seq, entry_id, kind, reference, None, memo, stamp, f"{low_head}{low_delta}],{high_head}{high_delta}]"))
        # _entry_row's rows for an entry without a hold.
        created_at = f"{stamp[:10]} {stamp[11:26]}"  # _sqlite_time
        if reference is None:
            cursor.execute(_INSERT_ENTRY_SQLITE, (seq, entry_id, kind, memo, created_at, prev_hash, digest))
        else:
            cursor.execute(_INSERT_REFERRING_ENTRY_SQLITE,
                           (seq, entry_id, kind, reference, memo, created_at, prev_hash, digest))
        cursor.execute(_INSERT_TWO_BALANCE_LINES, (seq, low, currency, low_delta, low_after,
                                                   seq, high, currency, high_delta, high_after))
        make = tuple.__new__
        lines = (make(Line, (low, "balance", currency, low_delta, low_after)),
                 make(Line, (high, "balance", currency, high_delta, high_after)))
        return make(Entry, (seq, entry_id, kind, reference, None, memo, now, prev_hash, digest, lines))

    def _apply_pg(
        self, conn: Connection, raw: Raw, ids: list[str], changes: dict[str, tuple[Deltas, str]],
        under_chain_lock: Callable[[Connection], None] | None,
    ) -> tuple[int, str, tuple[Line, ...]]:
        """Change the accounts' totals; returns the entry's seq, the previous hash and its lines."""
        # The chain lock comes first (an advisory lock), then the account rows:
        # all appenders queue on one lock, so their row locks can never form a
        # cycle (no deadlocks between ledger writers), and a check made under
        # it (e.g. "not reversed yet") precedes any change.
        chain = _Chain.lock(raw)
        if under_chain_lock is not None:
            under_chain_lock(conn)
        seq = chain.seq + 1
        params: dict[str, Any] = {"seq": seq}
        for (n_id, n_ccy, n_db, n_dpo, n_dpi), account_id in zip(_PARAM_NAMES, ids, strict=False):
            (params[n_db], params[n_dpo], params[n_dpi]), params[n_ccy] = changes[account_id]
            params[n_id] = account_id
        rows = raw.rows(_APPLY[len(ids)], params)
        if len(rows) != len(ids):
            # Some account refused: put back the ones that changed (the caller's
            # transaction may go on), then say why the first refusal happened.
            changed = {row[0] for row in rows}
            self._refuse(conn, raw, changes, [a for a in ids if a in changed],
                         next(a for a in ids if a not in changed))
        after = {row[0]: row for row in rows}
        lines: list[Line] = []
        for account_id in ids:
            (db, dpo, dpi), currency = changes[account_id]
            _, balance, pending_out, pending_in = after[account_id]
            _add_lines(lines, account_id, currency, db, dpo, dpi, balance, pending_out, pending_in)
        return seq, chain.hash, tuple(lines)

    def _apply_sqlite(
        self, conn: Connection, raw: Raw, ids: list[str], changes: dict[str, tuple[Deltas, str]],
        under_chain_lock: Callable[[Connection], None] | None,
    ) -> tuple[int, str, tuple[Line, ...]]:
        """:meth:`_apply_pg` for SQLite, whose writer lock is the chain lock.

        SQLite admits one writer at a time and a write transaction sees the
        latest committed state (a deferred one that read an older snapshot
        fails with SQLITE_BUSY on its first write), so the journal's end and
        the totals read first are exactly what the UPDATEs then change."""
        if under_chain_lock is not None:
            under_chain_lock(conn)
        deltas = [changes[a] for a in ids]
        fields = tuple([_CHANGED_FIELDS[db != 0, dpo != 0, dpi != 0] for (db, dpo, dpi), _ in deltas])
        driver = raw.dbapi
        head_seq, head_hash, *before = driver.execute(_read_before_sqlite(fields), ids).fetchone()
        seq = head_seq + 1
        for i, account_id in enumerate(ids):
            (db, dpo, dpi), currency = deltas[i]
            if driver.execute(_APPLY_ONE_SQLITE, (db, dpo, dpi, seq, account_id, currency)).rowcount != 1:
                self._refuse(conn, raw, changes, ids[:i], account_id)
        # The lines, in _add_lines' order, each total being what was read plus its delta.
        lines: list[Line] = []
        totals = iter(before)
        for i, account_id in enumerate(ids):
            (db, dpo, dpi), currency = deltas[i]
            if db:
                lines.append(_new_line((account_id, "balance", currency, db, next(totals) + db)))
            if dpi:
                lines.append(_new_line((account_id, "pending_in", currency, dpi, next(totals) + dpi)))
            if dpo:
                lines.append(_new_line((account_id, "pending_out", currency, dpo, next(totals) + dpo)))
        return seq, head_hash or GENESIS, tuple(lines)

    def _refuse(
        self, conn: Connection, raw: Raw, changes: dict[str, tuple[Deltas, str]], changed: list[str],
        refused: str,
    ) -> NoReturn:
        """Put back the accounts ``changed`` so far (the caller's transaction may
        go on), then say why ``refused`` refused."""
        for account_id in changed:
            (db, dpo, dpi), _ = changes[account_id]
            raw.run(_UNDO_ONE, {"id": account_id, "db": db, "dpo": dpo, "dpi": dpi})
        self._explain_refusal(conn, refused, changes[refused][1])

    def _explain_refusal(self, conn: Connection, account_id: str, currency: str) -> NoReturn:
        """The guarded UPDATE matched nothing: say exactly why (slow path only)."""
        row = conn.execute(
            select(ledger_accounts).where(ledger_accounts.c.id == account_id)
        ).mappings().first()
        if row is None:
            raise AccountNotFound(f"no ledger account {account_id}", param="account")
        if row["currency"] != currency:
            raise CurrencyMismatch(
                f"account {account_id} holds {row['currency']}, not {currency}", param="currency"
            )
        if row["closed_at"] is not None:
            raise AccountClosed(f"account {account_id} is closed")
        raise Overdraft(f"account {account_id} has insufficient available funds")


# The totals a change moves, by which of its (balance, pending_out, pending_in)
# deltas are non-zero, in the order of the lines (see _add_lines).
_CHANGED_FIELDS = {
    (db, dpo, dpi): (("balance",) if db else ()) + (("pending_in",) if dpi else ()) + (("pending_out",) if dpo else ())
    for db in (False, True) for dpo in (False, True) for dpi in (False, True)
}


def _transfer_shape(draft: EntryDraft, max_amount: int) -> tuple[str, int, str, int, str] | None:
    """The common draft — one debit and one credit of the same amount and
    currency between two accounts — as (lower account id, its delta, higher
    account id, its delta, currency), or None for any other draft (which
    ``validate_draft`` then checks). Every draft this accepts is one that
    ``validate_draft`` accepts (a test pins it)."""
    postings = draft.postings
    if len(postings) != 2:
        return None
    (a, side_a, amount, currency), (b, side_b, amount_b, currency_b) = postings
    if not (type(amount) is int and type(amount_b) is int and amount == amount_b and 0 < amount <= max_amount
            and currency == currency_b and a != b and len(draft.memo) <= 500):
        return None
    if side_a is Side.DEBIT and side_b is Side.CREDIT:
        delta = -amount
    elif side_a is Side.CREDIT and side_b is Side.DEBIT:
        delta = amount
    else:
        return None
    return (a, delta, b, -delta, currency) if a < b else (b, -delta, a, delta, currency)


def _transfer_changes(
    low: str, low_delta: int, high: str, high_delta: int, currency: str,
) -> dict[str, tuple[Deltas, str]]:
    return {low: ((low_delta, 0, 0), currency), high: ((high_delta, 0, 0), currency)}


def _sqlite_time(stamp: str) -> str:
    """The canonical time text (``2026-01-02T03:04:05.000006Z``) as SQLite
    stores the instant (``2026-01-02 03:04:05.000006``, what ``Raw.ts`` gives)."""
    return f"{stamp[:10]} {stamp[11:26]}"


def _entry_row(
    seq: int, entry_id: str, kind: str, reference: str | None, hold_id: str | None, memo: str,
    created_at: Any, prev_hash: str, digest: str,
) -> tuple[Sql, tuple[Any, ...]]:
    """The INSERT of a journal row and its parameters (NULLs are in the statement)."""
    if hold_id is None:
        if reference is None:
            return _INSERT_ENTRY[False, False], (seq, entry_id, kind, memo, created_at, prev_hash, digest)
        return _INSERT_ENTRY[True, False], (seq, entry_id, kind, reference, memo, created_at, prev_hash, digest)
    if reference is None:
        return _INSERT_ENTRY[False, True], (seq, entry_id, kind, hold_id, memo, created_at, prev_hash, digest)
    return _INSERT_ENTRY[True, True], (seq, entry_id, kind, reference, hold_id, memo, created_at, prev_hash,
                                       digest)


def _add_lines(
    lines: list[Line], account_id: str, currency: str, db: int, dpo: int, dpi: int,
    balance: int, pending_out: int, pending_in: int,
) -> None:
    # Field names in sorted order (balance < pending_in < pending_out): the
    # order the hash's canonical form and reads from the database use.
    if db:
        lines.append(Line(account_id, "balance", currency, db, int(balance)))
    if dpi:
        lines.append(Line(account_id, "pending_in", currency, dpi, int(pending_in)))
    if dpo:
        lines.append(Line(account_id, "pending_out", currency, dpo, int(pending_out)))


@functools.cache
def _lines_sql(n: int) -> Sql:
    return Sql(_chunked(_INSERT_LINES, n).sql)


def _insert_lines(raw: Raw, seq: int, lines: Sequence[Line]) -> None:
    """An entry's lines in one INSERT (a hold's two, a posted hold's four), up to
    4 rows a statement on SQLite (see _INSERT_BALANCE_LINES_CHUNKED): one round
    trip on PostgreSQL, where psycopg's executemany took a cursor and a pipeline."""
    size = 4 if not raw.is_pg else max(1, len(lines))
    for start in range(0, len(lines), size):
        chunk = lines[start:start + size]
        raw.run(_lines_sql(len(chunk)), tuple(itertools.chain.from_iterable((seq, *ln) for ln in chunk)))


def _insert_rows(raw: Raw, insert: _Chunked, rows: list[tuple[Any, ...]]) -> None:
    """Write ``rows`` with ``insert``: on SQLite ``insert.size`` rows a
    statement (see _Chunked); psycopg's executemany already sends them together."""
    if raw.is_pg:
        raw.many(insert.one, rows)
        return
    size = insert.size
    whole = len(rows) - len(rows) % size
    if whole:
        flat = list(itertools.chain.from_iterable(rows[:whole]))
        step = len(rows[0]) * size
        raw.sqlite_cursor.executemany(insert.sql, [flat[i : i + step] for i in range(0, len(flat), step)])
    if whole < len(rows):
        raw.sqlite_cursor.executemany(insert.one.sqlite, rows[whole:])


def _lock_holds(conn: Connection, ids: set[str]) -> dict[str, Hold]:
    """The holds with these ids, their rows locked (PostgreSQL; in id order)."""
    found: dict[str, Hold] = {}
    ordered = sorted(ids)
    for i in range(0, len(ordered), _LOCK_CHUNK):
        rows = conn.execute(select(ledger_holds).where(ledger_holds.c.id.in_(ordered[i : i + _LOCK_CHUNK]))
                            .order_by(ledger_holds.c.id).with_for_update()).mappings()
        found.update((row["id"], _hold(row)) for row in rows)
    return found


def _lock_totals(raw: Raw, ids: set[str]) -> dict[str, _Totals]:
    found: dict[str, _Totals] = {}
    ordered = sorted(ids)
    for i in range(0, len(ordered), _LOCK_CHUNK):
        chunk = ordered[i : i + _LOCK_CHUNK]
        for row in raw.rows(_lock_totals_sql(len(chunk), raw.is_pg), tuple(chunk)):
            found[row[0]] = _Totals(row)
    return found


def _refusal(totals: dict[str, _Totals], moves: Iterable[tuple[str, int, int, str]]) -> TrustPayError | None:
    """Why the batch must refuse ``moves`` — (account id, balance delta,
    pending-out delta, currency) in account-id order — against the running
    totals, or None: the first account, in that order, that is missing, of
    another currency, closed, or would overdraw (the single-entry UPDATE guard's rule)."""
    for account_id, delta, pending_out_delta, currency in moves:
        t = totals.get(account_id)
        if t is None:
            return AccountNotFound(f"no ledger account {account_id}", param="account")
        if t.currency != currency:
            return CurrencyMismatch(f"account {account_id} holds {t.currency}, not {currency}", param="currency")
        if not t.is_open:
            return AccountClosed(f"account {account_id} is closed")
        # model.may_change, written out.
        if not (t.allow_negative or delta - pending_out_delta >= 0
                or t.balance + delta - t.pending_out - pending_out_delta >= 0):
            return Overdraft(f"account {account_id} has insufficient available funds")
    return None


def _apply_in_memory(
    totals: dict[str, _Totals], net: dict[str, int], postings: Sequence[Posting], seq: int,
    line_rows: list[tuple[Any, ...]],
) -> tuple[tuple[Line, ...], str]:
    """The batch's twin of the guarded UPDATE for any draft: check every account, then apply all.

    Returns the entry's lines in canonical order (balance lines by account id)
    and their canonical text (see ``chain.canonical_from_body``), and adds
    their rows for ``_INSERT_BALANCE_LINES`` to ``line_rows``."""
    ordered = sorted(postings)  # by account id: validate_draft made each account appear once
    refused = _refusal(totals, [(account_id, net[account_id], 0, currency) for account_id, _, _, currency in ordered])
    if refused is not None:
        raise refused
    lines: list[Line] = []
    texts: list[str] = []
    for account_id, _, _, currency in ordered:
        t = totals[account_id]
        delta = net[account_id]
        t.balance = balance = t.balance + delta
        t.last_seq = seq
        lines.append(_new_line((account_id, "balance", currency, delta, balance)))
        line_rows.append((seq, account_id, currency, delta, balance))
        texts.append(f"{t.line_head}{delta}]")
    return tuple(lines), ",".join(texts)


def _account(row: Any) -> Account:
    return Account(
        id=row["id"], owner_id=row["owner_id"], currency=row["currency"], kind=row["kind"],
        name=row["name"], allow_negative=bool(row["allow_negative"]), balance=int(row["balance"]),
        pending_out=int(row["pending_out"]), pending_in=int(row["pending_in"]),
        created_at=to_utc(row["created_at"]),
        closed_at=to_utc(row["closed_at"]) if row["closed_at"] else None,
    )


def _hold(row: Any) -> Hold:
    return Hold(
        id=row["id"], debit_account_id=row["debit_account_id"],
        credit_account_id=row["credit_account_id"], currency=row["currency"],
        amount=int(row["amount"]), status=HoldStatus(row["status"]),
        posted_amount=int(row["posted_amount"]),
        expires_at=to_utc(row["expires_at"]) if row["expires_at"] else None,
        reference=row["reference"], created_at=to_utc(row["created_at"]),
        resolved_at=to_utc(row["resolved_at"]) if row["resolved_at"] else None,
    )


def _line(row: Any) -> Line:
    return Line(row["account_id"], row["field"], row["currency"], int(row["delta"]), int(row["balance_after"]))


def _entry(row: Any, lines: Iterable[Line]) -> Entry:
    return Entry(
        seq=int(row["seq"]), id=row["id"], kind=row["kind"], reference=row["reference"],
        hold_id=row["hold_id"], memo=row["memo"], created_at=to_utc(row["created_at"]),
        prev_hash=row["prev_hash"], hash=row["hash"], lines=tuple(lines),
    )


__all__ = ["GENESIS", "BatchResult", "Book"]
