"""Transfers between users (即时到账): completed at once with an undo window, or held
until the recipient accepts (``require_acceptance``).

The money rides on one ledger hold (sender ⇢ recipient) for as long as it can
still go back; a job closes the window (posts the hold) or returns unanswered
transfers (voids it). Every state change locks the transfer row first and is
guarded by the old status, so undo vs. the window closing, or accept vs. the
24 h return, resolve exactly one way.
"""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import Connection, bindparam, select, update

from trustpay.clock import rfc3339, to_utc
from trustpay.errors import InvalidRequest, NotFound
from trustpay.identity import crypto, limits
from trustpay.identity import store as identity_store
from trustpay.identity.audit import Origin
from trustpay.identity.model import normalize_email, normalize_phone
from trustpay.ids import new_id
from trustpay.jobs import store as jobs
from trustpay.ledger.model import EntryDraft, credit, debit
from trustpay.money import Money, check_amount
from trustpay.platform import outbox
from trustpay.risk import service as risk
from trustpay.risk.model import Decision
from trustpay.wallet import common, service, store
from trustpay.wallet.model import TransferStatus, can_undo, invalid_state, transfer_windows
from trustpay.wallet.statement import register_counterparty

if TYPE_CHECKING:
    from trustpay.jobs.registry import Registry
    from trustpay.jobs.store import Job
    from trustpay.platform.context import Platform

SETTLE_JOB = "transfer.close_undo_window"
RETURN_JOB = "transfer.return_unanswered"
MEMO_MAX = 200


def find_recipient(p: Platform, conn: Connection, to: str, *, currency: str | None = None) -> Any:
    """``to`` is a user id, an e-mail address or a phone number; 404 when nobody matches.
    The whole user row: the payment checks the recipient's tier limits with it;
    with a ``currency``, their wallet in it too (``store.wallet_of``)."""
    to = (to or "").strip()
    row = None
    if to.startswith("usr_"):
        row = store.person_by(conn, user_id=to, currency=currency)
    elif "@" in to:
        try:
            row = store.person_by(conn, email=normalize_email(to), currency=currency)
        except InvalidRequest:
            row = None
    elif to:
        try:
            phone = normalize_phone(to)
        except InvalidRequest:
            phone = None
        if phone is not None:
            row = store.person_by(conn, phone_hmac=crypto.keyed_hash(p.settings.secret_key, "phone", phone),
                                  currency=currency)
    if row is None or row.kind == "ops":
        raise NotFound("no TrustPay user with that id, e-mail or phone")
    return row


def authorise(p: Platform, sender_id: str, *, to: str, amount: int, payment_password: str | None,
              totp_code: str | None, origin: Origin = Origin()) -> bool:
    """Before the money transaction (no transaction open; refusals commit on their own):
    the payment password (or the 免密 cap), the recipient, then risk control's step-up.
    Returns whether the sender stepped up, for :func:`send`."""
    def read(conn: Connection) -> tuple[service.Preferences, Any, Decision | None]:
        # Everything the checks need in one read transaction (this runs on every transfer).
        prefs = service.preferences(conn, sender_id)
        try:
            recipient = find_recipient(p, conn, to)
        except NotFound as unknown:
            return prefs, unknown, None
        return prefs, recipient, risk.decide(p, conn, sender_id, action="transfer", amount=amount,
                                             recipient_id=recipient.id)

    prefs, recipient, decision = p.db.run(read, write=False)
    # The password comes first, as the person typed it: a wrong one counts even
    # when the recipient is unknown.
    checked = service.check_payment_password(p, sender_id, amount, payment_password, prefs, origin)
    if isinstance(recipient, NotFound) or decision is None:
        raise recipient
    return risk.step_up(p, sender_id, decision, totp_code=totp_code, password_checked=checked, origin=origin)


def send(p: Platform, conn: Connection, sender_id: str, *, to: str, amount: int, currency: str,
         memo: str = "", require_acceptance: bool = False, stepped_up: bool = False,
         authorised: bool = True) -> Any:
    """Move ``amount`` from the sender's wallet to the recipient's; returns the transfer row.

    ``authorised=False``: :func:`authorise` has not run (a request with no password
    or code, tried at once): whatever it would have stopped is refused here (an
    amount over the 免密 cap; a risk challenge, as no step-up happened)."""
    check_amount(amount, p.settings.max_amount)
    memo = (memo or "").strip()
    if len(memo) > MEMO_MAX:
        raise InvalidRequest(f"the memo is longer than {MEMO_MAX} characters", param="memo")
    recipient = find_recipient(p, conn, to, currency=currency)
    if recipient.id == sender_id:
        raise InvalidRequest("you cannot transfer money to yourself", code="transfer_to_self", param="to")
    source = common.before_money_out(p, conn, sender_id, currency=currency, amount=amount, action="transfer",
                                     stepped_up=stepped_up, recipient_id=recipient.id,
                                     password_free_only=not authorised)
    # Their wallet came with them; their first money in a currency opens one.
    wallet = store.wallet_of(recipient) or common.recipient_account(p, conn, recipient.id, currency)
    target = wallet.id
    limits.enforce_limits(p, conn, recipient.id, currency=currency, inflow=amount,
                          user=identity_store.as_user(recipient), balance=limits.account_total(wallet))

    now = p.clock.now()
    transfer_id = new_id("tr", now)
    windows = transfer_windows(now, undo_seconds=p.settings.transfer_undo_seconds,
                               require_acceptance=require_acceptance,
                               acceptance_hours=p.settings.transfer_acceptance_hours)
    hold_id = None
    settled_at = None
    if windows.uses_hold:
        hold_id = p.book.hold(conn, debit_account_id=source, credit_account_id=target, amount=amount,
                              currency=currency, reference=transfer_id, memo=memo).id
    else:
        p.book.post(conn, EntryDraft((debit(source, amount, currency), credit(target, amount, currency)),
                                     reference=transfer_id, memo=memo))
        settled_at = now
    status = TransferStatus.PENDING_ACCEPTANCE if require_acceptance else TransferStatus.COMPLETED
    # Every column: this is also the row the caller gets back (no read after the write).
    row = {
        "id": transfer_id, "sender_id": sender_id, "recipient_id": recipient.id, "currency": currency,
        "amount": amount, "memo": memo, "status": status.value, "require_acceptance": require_acceptance,
        "hold_id": hold_id, "undo_until": windows.undo_until, "accept_until": windows.accept_until,
        "settled_at": settled_at, "created_at": now, "resolved_at": None,
    }
    store.insert(conn, store.transfers, row)
    if windows.undo_until is not None:
        jobs.schedule(conn, SETTLE_JOB, windows.undo_until, {"transfer_id": transfer_id},
                      f"{SETTLE_JOB}:{transfer_id}", now=now)
    if windows.accept_until is not None:
        jobs.schedule(conn, RETURN_JOB, windows.accept_until, {"transfer_id": transfer_id},
                      f"{RETURN_JOB}:{transfer_id}", now=now)
    shown = Money.of(amount, currency).format("en")
    if status is TransferStatus.COMPLETED:
        outbox.emit(conn, "transfer.completed", shape(row), recipient.id, now=now)
        common.tell_address(p, conn, recipient.email, "You received money", f"You received {shown}. {memo}".strip())
    else:
        common.tell_address(p, conn, recipient.email, "A transfer awaits your acceptance",
                            f"Accept or decline {shown} in your TrustPay wallet. {memo}".strip())
    return row


def get_for(conn: Connection, transfer_id: str, user_id: str) -> Any:
    """The transfer if the user sent or received it; 404 otherwise."""
    row = store.get_row(conn, store.transfers, transfer_id)
    if user_id not in (row["sender_id"], row["recipient_id"]):
        raise NotFound(f"no transfer {transfer_id[:40]}")
    return row


def _locked(conn: Connection, transfer_id: str, *, party: str, user_id: str) -> Any:
    return store.get_row(conn, store.transfers, transfer_id, owner_col=party, owner_id=user_id, for_update=True)


def undo(p: Platform, conn: Connection, transfer_id: str, user_id: str) -> Any:
    """撤回: the sender takes a completed transfer back before ``undo_until``."""
    row = _locked(conn, transfer_id, party="sender_id", user_id=user_id)
    now = p.clock.now()
    if not can_undo(row["status"], row["settled_at"] is not None, _utc(row["undo_until"]), now):
        raise invalid_state("transfer", _why_not_undoable(row, now), "undo it")
    p.book.void_hold(conn, row["hold_id"], memo="undone by the sender")
    _finish(conn, row, TransferStatus.COMPLETED, TransferStatus.REVERSED, now)
    jobs.cancel(conn, f"{SETTLE_JOB}:{transfer_id}", now=now)
    common.tell(p, conn, row["recipient_id"], "A transfer was undone",
                f"The sender took back {Money.of(row['amount'], row['currency']).format('en')}.")
    return store.get_row(conn, store.transfers, transfer_id)


def accept(p: Platform, conn: Connection, transfer_id: str, user_id: str) -> Any:
    row = _locked(conn, transfer_id, party="recipient_id", user_id=user_id)
    if row["status"] != TransferStatus.PENDING_ACCEPTANCE:
        raise invalid_state("transfer", row["status"], "accept it")
    now = p.clock.now()
    limits.enforce_limits(p, conn, user_id, currency=row["currency"], inflow=row["amount"])
    p.book.post_hold(conn, row["hold_id"], memo=row["memo"])
    store.set_status(conn, store.transfers, transfer_id, from_status=TransferStatus.PENDING_ACCEPTANCE.value,
                     status=TransferStatus.COMPLETED.value, settled_at=now, resolved_at=now)
    jobs.cancel(conn, f"{RETURN_JOB}:{transfer_id}", now=now)
    updated = store.get_row(conn, store.transfers, transfer_id)
    outbox.emit(conn, "transfer.completed", shape(updated), user_id, now=now)
    common.tell(p, conn, row["sender_id"], "Your transfer was accepted",
                f"{Money.of(row['amount'], row['currency']).format('en')} reached the recipient.")
    return updated


def decline(p: Platform, conn: Connection, transfer_id: str, user_id: str) -> Any:
    row = _locked(conn, transfer_id, party="recipient_id", user_id=user_id)
    if row["status"] != TransferStatus.PENDING_ACCEPTANCE:
        raise invalid_state("transfer", row["status"], "decline it")
    _return(p, conn, row, "declined by the recipient")
    return store.get_row(conn, store.transfers, transfer_id)


def _return(p: Platform, conn: Connection, row: Any, why: str, *, from_job: bool = False) -> None:
    now = p.clock.now()
    p.book.void_hold(conn, row["hold_id"], memo=why)
    _finish(conn, row, TransferStatus.PENDING_ACCEPTANCE, TransferStatus.RETURNED, now)
    if not from_job:  # cancelling the running job itself would roll this back
        jobs.cancel(conn, f"{RETURN_JOB}:{row['id']}", now=now)
    common.tell(p, conn, row["sender_id"], "Your transfer came back",
                f"{Money.of(row['amount'], row['currency']).format('en')} is back in your wallet ({why}).")


def _finish(conn: Connection, row: Any, old: TransferStatus, new: TransferStatus, now: datetime) -> None:
    if not store.set_status(conn, store.transfers, row["id"], from_status=old.value, status=new.value,
                            resolved_at=now):
        raise invalid_state("transfer", "no longer " + old.value, new.value)


def _why_not_undoable(row: Any, now: datetime) -> str:
    if row["status"] != TransferStatus.COMPLETED:
        return str(row["status"])
    if row["undo_until"] is None:
        return "not undoable (it had no undo window)"
    return "past its undo window"


def _utc(value: datetime | None) -> datetime | None:
    return None if value is None else to_utc(value)


# ------------------------------------------------------------------ jobs
# Every default transfer's undo window closes through here. Marking the transfers
# settled is also the read and the lock (the rows stay locked to the end of the
# job's transaction, as undo's FOR UPDATE expects): a transfer undone or settled
# meanwhile matches nothing.
_t = store.transfers.c
_SETTLE = (update(store.transfers)
           .where(_t.id.in_(bindparam("w_ids", expanding=True)), _t.status == TransferStatus.COMPLETED.value,
                  _t.settled_at.is_(None))
           .values(settled_at=bindparam("settled_at", type_=_t.settled_at.type))
           .returning(_t.id, _t.hold_id, _t.memo))


def close_undo_window(p: Platform, conn: Connection, job: Job) -> None:
    """The undo window is over: the recipient's pending money becomes available."""
    close_undo_windows(p, conn, [job])


def close_undo_windows(p: Platform, conn: Connection, due: list[Job]) -> None:
    """Many due windows: one mark for all of them and one ledger call
    (``post_holds``) for all their holds, in the jobs' order. The entry that makes
    the money the recipient's carries the sender's memo: it is the one the
    statement shows. (If the ledger call fails, the job's savepoint undoes the
    mark too.)"""
    ids = [job.payload["transfer_id"] for job in due]
    settled = {row.id: row for row in conn.execute(_SETTLE, {"w_ids": ids, "settled_at": p.clock.now()})}
    p.book.post_holds(conn, [(settled[i].hold_id, settled[i].memo) for i in dict.fromkeys(ids) if i in settled])


def return_unanswered(p: Platform, conn: Connection, job: Job) -> None:
    row = store.get_row(conn, store.transfers, job.payload["transfer_id"], for_update=True)
    if row["status"] != TransferStatus.PENDING_ACCEPTANCE:
        return  # answered in time
    _return(p, conn, row, "not accepted in time", from_job=True)


def register_jobs(registry: Registry) -> None:
    registry.register(SETTLE_JOB, close_undo_window, together=close_undo_windows)
    registry.register(RETURN_JOB, return_unanswered)


# ------------------------------------------------------------------ statement
def counterparty(conn: Connection, reference: str, user_id: str) -> str | None:
    """The other side of a transfer, as the statement shows it: a masked e-mail."""
    row = conn.execute(select(store.transfers.c.sender_id, store.transfers.c.recipient_id)
                       .where(store.transfers.c.id == reference)).first()
    if row is None or user_id not in (row.sender_id, row.recipient_id):
        return None
    other = store.user_by(conn, user_id=row.recipient_id if user_id == row.sender_id else row.sender_id)
    return None if other is None else mask_email(other.email)


def mask_email(email: str) -> str:
    local, _, domain = email.partition("@")
    return f"{local[:1]}***@{domain}" if domain else local[:1] + "***"


register_counterparty("tr", counterparty)


# ------------------------------------------------------------------ API shape
def shape(row: Any) -> dict[str, Any]:
    return {
        "id": row["id"], "object": "transfer", "status": row["status"], "amount": row["amount"],
        "currency": row["currency"], "sender": row["sender_id"], "recipient": row["recipient_id"],
        "memo": row["memo"], "require_acceptance": bool(row["require_acceptance"]),
        "undo_until": _ts(row["undo_until"]), "accept_until": _ts(row["accept_until"]),
        "settled": row["settled_at"] is not None, "created_at": _ts(row["created_at"]),
    }


def _ts(value: datetime | None) -> str | None:
    return None if value is None else rfc3339(value)
