"""The sandbox bank's JSON shape of an operation (API answers and callback
bodies alike): canonical bytes, so a signature covers exactly one text."""

from __future__ import annotations

import json

from trustpay.banks.connector import BankOperation
from trustpay.clock import rfc3339


def operation_json(op: BankOperation) -> dict[str, object]:
    return {
        "bank_ref": op.bank_ref,
        "reference": op.reference,
        "kind": op.kind.value,
        "status": op.status.value,
        "amount": op.amount,
        "currency": op.currency,
        "failure_reason": op.failure_reason,
        "completed_at": rfc3339(op.completed_at) if op.completed_at else None,
    }


def callback_body(op: BankOperation) -> bytes:
    return json.dumps(operation_json(op), separators=(",", ":"), sort_keys=True).encode()
