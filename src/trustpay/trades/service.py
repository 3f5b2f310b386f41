"""Trade use cases: create, pay, ship, confirm, close (the deadlines are in
:mod:`.timeouts`).

Every transition is one function that, in the caller's transaction: locks the
trade row, asks :func:`trustpay.trades.model.transition` whether this party may
do this now, writes at most one ledger entry, moves the row guarded by its old
status, (re)schedules the deadline jobs, and emits one outbox event. So "pay
and close at once" ends with exactly one of them done, and money never moves
without its event, nor an event without its money.

Payment-password and risk checks run *before* the money transaction
(``authorise_*``), like the wallet's: a wrong password's count toward the lock
commits even though the payment does not happen.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from sqlalchemy import Connection, select

from trustpay.db.schema import trades
from trustpay.errors import Conflict, InvalidRequest
from trustpay.identity import service as identity
from trustpay.identity.audit import Origin
from trustpay.ids import new_id
from trustpay.jobs import store as jobs
from trustpay.ledger.model import AccountKind, EntryDraft, Posting, credit, debit
from trustpay.merchants import service as merchants
from trustpay.merchants import store as merchant_store
from trustpay.money import Money, check_amount, check_currency
from trustpay.platform import outbox
from trustpay.risk import service as risk
from trustpay.trades import refund_store, store
from trustpay.trades.model import (
    Action,
    DisputeStatus,
    Mode,
    Party,
    TradeFee,
    TradeStatus,
    Windows,
    fee_due,
    not_found,
    transition,
    windows,
)
from trustpay.trades.views import shape
from trustpay.wallet import common
from trustpay.wallet import service as wallet
from trustpay.wallet import store as wallet_store
from trustpay.wallet.statement import register_counterparty
from trustpay.wallet.transfers import mask_email

if TYPE_CHECKING:
    from trustpay.platform.context import Platform

PAY_TIMEOUT_JOB = "trade.pay_timeout"
SHIP_TIMEOUT_JOB = "trade.ship_timeout"
CONFIRM_TIMEOUT_JOB = "trade.confirm_timeout"
OUT_TRADE_NO = re.compile(r"[A-Za-z0-9_.:\-]{1,64}")
SUBJECT_MAX = 256
SHIPPING_FIELD_MAX = 64


def job_key(kind: str, trade_id: str) -> str:
    return f"{kind}:{trade_id}"


def default_windows(p: Platform) -> Windows:
    s = p.settings
    return Windows(s.trade_pay_within_minutes, s.trade_ship_within_hours, s.trade_confirm_within_hours)


def fee_plan(p: Platform, conn: Connection, merchant_id: str) -> TradeFee:
    plan = merchants.fee_plan(p, conn, merchant_id)
    return TradeFee(rate=plan.rate, fixed=plan.fixed, minimum=plan.minimum)


# ------------------------------------------------------------------ accounts
def escrow_account(p: Platform, conn: Connection, currency: str) -> str:
    """Where paid escrow trades wait, one account per currency: its balance is the sum
    of what every open escrow trade holds (and goes back to zero when they are done)."""
    return p.book.open_account(conn, currency=currency, kind=AccountKind.ESCROW.value,
                               owner_id=common.PLATFORM_OWNER, name=f"escrow {currency}").id


def merchant_pending_account(p: Platform, conn: Connection, merchant_id: str, currency: str) -> str:
    """The merchant's money from finished trades, waiting for settlement to pay it out."""
    return p.book.open_account(conn, currency=currency, kind=AccountKind.SETTLEMENT_PENDING.value,
                               owner_id=merchant_id, name=f"pending settlement {currency}").id


# ------------------------------------------------------------------ who is asking
def party_of(row: Any, user_id: str) -> Party:
    """The caller's part in the trade; 404 for someone who may not see it.

    Before anyone has paid, whoever holds the id (the checkout link) may see and
    pay it, unless the merchant named the buyer; after, only its merchant and buyer."""
    if user_id == row["merchant_id"]:
        return Party.MERCHANT
    if row["buyer_id"] is None or row["buyer_id"] == user_id:
        return Party.BUYER
    raise not_found(row["id"])


def get_for(conn: Connection, trade_id: str, user_id: str) -> Any:
    row = store.get(conn, trade_id)
    party_of(row, user_id)
    return row


def _check(row: Any, action: Action, party: Party) -> TradeStatus:
    return transition(row["id"], Mode(row["mode"]), TradeStatus(row["status"]), action, party,
                      dispute_status=DisputeStatus(row["dispute_status"]))


def _locked(conn: Connection, trade_id: str, user_id: str, action: Action) -> tuple[Any, TradeStatus]:
    row = store.get(conn, trade_id, for_update=True)
    return row, _check(row, action, party_of(row, user_id))


def advance(conn: Connection, row: Any, action: Action, **values: Any) -> Any:
    if not store.move(conn, row["id"], from_status=row["status"], **values):
        raise Conflict(f"cannot {action.value}: the trade changed meanwhile", code="invalid_state")
    return store.get(conn, row["id"])


# ------------------------------------------------------------------ create
@dataclass(frozen=True, slots=True)
class NewTrade:
    out_trade_no: str
    amount: int
    currency: str
    subject: str
    mode: str = Mode.ESCROW.value
    pay_within_minutes: int | None = None
    ship_within_hours: int | None = None
    confirm_within_hours: int | None = None
    buyer: str | None = None  # a user id: only this buyer may see and pay it


def create(p: Platform, conn: Connection, merchant_id: str, new: NewTrade) -> Any:
    """A new trade awaiting payment; the same out_trade_no with the same body gives
    back the trade made the first time, with another body 409 ``already_exists``."""
    if not OUT_TRADE_NO.fullmatch(new.out_trade_no or ""):
        raise InvalidRequest("out_trade_no must be 1-64 letters, digits or _ . : -", param="out_trade_no")
    amount = check_amount(new.amount, p.settings.max_amount)
    currency = check_currency((new.currency or "").upper())
    subject = (new.subject or "").strip()
    if not subject or len(subject) > SUBJECT_MAX or any(c < " " for c in subject):
        raise InvalidRequest(f"subject must be 1-{SUBJECT_MAX} characters on one line", param="subject")
    try:
        mode = Mode(new.mode)
    except ValueError:
        raise InvalidRequest("mode must be 'escrow' or 'instant'", param="mode") from None
    w = windows(default_windows(p), pay_within_minutes=new.pay_within_minutes,
                ship_within_hours=new.ship_within_hours, confirm_within_hours=new.confirm_within_hours)
    if new.buyer is not None:
        buyer = wallet_store.user_by(conn, user_id=new.buyer)
        if buyer is None or buyer.kind == "ops" or new.buyer == merchant_id:
            raise InvalidRequest("buyer must be the id of another TrustPay user", param="buyer")
    request_hash = _request_hash(new.out_trade_no, amount, currency, subject, mode, w, new.buyer)

    existing = store.by_out_trade_no(conn, merchant_id, new.out_trade_no)
    if existing is None:
        now = p.clock.now()
        trade_id = new_id("trd", now)
        inserted = store.insert_new(conn, {
            "id": trade_id, "merchant_id": merchant_id, "out_trade_no": new.out_trade_no, "buyer_id": new.buyer,
            "mode": mode.value, "status": TradeStatus.WAIT_BUYER_PAY.value, "amount": amount,
            "currency": currency, "subject": subject, "fee": fee_plan(p, conn, merchant_id).fee_for(amount),
            "refunded_amount": 0, "dispute_status": DisputeStatus.NONE.value,
            "pay_within_minutes": w.pay_within_minutes, "ship_within_hours": w.ship_within_hours,
            "confirm_within_hours": w.confirm_within_hours, "pay_by": w.pay_by(now), "request_hash": request_hash,
            "created_at": now, "updated_at": now,
        })
        if inserted:
            jobs.schedule(conn, PAY_TIMEOUT_JOB, w.pay_by(now), {"trade_id": trade_id},
                          job_key(PAY_TIMEOUT_JOB, trade_id), now=now)
            return store.get(conn, trade_id)
        existing = store.by_out_trade_no(conn, merchant_id, new.out_trade_no)  # a racing creator won
    if existing is None or existing["request_hash"] != request_hash:
        raise Conflict(f"out_trade_no {new.out_trade_no} is already used by another trade of yours",
                       code="already_exists", param="out_trade_no")
    return existing


def _request_hash(out_trade_no: str, amount: int, currency: str, subject: str, mode: Mode, w: Windows,
                  buyer: str | None) -> str:
    body = [out_trade_no, amount, currency, subject, mode.value, w.pay_within_minutes, w.ship_within_hours,
            w.confirm_within_hours, buyer]
    return hashlib.sha256(json.dumps(body, ensure_ascii=False).encode()).hexdigest()


# ------------------------------------------------------------------ pay
def authorise_pay(p: Platform, user_id: str, trade_id: str, *, payment_password: str | None,
                  totp_code: str | None, origin: Origin = Origin()) -> bool:
    """Before the money transaction: the trade may be paid by this user now (so no
    password is spent on a closed trade), the payment password (or the 免密 cap),
    then risk control's step-up. Returns whether the buyer stepped up, for :func:`pay`."""
    row = p.db.run(lambda conn: store.get(conn, trade_id), write=False)
    _check(row, Action.PAY, party_of(row, user_id))
    checked = wallet.authorise_payment(p, user_id, row["amount"], payment_password, origin)
    decision = p.db.run(lambda conn: risk.decide(p, conn, user_id, action="payment", amount=row["amount"]),
                        write=False)
    return risk.step_up(p, user_id, decision, totp_code=totp_code, password_checked=checked, origin=origin)


def pay(p: Platform, conn: Connection, trade_id: str, user_id: str, *, stepped_up: bool = False,
        authorised: bool = True) -> Any:
    """Escrow: buyer wallet → escrow, then the merchant must ship by ``ship_by``.
    Instant: buyer wallet → merchant (amount − fee) and fee revenue (fee), at once.

    ``authorised=False``: :func:`authorise_pay` has not run (a 免密 payment tried at
    once): an amount over the 免密 cap, or a risk challenge, is refused here."""
    row, nxt = _locked(conn, trade_id, user_id, Action.PAY)
    amount, currency, fee = row["amount"], row["currency"], row["fee"]
    source = common.before_money_out(p, conn, user_id, currency=currency, amount=amount, action="payment",
                                     stepped_up=stepped_up, password_free_only=not authorised)
    now = p.clock.now()
    if Mode(row["mode"]) is Mode.ESCROW:
        postings: tuple[Posting, ...] = (debit(source, amount, currency),
                                         credit(escrow_account(p, conn, currency), amount, currency))
    else:
        postings = (debit(source, amount, currency), *_to_merchant(p, conn, row, amount, fee))
    entry = p.book.post(conn, EntryDraft(postings, reference=trade_id, memo=row["subject"]))
    ship_by = None
    if nxt is TradeStatus.WAIT_SELLER_SEND_GOODS:
        ship_by = _windows_of(row).ship_by(now)
    updated = advance(conn, row, Action.PAY, status=nxt.value, buyer_id=user_id, paid_at=now, pay_entry_id=entry.id,
                    ship_by=ship_by, updated_at=now)
    jobs.cancel(conn, job_key(PAY_TIMEOUT_JOB, trade_id), now=now)
    if ship_by is not None:
        jobs.schedule(conn, SHIP_TIMEOUT_JOB, ship_by, {"trade_id": trade_id}, job_key(SHIP_TIMEOUT_JOB, trade_id),
                      now=now)
    outbox.emit(conn, "trade.paid", shape(updated), row["merchant_id"], now=now)
    common.tell(p, conn, row["merchant_id"], "A buyer paid",
                f"{_money(row)} was paid for {row['subject']} ({row['out_trade_no']})."
                + (f" Ship it before {ship_by:%Y-%m-%d %H:%M} UTC." if ship_by else ""))
    return updated


def _to_merchant(p: Platform, conn: Connection, row: Any, amount: int, fee: int) -> tuple[Posting, ...]:
    """The credit side of paying the merchant ``amount``: amount − fee to them, fee to us."""
    currency = row["currency"]
    out = [credit(merchant_pending_account(p, conn, row["merchant_id"], currency), amount - fee, currency)]
    if fee:
        out.append(credit(common.fee_revenue_account(p, conn, currency), fee, currency))
    return tuple(o for o in out if o.amount)


# ------------------------------------------------------------------ ship
def ship(p: Platform, conn: Connection, trade_id: str, merchant_id: str, *, carrier: str,
         tracking_no: str) -> Any:
    carrier, tracking_no = _shipping_field("carrier", carrier), _shipping_field("tracking_no", tracking_no)
    row, nxt = _locked(conn, trade_id, merchant_id, Action.SHIP)
    now = p.clock.now()
    confirm_by = _windows_of(row).confirm_by(now)
    updated = advance(conn, row, Action.SHIP, status=nxt.value, carrier=carrier, tracking_no=tracking_no,
                    shipped_at=now, confirm_by=confirm_by, updated_at=now)
    jobs.cancel(conn, job_key(SHIP_TIMEOUT_JOB, trade_id), now=now)
    jobs.schedule(conn, CONFIRM_TIMEOUT_JOB, confirm_by, {"trade_id": trade_id},
                  job_key(CONFIRM_TIMEOUT_JOB, trade_id), now=now)
    outbox.emit(conn, "trade.shipped", shape(updated), row["merchant_id"], now=now)
    common.tell(p, conn, row["buyer_id"], "Your order was shipped",
                f"{row['subject']} was shipped ({carrier} {tracking_no}). Confirm receipt once it arrives; "
                f"unless you confirm or open a dispute, the merchant is paid on {confirm_by:%Y-%m-%d %H:%M} UTC.")
    return updated


def _shipping_field(name: str, value: str) -> str:
    value = (value or "").strip()
    if not value or len(value) > SHIPPING_FIELD_MAX or any(c < " " for c in value):
        raise InvalidRequest(f"{name} must be 1-{SHIPPING_FIELD_MAX} characters on one line", param=name)
    return value


# ------------------------------------------------------------------ confirm
def authorise_confirm(p: Platform, user_id: str, trade_id: str, *, payment_password: str,
                      origin: Origin = Origin()) -> None:
    """Confirming receipt releases the buyer's money: always the payment password."""
    row = p.db.run(lambda conn: store.get(conn, trade_id), write=False)
    _check(row, Action.CONFIRM, party_of(row, user_id))
    identity.require_payment_password(p, user_id, payment_password or "", origin)


def confirm(p: Platform, conn: Connection, trade_id: str, buyer_id: str) -> Any:
    row, nxt = _locked(conn, trade_id, buyer_id, Action.CONFIRM)
    if refund_store.open_request(conn, trade_id) is not None:
        raise Conflict("cannot confirm: you asked for a refund of this trade; withdraw the request first",
                       code="invalid_state")
    return finish(p, conn, row, nxt, Action.CONFIRM)


def finish(p: Platform, conn: Connection, row: Any, nxt: TradeStatus, action: Action) -> Any:
    """Escrow → merchant (what is left − the fee still due) and fee revenue: TRADE_FINISHED."""
    now = p.clock.now()
    currency, held = row["currency"], row["amount"] - row["refunded_amount"]
    fee = fee_due(row["fee"], row["amount"], row["refunded_amount"])
    entry_id = None
    if held:
        entry_id = p.book.post(conn, EntryDraft(
            (debit(escrow_account(p, conn, currency), held, currency), *_to_merchant(p, conn, row, held, fee)),
            reference=row["id"], memo=row["subject"])).id
    updated = advance(conn, row, action, status=nxt.value, release_entry_id=entry_id, finished_at=now, updated_at=now)
    if action is not Action.CONFIRM_TIMEOUT:  # cancelling the running job itself would roll this back
        jobs.cancel(conn, job_key(CONFIRM_TIMEOUT_JOB, row["id"]), now=now)
    outbox.emit(conn, "trade.finished", shape(updated), row["merchant_id"], now=now)
    common.tell(p, conn, row["merchant_id"], "A trade is finished",
                f"{row['subject']} ({row['out_trade_no']}) is finished; {Money.of(held - fee, currency).format('en')} "
                "awaits settlement.")
    return updated


# ------------------------------------------------------------------ close
def close(p: Platform, conn: Connection, trade_id: str, merchant_id: str) -> Any:
    """The merchant calls off an unpaid trade."""
    row, nxt = _locked(conn, trade_id, merchant_id, Action.CLOSE)
    now = p.clock.now()
    updated = advance(conn, row, Action.CLOSE, status=nxt.value, close_reason="merchant_closed", closed_at=now,
                    updated_at=now)
    jobs.cancel(conn, job_key(PAY_TIMEOUT_JOB, trade_id), now=now)
    outbox.emit(conn, "trade.closed", shape(updated), row["merchant_id"], now=now)
    return updated


# ------------------------------------------------------------------ helpers
def _windows_of(row: Any) -> Windows:
    return Windows(row["pay_within_minutes"], row["ship_within_hours"], row["confirm_within_hours"])


def _money(row: Any) -> str:
    return Money.of(row["amount"], row["currency"]).format("en")


# ------------------------------------------------------------------ names
def merchant_name(conn: Connection, merchant_id: str) -> str:
    """What a payer sees as the merchant: its display name, else its account name."""
    profile = merchant_store.profile_row(conn, merchant_id)
    if profile is not None and profile.display_name:
        return str(profile.display_name)
    user = wallet_store.user_by(conn, user_id=merchant_id)
    if user is None:
        return ""
    return str(user.name or mask_email(user.email))


def counterparty(conn: Connection, reference: str, user_id: str) -> str | None:
    """The other side of a trade on a statement line: the merchant for its buyer."""
    row = conn.execute(select(trades.c.merchant_id, trades.c.buyer_id).where(trades.c.id == reference)).first()
    if row is None:
        return None
    if user_id == row.buyer_id:
        return merchant_name(conn, row.merchant_id) or None
    if user_id == row.merchant_id and row.buyer_id is not None:
        buyer = wallet_store.user_by(conn, user_id=row.buyer_id)
        return None if buyer is None else mask_email(buyer.email)
    return None


register_counterparty("trd", counterparty)
