"""Settlement's pure rules: when trade money is due (T+N business days), what each
trade contributes to a batch, and the batch report. No I/O here.

T+N: money that became settleable (an escrow trade finished, an instant trade
paid) on business date T, in the platform's timezone (the one daily limits use),
is paid out by the run for date T+N. So the run for date D takes everything that
became settleable before the start of D−N+1, local midnight, whatever the
offset is in UTC.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from enum import StrEnum
from zoneinfo import ZoneInfo

from trustpay.clock import rfc3339, to_utc
from trustpay.trades.model import fee_due


class SettlementStatus(StrEnum):
    PENDING = "pending"  # held on the merchant's pending account, the bank is paying it out
    SUCCEEDED = "succeeded"  # the card received it (event settlement.paid)
    FAILED = "failed"  # the bank refused it; its trades go in a later batch


def business_date(at: datetime, zone: str) -> date:
    return to_utc(at).astimezone(ZoneInfo(zone)).date()


def day_start(day: date, zone: str) -> datetime:
    """Local midnight starting ``day``, in UTC."""
    return datetime(day.year, day.month, day.day, tzinfo=ZoneInfo(zone)).astimezone(UTC)


def cutoff(run_date: date, delay_days: int, zone: str) -> datetime:
    """The run for ``run_date`` pays what became settleable strictly before this instant."""
    return day_start(run_date - timedelta(days=delay_days) + timedelta(days=1), zone)


def due_on(settleable_at: datetime, delay_days: int, zone: str) -> date:
    """The first run date that pays money settleable at ``settleable_at``."""
    return business_date(settleable_at, zone) + timedelta(days=delay_days)


@dataclass(frozen=True, slots=True)
class Share:
    """What one trade brings to a batch: what is left of its amount after refunds,
    the part of its fee still charged, and the merchant's net (what the finish or
    the instant payment put in the pending account, less any reversal since)."""

    amount: int
    fee: int

    @property
    def net(self) -> int:
        return self.amount - self.fee


def share_of(amount: int, fee: int, refunded: int) -> Share:
    return Share(amount - refunded, fee_due(fee, amount, refunded))


REPORT_COLUMNS = ("trade_id", "out_trade_no", "finished_at", "amount", "fee", "net")


@dataclass(frozen=True, slots=True)
class ReportLine:
    trade_id: str
    out_trade_no: str
    finished_at: datetime  # when the money became settleable
    amount: int
    fee: int
    net: int


def report_csv(lines: Iterable[ReportLine]) -> str:
    """The batch's report: one row per trade, amounts in minor units like the API.
    A cell starting with = + - @ is quoted with a leading apostrophe so a
    spreadsheet never runs a merchant's out_trade_no as a formula."""
    out = io.StringIO()
    w = csv.writer(out, lineterminator="\r\n")
    w.writerow(REPORT_COLUMNS)
    for line in lines:
        w.writerow((line.trade_id, _cell(line.out_trade_no), rfc3339(line.finished_at), line.amount, line.fee,
                    line.net))
    return out.getvalue()


def _cell(text: str) -> str:
    return "'" + text if text[:1] in ("=", "+", "-", "@") else text
