"""A trade in its public shape (API.md "Trades"): the API's answer and the
``data.object`` of every ``trade.*`` event."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from trustpay.clock import rfc3339, to_utc


def checkout_path(trade_id: str) -> str:
    return f"/checkout/{trade_id}"


def shape(row: Any) -> dict[str, Any]:
    trade_id = row["id"]
    shipping = None
    if row["carrier"] is not None:
        shipping = {"carrier": row["carrier"], "tracking_no": row["tracking_no"]}
    return {
        "id": trade_id, "object": "trade", "out_trade_no": row["out_trade_no"], "merchant": row["merchant_id"],
        "buyer": row["buyer_id"], "mode": row["mode"], "status": row["status"], "amount": row["amount"],
        "currency": row["currency"], "subject": row["subject"], "fee": row["fee"],
        "refunded_amount": row["refunded_amount"], "dispute_status": row["dispute_status"],
        "deadlines": {
            "pay_within_minutes": row["pay_within_minutes"], "ship_within_hours": row["ship_within_hours"],
            "confirm_within_hours": row["confirm_within_hours"], "pay_by": _ts(row["pay_by"]),
            "ship_by": _ts(row["ship_by"]), "confirm_by": _ts(row["confirm_by"]),
        },
        "shipping": shipping, "close_reason": row["close_reason"],
        "checkout_url": checkout_path(trade_id), "qr_code_url": checkout_path(trade_id) + "/qr.svg",
        "created_at": _ts(row["created_at"]), "paid_at": _ts(row["paid_at"]), "shipped_at": _ts(row["shipped_at"]),
        "finished_at": _ts(row["finished_at"]), "closed_at": _ts(row["closed_at"]),
    }


def _ts(value: datetime | None) -> str | None:
    return None if value is None else rfc3339(value)


def times_of(row: Any, keys: tuple[str, ...]) -> dict[str, datetime | None]:
    """The trade row's ``keys`` timestamps as aware UTC instants (SQLite reads them back
    without a zone), None where unset: what the pages format."""
    return {k: None if row[k] is None else to_utc(row[k]) for k in keys}
