"""The deadlines, run as jobs on the platform clock (so the test clock runs them too):

* unpaid by ``pay_by``          → TRADE_CLOSED                         (trade.closed)
* paid, unshipped by ``ship_by`` → buyer refunded in full, TRADE_CLOSED (trade.closed)
* shipped, unconfirmed by ``confirm_by`` → finished for the buyer       (trade.finished)

A job may find the trade moved on since it was scheduled (paid a moment
before its pay deadline; a dispute opened): the table then refuses the
timeout and the job does nothing. A job never cancels itself (cancelling the
running job would roll its own work back).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from sqlalchemy import Connection

from trustpay.errors import TrustPayError
from trustpay.ledger.model import EntryDraft, credit, debit
from trustpay.money import Money
from trustpay.platform import outbox
from trustpay.trades import refund_store, refunds, service, store
from trustpay.trades.model import Action, CloseReason, DisputeStatus, Mode, Party, TradeStatus, transition
from trustpay.trades.views import shape
from trustpay.wallet import common

if TYPE_CHECKING:
    from typing import Any

    from trustpay.jobs.registry import Registry
    from trustpay.jobs.store import Job
    from trustpay.platform.context import Platform


def _due(conn: Connection, job: Job, action: Action) -> tuple[Any, TradeStatus] | None:
    row = store.get(conn, job.payload["trade_id"], for_update=True)
    try:
        nxt = transition(row["id"], Mode(row["mode"]), TradeStatus(row["status"]), action, Party.SYSTEM,
                         dispute_status=DisputeStatus(row["dispute_status"]))
    except TrustPayError:
        return None  # moved on meanwhile: nothing to do
    return row, nxt


def close_unpaid(p: Platform, conn: Connection, job: Job) -> None:
    found = _due(conn, job, Action.PAY_TIMEOUT)
    if found is None:
        return
    row, nxt = found
    now = p.clock.now()
    updated = service.advance(conn, row, Action.PAY_TIMEOUT, status=nxt.value,
                            close_reason=CloseReason.PAY_TIMEOUT.value, closed_at=now, updated_at=now)
    outbox.emit(conn, "trade.closed", shape(updated), row["merchant_id"], now=now)


def refund_unshipped(p: Platform, conn: Connection, job: Job) -> None:
    """The merchant did not ship in time: everything still in escrow goes back to the buyer."""
    found = _due(conn, job, Action.SHIP_TIMEOUT)
    if found is None:
        return
    row, nxt = found
    now = p.clock.now()
    currency, held = row["currency"], row["amount"] - row["refunded_amount"]
    entry_id = None
    if held:
        # Back in the buyer's wallet whatever their limits say: it was theirs already.
        buyer_wallet = common.recipient_wallet(p, conn, row["buyer_id"], currency)
        entry_id = p.book.post(conn, EntryDraft(
            (debit(service.escrow_account(p, conn, currency), held, currency), credit(buyer_wallet, held, currency)),
            reference=row["id"], memo=f"refund: not shipped in time — {row['subject']}")).id
    updated = service.advance(conn, row, Action.SHIP_TIMEOUT, status=nxt.value, refunded_amount=row["amount"],
                            release_entry_id=entry_id, close_reason=CloseReason.SHIP_TIMEOUT.value,
                            closed_at=now, updated_at=now)
    outbox.emit(conn, "trade.closed", shape(updated), row["merchant_id"], now=now)
    refunds.close_open_requests(p, conn, row["id"])  # everything went back: nothing left to ask for
    shown = Money.of(held, currency).format("en")
    common.tell(p, conn, row["buyer_id"], "Your money is back",
                f"The merchant did not ship {row['subject']} in time; {shown} is back in your wallet.")
    common.tell(p, conn, row["merchant_id"], "A trade was closed: not shipped in time",
                f"{row['subject']} ({row['out_trade_no']}) was not shipped by its deadline; "
                f"the buyer got {shown} back.")


def finish_unconfirmed(p: Platform, conn: Connection, job: Job) -> None:
    """The buyer neither confirmed nor disputed in time: the merchant is paid."""
    found = _due(conn, job, Action.CONFIRM_TIMEOUT)
    if found is None:
        return
    row, nxt = found
    if refund_store.open_request(conn, row["id"]) is not None:
        return  # paused while the buyer asks for money back; deciding the request resumes it
    service.finish(p, conn, row, nxt, Action.CONFIRM_TIMEOUT)


def register_jobs(registry: Registry) -> None:
    registry.register(service.PAY_TIMEOUT_JOB, close_unpaid)
    registry.register(service.SHIP_TIMEOUT_JOB, refund_unshipped)
    registry.register(service.CONFIRM_TIMEOUT_JOB, finish_unconfirmed)
