"""The bank's daily statement CSV: round trip and refusals."""

from __future__ import annotations

from datetime import UTC, date, datetime

import pytest

from trustpay.banks.connector import OperationKind, OperationStatus, StatementLine
from trustpay.banks.statement import COLUMNS, MalformedStatement, parse_csv, to_csv

DAY = date(2026, 3, 1)


def line(ref: str, amount: int, kind: OperationKind = OperationKind.DEBIT,
         status: OperationStatus = OperationStatus.SUCCEEDED, micros: int = 0) -> StatementLine:
    return StatementLine(DAY, f"bop_{ref}", ref, kind, amount, "CNY", status,
                         datetime(2026, 3, 1, 8, 30, 5, micros, tzinfo=UTC))


def test_round_trip_keeps_every_field() -> None:
    lines = [line("top_1", 12_345), line("wd_2", 1, OperationKind.PAYOUT, micros=123456),
             line("top_3", 10_000_000_000, status=OperationStatus.FAILED)]
    text = to_csv(lines)
    assert text.splitlines()[0] == ",".join(COLUMNS)
    assert text.splitlines()[1] == "2026-03-01,bop_top_1,top_1,debit,12345,CNY,succeeded,2026-03-01T08:30:05Z"
    assert parse_csv(text) == lines


def test_empty_day_is_just_the_header() -> None:
    assert to_csv([]) == ",".join(COLUMNS) + "\n"
    assert parse_csv(to_csv([])) == []


def test_a_comma_in_a_reference_survives_quoting() -> None:
    odd = line("ref,with,commas", 5)
    assert parse_csv(to_csv([odd])) == [odd]


@pytest.mark.parametrize(
    ("text", "why"),
    [
        ("", "header"),
        ("date,ref\n", "header"),
        (",".join(COLUMNS) + "\n2026-03-01,b,r,debit,12.50,CNY,succeeded,2026-03-01T08:30:05Z\n", "line 2"),
        (",".join(COLUMNS) + "\n2026-03-01,b,r,debit,-5,CNY,succeeded,2026-03-01T08:30:05Z\n", "line 2"),
        (",".join(COLUMNS) + "\n2026-03-01,b,r,refund,5,CNY,succeeded,2026-03-01T08:30:05Z\n", "line 2"),
        (",".join(COLUMNS) + "\n2026-03-01,b,r,debit,5,CNY,maybe,2026-03-01T08:30:05Z\n", "line 2"),
        (",".join(COLUMNS) + "\n2026-03-01,b,r,debit,5,CNY\n", "line 2"),
        (",".join(COLUMNS) + "\n2026-13-01,b,r,debit,5,CNY,succeeded,2026-03-01T08:30:05Z\n", "line 2"),
    ],
)
def test_malformed_statements_are_refused_naming_the_line(text: str, why: str) -> None:
    with pytest.raises(MalformedStatement, match=why):
        parse_csv(text)
