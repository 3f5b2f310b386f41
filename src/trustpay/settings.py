"""Operator settings, read from the environment (``TRUSTPAY_*``) once per process."""

from __future__ import annotations

import secrets
from decimal import Decimal
from functools import lru_cache
from pathlib import Path
from typing import Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import BaseModel, Field, ValidationInfo, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

DEFAULT_DB_PATH = Path("var") / "trustpay.db"


class TierLimit(BaseModel):
    """One KYC tier's limits, in minor units of the currency at hand (identity.limits)."""

    balance: int = Field(ge=0)
    single: int = Field(ge=0)
    daily: int = Field(ge=0)


# Tier 0 unverified, 1 e-mail/phone verified, 2 identity submitted. The same figures
# apply in every currency (¥1,000 at tier 0 is 1,000.00 of whatever the wallet holds).
DEFAULT_TIER_LIMITS = {
    0: TierLimit(balance=100_000, single=0, daily=0),
    1: TierLimit(balance=2_000_000, single=500_000, daily=1_000_000),
    2: TierLimit(balance=100_000_000, single=5_000_000, daily=20_000_000),
}


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="TRUSTPAY_", extra="ignore")

    database_url: str = Field(
        default=f"sqlite:///{DEFAULT_DB_PATH}",
        description="SQLAlchemy URL: sqlite:///path or postgresql+psycopg://user@host:port/db",
    )
    # Never on in production: lets POST /v1/test_clock/advance move platform time.
    test_clock: bool = False
    notify_sink: str = "console"
    webhook_allow_private: bool = False
    # Largest amount (in minor units) any single money movement may carry.
    max_amount: int = Field(default=10_000_000_000, gt=0)
    tier_limits: Literal["on", "off"] = "on"
    # Per-tier limits as JSON, e.g. {"0": {"balance": 100000, "single": 0, "daily": 0}, "1": …, "2": …}.
    tier_limit_table: dict[int, TierLimit] = Field(default_factory=lambda: dict(DEFAULT_TIER_LIMITS))
    # Where the daily-outflow day starts and ends (an IANA zone name).
    limits_timezone: str = "Asia/Shanghai"
    # The zone the web pages show times in (an IANA zone name; every time shown says
    # its UTC offset). Unset: the same as limits_timezone, so the times a buyer reads
    # and the business day the limits and settlement count in agree. The API, CSV
    # exports, receipts and webhooks stay UTC (RFC 3339) whatever this is.
    display_timezone: str = ""
    risk_rules: Literal["on", "off"] = "on"
    # Signs cookies and CSRF tokens. Unset: a random key per process (sessions
    # then end on restart) — set it in production.
    secret_key: str = Field(default_factory=lambda: secrets.token_hex(32), repr=False)
    default_currency: str = "CNY"
    # HTTP server processes `trustpay serve` runs (one per core uses the
    # machine; a process runs Python on one core at a time).
    serve_processes: int = Field(default=1, ge=1, le=64)
    # Each serve process keeps to a core of its own (trustpay/cpu_slot.py):
    # the GIL hopping between cores with the threads cost 2-3x the CPU a request.
    serve_pin_cpu: bool = True
    # Seconds between worker polls of the jobs table.
    worker_interval: float = Field(default=0.5, gt=0)
    idempotency_retention_hours: int = Field(default=48, ge=24)
    # Days a finished job (done or cancelled; failed ones stay) and a sent
    # notification are kept before the worker deletes them: a transfer leaves
    # one of each, and nothing else deleted them.
    job_retention_days: int = Field(default=7, ge=1)
    notification_retention_days: int = Field(default=7, ge=1)
    log_level: str = "INFO"
    # Sandbox bank (banks/). Empty URL: it runs inside this process, mounted at
    # /sandbox-bank, with its own SQLite file under bank_sandbox_data_dir.
    bank_sandbox_url: str = ""
    # Shared with the bank: API credential and callback signing key. The default is
    # public and fit only for the sandbox (which moves no real money).
    bank_sandbox_secret: str = Field(default="sandbox-bank-dev-secret", repr=False)
    bank_sandbox_data_dir: str = str(Path("var") / "sandbox-bank")
    bank_sandbox_settle_seconds: float = Field(default=2.0, ge=0, le=3600)
    # Where a sandbox bank in another process posts callbacks (empty: none; the platform polls).
    bank_sandbox_callback_url: str = ""
    # Login and payment password: tries before a lock, and the lock's length
    # (API.md: never above 10 tries, never below 30 minutes).
    login_max_attempts: int = Field(default=5, ge=1, le=10)
    lockout_minutes: int = Field(default=30, ge=30)
    # Per-IP fixed window on sign-up and login: at most this many requests per window.
    # Generous by default (many users share one NAT or test host); the per-account
    # lock is the real defence against password guessing.
    auth_rate_limit: int = Field(default=120, ge=1, le=10_000)
    auth_rate_window_seconds: int = Field(default=60, ge=1, le=3600)

    # Wallet. Transfers: seconds the sender may undo (0 = no undo window) and
    # hours a require_acceptance transfer waits for the recipient.
    transfer_undo_seconds: int = Field(default=10, ge=0, le=3600)
    transfer_acceptance_hours: int = Field(default=24, ge=1, le=24 * 30)
    # Withdrawal fee = fixed + amount × (bank base rate + platform margin), round half up,
    # never below the minimum. Rates as decimal strings: "0.001" is 0.1 %.
    withdrawal_fee_fixed: int = Field(default=0, ge=0)
    withdrawal_fee_bank_rate: Decimal = Field(default=Decimal("0.0006"), ge=0, lt=1)
    withdrawal_fee_margin: Decimal = Field(default=Decimal("0.0004"), ge=0, lt=1)
    withdrawal_fee_minimum: int = Field(default=10, ge=0)

    # Merchants (defaults for every merchant ops has not given a plan of its own):
    # trade fee = fixed + amount × (bank base rate + platform margin), round half up,
    # never below the minimum; finished trade money is settled T+N days later.
    merchant_fee_bank_rate: Decimal = Field(default=Decimal("0.0038"), ge=0, lt=1)
    merchant_fee_margin: Decimal = Field(default=Decimal("0.0022"), ge=0, lt=1)
    merchant_fee_fixed: int = Field(default=0, ge=0)
    merchant_fee_minimum: int = Field(default=0, ge=0)
    merchant_settlement_delay_days: int = Field(default=1, ge=0, le=30)

    # Risk rules (TRUSTPAY_RISK_RULES=off turns them off): per user and hour, more
    # money-out actions or more money out than these asks for a step-up (three times
    # as much is declined); a first payment to a new recipient above the last one too.
    risk_velocity_count: int = Field(default=20, ge=1)
    risk_velocity_amount: int = Field(default=5_000_000, ge=1)
    risk_new_recipient_amount: int = Field(default=200_000, ge=0)

    # Trades: how long each step may take unless the merchant sets it per trade
    # (within trustpay.trades.model's bounds): pay, then ship, then confirm receipt.
    trade_pay_within_minutes: int = Field(default=30, ge=1, le=15 * 24 * 60)
    trade_ship_within_hours: int = Field(default=120, ge=1, le=30 * 24)
    trade_confirm_within_hours: int = Field(default=240, ge=24, le=90 * 24)
    # Buyer refund requests (escrow): the merchant answers within this, else the refund
    # is approved; a return the merchant asked for is shipped back within this, else the
    # request closes; returned goods are confirmed within this, else the refund is paid.
    refund_seller_agree_within_hours: int = Field(default=72, ge=1, le=30 * 24)
    refund_buyer_return_within_hours: int = Field(default=168, ge=1, le=30 * 24)
    refund_seller_confirm_goods_within_hours: int = Field(default=240, ge=1, le=30 * 24)
    # Disputes (买家保障): a finished trade may be disputed this many days after it
    # finished (an instant one after it was paid); evidence files up to this size.
    dispute_protection_days: int = Field(default=15, ge=0, le=180)
    dispute_evidence_max_bytes: int = Field(default=5 * 1024 * 1024, ge=1024, le=50 * 1024 * 1024)

    @field_validator("default_currency")
    @classmethod
    def _upper(cls, v: str) -> str:
        return v.upper()

    @field_validator("tier_limit_table")
    @classmethod
    def _every_tier(cls, v: dict[int, TierLimit]) -> dict[int, TierLimit]:
        if set(v) != {0, 1, 2}:
            raise ValueError("tier_limit_table needs exactly the tiers 0, 1 and 2")
        return v

    @field_validator("limits_timezone", "display_timezone")
    @classmethod
    def _zone(cls, v: str, info: ValidationInfo) -> str:
        if not v and info.field_name == "display_timezone":
            return v  # filled from limits_timezone below
        try:
            ZoneInfo(v)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise ValueError(f"unknown time zone {v!r}") from exc
        return v

    @model_validator(mode="after")
    def _display_zone_defaults_to_the_business_day(self) -> Settings:
        if not self.display_timezone:
            self.display_timezone = self.limits_timezone
        return self

    @property
    def is_sqlite(self) -> bool:
        return self.database_url.startswith("sqlite")


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return Settings()
