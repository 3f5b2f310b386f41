"""Reconciliation's pure rules: how one statement line compares with our record.

No I/O here: :mod:`trustpay.banks.reconcile` loads the rows and acts on the verdicts.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

from trustpay.banks.connector import OperationKind, OperationStatus, StatementLine


class ExceptionKind(StrEnum):
    MISSING_OURS = "missing_ours"  # the bank moved money under a reference we do not know
    MISSING_BANK = "missing_bank"  # we say it happened (or it is stuck pending); the statement does not
    AMOUNT_DIFFERS = "amount_differs"  # same reference, another amount or currency
    DUPLICATE = "duplicate"  # a second line for a reference already on the statement
    STATUS_DIFFERS = "status_differs"  # both final, but one says succeeded and the other failed
    LEDGER_DIFFERS = "ledger_differs"  # the record agrees with the bank, the ledger does not


class Verdict(StrEnum):
    OK = "ok"  # matched, both final and equal
    SETTLE = "settle"  # the bank completed what we still have pending: apply its outcome now
    EXCEPTION = "exception"


@dataclass(frozen=True, slots=True)
class Ours:
    """A top-up or withdrawal as the platform recorded it."""

    id: str
    kind: OperationKind  # top-up = debit of the card, withdrawal = payout to it
    bank: str
    user_id: str
    status: OperationStatus
    amount: int
    currency: str
    created_at: datetime
    completed_at: datetime | None

    def clearing_delta(self, status: OperationStatus | None = None) -> int:
        """What the operation did to bank clearing once ``status`` (default: ours) applied:
        a top-up debits clearing (the bank owes us), a payout credits it (we owe the bank)."""
        if (status or self.status) is not OperationStatus.SUCCEEDED:
            return 0
        return -self.amount if self.kind is OperationKind.DEBIT else self.amount


def judge(line: StatementLine, ours: Ours | None, bank: str) -> tuple[Verdict, ExceptionKind | None]:
    if ours is None or ours.bank != bank or ours.kind is not line.kind:
        return Verdict.EXCEPTION, ExceptionKind.MISSING_OURS
    if ours.amount != line.amount or ours.currency != line.currency:
        return Verdict.EXCEPTION, ExceptionKind.AMOUNT_DIFFERS
    if ours.status is OperationStatus.PENDING:
        return (Verdict.SETTLE, None) if line.status.is_final else (Verdict.OK, None)
    if ours.status is not line.status:
        return Verdict.EXCEPTION, ExceptionKind.STATUS_DIFFERS
    return Verdict.OK, None


def split_duplicates(lines: Iterable[StatementLine]) -> list[tuple[StatementLine, int]]:
    """Each line with its occurrence number for its reference (0 = first). The first
    is matched; later ones are duplicates. The number keeps the finding stable when
    the same statement is reconciled again."""
    seen: dict[str, int] = {}
    out: list[tuple[StatementLine, int]] = []
    for line in lines:
        n = seen.get(line.reference, 0)
        seen[line.reference] = n + 1
        out.append((line, n))
    return out
