"""``decide`` gathers the facts from the database and applies :mod:`.model`'s rules;
``step_up`` and ``enforce`` turn the decision into a second factor or a refusal.

How a money-out route uses it (the step-up must commit even when refused, as a
wrong TOTP code counts toward the login lock, so it runs in its own transaction
before the money moves; the money transaction then decides again, because the
facts may have changed in between):

    decision = p.db.run(lambda c: risk.decide(p, c, user_id, action=..., amount=..., recipient_id=...))
    stepped_up = risk.step_up(p, user_id, decision, totp_code=..., password_checked=..., origin=...)
    ... in the money transaction:
    risk.enforce(risk.decide(p, conn, ...), stepped_up=stepped_up)
"""

from __future__ import annotations

from datetime import timedelta
from typing import TYPE_CHECKING

from sqlalchemy import Connection, bindparam, exists, func, select, union_all

from trustpay.db import prepared
from trustpay.db.schema import trades, transfers, withdrawals
from trustpay.errors import AuthenticationFailed, PaymentFailed
from trustpay.identity import mfa
from trustpay.identity import service as identity
from trustpay.identity import store as identity_store
from trustpay.identity.audit import Origin
from trustpay.risk.model import ALLOW, Decision, Facts, Rules, Verdict, evaluate

if TYPE_CHECKING:
    from trustpay.platform.context import Platform

HOUR = timedelta(hours=1)
# Transfers that did not in the end move money do not count toward velocity.
_UNDONE = ("reversed", "returned")


# The last hour of a user's money out, each source through a (user, time)
# index, summed in one statement: it runs inside every payment's transaction,
# where each round trip to the database counts (built once: db/prepared.py).
_t, _w, _tr = transfers.c, withdrawals.c, trades.c
_SINCE = bindparam("since", type_=_t.created_at.type)
_USER = bindparam("user", type_=_t.sender_id.type)
_LAST_HOUR = union_all(
    select(func.count().label("n"), func.coalesce(func.sum(_t.amount), 0).label("total"))
    .where(_t.sender_id == _USER, _t.created_at > _SINCE, *(_t.status != s for s in _UNDONE)),
    select(func.count(), func.coalesce(func.sum(_w.amount + _w.fee), 0))
    .where(_w.user_id == _USER, _w.created_at > _SINCE, _w.status != "failed"),
    # Trade payments leave the wallet too (a refund later does not undo the attempt).
    select(func.count(), func.coalesce(func.sum(_tr.amount), 0)).where(_tr.buyer_id == _USER, _tr.paid_at > _SINCE),
).subquery("last_hour")
# And, in the same statement, whether a transfer from the user to this recipient
# ever completed (no recipient: NULL matches no row, so false).
_RECIPIENT = bindparam("recipient", type_=_t.recipient_id.type)
_PAID_BEFORE = exists().where(_t.sender_id == _USER, _t.recipient_id == _RECIPIENT, _t.status == "completed")
_VELOCITY = select(func.sum(_LAST_HOUR.c.n).label("n"), func.sum(_LAST_HOUR.c.total).label("total"),
                   _PAID_BEFORE.label("paid_before"))


def rules_of(p: Platform) -> Rules:
    s = p.settings
    return Rules(velocity_count=s.risk_velocity_count, velocity_amount=s.risk_velocity_amount,
                 new_recipient_amount=s.risk_new_recipient_amount)


def decide(p: Platform, conn: Connection, user_id: str, *, action: str, amount: int,
           recipient_id: str | None = None) -> Decision:
    if p.settings.risk_rules == "off":
        return ALLOW
    hour = prepared.one(conn, _VELOCITY, {"user": user_id, "since": p.clock.now() - HOUR,
                                          "recipient": recipient_id})
    new_recipient = recipient_id is not None and not hour.paid_before
    return evaluate(Facts(action, amount, int(hour.n), int(hour.total), new_recipient), rules_of(p))


def step_up(p: Platform, user_id: str, decision: Decision, *, totp_code: str | None, password_checked: bool,
            origin: Origin = Origin()) -> bool:
    """For a challenge: a fresh TOTP code when two-factor is on, else the payment
    password having been checked in this request. Returns whether it stepped up."""
    if decision.verdict is not Verdict.CHALLENGE:
        return False
    user = p.db.run(lambda conn: identity_store.get_user(conn, user_id), write=False)
    if user.mfa_enabled:
        identity.run_keeping_refusal(p, lambda conn: mfa.require_fresh_totp(p, conn, user, totp_code, origin))
        return True
    if not password_checked:
        raise PaymentFailed("this payment needs your payment password (" + ", ".join(decision.reasons) + ")",
                            code="payment_password_invalid", param="payment_password")
    return True


def enforce(decision: Decision, *, stepped_up: bool) -> None:
    if decision.verdict is Verdict.DENY:
        raise PaymentFailed("this payment was declined by risk control (" + ", ".join(decision.reasons)
                            + "); try again later or contact support", code="risk_declined")
    if decision.verdict is Verdict.CHALLENGE and not stepped_up:
        raise AuthenticationFailed("this payment needs a fresh two-factor code (" + ", ".join(decision.reasons)
                                   + ")", code="mfa_required")
