"""Identity rules with no I/O: credentials, lockout, session lifetime, log-safe text."""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum

from trustpay.errors import AccountLocked, Forbidden, InvalidRequest, PaymentFailed
from trustpay.identity.kyc import kyc_tier

PASSWORD_MIN_LENGTH = 12
PASSWORD_MAX_LENGTH = 256  # argon2 takes any length; this only bounds the work per request
# API.md, Conventions: fixed by the contract, measured on the platform clock.
SESSION_IDLE = timedelta(minutes=15)
SESSION_ABSOLUTE = timedelta(hours=12)
# A session's last use is written when the stored one is at least this old, not
# on every request: a busy client would otherwise turn each read into a write.
# So an idle session may end up to this much before 15:00 after its last use.
SESSION_TOUCH_EVERY = timedelta(seconds=1)
CODE_TTL = timedelta(minutes=15)
CODE_MAX_ATTEMPTS = 5

_EMAIL = re.compile(r"[A-Za-z0-9.!#$%&'*+/=?^_`{|}~-]+@[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
                    r"(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)+")
_PHONE = re.compile(r"\+?[0-9]{6,15}")
_PAYMENT_PASSWORD = re.compile(r"[0-9]{6}")
_CODE = re.compile(r"[0-9]{6}")


class UserKind(StrEnum):
    PERSONAL = "personal"
    MERCHANT = "merchant"
    OPS = "ops"


class Channel(StrEnum):
    EMAIL = "email"
    PHONE = "phone"


class Outcome(StrEnum):
    SUCCESS = "success"
    FAILURE = "failure"


def normalize_email(email: str) -> str:
    """Lower-cased so that uniqueness and login ignore case (RFC 5321 allows
    case-sensitive local parts, but no real provider uses them)."""
    e = email.strip().lower()
    if len(e) > 254 or not _EMAIL.fullmatch(e):
        raise InvalidRequest("email is not a valid e-mail address", param="email")
    return e


def check_password_strength(password: str, *, param: str = "password") -> None:
    if not (PASSWORD_MIN_LENGTH <= len(password) <= PASSWORD_MAX_LENGTH) or not (
        any(c.isalpha() for c in password) and any(c.isdigit() for c in password)
    ):
        raise InvalidRequest(
            f"password must be {PASSWORD_MIN_LENGTH} to {PASSWORD_MAX_LENGTH} characters "
            "with both letters and digits",
            code="weak_password", param=param,
        )


def check_payment_password_format(pw: str) -> None:
    if not _PAYMENT_PASSWORD.fullmatch(pw):
        raise InvalidRequest("payment_password must be exactly 6 digits", param="payment_password")


def is_code_shaped(code: str) -> bool:
    return bool(_CODE.fullmatch(code))


def normalize_phone(phone: str) -> str:
    """Digits with an optional leading +, separators dropped; the form we key the HMAC on."""
    p = re.sub(r"[\s().-]", "", phone)
    if not _PHONE.fullmatch(p):
        raise InvalidRequest("phone must be 6 to 15 digits, optionally starting with +", param="phone")
    return p


def mask_phone(phone: str) -> str:
    """What we may show: the first three and last two digits (``138******21``)."""
    p = normalize_phone(phone)
    sign, digits = ("+", p[1:]) if p.startswith("+") else ("", p)
    keep_head = min(3, max(len(digits) - 4, 0))
    return sign + digits[:keep_head] + "*" * (len(digits) - keep_head - 2) + digits[-2:]


@dataclass(frozen=True)
class Lockout:
    """Consecutive failures of one secret (login or payment password) and the lock they earned.

    The lock runs from the failure that reached the limit; tries while locked
    are refused unchecked and neither counted nor allowed to extend it; the
    count restarts at zero once locked, so the lock's end gives a fresh set of tries.
    """

    failures: int = 0
    locked_until: datetime | None = None

    def is_locked(self, now: datetime) -> bool:
        return self.locked_until is not None and now < self.locked_until

    def check(self, now: datetime) -> None:
        if self.is_locked(now):
            raise AccountLocked("too many failed attempts; try again later")

    def after_failure(self, now: datetime, *, max_attempts: int, lock_for: timedelta) -> Lockout:
        failures = self.failures + 1
        if failures >= max_attempts:
            return Lockout(0, now + lock_for)
        return Lockout(failures, self.locked_until)

    @staticmethod
    def cleared() -> Lockout:
        return Lockout(0, None)


def session_needs_touch(now: datetime, last_seen_at: datetime) -> bool:
    return now - last_seen_at >= SESSION_TOUCH_EVERY


def session_alive(now: datetime, *, last_seen_at: datetime, expires_at: datetime,
                  revoked_at: datetime | None) -> bool:
    """Idle for 15:00 is dead, 14:59 is alive; past the absolute end is dead either way."""
    return revoked_at is None and now < expires_at and now - last_seen_at < SESSION_IDLE


def log_safe(text: str | None, *, limit: int = 512) -> str:
    """Escape control and format characters (\\n, \\r, ANSI, U+2028 …) and backslashes,
    so text a client chose cannot start a fake line in any log or export."""
    if not text:
        return ""
    out: list[str] = []
    for ch in text:
        if ch == "\\":
            out.append("\\\\")
        elif unicodedata.category(ch) in {"Cc", "Cf", "Zl", "Zp"}:
            out.append(f"\\x{ord(ch):02x}" if ord(ch) < 0x100 else f"\\u{ord(ch):04x}")
        else:
            out.append(ch)
    return "".join(out)[:limit]


@dataclass(frozen=True)
class User:
    id: str
    email: str
    name: str
    kind: UserKind
    kyc_tier: int
    created_at: datetime
    phone_masked: str | None = None
    email_verified_at: datetime | None = None
    phone_verified_at: datetime | None = None
    has_payment_password: bool = False
    login: Lockout = Lockout()
    payment: Lockout = Lockout()
    mfa_enabled_at: datetime | None = None
    frozen_at: datetime | None = None
    legal_name_masked: str | None = None
    id_type: str | None = None
    id_number_masked: str | None = None
    identity_submitted_at: datetime | None = None

    @property
    def email_verified(self) -> bool:
        return self.email_verified_at is not None

    @property
    def phone_verified(self) -> bool:
        return self.phone_verified_at is not None

    @property
    def contact_verified(self) -> bool:
        """E-mail or phone: either one reaches tier 1."""
        return self.email_verified or self.phone_verified

    @property
    def mfa_enabled(self) -> bool:
        return self.mfa_enabled_at is not None

    @property
    def frozen(self) -> bool:
        return self.frozen_at is not None

    def require_email_verified(self) -> None:
        """Money leaves a wallet only once the e-mail is verified (API.md)."""
        if not self.email_verified:
            raise Forbidden("verify your e-mail address before moving money out",
                            code="email_unverified")


def tier_of(user: User) -> int:
    """The KYC tier the user has reached (identity.kyc), from what they have verified."""
    return kyc_tier(email_verified=user.email_verified, phone_verified=user.phone_verified,
                    identity_submitted=user.identity_submitted_at is not None)


@dataclass(frozen=True)
class Session:
    id: str
    user_id: str
    created_at: datetime
    last_seen_at: datetime
    expires_at: datetime
    revoked_at: datetime | None
    ip: str
    user_agent: str

    def alive(self, now: datetime) -> bool:
        return session_alive(now, last_seen_at=self.last_seen_at, expires_at=self.expires_at,
                             revoked_at=self.revoked_at)


def payment_password_missing() -> PaymentFailed:
    """No payment password given where one is needed: no guess, so nothing is counted."""
    return PaymentFailed("enter your 6-digit payment password", code="payment_password_invalid",
                         param="payment_password")
