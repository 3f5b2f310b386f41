"""Callback signatures: ``Bank-Signature: t=<unix>,v1=<hex HMAC-SHA256(secret, "<t>.<raw body>")>``
(the same scheme as TrustPay's own webhooks). Timestamps are wall-clock seconds,
not platform time: the test clock moves platform time, not the wire's."""

from __future__ import annotations

import hashlib
import hmac

from trustpay.banks.connector import SIGNATURE_TOLERANCE_SECONDS
from trustpay.banks.errors import BadBankSignature


def sign(secret: str, body: bytes, timestamp: int) -> str:
    mac = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()
    return f"t={timestamp},v1={mac}"


def verify(
    secret: str, header: str | None, body: bytes, *, now: float, tolerance: int = SIGNATURE_TOLERANCE_SECONDS
) -> int:
    """Return the signed timestamp, or raise :class:`BadBankSignature`. Several
    ``v1`` values are accepted (a bank rotating its secret sends both)."""
    if not header:
        raise BadBankSignature("The bank signature header is missing.")
    timestamp: int | None = None
    macs: list[str] = []
    for part in header.split(","):
        key, sep, value = part.strip().partition("=")
        if not sep:
            continue
        if key == "t" and value.isdigit() and len(value) <= 12:
            timestamp = int(value)
        elif key == "v1":
            macs.append(value)
    if timestamp is None or not macs:
        raise BadBankSignature("The bank signature header is malformed.")
    expected = sign(secret, body, timestamp).split("v1=", 1)[1]
    if not any(hmac.compare_digest(expected, mac) for mac in macs):
        raise BadBankSignature("The bank signature does not match.")
    if abs(now - timestamp) > tolerance:
        raise BadBankSignature("The bank signature timestamp is outside the tolerance.")
    return timestamp
