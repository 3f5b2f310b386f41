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

from sqlalchemy import Connection, func, select

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


def rules_of(p: Platform) -> Rules:
    s = p.settings
    return Rules(velocity_count=s.risk_velocity_count, velocity_amount=s.risk_velocity_amount,
                 new_recipient_amount=s.risk_new_recipient_amount)


def decide(p: Platform, conn: Connection, user_id: str, *, action: str, amount: int,
           recipient_id: str | None = None) -> Decision:
    if p.settings.risk_rules == "off":
        return ALLOW
    since = p.clock.now() - HOUR
    t_count, t_sum = conn.execute(
        select(func.count(), func.coalesce(func.sum(transfers.c.amount), 0)).where(
            transfers.c.sender_id == user_id, transfers.c.created_at > since, transfers.c.status.not_in(_UNDONE))
    ).one()
    w_count, w_sum = conn.execute(
        select(func.count(), func.coalesce(func.sum(withdrawals.c.amount + withdrawals.c.fee), 0)).where(
            withdrawals.c.user_id == user_id, withdrawals.c.created_at > since, withdrawals.c.status != "failed")
    ).one()
    # Trade payments leave the wallet too (a refund later does not undo the attempt).
    p_count, p_sum = conn.execute(
        select(func.count(), func.coalesce(func.sum(trades.c.amount), 0)).where(
            trades.c.buyer_id == user_id, trades.c.paid_at > since)
    ).one()
    new_recipient = False
    if recipient_id is not None:
        new_recipient = conn.execute(
            select(transfers.c.id).where(transfers.c.sender_id == user_id, transfers.c.recipient_id == recipient_id,
                                         transfers.c.status == "completed").limit(1)
        ).first() is None
    return evaluate(Facts(action, amount, int(t_count) + int(w_count) + int(p_count),
                          int(t_sum) + int(w_sum) + int(p_sum), new_recipient),
                    rules_of(p))


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
