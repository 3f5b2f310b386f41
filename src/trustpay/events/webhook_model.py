"""Webhook rules with no I/O: the retry schedule, the signature, which events an
endpoint wants, and which addresses a webhook may never reach (SSRF guard).

The signature follows API.md: ``TrustPay-Signature: t=<unix>,v1=<hex
HMAC-SHA256(secret, "<t>.<raw body>")>``. Signing the timestamp with the body
lets a receiver refuse a replayed old request (:func:`verify_signature`'s
``tolerance``).
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import json
import random
from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any

SIGNATURE_HEADER = "TrustPay-Signature"
SECRET_PREFIX = "whsec_"  # noqa: S105  (a prefix, not a secret)
ALL_EVENTS = "*"
EVENT_TYPES = (
    "trade.paid", "trade.shipped", "trade.finished", "trade.closed", "refund.succeeded",
    "dispute.opened", "dispute.resolved", "transfer.completed", "topup.succeeded",
    "withdrawal.succeeded", "withdrawal.failed", "settlement.paid", "settlement.failed",
)

# Delay before attempt n+1 after attempt n failed (the first attempt is immediate):
# 5 s, 5 min, 30 min, 2 h, 5 h, 10 h, 14 h, 20 h, 24 h — ten attempts over ~3.2 days,
# so a receiver that is down for a day still gets everything (API.md: ≥ 3 days).
RETRY_DELAYS = (
    timedelta(seconds=5), timedelta(minutes=5), timedelta(minutes=30), timedelta(hours=2),
    timedelta(hours=5), timedelta(hours=10), timedelta(hours=14), timedelta(hours=20), timedelta(hours=24),
)
MAX_ATTEMPTS = len(RETRY_DELAYS) + 1
# Jitter only lengthens a delay (by up to 10 %): retries of many endpoints that
# failed together spread out, and no retry ever comes earlier than the schedule.
JITTER = 0.10


class DeliveryStatus(StrEnum):
    PENDING = "pending"
    SUCCEEDED = "succeeded"
    FAILED = "failed"


class EndpointStatus(StrEnum):
    ACTIVE = "active"
    FAILING = "failing"  # its last delivery ran out of attempts; still tried, back to active on a success
    DISABLED = "disabled"  # nothing more is sent (merchant's choice, or the receiver answered 410)


def retry_delay(attempts_made: int, rng: random.Random | None = None) -> timedelta | None:
    """How long after failed attempt number ``attempts_made`` (1-based) to try again;
    None when the delivery has had all its attempts."""
    if attempts_made < 1:
        raise ValueError("attempts are counted from 1")
    if attempts_made > len(RETRY_DELAYS):
        return None
    base = RETRY_DELAYS[attempts_made - 1]
    fraction = (rng or random.SystemRandom()).random() * JITTER
    return base + timedelta(microseconds=int(base / timedelta(microseconds=1) * fraction))


def is_success(status_code: int) -> bool:
    """2xx only: a redirect (3xx) is not followed and counts as a failure."""
    return 200 <= status_code < 300


def disables_endpoint(status_code: int) -> bool:
    """410 Gone: the receiver says this URL is gone for good."""
    return status_code == 410


# ----------------------------------------------------------------- signature
def event_body(payload: Mapping[str, Any]) -> bytes:
    """The bytes sent for an event: the same for every attempt of every delivery."""
    return json.dumps(payload, ensure_ascii=False, separators=(",", ":")).encode()


def signature(secret: str, timestamp: int, body: bytes) -> str:
    return hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()


def signature_header(secret: str, at: datetime, body: bytes) -> str:
    t = int(at.timestamp())
    return f"t={t},v1={signature(secret, t, body)}"


def verify_signature(header: str, body: bytes, secret: str, *, now: datetime,
                     tolerance: timedelta = timedelta(minutes=5)) -> bool:
    """What a receiver does: the header's ``t`` within ``tolerance`` of ``now`` and one
    ``v1`` equal (constant time) to the HMAC of ``"<t>.<body>"``."""
    parts: dict[str, list[str]] = {}
    for item in header.split(","):
        key, sep, value = item.strip().partition("=")
        if sep:
            parts.setdefault(key, []).append(value)
    try:
        t = int(parts["t"][0])
    except (KeyError, ValueError):
        return False
    if abs(now.timestamp() - t) > tolerance.total_seconds():
        return False
    expected = signature(secret, t, body)
    return any(hmac.compare_digest(expected, v) for v in parts.get("v1", []))


# ------------------------------------------------------------- subscriptions
def normalize_events(events: str | Sequence[str]) -> str | list[str]:
    """``"*"`` (or a list holding it) for every event, else the distinct known types, sorted.

    Raises ValueError naming the first unknown type."""
    if isinstance(events, str):
        events = [events]
    wanted = list(dict.fromkeys(e.strip() for e in events))
    if not wanted:
        raise ValueError("events: give at least one event type, or \"*\" for all")
    if ALL_EVENTS in wanted:
        return ALL_EVENTS
    for e in wanted:
        if e not in EVENT_TYPES:
            raise ValueError(f"events: unknown event type {e[:64]!r}")
    return sorted(wanted)


def wants(events: str | Sequence[str], event_type: str) -> bool:
    return events == ALL_EVENTS or event_type in events


# ----------------------------------------------------------------- SSRF guard
_NAT64 = ipaddress.ip_network("64:ff9b::/96")


def refused_address(address: str) -> str | None:
    """Why a webhook may not be sent to ``address`` (an IP literal), or None if it may.

    Only globally routable unicast addresses pass. IPv6 forms that carry an IPv4
    address (IPv4-mapped ``::ffff:a.b.c.d``, NAT64, 6to4, Teredo) are judged by the
    IPv4 address inside, so ``::ffff:127.0.0.1`` is loopback like ``127.0.0.1``."""
    try:
        ip = ipaddress.ip_address(address.split("%", 1)[0])  # drop an IPv6 zone id
    except ValueError:
        return "not an IP address"
    if isinstance(ip, ipaddress.IPv6Address):
        inner: ipaddress.IPv4Address | None = ip.ipv4_mapped or ip.sixtofour
        if inner is None and ip.teredo is not None:
            inner = ip.teredo[1]
        if inner is None and ip in _NAT64:
            inner = ipaddress.IPv4Address(int(ip) & 0xFFFF_FFFF)
        if inner is not None:
            why = refused_address(str(inner))
            return f"{why} (inside {ip})" if why else None
    for test, why in (
        (ip.is_loopback, "loopback"),
        (ip.is_link_local, "link-local"),  # before private, which includes it (cloud metadata lives here)
        (ip.is_multicast, "multicast"),
        (ip.is_unspecified, "unspecified"),
        (ip.is_private, "private"),
        (ip.is_reserved, "reserved"),
    ):
        if test:
            return f"{ip} is a {why} address"
    if not ip.is_global:  # shared address space (100.64/10), documentation ranges, …
        return f"{ip} is not a public address"
    return None
