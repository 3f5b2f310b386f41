"""Pure risk rules: facts about one money-out action in, a decision with reasons out.

Rules for now (issue 4): velocity — how many and how much left the wallet in
the last hour — and a first payment to a new recipient above a threshold. KYC
tier limits are enforced by :func:`trustpay.identity.limits.enforce_limits`,
which names the limit (402 ``limit_exceeded``); they are not repeated here.

A *challenge* asks for a step-up (a fresh TOTP code when two-factor is on,
else the payment password) and is then allowed; *deny* is final (402
``risk_declined``) — velocity far past the challenge line looks like a stolen
account draining itself, and no second factor the thief may hold should open it.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class Verdict(StrEnum):
    ALLOW = "allow"
    CHALLENGE = "challenge"
    DENY = "deny"


@dataclass(frozen=True, slots=True)
class Decision:
    verdict: Verdict
    reasons: tuple[str, ...] = ()

    @property
    def allowed(self) -> bool:
        return self.verdict is Verdict.ALLOW


ALLOW = Decision(Verdict.ALLOW)


@dataclass(frozen=True, slots=True)
class Facts:
    action: str  # transfer | withdrawal | payment
    amount: int
    count_last_hour: int  # money-out actions in the hour before this one
    amount_last_hour: int
    new_recipient: bool = False


@dataclass(frozen=True, slots=True)
class Rules:
    velocity_count: int  # more actions than this in an hour → challenge
    velocity_amount: int  # more than this out in an hour → challenge
    new_recipient_amount: int  # a first payment to someone above this → challenge
    deny_factor: int = 3  # this many times a velocity line → deny


def evaluate(facts: Facts, rules: Rules) -> Decision:
    count = facts.count_last_hour + 1
    total = facts.amount_last_hour + facts.amount
    deny: list[str] = []
    challenge: list[str] = []
    if count > rules.velocity_count * rules.deny_factor:
        deny.append("velocity_count")
    elif count > rules.velocity_count:
        challenge.append("velocity_count")
    if total > rules.velocity_amount * rules.deny_factor:
        deny.append("velocity_amount")
    elif total > rules.velocity_amount:
        challenge.append("velocity_amount")
    if facts.new_recipient and facts.amount > rules.new_recipient_amount:
        challenge.append("new_recipient")
    if deny:
        return Decision(Verdict.DENY, tuple(deny + challenge))
    if challenge:
        return Decision(Verdict.CHALLENGE, tuple(challenge))
    return ALLOW
