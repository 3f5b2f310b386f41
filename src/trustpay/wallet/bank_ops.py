"""Top-ups (充值) and withdrawals (提现): money between a bank card and the wallet.

Each is a row that starts ``pending`` and is settled exactly once by the first
of: the bank's answer to the start call, its signed callback, a poll job, or
reconciliation. Settling locks the row and is guarded by ``status='pending'``,
so a duplicate callback or a poll racing a callback changes nothing.

The bank is called with no transaction open: first the row (and, for a
withdrawal, the holds) commit, then the bank hears of it with our id as its
idempotency key; a poll job scheduled in the same transaction re-submits or
asks again if the process dies in between.
"""

from __future__ import annotations

import logging
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from sqlalchemy import Connection, Table

from trustpay.banks.connector import BankOperation, OperationStatus
from trustpay.banks.errors import BankUnavailable, UnknownBankOperation
from trustpay.banks.registry import connector_for
from trustpay.clock import rfc3339
from trustpay.identity import limits
from trustpay.identity import service as identity
from trustpay.identity.audit import Origin
from trustpay.ids import new_id
from trustpay.jobs import store as jobs
from trustpay.ledger.model import EntryDraft, credit, debit
from trustpay.money import Money, check_amount
from trustpay.platform import outbox
from trustpay.risk import service as risk
from trustpay.wallet import cards, common, store
from trustpay.wallet.model import BankOpStatus, FeePlan

if TYPE_CHECKING:
    from trustpay.jobs.registry import Registry
    from trustpay.jobs.store import Job
    from trustpay.platform.context import Platform

log = logging.getLogger(__name__)
POLL_JOB = "bank_op.poll"
# When to ask the bank again after a start stays pending; then reconciliation decides.
POLL_DELAYS = (timedelta(seconds=30), timedelta(minutes=2), timedelta(minutes=10), timedelta(hours=1))


def fee_plan(p: Platform) -> FeePlan:
    s = p.settings
    return FeePlan(fixed=s.withdrawal_fee_fixed, bank_rate=s.withdrawal_fee_bank_rate,
                   margin=s.withdrawal_fee_margin, minimum=s.withdrawal_fee_minimum)


def most_withdrawable(p: Platform, available: int) -> int:
    """The largest withdrawal whose amount + fee fits in ``available`` (0 if none does)."""
    return fee_plan(p).most_within(available)


def quote_withdrawal(p: Platform, amount: int) -> dict[str, Any]:
    check_amount(amount, p.settings.max_amount)
    plan = fee_plan(p)
    fee = plan.fee_for(amount)
    return {"amount": amount, "fee": fee, "total": amount + fee, "rate": str(plan.rate), "fixed": plan.fixed,
            "minimum": plan.minimum}


# ------------------------------------------------------------------ create (in the API's transaction)
def create_topup(p: Platform, conn: Connection, user_id: str, *, card_id: str, amount: int,
                 currency: str) -> Any:
    check_amount(amount, p.settings.max_amount)
    common.own_wallet(conn, user_id, currency)
    card = cards.active_card(conn, user_id, card_id)
    # Checked now, not on arrival: money the bank has already taken is always credited.
    limits.enforce_limits(p, conn, user_id, currency=currency, inflow=amount)
    now = p.clock.now()
    topup_id = new_id("top", now)
    store.insert(conn, store.topups, {
        "id": topup_id, "user_id": user_id, "card_id": card["id"], "bank": card["bank"], "currency": currency,
        "amount": amount, "status": BankOpStatus.PENDING.value, "bank_ref": None, "failure_reason": None,
        "created_at": now, "completed_at": None,
    })
    _schedule_poll(conn, topup_id, 0, now=now)
    return store.get_row(conn, store.topups, topup_id)


def authorise_withdrawal(p: Platform, user_id: str, *, amount: int, payment_password: str,
                         totp_code: str | None, origin: Origin = Origin()) -> bool:
    """Before the money transaction (refusals commit on their own): the payment
    password, then risk control on amount + fee with its step-up. Returns whether
    the user stepped up, for :func:`create_withdrawal`. (A blank payment password is
    refused unchecked: ``require_payment_password``.)"""
    identity.require_payment_password(p, user_id, payment_password, origin)
    fee = fee_plan(p).fee_for(amount)
    decision = p.db.run(lambda conn: risk.decide(p, conn, user_id, action="withdrawal", amount=amount + fee),
                        write=False)
    return risk.step_up(p, user_id, decision, totp_code=totp_code, password_checked=True, origin=origin)


def create_withdrawal(p: Platform, conn: Connection, user_id: str, *, card_id: str, amount: int,
                      currency: str, stepped_up: bool = False) -> Any:
    check_amount(amount, p.settings.max_amount)
    plan = fee_plan(p)
    fee = plan.fee_for(amount)
    wallet = common.before_money_out(p, conn, user_id, currency=currency, amount=amount, fee=fee, fees=plan,
                                     action="withdrawal", stepped_up=stepped_up)
    card = cards.active_card(conn, user_id, card_id)
    now = p.clock.now()
    wd_id = new_id("wd", now)
    hold = p.book.hold(conn, debit_account_id=wallet, credit_account_id=common.clearing_account(
        p, conn, card["bank"], currency), amount=amount, currency=currency, reference=wd_id, memo="withdrawal")
    fee_hold = None
    if fee:
        fee_hold = p.book.hold(conn, debit_account_id=wallet, credit_account_id=common.fee_revenue_account(
            p, conn, currency), amount=fee, currency=currency, reference=wd_id, memo="withdrawal fee")
    store.insert(conn, store.withdrawals, {
        "id": wd_id, "user_id": user_id, "card_id": card["id"], "bank": card["bank"], "currency": currency,
        "amount": amount, "fee": fee, "status": BankOpStatus.PENDING.value, "hold_id": hold.id,
        "fee_hold_id": fee_hold.id if fee_hold else None, "bank_ref": None, "failure_reason": None,
        "created_at": now, "completed_at": None,
    })
    _schedule_poll(conn, wd_id, 0, now=now)
    return store.get_row(conn, store.withdrawals, wd_id)


def _table(obj_id: str) -> Table:
    return store.topups if obj_id.startswith("top_") else store.withdrawals


def _schedule_poll(conn: Connection, obj_id: str, attempt: int, *, now: Any) -> None:
    if attempt < len(POLL_DELAYS):
        jobs.schedule(conn, POLL_JOB, now + POLL_DELAYS[attempt], {"id": obj_id, "attempt": attempt},
                      f"{POLL_JOB}:{obj_id}:{attempt}", now=now)


# ------------------------------------------------------------------ talk to the bank (no transaction open)
def submit(p: Platform, obj_id: str) -> Any:
    """Start the operation at the bank (idempotent: our id is the bank's key) and
    apply the answer if it is already final. Returns the row as it is now."""
    table = _table(obj_id)
    row, token = p.db.run(lambda conn: _row_and_token(conn, table, obj_id), write=False)
    if row["status"] != BankOpStatus.PENDING:
        return row
    connector = connector_for(p, row["bank"])
    start = connector.start_debit if table is store.topups else connector.start_payout
    op = start(token, row["amount"], row["currency"], obj_id)
    return apply_operation(p, op)


def submit_quietly(p: Platform, obj_id: str) -> Any:
    """The API's fast path: a bank that is down leaves the object pending (the poll
    job and reconciliation finish it), it does not fail the customer's request."""
    try:
        return submit(p, obj_id)
    except BankUnavailable:
        log.warning("bank unavailable submitting %s; left pending for the poll job", obj_id)
    except Exception:
        log.exception("submitting %s failed; left pending for the poll job", obj_id)
    return p.db.run(lambda conn: store.get_row(conn, _table(obj_id), obj_id), write=False)


def _row_and_token(conn: Connection, table: Table, obj_id: str) -> tuple[Any, str]:
    row = store.get_row(conn, table, obj_id)
    card = store.get_row(conn, store.bank_cards, row["card_id"])
    return row, card["token"]


def apply_operation(p: Platform, op: BankOperation) -> Any:
    """What the bank says (answer, callback or poll) about one of our operations."""
    return p.db.run(lambda conn: settle(p, conn, op.reference, op.status, op.failure_reason, bank_ref=op.bank_ref))


def settle(p: Platform, conn: Connection, obj_id: str, status: OperationStatus | str, reason: str | None = None,
           *, bank_ref: str | None = None) -> Any:
    """Apply a bank outcome once. Pending → store the bank's ref only; final → move
    the money; already final → nothing (duplicate callbacks are normal)."""
    table = _table(obj_id)
    row = store.get_row(conn, table, obj_id, for_update=True)
    if row["status"] != BankOpStatus.PENDING:
        return row
    now = p.clock.now()
    status = OperationStatus(status)
    if status is OperationStatus.PENDING:
        if bank_ref and row["bank_ref"] != bank_ref:
            store.set_status(conn, table, obj_id, from_status=BankOpStatus.PENDING.value, bank_ref=bank_ref)
        return store.get_row(conn, table, obj_id)
    values: dict[str, Any] = {"status": status.value, "completed_at": now, "bank_ref": bank_ref or row["bank_ref"]}
    if status is OperationStatus.FAILED:
        values["failure_reason"] = (reason or "failed")[:200]
    if not store.set_status(conn, table, obj_id, from_status=BankOpStatus.PENDING.value, **values):
        return store.get_row(conn, table, obj_id)
    if table is store.topups:
        _settle_topup(p, conn, row, status, now)
    else:
        _settle_withdrawal(p, conn, row, status, now)
    return store.get_row(conn, table, obj_id)


def _settle_topup(p: Platform, conn: Connection, row: Any, status: OperationStatus, now: Any) -> None:
    shown = Money.of(row["amount"], row["currency"]).format("en")
    if status is OperationStatus.SUCCEEDED:
        clearing = common.clearing_account(p, conn, row["bank"], row["currency"])
        wallet = common.recipient_wallet(p, conn, row["user_id"], row["currency"])
        p.book.post(conn, EntryDraft((debit(clearing, row["amount"], row["currency"]),
                                      credit(wallet, row["amount"], row["currency"])),
                                     reference=row["id"], memo="top-up"))
        outbox.emit(conn, "topup.succeeded", shape_topup(store.get_row(conn, store.topups, row["id"])),
                    row["user_id"], now=now)
        common.tell(p, conn, row["user_id"], "Top-up received", f"{shown} is now in your wallet.")
    else:
        common.tell(p, conn, row["user_id"], "Top-up failed", f"Your bank did not pay {shown}; nothing was taken.")


def _settle_withdrawal(p: Platform, conn: Connection, row: Any, status: OperationStatus, now: Any) -> None:
    shown = Money.of(row["amount"], row["currency"]).format("en")
    holds = [h for h in (row["hold_id"], row["fee_hold_id"]) if h]
    updated = store.get_row(conn, store.withdrawals, row["id"])
    if status is OperationStatus.SUCCEEDED:
        for h in holds:
            p.book.post_hold(conn, h, memo="paid out by the bank")
        outbox.emit(conn, "withdrawal.succeeded", shape_withdrawal(updated), row["user_id"], now=now)
        common.tell(p, conn, row["user_id"], "Withdrawal paid", f"{shown} was paid to your card.")
    else:
        for h in holds:
            p.book.void_hold(conn, h, memo="bank payout failed")
        outbox.emit(conn, "withdrawal.failed", shape_withdrawal(updated), row["user_id"], now=now)
        common.tell(p, conn, row["user_id"], "Withdrawal failed",
                    f"The bank could not pay {shown} to your card; the money is back in your wallet.")


# ------------------------------------------------------------------ the poll job
def poll(p: Platform, job: Job) -> None:
    """Ask the bank about a pending operation; re-submit if it never got there."""
    obj_id, attempt = job.payload["id"], int(job.payload.get("attempt", 0))
    row = p.db.run(lambda conn: store.get_row(conn, _table(obj_id), obj_id), write=False)
    if row["status"] != BankOpStatus.PENDING:
        return
    try:
        op = connector_for(p, row["bank"]).get_operation(obj_id)
    except UnknownBankOperation:
        row = submit(p, obj_id)
    else:
        row = apply_operation(p, op)
    if row["status"] == BankOpStatus.PENDING:
        p.db.run(lambda conn: _schedule_poll(conn, obj_id, attempt + 1, now=p.clock.now()))


def register_jobs(registry: Registry) -> None:
    registry.register_outside(POLL_JOB, poll)


# ------------------------------------------------------------------ API shapes
def _ts(value: Any) -> str | None:
    return None if value is None else rfc3339(value)


def shape_topup(row: Any) -> dict[str, Any]:
    return {"id": row["id"], "object": "topup", "status": row["status"], "amount": row["amount"],
            "currency": row["currency"], "card": row["card_id"], "failure_reason": row["failure_reason"],
            "created_at": _ts(row["created_at"]), "completed_at": _ts(row["completed_at"])}


def shape_withdrawal(row: Any) -> dict[str, Any]:
    return {"id": row["id"], "object": "withdrawal", "status": row["status"], "amount": row["amount"],
            "fee": row["fee"], "currency": row["currency"], "card": row["card_id"],
            "failure_reason": row["failure_reason"], "created_at": _ts(row["created_at"]),
            "completed_at": _ts(row["completed_at"])}
