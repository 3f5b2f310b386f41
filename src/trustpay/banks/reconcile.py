"""Reconciliation (对账): the bank's daily statement against our records and the ledger.

For one bank and one business date (UTC), every statement line is looked up by
its ``reference`` (our ``top_…``/``wd_…`` id, or a merchant settlement's ``stl_…``) and compared (:mod:`recon_model`):

* matched, both final and equal → ok;
* the bank completed it, we still have it pending (the card ending 0028 never
  answers) → settled now through :func:`trustpay.wallet.bank_ops.settle`, the
  same once-only path a callback takes;
* anything else → a row in the exceptions queue for ops: a reference we do not
  know, an amount or currency that differs, a second line for one reference,
  opposite final statuses, or a ledger whose clearing postings for the reference
  do not add up. Then, for the date, our succeeded operations (and those stuck
  pending since before :data:`PENDING_GRACE` before midnight) that are on no
  statement become "missing on the bank's side".

Where the money is. A top-up debits the bank's clearing account (the bank holds
money that is ours) and credits the wallet; a paid-out withdrawal credits
clearing (the bank paid on our behalf). Once the statement confirms an
operation, clearing has done its job: the run moves the day's net from clearing
to the bank's *cash* account (kind ``bank_cash``, owner ``bank_<bank>``) in ONE
ledger entry whose reference is the run id, so clearing returns to zero for
every confirmed operation and only unconfirmed ones (exceptions, operations
still in flight) remain in it. Like every platform asset in this ledger —
credits are what the platform owes — bank cash runs negative: its balance is
minus the money the platform holds at the bank.

Idempotent. Findings are unique by ``bank:date:kind:reference:…``; an operation
is confirmed at most once (``recon_matches`` keyed by reference) and moved out
of clearing at most once (``cleared_entry_id`` set under the run row's lock, the
update guarded by ``IS NULL``); settling is guarded by ``status='pending'``.
Reconciling the same date again finds the same things and moves nothing.

The statement is fetched with no transaction open; lines are then worked in
short transactions of :data:`CHUNK` lines, and the scan and the clearing move
in a last one.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import TYPE_CHECKING, Any

from sqlalchemy import Connection, and_, func, or_, select, update

from trustpay.banks.connector import OperationKind, OperationStatus, StatementLine
from trustpay.banks.recon_model import ExceptionKind, Ours, Verdict, judge, split_duplicates
from trustpay.banks.registry import SANDBOX, connector_for
from trustpay.db.schema import ledger_entries, recon_exceptions, recon_matches, recon_runs, settlements
from trustpay.errors import Conflict
from trustpay.ids import new_id
from trustpay.ledger.model import EntryDraft, Posting, credit, debit
from trustpay.merchants import settlement
from trustpay.platform.sql import insert_or_ignore
from trustpay.wallet import bank_ops, common
from trustpay.wallet import store as wallet_store

if TYPE_CHECKING:
    from trustpay.jobs.registry import Registry
    from trustpay.jobs.store import Job
    from trustpay.platform.context import Platform

CHUNK = 100
# An operation still pending this long before the day ends is overdue at the bank.
PENDING_GRACE = timedelta(hours=1)
BANK_CASH_KIND = "bank_cash"
JOB = "bank.reconcile"
# The daily run starts this long after the business date closes (statements are final by then).
RUN_AFTER_CLOSE = timedelta(hours=1)
BANKS = (SANDBOX,)

Progress = Callable[[int, int], None]  # (lines done, lines in all)


@dataclass(frozen=True)
class RunSummary:
    run_id: str
    bank: str
    business_date: date
    lines: int
    matched: int
    settled: int  # pending operations this pass settled from the statement
    new_exceptions: int  # found by this pass
    open_exceptions: int  # for the date, after this pass
    cleared: int  # operations this pass moved out of clearing
    clearing_entry_id: str | None


# ------------------------------------------------------------------ the run
def reconcile(p: Platform, bank: str, business_date: date, *, lines: Sequence[StatementLine] | None = None,
              progress: Progress | None = None) -> RunSummary:
    """Reconcile one business date. ``lines`` defaults to the bank's statement
    (fetched now, outside any transaction); tests may hand a crafted one."""
    if lines is None:
        lines = connector_for(p, bank).statement(business_date)
    day = business_date.isoformat()
    run_id = p.db.run(lambda conn: _open_run(p, conn, bank, day))
    numbered = split_duplicates(lines)
    matched = settled = found = 0
    if progress:
        progress(0, len(numbered))
    for start in range(0, len(numbered), CHUNK):
        chunk = numbered[start:start + CHUNK]
        m, s, f = p.db.run(lambda conn, chunk=chunk: _work_lines(p, conn, run_id, bank, day, chunk))  # type: ignore[misc]
        matched, settled, found = matched + m, settled + s, found + f
        if progress:
            progress(start + len(chunk), len(numbered))
    on_statement = {line.reference for line in lines}
    found_late, cleared, entry_id, open_count = p.db.run(
        lambda conn: _close_run(p, conn, run_id, bank, business_date, on_statement,
                                lines=len(lines), matched=matched, settled=settled))
    return RunSummary(run_id, bank, business_date, len(lines), matched, settled, found + found_late, open_count,
                      cleared, entry_id)


def _open_run(p: Platform, conn: Connection, bank: str, day: str) -> str:
    now = p.clock.now()
    insert_or_ignore(conn, recon_runs, {"id": new_id("rcn", now), "bank": bank, "business_date": day,
                                        "started_at": now}, ("bank", "business_date"))
    row = conn.execute(select(recon_runs.c.id).where(recon_runs.c.bank == bank,
                                                     recon_runs.c.business_date == day)).one()
    return str(row.id)


def _work_lines(p: Platform, conn: Connection, run_id: str, bank: str, day: str,
                chunk: Sequence[tuple[StatementLine, int]]) -> tuple[int, int, int]:
    matched = settled = found = 0
    for line, occurrence in chunk:
        if occurrence:
            found += _finding(p, conn, run_id, bank, day, ExceptionKind.DUPLICATE, line=line,
                              ours=_load(conn, line.reference), extra=str(occurrence))
            continue
        ours = _load(conn, line.reference)
        verdict, kind = judge(line, ours, bank)
        if verdict is Verdict.EXCEPTION:
            assert kind is not None
            found += _finding(p, conn, run_id, bank, day, kind, line=line, ours=ours)
            continue
        assert ours is not None
        if verdict is Verdict.SETTLE:
            settle = settlement.settle if ours.id.startswith("stl_") else bank_ops.settle
            settle(p, conn, ours.id, line.status, "reported by the bank's statement", bank_ref=line.bank_ref)
            settled += 1
        elif ours.status is OperationStatus.PENDING:
            continue  # the statement only lists completed operations; nothing to confirm yet
        if not _ledger_agrees(p, conn, ours, line.status):
            found += _finding(p, conn, run_id, bank, day, ExceptionKind.LEDGER_DIFFERS, line=line, ours=ours)
            continue
        insert_or_ignore(conn, recon_matches, {
            "reference": ours.id, "bank": bank, "business_date": day, "run_id": run_id, "currency": ours.currency,
            "clearing_delta": ours.clearing_delta(line.status), "cleared_entry_id": None,
            "matched_at": p.clock.now()}, ("reference",))
        matched += 1
    return matched, settled, found


def _close_run(p: Platform, conn: Connection, run_id: str, bank: str, business_date: date,
               on_statement: set[str], *, lines: int, matched: int, settled: int
               ) -> tuple[int, int, str | None, int]:
    # Locked first: two runs of one date take turns moving clearing.
    conn.execute(select(recon_runs.c.id).where(recon_runs.c.id == run_id).with_for_update()).one()
    day = business_date.isoformat()
    found = 0
    for ours in _missing_at_bank(conn, bank, business_date, on_statement):
        found += _finding(p, conn, run_id, bank, day, ExceptionKind.MISSING_BANK, line=None, ours=ours)
    cleared, entry_id = _move_clearing_to_cash(p, conn, run_id, bank, day)
    count = func.count()
    total = conn.execute(select(count).where(recon_exceptions.c.bank == bank,
                                             recon_exceptions.c.business_date == day)).scalar_one()
    open_count = conn.execute(select(count).where(recon_exceptions.c.bank == bank,
                                                  recon_exceptions.c.business_date == day,
                                                  recon_exceptions.c.status == "open")).scalar_one()
    conn.execute(update(recon_runs).where(recon_runs.c.id == run_id).values(
        lines=lines, matched=matched, exceptions=total, settled=recon_runs.c.settled + settled,
        cleared=recon_runs.c.cleared + cleared, passes=recon_runs.c.passes + 1, finished_at=p.clock.now()))
    return found, cleared, entry_id, int(open_count)


# ------------------------------------------------------------------ our side
def _ours(row: Any, kind: OperationKind) -> Ours:
    owner = row["user_id"] if "user_id" in row else row["merchant_id"]  # settlements name the merchant
    return Ours(id=row["id"], kind=kind, bank=row["bank"], user_id=owner,
                status=OperationStatus(row["status"]), amount=int(row["amount"]), currency=row["currency"],
                created_at=row["created_at"], completed_at=row["completed_at"])


def _load(conn: Connection, reference: str) -> Ours | None:
    for prefix, table, kind in (("top_", wallet_store.topups, OperationKind.DEBIT),
                                ("wd_", wallet_store.withdrawals, OperationKind.PAYOUT),
                                ("stl_", settlements, OperationKind.PAYOUT)):
        if reference.startswith(prefix):
            row = conn.execute(select(table).where(table.c.id == reference)).mappings().first()
            return None if row is None else _ours(row, kind)
    return None


def _missing_at_bank(conn: Connection, bank: str, business_date: date, on_statement: set[str]) -> list[Ours]:
    start = datetime.combine(business_date, time(), tzinfo=UTC)
    end = start + timedelta(days=1)
    out: list[Ours] = []
    for table, kind in ((wallet_store.topups, OperationKind.DEBIT), (wallet_store.withdrawals, OperationKind.PAYOUT),
                        (settlements, OperationKind.PAYOUT)):
        rows = conn.execute(
            select(table).where(
                table.c.bank == bank,
                or_(and_(table.c.status == OperationStatus.SUCCEEDED.value,
                         table.c.completed_at >= start, table.c.completed_at < end),
                    and_(table.c.status == OperationStatus.PENDING.value,
                         table.c.created_at >= start, table.c.created_at < end - PENDING_GRACE)),
                table.c.id.not_in(select(recon_matches.c.reference)),
            ).order_by(table.c.created_at)
        ).mappings()
        out.extend(_ours(r, kind) for r in rows if r["id"] not in on_statement)
    return out


def _ledger_agrees(p: Platform, conn: Connection, ours: Ours, status: OperationStatus) -> bool:
    """The ledger moved bank clearing by exactly what the operation should have."""
    clearing = common.clearing_account(p, conn, ours.bank, ours.currency)
    moved = 0
    for entry_id in conn.execute(select(ledger_entries.c.id).where(ledger_entries.c.reference == ours.id)).scalars():
        moved += sum(line.delta for line in p.book.entry(conn, entry_id).lines
                     if line.account_id == clearing and line.field == "balance")
    return moved == ours.clearing_delta(status)


# ------------------------------------------------------------------ findings and clearing
def _finding(p: Platform, conn: Connection, run_id: str, bank: str, day: str, kind: ExceptionKind, *,
             line: StatementLine | None, ours: Ours | None, extra: str = "") -> int:
    """Queue an exception once; 1 if it is new."""
    reference = line.reference if line is not None else ours.id if ours is not None else ""
    bank_ref = line.bank_ref if line is not None else None
    key = ":".join((bank, day, kind.value, reference, bank_ref or "", extra))[:200]
    now = p.clock.now()
    return int(insert_or_ignore(conn, recon_exceptions, {
        "id": new_id("rex", now), "dedupe_key": key, "run_id": run_id, "bank": bank, "business_date": day,
        "kind": kind.value, "reference": reference[:128], "bank_ref": bank_ref,
        "user_id": ours.user_id if ours is not None else None,
        "currency": line.currency if line is not None else ours.currency if ours is not None else "",
        "bank_amount": line.amount if line is not None else None,
        "our_amount": ours.amount if ours is not None else None,
        "bank_status": line.status.value if line is not None else None,
        "our_status": ours.status.value if ours is not None else None,
        "status": "open", "created_at": now,
    }, ("dedupe_key",)))


def bank_cash_account(p: Platform, conn: Connection, bank: str, currency: str) -> str:
    return p.book.open_account(conn, currency=currency, kind=BANK_CASH_KIND, owner_id=f"bank_{bank}",
                               name=f"{bank} cash {currency}", allow_negative=True).id


def _move_clearing_to_cash(p: Platform, conn: Connection, run_id: str, bank: str, day: str) -> tuple[int, str | None]:
    rows = conn.execute(select(recon_matches.c.reference, recon_matches.c.currency, recon_matches.c.clearing_delta)
                        .where(recon_matches.c.bank == bank, recon_matches.c.business_date == day,
                               recon_matches.c.cleared_entry_id.is_(None))).all()
    if not rows:
        return 0, None
    net: dict[str, int] = {}
    for r in rows:
        net[r.currency] = net.get(r.currency, 0) + int(r.clearing_delta)
    postings: list[Posting] = []
    for currency, amount in sorted(net.items()):
        if amount == 0:
            continue
        clearing, cash = common.clearing_account(p, conn, bank, currency), bank_cash_account(p, conn, bank, currency)
        # Undo the day's net on clearing; the opposite side lands on bank cash.
        postings += [credit(clearing, -amount, currency), debit(cash, -amount, currency)] if amount < 0 else \
                    [debit(clearing, amount, currency), credit(cash, amount, currency)]
    entry_id = None
    if postings:
        entry_id = p.book.post(conn, EntryDraft(tuple(postings), reference=run_id,
                                                memo=f"reconciled {bank} {day}: clearing to bank cash")).id
    refs = [r.reference for r in rows]
    # Marked with the entry, or with the run when the day netted to nothing to move.
    done = conn.execute(update(recon_matches).where(recon_matches.c.reference.in_(refs),
                                                    recon_matches.c.cleared_entry_id.is_(None))
                        .values(cleared_entry_id=entry_id or run_id))
    if done.rowcount != len(refs):
        raise Conflict("another reconciliation of this date moved clearing at the same time; run it again")
    return len(refs), entry_id


# ------------------------------------------------------------------ the daily job
def run_at_for(business_date: date) -> datetime:
    return datetime.combine(business_date + timedelta(days=1), time(), tzinfo=UTC) + RUN_AFTER_CLOSE


def schedule_daily(conn: Connection, bank: str, business_date: date, *, now: datetime) -> str:
    from trustpay.jobs import store as jobs

    return jobs.schedule(conn, JOB, run_at_for(business_date), {"bank": bank, "date": business_date.isoformat()},
                         f"{JOB}:{bank}:{business_date.isoformat()}", now=now)


def daily_job(p: Platform, job: Job) -> None:
    """Reconcile the payload's date, then book the next date (outside a transaction:
    it fetches the statement). Re-running after a crash is harmless (idempotent)."""
    bank, business_date = str(job.payload["bank"]), date.fromisoformat(str(job.payload["date"]))
    reconcile(p, bank, business_date)
    p.db.run(lambda conn: schedule_daily(conn, bank, business_date + timedelta(days=1), now=p.clock.now()))


_BOOKED_KEY = "banks.reconcile.booked_through"


def book_daily_runs(p: Platform, conn: Connection) -> int:
    """Sweeper: make sure yesterday's run is booked once the bank has been used at all
    (the job then books each next day itself). Remembers the date it checked, so it
    reads the database once a day per process, not on every tick."""
    yesterday = p.clock.now().date() - timedelta(days=1)
    if p.extras.get(_BOOKED_KEY) == yesterday:
        return 0
    used = conn.execute(select(wallet_store.topups.c.id).limit(1)).first() or \
        conn.execute(select(wallet_store.withdrawals.c.id).limit(1)).first()
    if used:
        for bank in BANKS:
            schedule_daily(conn, bank, yesterday, now=p.clock.now())
    p.extras[_BOOKED_KEY] = yesterday
    return 0


def register_jobs(registry: Registry) -> None:
    registry.register_outside(JOB, daily_job)
    registry.add_sweeper("book-reconciliation", book_daily_runs)
