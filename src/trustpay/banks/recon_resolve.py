"""Ops work on the reconciliation exceptions queue: list, and resolve one.

Resolving records what ops decided, with a note, in the ops user's audit log,
and — when money must move — one adjusting ledger entry whose reference is the
exception id, between the affected user's wallet and the bank's clearing
account (the account the original operation went through):

* ``note_only``: nothing moves (the bank fixed it, a duplicate line, …);
* ``credit_wallet``: the user gets ``amount`` out of clearing (the bank took
  more from the card than we credited; a top-up the bank confirms and we lost);
* ``debit_wallet``: ``amount`` goes back from the wallet to clearing (we
  credited a top-up the bank never collected).

The amount defaults to what the finding says is off. Resolving again with the
same decision answers the same row (idempotent); another decision is refused.
Only ops users see any of this: to everyone else the queue does not exist (404).
"""

from __future__ import annotations

from enum import StrEnum
from typing import TYPE_CHECKING, Any

from sqlalchemy import Connection, select, update

from trustpay.banks.recon_model import ExceptionKind
from trustpay.db.schema import recon_exceptions
from trustpay.errors import Conflict, InvalidRequest, NotFound
from trustpay.identity import audit
from trustpay.identity import store as identity_store
from trustpay.identity.audit import Origin
from trustpay.identity.model import Outcome, User, UserKind
from trustpay.ledger.model import EntryDraft, credit, debit
from trustpay.money import check_amount
from trustpay.wallet import common

if TYPE_CHECKING:
    from trustpay.platform.context import Platform

OPEN, RESOLVED = "open", "resolved"
NOTE_MAX = 500


class Resolution(StrEnum):
    NOTE_ONLY = "note_only"
    CREDIT_WALLET = "credit_wallet"
    DEBIT_WALLET = "debit_wallet"


def ensure_ops(user: User, exception_id: str | None = None) -> None:
    """Not ops → the same 404 a missing exception gets (the queue is no oracle)."""
    if user.kind is not UserKind.OPS:
        raise NotFound(f"no reconciliation exception {exception_id[:40]}" if exception_id is not None
                       else "not found")


def list_exceptions(conn: Connection, *, status: str | None = OPEN, limit: int = 50,
                    latest_resolved: bool = False) -> tuple[list[Any], bool]:
    """Oldest first: the order ops work the queue in; with ``latest_resolved``, the
    most recently resolved first (what was just decided, for the console's history)."""
    q = select(recon_exceptions)
    if status:
        q = q.where(recon_exceptions.c.status == status)
    order = ((recon_exceptions.c.resolved_at.desc(), recon_exceptions.c.id.desc()) if latest_resolved
             else (recon_exceptions.c.id,))
    rows = list(conn.execute(q.order_by(*order).limit(limit + 1)).mappings())
    return rows[:limit], len(rows) > limit


def get_exception(conn: Connection, exception_id: str, *, for_update: bool = False) -> Any:
    q = select(recon_exceptions).where(recon_exceptions.c.id == exception_id)
    row = conn.execute(q.with_for_update() if for_update else q).mappings().first()
    if row is None:
        raise NotFound(f"no reconciliation exception {exception_id[:40]}")
    return row


def default_amount(row: Any) -> int | None:
    bank: int | None = row["bank_amount"]
    ours: int | None = row["our_amount"]
    if row["kind"] == ExceptionKind.AMOUNT_DIFFERS and bank is not None and ours is not None:
        return abs(bank - ours) or None
    if row["kind"] in (ExceptionKind.MISSING_OURS, ExceptionKind.DUPLICATE):
        return bank
    return ours if ours is not None else bank


def resolve(p: Platform, conn: Connection, exception_id: str, *, actor: User, action: str, note: str,
            origin: Origin, amount: int | None = None, user_id: str | None = None) -> Any:
    ensure_ops(actor, exception_id)
    try:
        decision = Resolution(action)
    except ValueError:
        raise InvalidRequest(f"action must be one of {', '.join(r.value for r in Resolution)}",
                             param="action") from None
    note = note.strip()
    if not note:
        raise InvalidRequest("say why in a note (it is kept with the resolution)", param="note")
    if len(note) > NOTE_MAX:
        raise InvalidRequest(f"the note is longer than {NOTE_MAX} characters", param="note")
    row = get_exception(conn, exception_id, for_update=True)
    if row["status"] == RESOLVED:
        if row["resolution"] == decision.value and row["note"] == note:
            return row  # the same request again: the same answer, nothing moves twice
        raise Conflict(f"reconciliation exception {exception_id} is already resolved ({row['resolution']})")
    entry_id, moved = None, None
    if decision is not Resolution.NOTE_ONLY:
        entry_id, moved = _adjust(p, conn, row, decision, amount, user_id)
    now = p.clock.now()
    conn.execute(update(recon_exceptions).where(recon_exceptions.c.id == exception_id,
                                                recon_exceptions.c.status == OPEN).values(
        status=RESOLVED, resolved_at=now, resolved_by=actor.id, resolution=decision.value,
        resolution_amount=moved, note=note, entry_id=entry_id))
    audit.record(conn, event="reconciliation.exception_resolved", outcome=Outcome.SUCCESS, user_id=actor.id,
                 origin=origin, now=now, resource=exception_id)
    return get_exception(conn, exception_id)


def _adjust(p: Platform, conn: Connection, row: Any, decision: Resolution, amount: int | None,
            user_id: str | None) -> tuple[str, int]:
    owner = row["user_id"] or user_id
    if not owner:
        raise InvalidRequest("this finding names no user: say whose wallet with user_id", param="user_id")
    if row["user_id"] and user_id and user_id != row["user_id"]:
        raise InvalidRequest("this finding belongs to another user's operation", param="user_id")
    if identity_store.user_row(conn, user_id=owner) is None:
        raise InvalidRequest(f"no user {owner[:40]}", param="user_id")
    amount = amount if amount is not None else default_amount(row)
    if amount is None:
        raise InvalidRequest("say how much with amount", param="amount")
    check_amount(amount, p.settings.max_amount)
    currency = row["currency"]
    clearing = common.clearing_account(p, conn, row["bank"], currency)
    wallet = common.recipient_wallet(p, conn, owner, currency)
    source, target = (clearing, wallet) if decision is Resolution.CREDIT_WALLET else (wallet, clearing)
    postings = (debit(source, amount, currency), credit(target, amount, currency))
    entry = p.book.post(conn, EntryDraft(postings, reference=row["id"],
                                         memo=f"reconciliation adjustment ({row['kind']})"))
    return entry.id, amount


def shape(row: Any) -> dict[str, Any]:
    from trustpay.clock import rfc3339

    def ts(v: Any) -> str | None:
        return None if v is None else rfc3339(v)

    return {"id": row["id"], "object": "reconciliation_exception", "bank": row["bank"],
            "business_date": row["business_date"], "kind": row["kind"], "reference": row["reference"],
            "bank_ref": row["bank_ref"], "user": row["user_id"], "currency": row["currency"],
            "bank_amount": row["bank_amount"], "our_amount": row["our_amount"], "bank_status": row["bank_status"],
            "our_status": row["our_status"], "status": row["status"], "created_at": ts(row["created_at"]),
            "resolution": None if row["status"] != RESOLVED else {
                "action": row["resolution"], "amount": row["resolution_amount"], "note": row["note"],
                "by": row["resolved_by"], "at": ts(row["resolved_at"]), "entry": row["entry_id"]}}
