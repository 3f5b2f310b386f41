"""Merchant rules with no I/O: secret API key format, the profile and its fee plan.

A secret key is ``sk_<mode>_`` followed by 43 characters drawn from the 62
letters and digits (≈256 bits from the OS's CSPRNG). Only its sha256 is
stored; the first characters are kept in the clear so a merchant can tell keys
apart in a list, which still leaves over 230 unknown bits.
"""

from __future__ import annotations

import hashlib
import secrets
import string
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal, InvalidOperation
from enum import StrEnum

from trustpay.errors import InvalidRequest
from trustpay.wallet.model import FeePlan

SECRET_ALPHABET = string.ascii_letters + string.digits
SECRET_RANDOM_LENGTH = 43  # 43 × log2(62) ≈ 256 bits
PREFIX_RANDOM_CHARS = 4  # shown in lists: sk_live_Ab3d…
LABEL_MAX_LENGTH = 80
DISPLAY_NAME_MAX_LENGTH = 120
MAX_SETTLEMENT_DELAY_DAYS = 30
MAX_ACTIVE_KEYS = 20  # several at once (rotation), but not an unbounded pile
# last_used_at is only as fine as this, so a busy key does not turn every API
# read into a write transaction (SQLite has one writer at a time).
LAST_USED_GRANULARITY = timedelta(minutes=1)
# Rates are fractions ("0.006" = 0.6 %) with at most this many decimal places.
RATE_MAX_PLACES = 6


class KeyMode(StrEnum):
    LIVE = "live"
    TEST = "test"


def new_secret(mode: KeyMode) -> str:
    body = "".join(secrets.choice(SECRET_ALPHABET) for _ in range(SECRET_RANDOM_LENGTH))
    return f"sk_{mode.value}_{body}"


def looks_like_secret_key(token: str) -> bool:
    """Told apart from a session token (url-safe base64, never starting ``sk_``) by its prefix."""
    return token.startswith(("sk_live_", "sk_test_"))


def secret_hash(secret: str) -> str:
    # A fast hash, not argon2: the secret has ~256 random bits, so a stolen hash
    # cannot be brute-forced, and every API request looks its key up by it.
    return hashlib.sha256(secret.encode()).hexdigest()


def display_prefix(secret: str) -> str:
    mode_end = secret.index("_", 3) + 1  # after "sk_live_"
    return secret[:mode_end + PREFIX_RANDOM_CHARS]


def check_label(label: str) -> str:
    label = label.strip()
    if len(label) > LABEL_MAX_LENGTH:
        raise InvalidRequest(f"label must be at most {LABEL_MAX_LENGTH} characters", param="label")
    return label


@dataclass(frozen=True, slots=True)
class ApiKey:
    id: str
    merchant_id: str
    prefix: str
    label: str
    created_at: datetime
    last_used_at: datetime | None = None
    revoked_at: datetime | None = None

    @property
    def active(self) -> bool:
        return self.revoked_at is None

    def needs_touch(self, now: datetime) -> bool:
        return self.last_used_at is None or now - self.last_used_at >= LAST_USED_GRANULARITY


def parse_rate(value: str | Decimal, *, param: str) -> Decimal:
    """A fee rate as an exact Decimal in [0, 1) with at most RATE_MAX_PLACES places."""
    try:
        rate = Decimal(str(value).strip())
    except InvalidOperation:
        raise InvalidRequest(f"{param} must be a decimal fraction such as \"0.006\"", param=param) from None
    if not rate.is_finite() or rate < 0 or rate >= 1:
        raise InvalidRequest(f"{param} must be at least 0 and below 1", param=param)
    exponent = rate.normalize().as_tuple().exponent
    if isinstance(exponent, int) and -exponent > RATE_MAX_PLACES:
        raise InvalidRequest(f"{param} has more than {RATE_MAX_PLACES} decimal places", param=param)
    return rate


def rate_text(rate: Decimal) -> str:
    """Canonical text for storage and the API: no exponent, no trailing zeros ("0.006")."""
    text = format(rate.normalize(), "f")
    return text if "." not in text else text.rstrip("0").rstrip(".") or "0"


@dataclass(frozen=True, slots=True)
class FeeOverrides:
    """What ops set for one merchant; None keeps the operator's default."""

    bank_rate: Decimal | None = None
    margin: Decimal | None = None
    fixed: int | None = None
    minimum: int | None = None

    def over(self, default: FeePlan) -> FeePlan:
        return FeePlan(
            fixed=default.fixed if self.fixed is None else self.fixed,
            bank_rate=default.bank_rate if self.bank_rate is None else self.bank_rate,
            margin=default.margin if self.margin is None else self.margin,
            minimum=default.minimum if self.minimum is None else self.minimum,
        )


@dataclass(frozen=True, slots=True)
class MerchantProfile:
    """A merchant's profile as the merchant sees it: every default already applied."""

    merchant_id: str
    display_name: str
    fee_plan: FeePlan
    fee_plan_is_default: bool
    settlement_card_id: str | None
    settlement_delay_days: int
    created_at: datetime | None
    updated_at: datetime | None


def check_display_name(name: str) -> str:
    name = name.strip()
    if not name or len(name) > DISPLAY_NAME_MAX_LENGTH:
        raise InvalidRequest(f"display_name must be 1 to {DISPLAY_NAME_MAX_LENGTH} characters",
                             param="display_name")
    return name


def check_settlement_delay(days: int) -> int:
    if not 0 <= days <= MAX_SETTLEMENT_DELAY_DAYS:
        raise InvalidRequest(f"settlement_delay_days must be 0 to {MAX_SETTLEMENT_DELAY_DAYS}",
                             param="settlement_delay_days")
    return days
