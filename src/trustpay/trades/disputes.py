"""Dispute use cases (买家保障): open with evidence, add evidence, the ops ruling,
and what each party and ops may see (the rules are in :mod:`.dispute_model`).

Each runs in the caller's transaction with the trade row locked first, like a
trade transition:

* **open**: checks the rules, freezes the money (the trade's ``dispute_status``
  becomes ``open``, which the transition table, refunds and settlement all
  obey; for a finished or instant trade also a ledger hold on the merchant's
  pending-settlement account for the trade's share), closes an open refund
  request (the ruling decides now), emits ``dispute.opened`` and tells the
  other side.
* **resolve** (ops): ONE ledger entry splits the disputed money between buyer
  and merchant (from escrow, or from the merchant's pending account once the
  hold is released), the trade ends ``TRADE_FINISHED`` if the seller got
  anything, else ``TRADE_CLOSED``; ``dispute.resolved``, both told, audited.

The buyer's share counts as refunded (``trades.refunded_amount``), so the
trade's remaining amount and fee are exactly what settlement later pays out.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from sqlalchemy import Connection, select, update

from trustpay.clock import rfc3339, to_utc
from trustpay.db.schema import refunds as refunds_table
from trustpay.db.schema import trades
from trustpay.errors import Conflict, InvalidRequest, NotFound, TrustPayError
from trustpay.identity import audit
from trustpay.identity.audit import Origin
from trustpay.identity.model import Outcome, User, UserKind
from trustpay.ids import new_id
from trustpay.jobs import store as jobs
from trustpay.ledger.model import EntryDraft, Posting, credit, debit
from trustpay.money import Money
from trustpay.platform import outbox
from trustpay.trades import dispute_store, refunds, service, store
from trustpay.trades.dispute_model import (
    EVIDENCE_MAX,
    IN_ESCROW,
    NOTE_MAX,
    REASON_MAX,
    TEXT_MAX,
    URL_MAX,
    WITH_MERCHANT,
    EvidenceKind,
    check_file,
    check_may_open,
    rule,
)
from trustpay.trades.model import DisputeStatus, Party, TradeStatus, fee_due
from trustpay.trades.refund_model import RefundCloseReason
from trustpay.trades.views import shape as trade_shape
from trustpay.wallet import common
from trustpay.wallet import store as wallet_store

if TYPE_CHECKING:
    from trustpay.platform.context import Platform

FILE_NAME_MAX = 200
CLOSE_REASON = "dispute_ruling"  # trades.close_reason when the buyer got everything


@dataclass(frozen=True, slots=True)
class EvidenceIn:
    kind: str
    text: str | None = None
    url: str | None = None


# ------------------------------------------------------------------ shapes
def shape(row: Any, evidence: Sequence[Any] = ()) -> dict[str, Any]:
    """A dispute in its public shape: the API's answer and the ``dispute.*`` events' object."""
    return {
        "id": row["id"], "object": "dispute", "trade": row["trade_id"], "opened_by": row["opened_by"],
        "reason": row["reason"], "status": row["status"], "amount": row["amount"], "currency": row["currency"],
        "buyer_amount": row["buyer_amount"], "seller_amount": row["seller_amount"],
        "seller_fee": row["seller_fee"], "note": row["note"],
        "evidence": [evidence_shape(e) for e in evidence],
        "created_at": rfc3339(row["created_at"]), "resolved_at": _ts(row["resolved_at"]),
    }


def evidence_shape(row: Any) -> dict[str, Any]:
    out: dict[str, Any] = {"id": row["id"], "party": row["party"], "kind": row["kind"],
                           "created_at": rfc3339(row["created_at"])}
    if row["kind"] == EvidenceKind.TEXT:
        out["text"] = row["text"]
    elif row["kind"] == EvidenceKind.URL:
        out["url"] = row["url"]
    else:
        out.update(file_name=row["file_name"], content_type=row["content_type"], size=row["size"],
                   sha256=row["sha256"], download_url=f"/v1/disputes/{row['dispute_id']}/evidence/{row['id']}")
    return out


def _ts(value: datetime | None) -> str | None:
    return None if value is None else rfc3339(value)


# ------------------------------------------------------------------ who is asking
def _party(dispute: Any, user_id: str) -> Party:
    if user_id == dispute["merchant_id"]:
        return Party.MERCHANT
    if user_id == dispute["buyer_id"]:
        return Party.BUYER
    raise dispute_store.not_found(dispute["id"])


def get_for(conn: Connection, dispute_id: str, user_id: str) -> Any:
    """The dispute for one of its two parties or ops; 404 for anyone else."""
    row = dispute_store.get(conn, dispute_id)
    if user_id not in (row["merchant_id"], row["buyer_id"]):
        viewer = wallet_store.user_by(conn, user_id=user_id)
        if viewer is None or viewer.kind != UserKind.OPS.value:
            raise dispute_store.not_found(dispute_id)
    return row


def ensure_ops(user: User, dispute_id: str | None = None) -> None:
    """Not ops → the same 404 a missing dispute gets (the queue is no oracle)."""
    if user.kind is not UserKind.OPS:
        raise dispute_store.not_found(dispute_id or "")


# ------------------------------------------------------------------ open
def open_dispute(p: Platform, conn: Connection, trade_id: str, user_id: str, *, reason: str,
                 evidence: Sequence[EvidenceIn] = ()) -> Any:
    reason = _words("reason", reason, REASON_MAX)
    items = [_checked(e, i) for i, e in enumerate(evidence)]
    if len(items) > EVIDENCE_MAX:
        raise InvalidRequest(f"at most {EVIDENCE_MAX} pieces of evidence", param="evidence")
    row = store.get(conn, trade_id, for_update=True)
    party = service.party_of(row, user_id)
    if party is Party.BUYER and row["buyer_id"] != user_id:
        raise Conflict(f"cannot open a dispute: the trade is {row['status']}", code="invalid_state")
    status = TradeStatus(row["status"])
    now = p.clock.now()
    disputed = row["amount"] - row["refunded_amount"]
    _check_may_open(p, row, now)
    dispute_id = new_id("dp", now)
    hold_id = None
    if status in WITH_MERCHANT:
        hold_id = _hold_merchant_share(p, conn, row, disputed, dispute_id)
    dispute_store.insert(conn, {
        "id": dispute_id, "trade_id": trade_id, "merchant_id": row["merchant_id"], "buyer_id": row["buyer_id"],
        "opened_by": party.value, "reason": reason, "status": DisputeStatus.OPEN.value,
        "trade_status": status.value, "amount": disputed, "currency": row["currency"], "hold_id": hold_id,
        "created_at": now, "updated_at": now,
    })
    for e in items:
        _insert_evidence(conn, dispute_id, party, now, kind=e.kind, text=e.text, url=e.url)
    moved = conn.execute(update(trades).where(trades.c.id == trade_id,
                                              trades.c.dispute_status == DisputeStatus.NONE.value)
                         .values(dispute_status=DisputeStatus.OPEN.value, updated_at=now))
    if not moved.rowcount:
        raise Conflict("this trade already has a dispute; a trade is disputed once", code="invalid_state")
    refunds.close_open_requests(p, conn, trade_id, RefundCloseReason.DISPUTED)
    dispute = dispute_store.get(conn, dispute_id)
    outbox.emit(conn, "dispute.opened", shape(dispute, dispute_store.evidence_of(conn, dispute_id)),
                row["merchant_id"], now=now)
    other = row["merchant_id"] if party is Party.BUYER else row["buyer_id"]
    common.tell(p, conn, other, "A dispute was opened",
                f"A dispute about {row['subject']} ({row['out_trade_no']}) was opened: {reason}. "
                f"{_money(disputed, row['currency'])} is frozen until TrustPay rules on it; add your evidence "
                "on the dispute page.")
    return dispute


def _with_merchant_since(row: Any) -> datetime | None:
    """When the trade's money reached the merchant (finished; paid, for instant trades)."""
    since = row["finished_at"] if row["status"] == TradeStatus.TRADE_FINISHED.value else row["paid_at"]
    return None if since is None else to_utc(since)  # SQLite gives it back without its zone


def _check_may_open(p: Platform, row: Any, now: datetime) -> None:
    check_may_open(TradeStatus(row["status"]), DisputeStatus(row["dispute_status"]),
                   row["amount"] - row["refunded_amount"], with_merchant_since=_with_merchant_since(row), now=now,
                   protection=timedelta(days=p.settings.dispute_protection_days))


def may_open(p: Platform, conn: Connection, row: Any) -> bool:
    """Whether one of the trade's parties could open a dispute on it now: the checks
    :func:`open_dispute` makes, for pages that point to a dispute only when it would
    be accepted."""
    try:
        _check_may_open(p, row, p.clock.now())
    except Conflict:
        return False
    return not (TradeStatus(row["status"]) in WITH_MERCHANT and dispute_store.in_live_settlement(conn, row["id"]))


def open_until(p: Platform, row: Any) -> datetime | None:
    """The last moment a finished or instant trade may be disputed (its protection
    period); None for a trade whose money is still in escrow (no such limit)."""
    since = _with_merchant_since(row)
    if TradeStatus(row["status"]) not in WITH_MERCHANT or since is None:
        return None
    return since + timedelta(days=p.settings.dispute_protection_days)


def _hold_merchant_share(p: Platform, conn: Connection, row: Any, disputed: int, dispute_id: str) -> str | None:
    """The merchant's share of a finished or instant trade waits in its pending account:
    hold it there so no settlement pays it out before the ruling."""
    if dispute_store.in_live_settlement(conn, row["id"]):
        raise Conflict("cannot open a dispute: this trade's money was already paid out to the merchant",
                       code="invalid_state")
    currency = row["currency"]
    share = disputed - fee_due(row["fee"], row["amount"], row["refunded_amount"])
    if share <= 0:
        return None
    try:
        return p.book.hold(conn, debit_account_id=service.merchant_pending_account(p, conn, row["merchant_id"],
                                                                                   currency),
                           credit_account_id=common.recipient_wallet(p, conn, row["buyer_id"], currency),
                           amount=share, currency=currency, reference=dispute_id,
                           memo=f"dispute: {row['subject']}").id
    except TrustPayError:
        raise Conflict("cannot open a dispute: this trade's money has left the merchant's pending account",
                       code="invalid_state") from None


# ------------------------------------------------------------------ evidence
def add_evidence(p: Platform, conn: Connection, dispute_id: str, user_id: str, item: EvidenceIn) -> Any:
    """Words or a link from either party while the dispute is open."""
    e = _checked(item, None)
    dispute, party = _open_for(conn, dispute_id, user_id)
    _insert_evidence(conn, dispute_id, party, p.clock.now(), kind=e.kind, text=e.text, url=e.url)
    return dispute


def add_file(p: Platform, conn: Connection, dispute_id: str, user_id: str, *, file_name: str,
             data: bytes) -> Any:
    """A file from either party while the dispute is open: its type is sniffed from
    the bytes (the uploader's header is ignored), its size checked."""
    content_type = check_file(data, max_bytes=p.settings.dispute_evidence_max_bytes)
    name = "".join(c for c in (file_name or "") if c >= " " and c not in "/\\")[-FILE_NAME_MAX:] or "evidence"
    dispute, party = _open_for(conn, dispute_id, user_id)
    _insert_evidence(conn, dispute_id, party, p.clock.now(), kind=EvidenceKind.FILE, file_name=name,
                     content_type=content_type, size=len(data), sha256=hashlib.sha256(data).hexdigest(),
                     content=data)
    return dispute


def evidence_file(conn: Connection, dispute_id: str, evidence_id: str, user_id: str) -> Any:
    get_for(conn, dispute_id, user_id)
    row = dispute_store.evidence_file(conn, dispute_id, evidence_id)
    if row is None:
        raise NotFound(f"no evidence file {evidence_id[:40]} in this dispute")
    return row


def _open_for(conn: Connection, dispute_id: str, user_id: str) -> tuple[Any, Party]:
    peek = dispute_store.get(conn, dispute_id)
    party = _party(peek, user_id)
    store.get(conn, peek["trade_id"], for_update=True)  # trade first, then the dispute
    dispute = dispute_store.get(conn, dispute_id, for_update=True)
    if dispute["status"] != DisputeStatus.OPEN.value:
        raise Conflict("the dispute is resolved: no more evidence", code="invalid_state")
    if dispute_store.evidence_count(conn, dispute_id) >= EVIDENCE_MAX:
        raise InvalidRequest(f"at most {EVIDENCE_MAX} pieces of evidence per dispute", code="too_much_evidence")
    return dispute, party


def _checked(e: EvidenceIn, index: int | None) -> EvidenceIn:
    where = "evidence" if index is None else f"evidence[{index}]"
    if e.kind == EvidenceKind.TEXT:
        return EvidenceIn(EvidenceKind.TEXT.value, text=_words(f"{where}.text", e.text, TEXT_MAX, one_line=False))
    if e.kind == EvidenceKind.URL:
        url = (e.url or "").strip()
        parts = urlsplit(url)
        if len(url) > URL_MAX or parts.scheme not in ("http", "https") or not parts.netloc \
                or any(c <= " " for c in url):
            raise InvalidRequest(f"{where}.url must be an http(s) address of at most {URL_MAX} characters",
                                 param=f"{where}.url")
        return EvidenceIn(EvidenceKind.URL.value, url=url)
    raise InvalidRequest(f"{where}.kind must be 'text' or 'url' (upload files to /v1/disputes/{{id}}/evidence)",
                         param=f"{where}.kind")


def _words(name: str, value: str | None, limit: int, *, one_line: bool = True) -> str:
    value = (value or "").strip()
    allowed = "" if one_line else "\n\r\t"
    if not value or len(value) > limit or any(c < " " and c not in allowed for c in value):
        raise InvalidRequest(f"{name} must be 1-{limit} characters" + (" on one line" if one_line else ""),
                             param=name)
    return value


def _insert_evidence(conn: Connection, dispute_id: str, party: Party, now: datetime, **values: Any) -> None:
    """Numbered after the last piece: callers hold the trade's lock, so no two take one number."""
    position = dispute_store.evidence_count(conn, dispute_id) + 1
    dispute_store.add_evidence(conn, {"id": new_id("dpe", now), "dispute_id": dispute_id, "position": position,
                                      "party": party.value, "created_at": now, **values})


# ------------------------------------------------------------------ ruling
def resolve(p: Platform, conn: Connection, dispute_id: str, actor: User, *, buyer_amount: object,
            seller_amount: object, note: str, origin: Origin = Origin()) -> Any:
    ensure_ops(actor, dispute_id)
    note = _words("note", note, NOTE_MAX, one_line=False)
    peek = dispute_store.get(conn, dispute_id)
    trade = store.get(conn, peek["trade_id"], for_update=True)
    dispute = dispute_store.get(conn, dispute_id, for_update=True)
    if dispute["status"] != DisputeStatus.OPEN.value:
        raise Conflict(f"dispute {dispute_id} is already resolved", code="invalid_state")
    r = rule(disputed=dispute["amount"], amount=trade["amount"], fee=trade["fee"],
             refunded=trade["refunded_amount"], buyer_amount=buyer_amount, seller_amount=seller_amount)
    currency, now = trade["currency"], p.clock.now()
    in_escrow = TradeStatus(trade["status"]) in IN_ESCROW
    if dispute["hold_id"] is not None:
        p.book.void_hold(conn, dispute["hold_id"], memo="dispute ruled")
    postings = _split_postings(p, conn, trade, r.buyer_amount, r.seller_amount - r.seller_fee, r.seller_fee,
                               r.fee_given_back, in_escrow=in_escrow)
    entry_id = None
    if postings:
        entry_id = p.book.post(conn, EntryDraft(postings, reference=trade["id"],
                                                memo=f"dispute ruling — {trade['subject']}")).id
    finished = r.trade_status is TradeStatus.TRADE_FINISHED
    values: dict[str, Any] = {"status": r.trade_status.value, "dispute_status": DisputeStatus.RESOLVED.value,
                              "refunded_amount": trade["refunded_amount"] + r.buyer_amount, "updated_at": now}
    if in_escrow:
        values["release_entry_id"] = entry_id
    if finished and trade["finished_at"] is None:
        values["finished_at"] = now
    if not finished:
        values.update(close_reason=CLOSE_REASON, closed_at=now)
    if not store.move(conn, trade["id"], from_status=trade["status"], **values):
        raise Conflict("cannot resolve: the trade changed meanwhile", code="invalid_state")
    updated = store.get(conn, trade["id"])
    for kind in (service.SHIP_TIMEOUT_JOB, service.CONFIRM_TIMEOUT_JOB):
        jobs.cancel(conn, service.job_key(kind, trade["id"]), now=now)
    if not dispute_store.resolve(conn, dispute_id, buyer_amount=r.buyer_amount, seller_amount=r.seller_amount,
                                 seller_fee=r.seller_fee, note=note, resolved_by=actor.id, entry_id=entry_id,
                                 resolved_at=now, updated_at=now):
        raise Conflict(f"dispute {dispute_id} is already resolved", code="invalid_state")
    done = dispute_store.get(conn, dispute_id)
    outbox.emit(conn, "dispute.resolved", {**shape(done), "trade_status": updated["status"]},
                trade["merchant_id"], now=now)
    outbox.emit(conn, "trade.finished" if finished else "trade.closed", trade_shape(updated), trade["merchant_id"],
                now=now)
    audit.record(conn, event="dispute.resolved", outcome=Outcome.SUCCESS, user_id=actor.id, origin=origin, now=now,
                 resource=dispute_id)
    told = (f"TrustPay ruled on the dispute about {trade['subject']} ({trade['out_trade_no']}): "
            f"{_money(r.buyer_amount, currency)} to the buyer, {_money(r.seller_amount, currency)} to the merchant "
            f"(fee {_money(r.seller_fee, currency)}). {note}")
    common.tell(p, conn, trade["buyer_id"], "Your dispute was resolved", told)
    common.tell(p, conn, trade["merchant_id"], "A dispute was resolved", told)
    return done


def _split_postings(p: Platform, conn: Connection, trade: Any, to_buyer: int, to_merchant: int, fee: int,
                    fee_back: int, *, in_escrow: bool) -> tuple[Posting, ...]:
    """In escrow: escrow → buyer, merchant (net) and fee revenue. With the merchant
    already: the merchant's pending account and fee revenue (the fee on the buyer's
    share) → buyer."""
    currency = trade["currency"]
    buyer = common.recipient_wallet(p, conn, trade["buyer_id"], currency) if to_buyer else ""
    pending = service.merchant_pending_account(p, conn, trade["merchant_id"], currency)
    revenue = common.fee_revenue_account(p, conn, currency)
    if in_escrow:
        out = [debit(service.escrow_account(p, conn, currency), to_buyer + to_merchant + fee, currency),
               credit(buyer, to_buyer, currency), credit(pending, to_merchant, currency),
               credit(revenue, fee, currency)]
    else:
        out = [debit(pending, to_buyer - fee_back, currency), debit(revenue, fee_back, currency),
               credit(buyer, to_buyer, currency)]
    return tuple(o for o in out if o.amount)


# ------------------------------------------------------------------ ops queue
def queue(conn: Connection, actor: User, *, status: str | None, limit: int) -> list[dict[str, Any]]:
    ensure_ops(actor)
    return [ops_view(conn, row) for row in dispute_store.queue(conn, status=status, limit=limit)]


def ops_view(conn: Connection, dispute: Any) -> dict[str, Any]:
    """The dispute with its trade and the whole story in time order: the trade's steps,
    its refunds, the dispute and every piece of evidence, the ruling."""
    trade = store.get(conn, dispute["trade_id"])
    evidence = dispute_store.evidence_of(conn, dispute["id"])
    return {**shape(dispute, evidence), "trade_detail": trade_shape(trade),
            "timeline": timeline(conn, trade, dispute, evidence)}


def timeline(conn: Connection, trade: Any, dispute: Any, evidence: Sequence[Any]) -> list[dict[str, Any]]:
    events: list[tuple[datetime, int, dict[str, Any]]] = []

    def at(when: datetime | None, what: str, **detail: Any) -> None:
        if when is not None:
            events.append((when, len(events), {"at": rfc3339(when), "what": what, **detail}))

    at(trade["created_at"], "trade.created", amount=trade["amount"], currency=trade["currency"])
    at(trade["paid_at"], "trade.paid")
    at(trade["shipped_at"], "trade.shipped", carrier=trade["carrier"], tracking_no=trade["tracking_no"])
    if dispute["trade_status"] == TradeStatus.TRADE_FINISHED.value:
        at(trade["finished_at"], "trade.finished")
    for rf in conn.execute(select(refunds_table).where(refunds_table.c.trade_id == trade["id"])
                           .order_by(refunds_table.c.created_at)).mappings():
        at(rf["created_at"], "refund.requested" if rf["requested_by"] == "buyer" else "refund.created",
           refund=rf["id"], amount=rf["amount"], reason=rf["reason"], status=rf["status"])
        at(rf["succeeded_at"], "refund.succeeded", refund=rf["id"], amount=rf["amount"])
        at(rf["closed_at"], "refund.closed", refund=rf["id"], close_reason=rf["close_reason"])
    at(dispute["created_at"], "dispute.opened", by=dispute["opened_by"], reason=dispute["reason"])
    for e in evidence:
        at(e["created_at"], "evidence.added", **{k: v for k, v in evidence_shape(e).items() if k != "created_at"})
    at(dispute["resolved_at"], "dispute.resolved", buyer_amount=dispute["buyer_amount"],
       seller_amount=dispute["seller_amount"], note=dispute["note"])
    return [e for _, _, e in sorted(events, key=lambda x: (x[0], x[1]))]


def _money(amount: int, currency: str) -> str:
    return Money.of(amount, currency).format("en")
