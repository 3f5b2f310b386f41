"""The risk rules alone: velocity (count, amount) and a new recipient."""

from __future__ import annotations

import pytest

from trustpay.risk.model import Facts, Rules, Verdict, evaluate

RULES = Rules(velocity_count=5, velocity_amount=10_000, new_recipient_amount=2_000)


def facts(amount: int = 100, count: int = 0, total: int = 0, new: bool = False) -> Facts:
    return Facts("transfer", amount, count, total, new)


@pytest.mark.parametrize(("f", "verdict", "reasons"), [
    (facts(), Verdict.ALLOW, ()),
    (facts(count=4), Verdict.ALLOW, ()),  # the 5th in the hour is still fine
    (facts(count=5), Verdict.CHALLENGE, ("velocity_count",)),
    (facts(count=14), Verdict.CHALLENGE, ("velocity_count",)),
    (facts(count=15), Verdict.DENY, ("velocity_count",)),
    (facts(amount=10_000), Verdict.ALLOW, ()),
    (facts(amount=1, total=10_000), Verdict.CHALLENGE, ("velocity_amount",)),
    (facts(amount=1, total=30_000), Verdict.DENY, ("velocity_amount",)),
    (facts(amount=2_000, new=True), Verdict.ALLOW, ()),
    (facts(amount=2_001, new=True), Verdict.CHALLENGE, ("new_recipient",)),
    (facts(amount=2_001, new=False), Verdict.ALLOW, ()),
    (facts(amount=2_001, count=20, new=True), Verdict.DENY, ("velocity_count", "new_recipient")),
])
def test_rules(f: Facts, verdict: Verdict, reasons: tuple[str, ...]) -> None:
    d = evaluate(f, RULES)
    assert (d.verdict, d.reasons) == (verdict, reasons)
    assert d.allowed is (verdict is Verdict.ALLOW)
