"""Static collection codes (收款码) and donation pages (网上募捐).

Both are a merchant's standing request for money that the payer completes: a
code carries a label and maybe a fixed amount, a donation page a title, a story
and suggested amounts. Paying one makes ONE instant trade for its merchant and
pays it in the same transaction through :func:`trustpay.trades.service.pay`, so
fees, limits, risk control, the ledger entry and the ``trade.paid`` webhook are
exactly those of a checkout; the trade is tied to its code or page by a
``collection_payments`` row holding the payer's note or message.

A page's total raised is never stored: it is summed from those trades (paid,
less what was refunded), so a refund lowers it in the same transaction.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from sqlalchemy import Connection, and_, case, func, select, update

from trustpay.clock import rfc3339
from trustpay.db.schema import collection_codes, collection_payments, donation_pages, trades
from trustpay.errors import Conflict, InvalidRequest, NotFound
from trustpay.identity.audit import Origin
from trustpay.ids import id_prefix, new_id
from trustpay.money import check_amount, check_currency
from trustpay.risk import service as risk
from trustpay.trades import service as trade_service
from trustpay.trades.model import Mode
from trustpay.trades.views import shape
from trustpay.wallet import service as wallet

if TYPE_CHECKING:
    from trustpay.platform.context import Platform

ACTIVE, DISABLED = "active", "disabled"
LABEL_MAX, TITLE_MAX, STORY_MAX, NOTE_MAX = 80, 120, 4000, 200
SUGGESTED_MAX = 6
LIST_MAX = 200


# ------------------------------------------------------------------ checks
def _line(name: str, value: str | None, limit: int) -> str:
    text = (value or "").strip()
    if not text or len(text) > limit or any(c < " " or c == "\x7f" for c in text):
        raise InvalidRequest(f"{name} must be 1-{limit} characters on one line", param=name)
    return text


def _story(value: str | None) -> str:
    text = (value or "").replace("\r\n", "\n").strip()
    if not text or len(text) > STORY_MAX or any((c < " " and c != "\n") or c == "\x7f" for c in text):
        raise InvalidRequest(f"story must be 1-{STORY_MAX} characters of text", param="story")
    return text


def check_note(value: str | None, *, param: str = "note") -> str | None:
    """The payer's note or donation message: user content shown to others, so short,
    one line, no control characters (pages escape it when they show it)."""
    text = (value or "").strip()
    if not text:
        return None
    if len(text) > NOTE_MAX or any(c < " " or c == "\x7f" for c in text):
        raise InvalidRequest(f"{param} must be at most {NOTE_MAX} characters on one line", param=param)
    return text


def not_found(object_id: str) -> NotFound:
    return NotFound(f"no such collection code or donation page: {object_id}", param="id")


# ------------------------------------------------------------------ codes
@dataclass(frozen=True, slots=True)
class NewCode:
    label: str
    currency: str
    amount: Any = None  # a fixed amount in minor units, or None: the payer types it


def create_code(p: Platform, conn: Connection, merchant_id: str, new: NewCode) -> Any:
    label = _line("label", new.label, LABEL_MAX)
    currency = check_currency((new.currency or "").upper())
    fixed = None if new.amount is None else check_amount(new.amount, p.settings.max_amount)
    now = p.clock.now()
    code_id = new_id("qrc", now)
    conn.execute(collection_codes.insert().values(
        id=code_id, merchant_id=merchant_id, label=label, currency=currency, fixed_amount=fixed, status=ACTIVE,
        created_at=now))
    return code(conn, code_id)


def code(conn: Connection, code_id: str, *, merchant_id: str | None = None, for_update: bool = False) -> Any:
    """The code; with ``merchant_id``, only if it is that merchant's (404 otherwise)."""
    q = select(collection_codes).where(collection_codes.c.id == code_id)
    if merchant_id is not None:
        q = q.where(collection_codes.c.merchant_id == merchant_id)
    if for_update:
        q = q.with_for_update()
    row = conn.execute(q).mappings().first()
    if row is None:
        raise not_found(code_id)
    return row


def codes_of(conn: Connection, merchant_id: str) -> list[Any]:
    return list(conn.execute(select(collection_codes).where(collection_codes.c.merchant_id == merchant_id)
                             .order_by(collection_codes.c.id.desc()).limit(LIST_MAX)).mappings())


def disable_code(p: Platform, conn: Connection, code_id: str, merchant_id: str) -> Any:
    """Disabling is final and repeatable: a printed code cannot be taken back, only refused."""
    code(conn, code_id, merchant_id=merchant_id)
    conn.execute(update(collection_codes).where(collection_codes.c.id == code_id,
                                                collection_codes.c.status == ACTIVE)
                 .values(status=DISABLED, disabled_at=p.clock.now()))
    return code(conn, code_id)


def code_shape(row: Any) -> dict[str, Any]:
    return {
        "id": row["id"], "object": "collection_code", "label": row["label"], "currency": row["currency"],
        "amount": row["fixed_amount"], "status": row["status"], "url": f"/pay/{row['id']}",
        "qr_code_url": f"/pay/{row['id']}/qr.svg", "created_at": rfc3339(row["created_at"]),
        "disabled_at": None if row["disabled_at"] is None else rfc3339(row["disabled_at"]),
    }


# ------------------------------------------------------------------ donation pages
@dataclass(frozen=True, slots=True)
class NewDonationPage:
    title: str
    story: str
    currency: str
    goal: Any = None
    suggested_amounts: tuple[Any, ...] = ()
    public: bool = True


def create_page(p: Platform, conn: Connection, merchant_id: str, new: NewDonationPage) -> Any:
    title = _line("title", new.title, TITLE_MAX)
    story = _story(new.story)
    currency = check_currency((new.currency or "").upper())
    goal = None if new.goal is None else check_amount(new.goal, p.settings.max_amount, param="goal")
    if len(new.suggested_amounts) > SUGGESTED_MAX:
        raise InvalidRequest(f"give at most {SUGGESTED_MAX} suggested amounts", param="suggested_amounts")
    suggested = sorted({check_amount(a, p.settings.max_amount, param="suggested_amounts")
                        for a in new.suggested_amounts})
    now = p.clock.now()
    page_id = new_id("don", now)
    conn.execute(donation_pages.insert().values(
        id=page_id, merchant_id=merchant_id, title=title, story=story, currency=currency, goal=goal,
        suggested_amounts=json.dumps(suggested), public=bool(new.public), status=ACTIVE, created_at=now))
    return page(conn, page_id)


def page(conn: Connection, page_id: str, *, merchant_id: str | None = None, for_update: bool = False) -> Any:
    q = select(donation_pages).where(donation_pages.c.id == page_id)
    if merchant_id is not None:
        q = q.where(donation_pages.c.merchant_id == merchant_id)
    if for_update:
        q = q.with_for_update()
    row = conn.execute(q).mappings().first()
    if row is None:
        raise not_found(page_id)
    return row


def pages_of(conn: Connection, merchant_id: str) -> list[Any]:
    return list(conn.execute(select(donation_pages).where(donation_pages.c.merchant_id == merchant_id)
                             .order_by(donation_pages.c.id.desc()).limit(LIST_MAX)).mappings())


def disable_page(p: Platform, conn: Connection, page_id: str, merchant_id: str) -> Any:
    page(conn, page_id, merchant_id=merchant_id)
    conn.execute(update(donation_pages).where(donation_pages.c.id == page_id, donation_pages.c.status == ACTIVE)
                 .values(status=DISABLED, disabled_at=p.clock.now()))
    return page(conn, page_id)


def suggested(row: Any) -> list[int]:
    return [int(a) for a in json.loads(row["suggested_amounts"])]


@dataclass(frozen=True, slots=True)
class Totals:
    raised: int  # paid, less refunds, in minor units
    donations: int  # paid payments not wholly refunded


def totals(conn: Connection, source_id: str) -> Totals:
    """Summed from the trades themselves, so exact after every refund: a trade counts
    once paid, for what it still holds (amount − refunded_amount)."""
    left = trades.c.amount - trades.c.refunded_amount
    row = conn.execute(
        select(func.coalesce(func.sum(left), 0), func.coalesce(func.sum(case((left > 0, 1), else_=0)), 0))
        .select_from(collection_payments.join(trades, trades.c.id == collection_payments.c.trade_id))
        .where(collection_payments.c.source_id == source_id, trades.c.paid_at.is_not(None))).one()
    return Totals(int(row[0]), int(row[1]))


@dataclass(frozen=True, slots=True)
class Message:
    payer_id: str | None  # None when the donor asked to stay anonymous
    amount: int
    note: str | None
    at: Any


def latest_messages(conn: Connection, source_id: str, *, limit: int = 20) -> list[Message]:
    """The newest paid, not wholly refunded donations (with or without a message)."""
    rows = conn.execute(
        select(collection_payments, trades.c.amount, trades.c.refunded_amount)
        .select_from(collection_payments.join(trades, trades.c.id == collection_payments.c.trade_id))
        .where(and_(collection_payments.c.source_id == source_id, trades.c.paid_at.is_not(None),
                    trades.c.amount > trades.c.refunded_amount))
        .order_by(collection_payments.c.created_at.desc(), collection_payments.c.trade_id.desc())
        .limit(limit)).mappings()
    return [Message(None if r["anonymous"] else r["payer_id"], r["amount"] - r["refunded_amount"], r["note"],
                    r["created_at"]) for r in rows]


def page_shape(conn: Connection, row: Any) -> dict[str, Any]:
    t = totals(conn, row["id"])
    return {
        "id": row["id"], "object": "donation_page", "title": row["title"], "story": row["story"],
        "currency": row["currency"], "goal": row["goal"], "suggested_amounts": suggested(row),
        "public": bool(row["public"]), "status": row["status"], "url": f"/donate/{row['id']}",
        "qr_code_url": f"/donate/{row['id']}/qr.svg", "raised": t.raised, "donations": t.donations,
        "created_at": rfc3339(row["created_at"]),
        "disabled_at": None if row["disabled_at"] is None else rfc3339(row["disabled_at"]),
    }


# ------------------------------------------------------------------ paying
@dataclass(frozen=True, slots=True)
class Payable:
    """What a code or page asks for, as the payer is about to pay it."""

    source_id: str
    merchant_id: str
    subject: str
    currency: str
    amount: int


def payable(p: Platform, conn: Connection, source_id: str, payer_id: str, amount: Any, *,
            for_update: bool = False) -> Payable:
    """The code or page, checked for this payer and amount: 404 unknown, 409 disabled,
    400 a bad amount (or not the code's fixed amount), 400 paying oneself. Paying reads
    it ``for_update``, so a payment and a disable racing end one after the other."""
    prefix = id_prefix(source_id or "")
    if prefix == "qrc":
        row = code(conn, source_id, for_update=for_update)
        subject, fixed = row["label"], row["fixed_amount"]
    elif prefix == "don":
        row = page(conn, source_id, for_update=for_update)
        subject, fixed = row["title"], None
    else:
        raise not_found(source_id)
    if row["status"] != ACTIVE:
        raise Conflict("this collection code or donation page is disabled by its merchant; it takes no payments",
                       code="invalid_state")
    if fixed is not None:
        if amount is None:
            amount = fixed
        elif amount != fixed:
            raise InvalidRequest(f"this code collects exactly {fixed} minor units", param="amount")
    amount = check_amount(amount, p.settings.max_amount)
    if payer_id == row["merchant_id"]:
        raise InvalidRequest("you cannot pay your own collection code or donation page", param="id")
    return Payable(source_id, row["merchant_id"], subject, row["currency"], amount)


def authorise(p: Platform, payer_id: str, source_id: str, amount: Any, *, payment_password: str | None,
              totp_code: str | None, note: str | None = None, origin: Origin = Origin()) -> bool:
    """Before the money transaction, as for a checkout: the code takes this payment and
    note (so no password is spent on a refusal), then the payment password (or the 免密
    cap) and risk control's step-up."""
    check_note(note)
    what = p.db.run(lambda conn: payable(p, conn, source_id, payer_id, amount), write=False)
    checked = wallet.authorise_payment(p, payer_id, what.amount, payment_password, origin)
    decision = p.db.run(lambda conn: risk.decide(p, conn, payer_id, action="payment", amount=what.amount),
                        write=False)
    return risk.step_up(p, payer_id, decision, totp_code=totp_code, password_checked=checked, origin=origin)


def pay(p: Platform, conn: Connection, source_id: str, payer_id: str, amount: Any, *, note: str | None = None,
        anonymous: bool = False, stepped_up: bool = False) -> dict[str, Any]:
    """One instant trade for the code's merchant, created and paid here, in the caller's
    transaction; a disabled code or a short balance leaves nothing behind."""
    note = check_note(note)
    what = payable(p, conn, source_id, payer_id, amount, for_update=True)
    now = p.clock.now()
    out_trade_no = f"{source_id}.{new_id('trd', now)[4:]}"  # unique per merchant by construction
    created = trade_service.create(p, conn, what.merchant_id, trade_service.NewTrade(
        out_trade_no=out_trade_no, amount=what.amount, currency=what.currency, subject=what.subject,
        mode=Mode.INSTANT.value, buyer=payer_id))
    conn.execute(collection_payments.insert().values(
        trade_id=created["id"], source_id=source_id, payer_id=payer_id, note=note, anonymous=anonymous,
        created_at=now))
    paid = trade_service.pay(p, conn, created["id"], payer_id, stepped_up=stepped_up)
    return payment_shape(source_id, note, anonymous, paid)


def payments_of(conn: Connection, trade_ids: Sequence[str]) -> dict[str, Any]:
    """The collection payment behind each of ``trade_ids`` that came from a code or page
    (the source and the payer's note), by trade id; trades made through the API have none."""
    if not trade_ids:
        return {}
    rows = conn.execute(select(collection_payments)
                        .where(collection_payments.c.trade_id.in_(list(trade_ids)))).mappings()
    return {r["trade_id"]: r for r in rows}


def payment_shape(source_id: str, note: str | None, anonymous: bool, trade: Any) -> dict[str, Any]:
    return {"object": "collection_payment", "source": source_id, "note": note, "anonymous": anonymous,
            "trade": shape(trade)}
