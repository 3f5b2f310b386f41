"""Merchant settlement (结算): once a day, each merchant's due trade money is paid
out to its settlement card in ONE bank payout per currency (``stl_…``).

The batch follows the withdrawal's pattern (:mod:`trustpay.wallet.bank_ops`):

1. In one transaction: lock the due trades, hold their net on the merchant's
   pending-settlement account (→ bank clearing), write the batch and its items
   (``active_trade_id`` unique: a trade is in at most one live batch; ``open_key``
   unique: a business date is batched once per merchant and currency), and
   schedule the poll job. Nothing has been said to the bank yet.
2. With no transaction open: ask the bank to pay (our id is its idempotency key).
3. Settle exactly once, from whichever comes first — the bank's answer, its
   signed callback, the poll job, or reconciliation: the row moves from
   ``pending`` under its lock; success posts the hold (the money leaves through
   clearing) and emits ``settlement.paid``; failure voids it (the money is
   back in the pending account), releases the trades for a later batch, and
   emits ``settlement.failed``. Both tell the merchant.

A process that dies between 1 and 2 leaves a pending batch with a poll job that
submits it (the bank has never heard of it) or asks about it.

Rerunning a date finds nothing new: its batches hold the open key, their trades
hold the active ids. A merchant without a usable settlement card gets no batch
and one notice per date; its money waits in the pending account.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import TYPE_CHECKING, Any

from sqlalchemy import Connection, select

from trustpay.banks.connector import BankOperation, OperationStatus
from trustpay.banks.errors import BankUnavailable, UnknownBankOperation
from trustpay.banks.registry import connector_for
from trustpay.clock import rfc3339
from trustpay.db.schema import settlement_items, settlement_notices, settlements, trades
from trustpay.errors import InvalidRequest
from trustpay.ids import new_id
from trustpay.jobs import store as jobs
from trustpay.merchants import service as merchants
from trustpay.merchants import settlement_store as store
from trustpay.merchants.settlement_model import (
    ReportLine,
    SettlementStatus,
    business_date,
    cutoff,
    day_start,
    due_on,
    report_csv,
    share_of,
)
from trustpay.money import Money
from trustpay.platform import outbox
from trustpay.platform.sql import insert_or_ignore
from trustpay.trades.service import merchant_pending_account
from trustpay.wallet import cards, common
from trustpay.wallet import store as wallet_store

if TYPE_CHECKING:
    from collections.abc import Callable

    from trustpay.jobs.registry import Registry
    from trustpay.jobs.store import Job
    from trustpay.platform.context import Platform

log = logging.getLogger(__name__)
DAILY_JOB = "settlement.daily"
POLL_JOB = "settlement.poll"
# The daily run for date D starts at this local time on D (trades due for D finished by D−N's end).
RUN_AT_LOCAL = timedelta(hours=2)
POLL_DELAYS = (timedelta(seconds=30), timedelta(minutes=2), timedelta(minutes=10), timedelta(hours=1))
NO_CARD = "no_card"


@dataclass(frozen=True)
class RunSummary:
    business_date: date
    merchants: int  # merchant-currency pairs with money due
    created: int  # batches this run made
    paid: int  # of those, succeeded by the bank's answer already
    failed: int
    no_card: int  # merchants told to choose a settlement card


def zone(p: Platform) -> str:
    return p.settings.limits_timezone


def today(p: Platform) -> date:
    return business_date(p.clock.now(), zone(p))


# ------------------------------------------------------------------ the run
def run(p: Platform, run_date: date, *, progress: Callable[[int, int], None] | None = None) -> RunSummary:
    """Batch and pay out everything due by ``run_date`` (idempotent per date)."""
    if run_date > today(p):
        raise InvalidRequest(f"{run_date} has not begun yet in {zone(p)}", param="date")
    # Delay 0 gives the loosest cutoff; each merchant's own delay narrows it when batching.
    pairs = p.db.run(lambda conn: store.merchants_with_money_before(conn, cutoff(run_date, 0, zone(p))),
                     write=False)
    created = paid = failed = no_card = 0
    if progress:
        progress(0, len(pairs))
    for n, (merchant_id, currency) in enumerate(pairs, 1):
        try:
            outcome = p.db.run(lambda conn, m=merchant_id, c=currency: open_batch(p, conn, m, c, run_date))  # type: ignore[misc]
        except Exception:
            # One merchant's trouble (a concurrent run of another date took a trade, a
            # pending balance that no longer covers its trades) must not stop the others.
            log.exception("settling %s %s for %s failed; left for the next run", merchant_id, currency, run_date)
            outcome = None
        if outcome == NO_CARD:
            no_card += 1
        elif outcome is not None:
            created += 1
            row = submit_quietly(p, outcome)
            paid += row["status"] == SettlementStatus.SUCCEEDED
            failed += row["status"] == SettlementStatus.FAILED
        if progress:
            progress(n, len(pairs))
    return RunSummary(run_date, len(pairs), created, paid, failed, no_card)


def open_batch(p: Platform, conn: Connection, merchant_id: str, currency: str, run_date: date) -> str | None:
    """Step 1, in the caller's transaction. Returns the new batch's id, :data:`NO_CARD`,
    or None when there is nothing (more) to batch for this date."""
    before = cutoff(run_date, merchants.settlement_delay_days(p, conn, merchant_id), zone(p))
    due = store.due_trades(conn, merchant_id, currency, before, lock=True)
    shares = [(t, share_of(t["amount"], t["fee"], t["refunded_amount"])) for t in due]
    shares = [(t, s) for t, s in shares if s.net > 0]
    if not shares:
        return None
    day = run_date.isoformat()
    card_id = merchants.settlement_card_id(conn, merchant_id)
    now = p.clock.now()
    if card_id is None:
        if insert_or_ignore(conn, settlement_notices, {"merchant_id": merchant_id, "business_date": day,
                                                       "kind": NO_CARD, "created_at": now},
                            ("merchant_id", "business_date", "kind")):
            waiting = Money.of(sum(s.net for _, s in shares), currency).format("en")
            common.tell(p, conn, merchant_id, "Choose a settlement card",
                        f"{waiting} is due to you but you have no settlement card; it waits in your pending "
                        "settlement balance until you choose one in your merchant profile.")
        return NO_CARD
    card = cards.active_card(conn, merchant_id, card_id)
    settlement_id = new_id("stl", now)
    gross, fee = sum(s.amount for _, s in shares), sum(s.fee for _, s in shares)
    inserted = insert_or_ignore(conn, settlements, {
        "id": settlement_id, "merchant_id": merchant_id, "currency": currency, "business_date": day,
        "cutoff": before, "status": SettlementStatus.PENDING.value, "gross": gross, "fee": fee,
        "amount": gross - fee, "trade_count": len(shares), "card_id": card["id"], "bank": card["bank"],
        "hold_id": "", "bank_ref": None, "failure_reason": None, "open_key": f"{merchant_id}:{currency}:{day}",
        "created_at": now, "completed_at": None,
    }, ("open_key",))
    if not inserted:
        return None  # this date is already batched (a rerun, or another runner won)
    hold = p.book.hold(conn, debit_account_id=merchant_pending_account(p, conn, merchant_id, currency),
                       credit_account_id=common.clearing_account(p, conn, card["bank"], currency),
                       amount=gross - fee, currency=currency, reference=settlement_id, memo="settlement")
    store.move(conn, settlement_id, from_status=SettlementStatus.PENDING.value, hold_id=hold.id)
    conn.execute(settlement_items.insert(), [{
        "settlement_id": settlement_id, "trade_id": t["id"], "active_trade_id": t["id"],
        "out_trade_no": t["out_trade_no"], "settleable_at": t["settleable_at"], "amount": s.amount, "fee": s.fee,
        "net": s.net} for t, s in shares])
    _schedule_poll(conn, settlement_id, 0, now=now)
    return settlement_id


def _schedule_poll(conn: Connection, settlement_id: str, attempt: int, *, now: datetime) -> None:
    if attempt < len(POLL_DELAYS):
        jobs.schedule(conn, POLL_JOB, now + POLL_DELAYS[attempt], {"id": settlement_id, "attempt": attempt},
                      f"{POLL_JOB}:{settlement_id}:{attempt}", now=now)


# ------------------------------------------------------------------ the bank (no transaction open)
def submit(p: Platform, settlement_id: str) -> Any:
    """Step 2: ask the bank to pay (idempotent by our id) and apply a final answer."""
    row, token = p.db.run(lambda conn: _row_and_token(conn, settlement_id), write=False)
    if row["status"] != SettlementStatus.PENDING:
        return row
    op = connector_for(p, row["bank"]).start_payout(token, row["amount"], row["currency"], settlement_id)
    return apply_operation(p, op)


def submit_quietly(p: Platform, settlement_id: str) -> Any:
    """A bank that is down leaves the batch pending for the poll job and reconciliation."""
    try:
        return submit(p, settlement_id)
    except BankUnavailable:
        log.warning("bank unavailable paying %s; left pending for the poll job", settlement_id)
    except Exception:
        log.exception("paying %s failed; left pending for the poll job", settlement_id)
    return p.db.run(lambda conn: store.get(conn, settlement_id), write=False)


def _row_and_token(conn: Connection, settlement_id: str) -> tuple[Any, str]:
    row = store.get(conn, settlement_id)
    card = wallet_store.get_row(conn, wallet_store.bank_cards, row["card_id"])
    return row, card["token"]


def apply_operation(p: Platform, op: BankOperation) -> Any:
    return p.db.run(lambda conn: settle(p, conn, op.reference, op.status, op.failure_reason, bank_ref=op.bank_ref))


def settle(p: Platform, conn: Connection, settlement_id: str, status: OperationStatus | str,
           reason: str | None = None, *, bank_ref: str | None = None) -> Any:
    """Step 3: apply a bank outcome once (same contract as :func:`bank_ops.settle`)."""
    row = store.get(conn, settlement_id, for_update=True)
    if row["status"] != SettlementStatus.PENDING:
        return row
    status = OperationStatus(status)
    pending = SettlementStatus.PENDING.value
    if status is OperationStatus.PENDING:
        if bank_ref and row["bank_ref"] != bank_ref:
            store.move(conn, settlement_id, from_status=pending, bank_ref=bank_ref)
        return store.get(conn, settlement_id)
    now = p.clock.now()
    values: dict[str, Any] = {"completed_at": now, "bank_ref": bank_ref or row["bank_ref"]}
    shown = Money.of(row["amount"], row["currency"]).format("en")
    if status is OperationStatus.SUCCEEDED:
        store.move(conn, settlement_id, from_status=pending, status=SettlementStatus.SUCCEEDED.value, **values)
        p.book.post_hold(conn, row["hold_id"], memo="settlement paid by the bank")
        event, subject = "settlement.paid", "Settlement paid"
        body = f"{shown} for {row['trade_count']} trade(s) was paid to your settlement card ({settlement_id})."
    else:
        store.move(conn, settlement_id, from_status=pending, status=SettlementStatus.FAILED.value,
                   failure_reason=(reason or "failed")[:200], open_key=None, **values)
        p.book.void_hold(conn, row["hold_id"], memo="settlement payout failed")
        store.release_items(conn, settlement_id)
        event, subject = "settlement.failed", "Settlement failed"
        body = (f"Your bank did not accept the settlement of {shown} ({reason or 'failed'}). The money is back in "
                "your pending settlement balance and goes in the next settlement; check your settlement card.")
    updated = store.get(conn, settlement_id)
    outbox.emit(conn, event, shape(updated), row["merchant_id"], now=now)
    common.tell(p, conn, row["merchant_id"], subject, body)
    return updated


# ------------------------------------------------------------------ jobs
def poll(p: Platform, job: Job) -> None:
    """Ask the bank about a pending batch; submit it if the bank never got it."""
    settlement_id, attempt = job.payload["id"], int(job.payload.get("attempt", 0))
    row = p.db.run(lambda conn: store.get(conn, settlement_id), write=False)
    if row["status"] != SettlementStatus.PENDING:
        return
    try:
        op = connector_for(p, row["bank"]).get_operation(settlement_id)
    except UnknownBankOperation:
        row = submit(p, settlement_id)
    else:
        row = apply_operation(p, op)
    if row["status"] == SettlementStatus.PENDING:
        p.db.run(lambda conn: _schedule_poll(conn, settlement_id, attempt + 1, now=p.clock.now()))


def run_at_for(p: Platform, run_date: date) -> datetime:
    return day_start(run_date, zone(p)) + RUN_AT_LOCAL


def schedule_daily(p: Platform, conn: Connection, run_date: date) -> str:
    return jobs.schedule(conn, DAILY_JOB, run_at_for(p, run_date), {"date": run_date.isoformat()},
                         f"{DAILY_JOB}:{run_date.isoformat()}", now=p.clock.now())


def daily_job(p: Platform, job: Job) -> None:
    """Settle the payload's date, then book the next one. Safe to run again after a crash."""
    run_date = date.fromisoformat(str(job.payload["date"]))
    run(p, run_date)
    p.db.run(lambda conn: schedule_daily(p, conn, run_date + timedelta(days=1)))


_BOOKED_KEY = "merchants.settlement.booked_through"


def book_daily_runs(p: Platform, conn: Connection) -> int:
    """Sweeper: once any trade has paid a merchant, make sure today's run is booked
    (each run books the next). Checks the database once a day per process."""
    day = today(p)
    if p.extras.get(_BOOKED_KEY) == day:
        return 0
    if conn.execute(select(trades.c.id).where(trades.c.paid_at.is_not(None)).limit(1)).first() is not None:
        schedule_daily(p, conn, day)
        p.extras[_BOOKED_KEY] = day
    return 0


def register_jobs(registry: Registry) -> None:
    registry.register_outside(DAILY_JOB, daily_job)
    registry.register_outside(POLL_JOB, poll)
    registry.add_sweeper("book-settlement", book_daily_runs)


# ------------------------------------------------------------------ reading
def get_for(conn: Connection, settlement_id: str, merchant_id: str) -> Any:
    return store.get(conn, settlement_id, merchant_id=merchant_id)


def report(conn: Connection, settlement_id: str, merchant_id: str) -> str:
    store.get(conn, settlement_id, merchant_id=merchant_id)
    return report_csv(ReportLine(i["trade_id"], i["out_trade_no"], i["settleable_at"], i["amount"], i["fee"],
                                 i["net"]) for i in store.items(conn, settlement_id))


@dataclass(frozen=True)
class Outlook:
    """What the dashboard shows beside the batches, per currency."""

    currency: str
    waiting: int  # net in the pending account not yet in a batch
    due_now: int  # of which the next run pays (if a card is chosen)
    next_date: date | None  # the run that pays the earliest of it


def outlook(p: Platform, conn: Connection, merchant_id: str) -> list[Outlook]:
    delay = merchants.settlement_delay_days(p, conn, merchant_id)
    first_run = today(p)
    if p.clock.now() >= run_at_for(p, first_run) and _daily_run_started(conn, first_run):
        # Today's run has started: what it did not take waits for tomorrow's. A run
        # not started yet, though past its hour (booked late, on the first trade
        # after 02:00, or the worker was down), still pays today everything before
        # its cutoff when it does run.
        first_run += timedelta(days=1)
    out: dict[str, list[Any]] = {}
    for t in store.waiting(conn, merchant_id):
        out.setdefault(t["currency"], []).append(t)
    result = []
    for currency, rows in sorted(out.items()):
        nets = [(share_of(t["amount"], t["fee"], t["refunded_amount"]).net,
                 max(first_run, due_on(t["settleable_at"], delay, zone(p)))) for t in rows]
        nets = [(n, d) for n, d in nets if n > 0]
        if not nets:
            continue
        next_date = min(d for _, d in nets)
        result.append(Outlook(currency, sum(n for n, _ in nets), sum(n for n, d in nets if d == next_date),
                              next_date))
    return result


def _daily_run_started(conn: Connection, run_date: date) -> bool:
    return jobs.status_of(conn, f"{DAILY_JOB}:{run_date.isoformat()}") not in (None, jobs.PENDING)


def shape(row: Any) -> dict[str, Any]:
    return {"id": row["id"], "object": "settlement", "status": row["status"], "currency": row["currency"],
            "gross": row["gross"], "fee": row["fee"], "amount": row["amount"], "trade_count": row["trade_count"],
            "business_date": row["business_date"], "cutoff": rfc3339(row["cutoff"]), "card": row["card_id"],
            "failure_reason": row["failure_reason"], "created_at": rfc3339(row["created_at"]),
            "completed_at": None if row["completed_at"] is None else rfc3339(row["completed_at"]),
            "report_url": f"/v1/settlements/{row['id']}/report.csv"}



def in_live_batch(conn: Connection, trade_id: str) -> bool:
    """For refunds and dispute rulings: True once the trade's money is in a pending or
    paid batch (it is leaving or has left the pending account; it cannot be taken back)."""
    return store.in_live_batch(conn, trade_id)
