"""Per-tier money limits: one function the wallet and trades call.

:func:`enforce_limits` runs inside the money-moving transaction, before the
ledger posts, and raises 402 ``limit_exceeded`` naming the limit in ``param``
(``single_payment``, ``daily_outflow`` or ``balance``). The figures live in
settings (``tier_limit_table``, minor units, the same figures in every
currency); ``TRUSTPAY_TIER_LIMITS=off`` turns them off.

It only reads the ledger tables. The daily outflow is what left the user's
wallet today (posted debits of entries stamped today) plus what is reserved
to leave it (holds still pending that were created today); "today" is the
platform clock's day in ``limits_timezone``.

Reading today's outflow costs the same however long a wallet's history is:
the debits are read from the journal position where today can begin (see
``_FLOOR``), not from the wallet's first posting. Before, every
payment's check summed the wallet's whole history, inside the payment's
write transaction.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from typing import TYPE_CHECKING, Protocol
from zoneinfo import ZoneInfo

from sqlalchemy import Connection, bindparam, case, func, select

from trustpay.clock import to_utc
from trustpay.db import prepared
from trustpay.db.schema import ledger_accounts, ledger_entries, ledger_holds, ledger_postings, outflow_marks
from trustpay.errors import PaymentFailed
from trustpay.identity import store
from trustpay.identity.kyc import TIER_CONTACT_VERIFIED, TIER_UNVERIFIED
from trustpay.identity.model import tier_of
from trustpay.money import exponent

if TYPE_CHECKING:
    from trustpay.identity.model import User
    from trustpay.platform.context import Platform
    from trustpay.settings import Settings

WALLET = "wallet"

# How far back the platform clock may step between two ledger entries (an NTP
# correction is milliseconds; UTC has no daylight-saving jumps). The journal is
# appended in time order up to this, which is what lets the daily outflow start
# its read near today instead of at the beginning (see _FLOOR).
CLOCK_STEP_BACK = timedelta(hours=1)


@dataclass(frozen=True)
class TierLimits:
    """Minor units of whatever currency is moving."""

    balance: int
    single_payment: int
    daily_outflow: int


def limits_for(settings: Settings, tier: int) -> TierLimits:
    row = settings.tier_limit_table[tier]
    return TierLimits(balance=row.balance, single_payment=row.single, daily_outflow=row.daily)


def day_bounds(now: datetime, zone: str) -> tuple[datetime, datetime]:
    """[start, end) of the local calendar day containing ``now``, in UTC (DST-safe)."""
    tz = ZoneInfo(zone)
    local = to_utc(now).astimezone(tz)
    start = datetime(local.year, local.month, local.day, tzinfo=tz)
    end = (start + timedelta(days=1)).replace(tzinfo=tz)  # wall-clock midnight, whatever the offset
    return start.astimezone(ZoneInfo("UTC")), end.astimezone(ZoneInfo("UTC"))


def format_amount(amount: int, currency: str) -> str:
    exp = exponent(currency)
    return f"{currency} {Decimal(amount).scaleb(-exp):,.{exp}f}"


def how_to_raise(tier: int) -> str:
    if tier == TIER_UNVERIFIED:
        return "verify your e-mail address or phone number to raise it"
    if tier == TIER_CONTACT_VERIFIED:
        return "verify your identity (legal name and ID number) in the security centre to raise it"
    return "this is the highest tier; wait until tomorrow or contact support"


def check_limits(limits: TierLimits, tier: int, currency: str, *, outflow: int, inflow: int,
                 spent_today: int, balance: int) -> None:
    """The rule itself, with the ledger figures already read: raises the first limit broken."""
    def refuse(param: str, what: str, limit: int) -> PaymentFailed:
        return PaymentFailed(f"{what}: the limit at tier {tier} is {format_amount(limit, currency)}; "
                             f"{how_to_raise(tier)}", code="limit_exceeded", param=param)

    if outflow > 0:
        if outflow > limits.single_payment:
            raise refuse("single_payment", f"{format_amount(outflow, currency)} is above your "
                         "single-payment limit", limits.single_payment)
        if spent_today + outflow > limits.daily_outflow:
            raise refuse("daily_outflow", f"this would take today's outflow to "
                         f"{format_amount(spent_today + outflow, currency)}, above your daily limit",
                         limits.daily_outflow)
    if inflow > 0 and balance + inflow > limits.balance:
        raise refuse("balance", f"this would take your balance to {format_amount(balance + inflow, currency)}, "
                     "above your balance limit", limits.balance)


# ------------------------------------------------------------ ledger reads
# Built once: these run inside every payment's write transaction, where
# building a statement per call cost more than running it (db/prepared.py).
_a, _e, _p, _h = ledger_accounts.c, ledger_entries.c, ledger_postings.c, ledger_holds.c
_WALLET = (_a.owner_id == bindparam("user"), _a.kind == WALLET, _a.currency == bindparam("currency"))
_WALLET_TOTAL = select(func.coalesce(func.sum(_a.balance + _a.pending_in), 0)).where(*_WALLET)

# Today's outflow in one statement (one round trip, inside the payment's
# transaction): the wallet's posted debits, plus its pending holds, both within
# [start, end). The debits are the wallet's mark for this day (see
# outflow_marks in db/schema.py) plus its postings after the mark; with no
# mark, its postings from the journal floor on.
_TS = _e.created_at.type
_START, _END = bindparam("start", type_=_TS), bindparam("end", type_=_TS)
_floor_entry = ledger_entries.alias("floor_entry")
# The journal floor (see CLOCK_STEP_BACK): the entry stamped last before
# start - CLOCK_STEP_BACK (one probe of the entries' time index), 0 if none.
# Every entry stamped at or after start was appended after it, unless the clock
# stepped back further than that between the two appends.
_FLOOR = func.coalesce(
    select(_floor_entry.c.seq).where(_floor_entry.c.created_at < bindparam("before", type_=_TS))
    .order_by(_floor_entry.c.created_at.desc()).limit(1).scalar_subquery(), 0)
# (owner, kind, currency) is unique: a user has at most one wallet per currency.
_WALLET_ID_OF = select(_a.id).where(*_WALLET)
_ACCOUNT = bindparam("account", type_=_a.id.type)
_MARKED = (outflow_marks.c.account_id == _ACCOUNT, outflow_marks.c.day_start == _START,
           outflow_marks.c.day_end == _END)
_MARK_SEQ = select(outflow_marks.c.upto_seq).where(*_MARKED).scalar_subquery()
_MARK_SUM = select(outflow_marks.c.posted_out).where(*_MARKED).scalar_subquery()
_IN_DAY = (_p.delta < 0) & (_p.currency == bindparam("currency")) & (_e.created_at >= _START) & (_e.created_at < _END)
_HELD_OUT = (
    select(func.coalesce(func.sum(_h.amount), 0))
    .where(_h.debit_account_id == _ACCOUNT, _h.status == "pending", _h.currency == bindparam("currency"),
           _h.created_at >= _START, _h.created_at < _END)
    .scalar_subquery()
)
# One pass over the wallet's balance postings after the mark (or the floor):
# their debits in the day, the last journal position read and how many were
# read, beside the mark's sum and the pending holds.
_OUTFLOW = (
    select(func.coalesce(func.sum(case((_IN_DAY, -_p.delta), else_=0)), 0).label("debits"),
           func.max(_p.entry_seq).label("upto"), func.count().label("read"),
           func.coalesce(_MARK_SUM, 0).label("marked"), _HELD_OUT.label("held"))
    .select_from(ledger_postings.join(ledger_entries, _e.seq == _p.entry_seq))
    .where(_p.account_id == _ACCOUNT, _p.field == "balance",
           _p.entry_seq > func.coalesce(_MARK_SEQ, _FLOOR))
)
# Past this many postings read after its mark, a check in a write transaction
# moves the wallet's mark up (one statement): reads stay short, and a wallet
# paying all day writes its mark once every this many payments.
MARK_EVERY = 32


# The day's row replaces another day's; any later mark replaces an earlier one.
_MARK = {dialect: prepared.upsert(dialect, outflow_marks, ("account_id",),
                                  ("day_start", "day_end", "upto_seq", "posted_out"))
         for dialect in ("sqlite", "postgresql")}


def wallet_total(conn: Connection, user_id: str, currency: str) -> int:
    """Posted balance (available + held) plus money on its way in (pending credits)."""
    return int(prepared.one(conn, _WALLET_TOTAL, {"user": user_id, "currency": currency})[0])


class _Totals(Protocol):
    """A wallet's totals as this transaction read them: a ledger ``Account``, or
    the wallet read with its owner (``wallet.store.WalletTotals``)."""

    @property
    def balance(self) -> int: ...
    @property
    def pending_in(self) -> int: ...


def account_total(account: _Totals) -> int:
    """:func:`wallet_total` of a wallet account already read in this transaction
    (a user has one wallet per currency)."""
    return account.balance + account.pending_in


def outflow_between(conn: Connection, account_id: str | None, currency: str, start: datetime, end: datetime,
                    *, remember: bool = False) -> int:
    """Debits posted to a wallet's balance by entries stamped in [start, end),
    plus holds on it still pending that were created in [start, end).

    A hold that is later posted stops counting as pending and counts as the
    posting's debit instead, so nothing is counted twice. The debits are read
    through the postings' (account_id, entry_seq) index from the wallet's mark
    for [start, end) on, or, with none, from the journal floor: at most an hour
    or so before ``start``. ``remember`` (a write transaction only): move the
    mark up when many postings were read after it.
    """
    if account_id is None:  # no wallet in this currency: nothing has left it
        return 0
    start, end = to_utc(start), to_utc(end)
    found = prepared.one(conn, _OUTFLOW, {"account": account_id, "currency": currency, "start": start,
                                          "end": end, "before": start - CLOCK_STEP_BACK})
    posted = int(found.marked) + int(found.debits)
    if remember and found.read >= MARK_EVERY:
        prepared.run(conn, _MARK[conn.dialect.name], {"account_id": account_id, "day_start": start,
                                                     "day_end": end, "upto_seq": found.upto, "posted_out": posted})
    return posted + int(found.held)


def daily_outflow(p: Platform, conn: Connection, user_id: str, currency: str, *,
                  wallet_id: str | None = None, remember: bool = False) -> int:
    """Today's :func:`outflow_between` for the user's wallet in ``currency``
    (``wallet_id`` if the caller has read it already)."""
    start, end = day_bounds(p.clock.now(), p.settings.limits_timezone)
    account = wallet_id if wallet_id is not None else wallet_of(conn, user_id, currency)
    return outflow_between(conn, account, currency, start, end, remember=remember)


def wallet_of(conn: Connection, user_id: str, currency: str) -> str | None:
    found = prepared.row(conn, _WALLET_ID_OF, {"user": user_id, "currency": currency})
    return None if found is None else str(found.id)


# --------------------------------------------------------------- the hook
def applies(p: Platform, *, outflow: int = 0, inflow: int = 0) -> bool:
    """Whether :func:`enforce_limits` has anything to check (and so anything to read)."""
    return p.settings.tier_limits != "off" and (outflow > 0 or inflow > 0)


def enforce_limits(p: Platform, conn: Connection, user_id: str, *, currency: str, outflow: int = 0,
                   inflow: int = 0, user: User | None = None, spent_today: int | None = None,
                   balance: int | None = None) -> None:
    """Call inside the money-moving transaction, before the ledger posts.

    ``outflow``: the amount about to leave the user's wallet in this action
    (single-payment and daily-outflow limits); ``inflow``: the amount about
    to arrive (balance limit). Raises :class:`PaymentFailed` ``limit_exceeded``.

    ``user``, ``spent_today`` and ``balance`` (:func:`wallet_total`) are what the
    caller already read in this same transaction; whatever is not given is read.
    """
    if not applies(p, outflow=outflow, inflow=inflow):
        return
    tier = tier_of(user if user is not None else store.get_user(conn, user_id))
    limits = limits_for(p.settings, tier)
    if outflow <= 0:
        spent_today = 0
    elif spent_today is None:
        spent_today = daily_outflow(p, conn, user_id, currency)
    if inflow <= 0:
        balance = 0
    elif balance is None:
        balance = wallet_total(conn, user_id, currency)
    check_limits(limits, tier, currency, outflow=outflow, inflow=inflow, spent_today=spent_today,
                 balance=balance)


def user_limits(p: Platform, conn: Connection, user_id: str, currency: str) -> tuple[int, TierLimits, int]:
    """(tier, its limits, today's outflow so far): what the security centre shows."""
    tier = tier_of(store.get_user(conn, user_id))
    return tier, limits_for(p.settings, tier), daily_outflow(p, conn, user_id, currency)
