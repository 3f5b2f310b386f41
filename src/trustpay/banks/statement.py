"""The bank's daily statement file: CSV, UTF-8, one header line, then one line
per operation completed on the business date, ordered by completion time."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable
from datetime import date, datetime

from trustpay.banks.connector import OperationKind, OperationStatus, StatementLine
from trustpay.clock import rfc3339, to_utc
from trustpay.errors import InvalidRequest

COLUMNS = ("business_date", "bank_ref", "reference", "kind", "amount", "currency", "status", "completed_at")


class MalformedStatement(InvalidRequest):
    code = "malformed_statement"


def to_csv(lines: Iterable[StatementLine]) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(COLUMNS)
    for line in lines:
        writer.writerow(
            (
                line.business_date.isoformat(),
                line.bank_ref,
                line.reference,
                line.kind.value,
                str(line.amount),
                line.currency,
                line.status.value,
                rfc3339(line.completed_at),
            )
        )
    return out.getvalue()


def parse_csv(text: str) -> list[StatementLine]:
    """Parse a statement; raise :class:`MalformedStatement` naming the first bad line."""
    rows = csv.reader(io.StringIO(text))
    header = next(rows, None)
    if header is None or tuple(header) != COLUMNS:
        raise MalformedStatement("The statement header is not the expected one.")
    lines: list[StatementLine] = []
    for number, row in enumerate(rows, start=2):
        if not row:
            continue
        try:
            bd, bank_ref, reference, kind, amount, currency, status, completed_at = row
            if not amount.isdigit():
                raise ValueError("amount is not a whole number of minor units")
            lines.append(
                StatementLine(
                    business_date=date.fromisoformat(bd),
                    bank_ref=bank_ref,
                    reference=reference,
                    kind=OperationKind(kind),
                    amount=int(amount),
                    currency=currency,
                    status=OperationStatus(status),
                    completed_at=to_utc(datetime.fromisoformat(completed_at.replace("Z", "+00:00"))),
                )
            )
        except ValueError as exc:
            raise MalformedStatement(f"Statement line {number} is malformed: {exc}") from None
    return lines
