"""A refund in its public shape: the API's answer and the ``data.object`` of
``refund.succeeded``."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from trustpay.clock import rfc3339


def refund_shape(row: Any) -> dict[str, Any]:
    """A refund in its public shape: the API's answer and ``refund.succeeded``'s object."""
    returned = None
    if row["return_carrier"] is not None:
        returned = {"carrier": row["return_carrier"], "tracking_no": row["return_tracking_no"]}
    return {
        "id": row["id"], "object": "refund", "trade": row["trade_id"], "out_refund_no": row["out_refund_no"],
        "requested_by": row["requested_by"], "amount": row["amount"], "currency": row["currency"],
        "reason": row["reason"], "status": row["status"], "fee_reversed": row["fee_reversed"],
        "return_shipping": returned, "answer": row["answer"], "close_reason": row["close_reason"],
        "respond_by": ts(row["respond_by"]), "created_at": ts(row["created_at"]),
        "succeeded_at": ts(row["succeeded_at"]), "closed_at": ts(row["closed_at"]),
    }


def ts(value: datetime | None) -> str | None:
    return None if value is None else rfc3339(value)
