"""All tables, as SQLAlchemy Core. One schema for SQLite and PostgreSQL.

Alembic migrations in ``migrations/versions`` create exactly this; a test
compares the migrated database with this metadata.
"""

from __future__ import annotations

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    CheckConstraint,
    Column,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
)

NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}
metadata = MetaData(naming_convention=NAMING)

# Money columns are BIGINT minor units; SQLite's INTEGER is 64-bit as well.
Amount = BigInteger
TS = DateTime(timezone=True)

# --- ledger ---------------------------------------------------------------
ledger_accounts = Table(
    "ledger_accounts",
    metadata,
    Column("id", String(32), primary_key=True),
    Column("owner_id", String(32), nullable=True, index=True),
    Column("currency", String(3), nullable=False),
    Column("kind", String(32), nullable=False),
    Column("name", String(120), nullable=False, server_default=""),
    Column("allow_negative", Boolean, nullable=False, server_default="0"),
    # Derived from postings, kept in the row so a balance read is one lookup.
    Column("balance", Amount, nullable=False, server_default="0"),
    Column("pending_out", Amount, nullable=False, server_default="0"),
    Column("pending_in", Amount, nullable=False, server_default="0"),
    # Journal position of the last entry that touched this account: lets
    # verify name an entry missing from the end of the journal.
    Column("last_seq", BigInteger, nullable=False, server_default="0"),
    Column("created_at", TS, nullable=False),
    Column("closed_at", TS, nullable=True),
    UniqueConstraint("owner_id", "kind", "currency", name="uq_ledger_accounts_owner_kind_ccy"),
    CheckConstraint("pending_out >= 0 AND pending_in >= 0", name="pending_nonneg"),
)

ledger_entries = Table(
    "ledger_entries",
    metadata,
    # seq is the position in the journal (1, 2, 3 …), assigned under the head lock.
    Column("seq", BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=False),
    Column("id", String(32), nullable=False, unique=True),
    Column("kind", String(32), nullable=False),
    Column("reference", String(128), nullable=True, index=True),
    Column("hold_id", String(32), nullable=True),
    Column("memo", Text, nullable=False, server_default=""),
    Column("created_at", TS, nullable=False),
    Column("prev_hash", String(64), nullable=False),
    Column("hash", String(64), nullable=False),
    # 0014: the daily outflow finds where today begins in the journal (identity.limits).
    Index("ix_ledger_entries_created_at", "created_at"),
)

ledger_postings = Table(
    "ledger_postings",
    metadata,
    Column("entry_seq", BigInteger, ForeignKey("ledger_entries.seq"), primary_key=True),
    Column("account_id", String(32), ForeignKey("ledger_accounts.id"), primary_key=True),
    # Which running total the delta applies to: balance | pending_out | pending_in.
    Column("field", String(12), primary_key=True),
    Column("currency", String(3), nullable=False),
    Column("delta", Amount, nullable=False),
    Column("balance_after", Amount, nullable=False),
    Index("ix_ledger_postings_account_seq", "account_id", "entry_seq"),
    # On SQLite, store lines in their primary-key B-tree (no separate rowid
    # table): one B-tree insert less per line on the ledger's hot path.
    sqlite_with_rowid=False,
)

ledger_holds = Table(
    "ledger_holds",
    metadata,
    Column("id", String(32), primary_key=True),
    Column("debit_account_id", String(32), ForeignKey("ledger_accounts.id"), nullable=False),
    Column("credit_account_id", String(32), ForeignKey("ledger_accounts.id"), nullable=False),
    Column("currency", String(3), nullable=False),
    Column("amount", Amount, nullable=False),
    # pending | posted | voided | expired
    Column("status", String(10), nullable=False),
    Column("posted_amount", Amount, nullable=False, server_default="0"),
    Column("expires_at", TS, nullable=True),
    Column("reference", String(128), nullable=True),
    Column("created_at", TS, nullable=False),
    Column("resolved_at", TS, nullable=True),
    Index("ix_ledger_holds_status_expires", "status", "expires_at"),
    # 0004: the tier limits sum a wallet's pending holds (identity.limits).
    Index("ix_ledger_holds_debit_status", "debit_account_id", "status"),
    CheckConstraint("amount > 0", name="amount_positive"),
)

# What the daily-outflow limit has already summed of a wallet's posted debits
# for one day (identity.limits): the sum of the wallet's balance debits stamped
# in [day_start, day_end) among its postings up to journal position upto_seq.
# Postings never change once written, so a mark stays true; a payment's check
# reads only the postings after it, however many the wallet has today. Not
# ledger state: it can be deleted at any time and is rebuilt from the postings.
outflow_marks = Table(
    "outflow_marks",
    metadata,
    Column("account_id", String(32), ForeignKey("ledger_accounts.id"), primary_key=True),
    Column("day_start", TS, nullable=False),
    Column("day_end", TS, nullable=False),
    Column("upto_seq", BigInteger, nullable=False),
    Column("posted_out", Amount, nullable=False),
)

# --- platform plumbing ----------------------------------------------------
idempotency_keys = Table(
    "idempotency_keys",
    metadata,
    Column("scope", String(64), primary_key=True),
    Column("key", String(255), primary_key=True),
    Column("method", String(8), nullable=False),
    Column("path", String(512), nullable=False),
    Column("request_hash", String(64), nullable=False),
    # in_progress | done
    Column("status", String(12), nullable=False),
    Column("response_status", Integer, nullable=True),
    Column("response_headers", JSON, nullable=True),
    Column("response_body", LargeBinary, nullable=True),
    Column("created_at", TS, nullable=False),
    Column("locked_until", TS, nullable=True),
    Column("expires_at", TS, nullable=False, index=True),
)

outbox = Table(
    "outbox",
    metadata,
    Column("seq", BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True),
    Column("id", String(32), nullable=False, unique=True),
    Column("type", String(64), nullable=False),
    Column("owner_id", String(32), nullable=True, index=True),
    Column("payload", JSON, nullable=False),
    Column("created_at", TS, nullable=False),
    Column("published_at", TS, nullable=True),
    Index("ix_outbox_unpublished", "published_at", "seq"),
)

jobs = Table(
    "jobs",
    metadata,
    Column("id", String(32), primary_key=True),
    Column("kind", String(64), nullable=False),
    Column("run_at", TS, nullable=False),
    Column("payload", JSON, nullable=False),
    # pending | running | done | failed
    Column("status", String(10), nullable=False),
    Column("attempts", Integer, nullable=False, server_default="0"),
    Column("max_attempts", Integer, nullable=False, server_default="10"),
    Column("last_error", Text, nullable=True),
    Column("locked_until", TS, nullable=True),
    # Stops the same timeout being scheduled twice (e.g. "expire-hold:hold_…").
    Column("dedupe_key", String(128), nullable=True, unique=True),
    Column("created_at", TS, nullable=False),
    Column("finished_at", TS, nullable=True),
    Index("ix_jobs_due", "status", "run_at"),
)

platform_clock = Table(
    "platform_clock",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=False),
    Column("offset_ms", BigInteger, nullable=False, server_default="0"),
)

# --- identity -------------------------------------------------------------
users = Table(
    "users",
    metadata,
    Column("id", String(32), primary_key=True),
    # Stored lower-cased, so uniqueness is case-insensitive on both engines.
    Column("email", String(254), nullable=False, unique=True),
    Column("name", String(120), nullable=False, server_default=""),
    # personal | merchant | ops
    Column("kind", String(10), nullable=False),
    # No plaintext phone: a keyed HMAC enforces uniqueness, the mask is what we show.
    Column("phone_hmac", String(64), nullable=True, unique=True),
    Column("phone_masked", String(32), nullable=True),
    Column("password_hash", String(255), nullable=False),
    Column("payment_password_hash", String(255), nullable=True),
    Column("email_verified_at", TS, nullable=True),
    Column("phone_verified_at", TS, nullable=True),
    Column("kyc_tier", Integer, nullable=False, server_default="0"),
    Column("failed_logins", Integer, nullable=False, server_default="0"),
    Column("login_locked_until", TS, nullable=True),
    Column("failed_payment_passwords", Integer, nullable=False, server_default="0"),
    Column("payment_locked_until", TS, nullable=True),
    Column("created_at", TS, nullable=False),
    Column("deleted_at", TS, nullable=True),
    # 0003: TOTP secret sealed with AES-GCM (identity.crypto.seal); set at enrolment,
    # in force once mfa_enabled_at is set. The last accepted time step stops replays.
    Column("totp_secret_enc", Text, nullable=True),
    Column("totp_last_step", BigInteger, nullable=True),
    Column("mfa_enabled_at", TS, nullable=True),
    # Lost-phone freeze: no money out while set.
    Column("frozen_at", TS, nullable=True),
    # 0004: PII sealed with AES-GCM bound to the user id (identity.crypto.seal) plus
    # the masks we show. The phone is sealed so a code can be texted to it.
    Column("phone_enc", Text, nullable=True),
    Column("legal_name_enc", Text, nullable=True),
    Column("legal_name_masked", String(64), nullable=True),
    # prc_resident | passport
    Column("id_type", String(16), nullable=True),
    Column("id_number_enc", Text, nullable=True),
    Column("id_number_masked", String(32), nullable=True),
    Column("identity_submitted_at", TS, nullable=True),
)

sessions = Table(
    "sessions",
    metadata,
    Column("id", String(32), primary_key=True),
    Column("user_id", String(32), ForeignKey("users.id"), nullable=False, index=True),
    # sha256 of the bearer token: a database leak hands out no live sessions.
    Column("token_hash", String(64), nullable=False, unique=True),
    Column("created_at", TS, nullable=False),
    Column("last_seen_at", TS, nullable=False),
    Column("expires_at", TS, nullable=False),
    Column("revoked_at", TS, nullable=True),
    Column("ip", String(64), nullable=False, server_default=""),
    Column("user_agent", String(512), nullable=False, server_default=""),
)

verification_codes = Table(
    "verification_codes",
    metadata,
    Column("seq", BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True),
    Column("user_id", String(32), ForeignKey("users.id"), nullable=False),
    # email | phone
    Column("channel", String(10), nullable=False),
    Column("code_hash", String(64), nullable=False),
    Column("created_at", TS, nullable=False),
    Column("expires_at", TS, nullable=False),
    Column("used_at", TS, nullable=True),
    Column("attempts", Integer, nullable=False, server_default="0"),
    Index("ix_verification_codes_user_channel", "user_id", "channel"),
)

audit_log = Table(
    "audit_log",
    metadata,
    # seq orders rows written in the same instant (ids only sort to the millisecond).
    Column("seq", BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True),
    Column("id", String(32), nullable=False, unique=True),
    # No foreign key: failed logins for unknown e-mails are audited too.
    Column("user_id", String(32), nullable=True),
    Column("event", String(64), nullable=False),
    # success | failure
    Column("outcome", String(16), nullable=False),
    Column("at", TS, nullable=False),
    Column("ip", String(64), nullable=False, server_default=""),
    Column("user_agent", String(512), nullable=False, server_default=""),
    Column("resource", String(128), nullable=True),
    Index("ix_audit_log_user_seq", "user_id", "seq"),
)

recovery_codes = Table(
    "recovery_codes",
    metadata,
    Column("seq", BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True),
    Column("user_id", String(32), ForeignKey("users.id"), nullable=False, index=True),
    # Keyed HMAC of the one-time MFA recovery code; the code itself is shown once.
    Column("code_hash", String(64), nullable=False),
    Column("created_at", TS, nullable=False),
    Column("used_at", TS, nullable=True),
)

# --- wallet ---------------------------------------------------------------
bank_cards = Table(
    "bank_cards",
    metadata,
    Column("id", String(32), primary_key=True),
    Column("user_id", String(32), ForeignKey("users.id"), nullable=False, index=True),
    Column("bank", String(32), nullable=False),
    # The bank's token for the card: the number itself never reaches the platform's storage.
    Column("token", String(128), nullable=False),
    Column("last4", String(4), nullable=False),
    Column("brand", String(32), nullable=False, server_default=""),
    Column("holder_masked", String(64), nullable=False, server_default=""),
    # active | unbound
    Column("status", String(10), nullable=False),
    Column("created_at", TS, nullable=False),
    Column("unbound_at", TS, nullable=True),
)

topups = Table(
    "topups",
    metadata,
    Column("id", String(32), primary_key=True),
    Column("user_id", String(32), ForeignKey("users.id"), nullable=False, index=True),
    Column("card_id", String(32), ForeignKey("bank_cards.id"), nullable=False),
    Column("bank", String(32), nullable=False),
    Column("currency", String(3), nullable=False),
    Column("amount", Amount, nullable=False),
    # pending | succeeded | failed
    Column("status", String(10), nullable=False),
    Column("bank_ref", String(64), nullable=True),
    Column("failure_reason", String(200), nullable=True),
    Column("created_at", TS, nullable=False),
    Column("completed_at", TS, nullable=True),
    Index("ix_topups_status_created", "status", "created_at"),
    CheckConstraint("amount > 0", name="amount_positive"),
)

withdrawals = Table(
    "withdrawals",
    metadata,
    Column("id", String(32), primary_key=True),
    Column("user_id", String(32), ForeignKey("users.id"), nullable=False),
    Column("card_id", String(32), ForeignKey("bank_cards.id"), nullable=False),
    Column("bank", String(32), nullable=False),
    Column("currency", String(3), nullable=False),
    Column("amount", Amount, nullable=False),
    Column("fee", Amount, nullable=False),
    # pending | succeeded | failed
    Column("status", String(10), nullable=False),
    # The two ledger holds: amount to the bank's clearing account, fee to fee revenue.
    Column("hold_id", String(32), nullable=False),
    Column("fee_hold_id", String(32), nullable=True),
    Column("bank_ref", String(64), nullable=True),
    Column("failure_reason", String(200), nullable=True),
    Column("created_at", TS, nullable=False),
    Column("completed_at", TS, nullable=True),
    Index("ix_withdrawals_status_created", "status", "created_at"),
    # 0014: risk velocity reads a user's last hour (risk.service), not their history.
    Index("ix_withdrawals_user_created", "user_id", "created_at"),
    CheckConstraint("amount > 0 AND fee >= 0", name="amounts_valid"),
)

transfers = Table(
    "transfers",
    metadata,
    Column("id", String(32), primary_key=True),
    Column("sender_id", String(32), ForeignKey("users.id"), nullable=False),
    Column("recipient_id", String(32), ForeignKey("users.id"), nullable=False, index=True),
    Column("currency", String(3), nullable=False),
    Column("amount", Amount, nullable=False),
    Column("memo", String(200), nullable=False, server_default=""),
    # completed | pending_acceptance | reversed | returned
    Column("status", String(20), nullable=False),
    Column("require_acceptance", Boolean, nullable=False, server_default="0"),
    # The ledger hold carrying the money while it can still go back (undo window
    # or acceptance); NULL when the transfer was posted outright.
    Column("hold_id", String(32), nullable=True),
    Column("undo_until", TS, nullable=True),
    Column("accept_until", TS, nullable=True),
    # When the money became the recipient's for good (hold posted or direct post).
    Column("settled_at", TS, nullable=True),
    Column("created_at", TS, nullable=False),
    Column("resolved_at", TS, nullable=True),
    Index("ix_transfers_sender_recipient", "sender_id", "recipient_id"),
    # 0014/0016: risk velocity counts and sums a sender's last hour from this index
    # alone (status and amount are in it): a sender's thousands of transfers in
    # an hour cost index steps, not a table read each.
    Index("ix_transfers_sender_created_covering", "sender_id", "created_at", "status", "amount"),
    CheckConstraint("amount > 0", name="amount_positive"),
)

wallet_preferences = Table(
    "wallet_preferences",
    metadata,
    Column("user_id", String(32), ForeignKey("users.id"), primary_key=True),
    # The user's own caps, in the default currency's minor units. NULL daily cap: only the tier's.
    Column("daily_cap", Amount, nullable=True),
    # 免密支付: payments at or under this need no payment password (0 = off).
    Column("password_free_cap", Amount, nullable=False, server_default="0"),
    Column("updated_at", TS, nullable=False),
)

# Messages to people (codes aside), queued in the transaction of the change that
# caused them and sent by the worker: a rolled-back transfer never tells anyone.
notification_queue = Table(
    "notification_queue",
    metadata,
    Column("seq", BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True),
    Column("channel", String(10), nullable=False),
    Column("recipient", String(320), nullable=False),
    Column("subject", String(200), nullable=False),
    Column("body", Text, nullable=False),
    Column("created_at", TS, nullable=False),
    Column("sent_at", TS, nullable=True),
    # While a worker sends it (outside any transaction): another waits until this passes.
    Column("claimed_until", TS, nullable=True),
    Index("ix_notification_queue_sent", "sent_at", "seq"),
)

# --- reconciliation (对账) ------------------------------------------------------
# One run per (bank, business date): reconciling a date again updates its counts.
recon_runs = Table(
    "recon_runs",
    metadata,
    Column("id", String(32), primary_key=True),
    Column("bank", String(32), nullable=False),
    Column("business_date", String(10), nullable=False),  # ISO date (UTC): sorts and compares as text
    Column("lines", Integer, nullable=False, server_default="0"),
    Column("matched", Integer, nullable=False, server_default="0"),
    Column("settled", Integer, nullable=False, server_default="0"),
    Column("exceptions", Integer, nullable=False, server_default="0"),
    Column("cleared", Amount, nullable=False, server_default="0"),  # operations moved to bank cash
    Column("passes", Integer, nullable=False, server_default="0"),
    Column("started_at", TS, nullable=False),
    Column("finished_at", TS, nullable=True),
    UniqueConstraint("bank", "business_date", name="uq_recon_runs_bank_date"),
)

# A platform operation the bank's statement confirmed: at most once per reference,
# which is what makes moving it out of clearing happen once.
recon_matches = Table(
    "recon_matches",
    metadata,
    Column("reference", String(32), primary_key=True),
    Column("bank", String(32), nullable=False),
    Column("business_date", String(10), nullable=False),
    Column("run_id", String(32), ForeignKey("recon_runs.id"), nullable=False),
    Column("currency", String(3), nullable=False),
    # Signed change the operation made to bank clearing (top-up −, payout +; 0 when failed).
    Column("clearing_delta", Amount, nullable=False),
    Column("cleared_entry_id", String(32), nullable=True),
    Column("matched_at", TS, nullable=False),
    Index("ix_recon_matches_uncleared", "bank", "business_date", "cleared_entry_id"),
)

# What reconciliation could not match, for ops to decide.
recon_exceptions = Table(
    "recon_exceptions",
    metadata,
    Column("id", String(32), primary_key=True),
    # bank:date:kind:reference:bank_ref — the same finding twice is one row.
    Column("dedupe_key", String(200), nullable=False, unique=True),
    Column("run_id", String(32), ForeignKey("recon_runs.id"), nullable=False),
    Column("bank", String(32), nullable=False),
    Column("business_date", String(10), nullable=False),
    # missing_ours | missing_bank | amount_differs | duplicate | status_differs | ledger_differs
    Column("kind", String(20), nullable=False),
    Column("reference", String(128), nullable=False),
    Column("bank_ref", String(64), nullable=True),
    Column("user_id", String(32), nullable=True),  # the owner of our record, when there is one
    Column("currency", String(3), nullable=False),
    Column("bank_amount", Amount, nullable=True),
    Column("our_amount", Amount, nullable=True),
    Column("bank_status", String(10), nullable=True),
    Column("our_status", String(10), nullable=True),
    Column("status", String(10), nullable=False),  # open | resolved
    Column("created_at", TS, nullable=False),
    Column("resolved_at", TS, nullable=True),
    Column("resolved_by", String(32), nullable=True),
    Column("resolution", String(20), nullable=True),  # note_only | credit_wallet | debit_wallet
    Column("resolution_amount", Amount, nullable=True),
    Column("note", String(500), nullable=True),
    Column("entry_id", String(32), nullable=True),  # the adjusting ledger entry, if money moved
    Index("ix_recon_exceptions_status_created", "status", "created_at"),
)

# --- merchants (0007) -----------------------------------------------------
# One row per merchant user once it has anything of its own; with no row, or a
# NULL fee/delay column, the operator's settings apply (merchants.service.fee_plan),
# so changing a default reaches every merchant that has not been given its own.
merchant_profiles = Table(
    "merchant_profiles",
    metadata,
    Column("merchant_id", String(32), ForeignKey("users.id"), primary_key=True),
    Column("display_name", String(120), nullable=False, server_default=""),
    # Rates as decimal text ("0.006"): exact on both engines, read back as Decimal.
    Column("fee_bank_rate", String(24), nullable=True),
    Column("fee_margin", String(24), nullable=True),
    Column("fee_fixed", Amount, nullable=True),
    Column("fee_minimum", Amount, nullable=True),
    # One of the merchant's own active bank cards; settlement pays out to it.
    Column("settlement_card_id", String(32), ForeignKey("bank_cards.id"), nullable=True),
    # T+N: finished trade money older than N days goes into the next settlement batch.
    Column("settlement_delay_days", Integer, nullable=True),
    Column("created_at", TS, nullable=False),
    Column("updated_at", TS, nullable=False),
)

merchant_api_keys = Table(
    "merchant_api_keys",
    metadata,
    Column("id", String(32), primary_key=True),
    Column("merchant_id", String(32), ForeignKey("users.id"), nullable=False, index=True),
    # The first characters of the secret (sk_live_ab12…), so a merchant can tell keys apart.
    Column("prefix", String(20), nullable=False),
    # sha256 of the whole secret. A fast hash is right here (unlike passwords):
    # the secret carries 256 random bits, so there is nothing to brute-force, and
    # every API request looks the key up by it, so the hash must cost microseconds.
    Column("secret_hash", String(64), nullable=False, unique=True),
    Column("label", String(80), nullable=False, server_default=""),
    Column("created_at", TS, nullable=False),
    Column("last_used_at", TS, nullable=True),
    Column("revoked_at", TS, nullable=True),
)

# --- webhooks (0008) ------------------------------------------------------
# A merchant's receiver. The signing secret must be readable to sign with, so it
# is sealed (AES-GCM under the operator's secret key, bound to the endpoint id),
# not hashed: a copy of the database alone does not let anyone forge deliveries.
webhook_endpoints = Table(
    "webhook_endpoints",
    metadata,
    Column("id", String(32), primary_key=True),
    Column("owner_id", String(32), ForeignKey("users.id"), nullable=False, index=True),  # the merchant user
    Column("url", String(2048), nullable=False),
    Column("events", JSON, nullable=False),  # "*" or a list of event types
    Column("secret_enc", Text, nullable=False),
    Column("status", String(10), nullable=False),  # active | failing | disabled
    Column("disabled_reason", String(200), nullable=True),
    Column("created_at", TS, nullable=False),
    Column("updated_at", TS, nullable=False),
    Column("deleted_at", TS, nullable=True),  # deleted endpoints keep their delivery log
    # The endpoint's queue: when its oldest pending delivery may next be tried
    # (NULL: nothing pending), and the lease of the worker sending it now.
    Column("deliver_after", TS, nullable=True),
    Column("sending_until", TS, nullable=True),
    Index("ix_webhook_endpoints_due", "deliver_after"),
)

# One event for one endpoint. Sent in event order per endpoint: only the oldest
# pending delivery of an endpoint is ever in flight.
webhook_deliveries = Table(
    "webhook_deliveries",
    metadata,
    Column("id", String(32), primary_key=True),
    Column("endpoint_id", String(32), ForeignKey("webhook_endpoints.id"), nullable=False),
    Column("event_id", String(32), nullable=False),
    Column("event_seq", BigInteger, nullable=False),  # the outbox position: the order of delivery
    Column("event_type", String(64), nullable=False),
    Column("status", String(10), nullable=False),  # pending | succeeded | failed
    Column("attempts", Integer, nullable=False, server_default="0"),  # in the current round (resend: 0)
    Column("next_attempt_at", TS, nullable=True),
    Column("last_status_code", Integer, nullable=True),
    Column("last_error", String(500), nullable=True),
    Column("created_at", TS, nullable=False),
    Column("completed_at", TS, nullable=True),
    UniqueConstraint("endpoint_id", "event_id", name="uq_webhook_deliveries_endpoint_event"),
    Index("ix_webhook_deliveries_queue", "endpoint_id", "status", "event_seq"),
)

# Every HTTP attempt, for the merchant's delivery log.
webhook_attempts = Table(
    "webhook_attempts",
    metadata,
    Column("seq", BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True),
    Column("delivery_id", String(32), ForeignKey("webhook_deliveries.id"), nullable=False, index=True),
    Column("attempted_at", TS, nullable=False),
    Column("status_code", Integer, nullable=True),  # None: no HTTP answer (refused, timeout, …)
    Column("error", String(500), nullable=True),
    Column("duration_ms", Integer, nullable=False),
    Column("succeeded", Boolean, nullable=False),
)

# --- trades (0009) --------------------------------------------------------
# One merchant trade, escrow (担保交易) or instant (即时到账); its status moves
# only through trustpay.trades.model's table, each change guarded by the old
# status in the UPDATE's WHERE.
trades = Table(
    "trades",
    metadata,
    Column("id", String(32), primary_key=True),  # trd_…: unguessable, it is the checkout link
    Column("merchant_id", String(32), ForeignKey("users.id"), nullable=False),
    Column("out_trade_no", String(64), nullable=False),  # the merchant's own order number
    # Who paid; set at payment, or at creation when the merchant names the buyer.
    Column("buyer_id", String(32), ForeignKey("users.id"), nullable=True),
    Column("mode", String(10), nullable=False),  # escrow | instant
    Column("status", String(32), nullable=False),
    Column("amount", Amount, nullable=False),
    Column("currency", String(3), nullable=False),
    Column("subject", String(256), nullable=False),
    Column("fee", Amount, nullable=False),  # fixed at creation from the merchant's plan
    Column("refunded_amount", Amount, nullable=False, server_default="0"),
    Column("dispute_status", String(10), nullable=False, server_default="none"),  # none | open | resolved
    Column("pay_within_minutes", Integer, nullable=False),
    Column("ship_within_hours", Integer, nullable=False),
    Column("confirm_within_hours", Integer, nullable=False),
    Column("pay_by", TS, nullable=False),
    Column("ship_by", TS, nullable=True),  # set when paid (escrow)
    Column("confirm_by", TS, nullable=True),  # set when shipped
    Column("carrier", String(64), nullable=True),
    Column("tracking_no", String(64), nullable=True),
    # sha256 of the creating request's business fields: the same out_trade_no sent
    # again with the same body is the same trade, with another body a conflict.
    Column("request_hash", String(64), nullable=False),
    Column("pay_entry_id", String(32), nullable=True),  # buyer → escrow (or → merchant, instant)
    # Where the escrowed money went: to the merchant (finish) or back to the buyer.
    Column("release_entry_id", String(32), nullable=True),
    Column("close_reason", String(20), nullable=True),  # merchant_closed | pay_timeout | ship_timeout
    Column("created_at", TS, nullable=False),
    Column("paid_at", TS, nullable=True),
    Column("shipped_at", TS, nullable=True),
    Column("finished_at", TS, nullable=True),
    Column("closed_at", TS, nullable=True),
    Column("updated_at", TS, nullable=False),
    UniqueConstraint("merchant_id", "out_trade_no", name="uq_trades_merchant_out_trade_no"),
    # 0014: risk velocity reads a buyer's last hour of payments (risk.service).
    Index("ix_trades_buyer_paid", "buyer_id", "paid_at"),
    CheckConstraint("amount > 0 AND fee >= 0 AND fee <= amount", name="amounts_valid"),
    CheckConstraint("refunded_amount >= 0 AND refunded_amount <= amount", name="refunds_within_amount"),
)

# --- settlement (merchants) ---------------------------------------------------
# One payout to a merchant's settlement card of the money its trades left in its
# pending-settlement account. ``open_key`` (merchant:currency:business date) is set
# while the batch is pending or succeeded and cleared when it fails, so a date is
# batched at most once unless its batch failed (then its trades may go again).
settlements = Table(
    "settlements",
    metadata,
    Column("id", String(32), primary_key=True),  # stl_…: also the bank's idempotency key
    Column("merchant_id", String(32), ForeignKey("users.id"), nullable=False),
    Column("currency", String(3), nullable=False),
    Column("business_date", String(10), nullable=False),  # the run's date, platform timezone
    Column("cutoff", TS, nullable=False),  # money that became settleable before this is in
    Column("status", String(10), nullable=False),  # pending | succeeded | failed
    Column("gross", Amount, nullable=False),  # what the buyers paid, less refunds
    Column("fee", Amount, nullable=False),
    Column("amount", Amount, nullable=False),  # gross − fee: what the card receives
    Column("trade_count", Integer, nullable=False),
    Column("card_id", String(32), nullable=False),
    Column("bank", String(32), nullable=False),
    Column("hold_id", String(32), nullable=False),  # pending settlement → bank clearing
    Column("bank_ref", String(64), nullable=True),
    Column("failure_reason", String(200), nullable=True),
    Column("open_key", String(80), nullable=True, unique=True),
    Column("created_at", TS, nullable=False),
    Column("completed_at", TS, nullable=True),
    Index("ix_settlements_merchant", "merchant_id", "id"),
    CheckConstraint("amount > 0 AND fee >= 0 AND gross = amount + fee", name="amounts_valid"),
)

# The trades in a batch. ``active_trade_id`` repeats trade_id while the batch is not
# failed: unique, so a trade is in at most one pending or paid batch.
settlement_items = Table(
    "settlement_items",
    metadata,
    Column("settlement_id", String(32), ForeignKey("settlements.id"), primary_key=True),
    Column("trade_id", String(32), ForeignKey("trades.id"), primary_key=True),
    Column("active_trade_id", String(32), nullable=True, unique=True),
    Column("out_trade_no", String(64), nullable=False),
    Column("settleable_at", TS, nullable=False),  # finished (escrow) or paid (instant)
    Column("amount", Amount, nullable=False),  # the trade's amount less refunds
    Column("fee", Amount, nullable=False),
    Column("net", Amount, nullable=False),
)

# "No settlement card" told to a merchant once per business date, not on every rerun.
settlement_notices = Table(
    "settlement_notices",
    metadata,
    Column("merchant_id", String(32), ForeignKey("users.id"), primary_key=True),
    Column("business_date", String(10), primary_key=True),
    Column("kind", String(20), primary_key=True),
    Column("created_at", TS, nullable=False),
)

# --- refunds (0011) -------------------------------------------------------
# Money going back from a paid trade: issued by its merchant (REFUND_SUCCESS at
# once) or asked for by its buyer (trustpay.trades.refund_model's machine). Each
# success adds to trades.refunded_amount in the same transaction, with the trade
# row locked and the UPDATE guarded by refunded_amount + amount <= trades.amount.
refunds = Table(
    "refunds",
    metadata,
    Column("id", String(32), primary_key=True),  # rf_…
    Column("trade_id", String(32), ForeignKey("trades.id"), nullable=False, index=True),
    Column("merchant_id", String(32), ForeignKey("users.id"), nullable=False),
    Column("buyer_id", String(32), ForeignKey("users.id"), nullable=False),
    Column("requested_by", String(10), nullable=False),  # merchant | buyer
    # Whose numbering out_refund_no is in: the merchant's for its refunds, the buyer's
    # for their requests (a buyer cannot take a number the merchant will use).
    Column("requester_id", String(32), nullable=False),
    Column("out_refund_no", String(64), nullable=False),
    Column("request_hash", String(64), nullable=False),  # same number, same body: the same refund
    Column("amount", Amount, nullable=False),
    Column("currency", String(3), nullable=False),
    Column("reason", String(256), nullable=False),
    Column("status", String(32), nullable=False),
    Column("fee_reversed", Amount, nullable=False, server_default="0"),  # instant trades: fee given back
    Column("return_carrier", String(64), nullable=True),
    Column("return_tracking_no", String(64), nullable=True),
    Column("answer", String(256), nullable=True),  # the merchant's words when rejecting or refusing goods
    Column("close_reason", String(24), nullable=True),
    Column("respond_by", TS, nullable=True),  # the running deadline while open
    Column("entry_id", String(32), nullable=True),  # the ledger entry that paid it
    Column("created_at", TS, nullable=False),
    Column("succeeded_at", TS, nullable=True),
    Column("closed_at", TS, nullable=True),
    Column("updated_at", TS, nullable=False),
    UniqueConstraint("requester_id", "out_refund_no", name="uq_refunds_requester_out_refund_no"),
    CheckConstraint("amount > 0 AND fee_reversed >= 0 AND fee_reversed <= amount", name="amounts_valid"),
)

# --- disputes (0012) ------------------------------------------------------
# Buyer protection (买家保障): one dispute per trade, opened by either side on a
# paid trade (a finished one only within the protection period). While open the
# trade's money is frozen; ops rules a split of ``amount`` (what was paid less what
# was refunded when it opened) into buyer_amount + seller_amount, in ONE ledger entry.
disputes = Table(
    "disputes",
    metadata,
    Column("id", String(32), primary_key=True),  # dp_…
    Column("trade_id", String(32), ForeignKey("trades.id"), nullable=False),
    Column("merchant_id", String(32), ForeignKey("users.id"), nullable=False),
    Column("buyer_id", String(32), ForeignKey("users.id"), nullable=False),
    Column("opened_by", String(10), nullable=False),  # buyer | merchant
    Column("reason", String(1000), nullable=False),
    Column("status", String(10), nullable=False),  # open | resolved
    Column("trade_status", String(32), nullable=False),  # the trade's status when it was opened
    Column("amount", Amount, nullable=False),  # the disputed amount
    Column("currency", String(3), nullable=False),
    # Finished/instant trades: the merchant's share held on its pending-settlement account.
    Column("hold_id", String(32), nullable=True),
    Column("buyer_amount", Amount, nullable=True),
    Column("seller_amount", Amount, nullable=True),
    Column("seller_fee", Amount, nullable=True),  # the fee charged on the seller's share
    Column("note", String(1000), nullable=True),
    Column("resolved_by", String(32), ForeignKey("users.id"), nullable=True),
    Column("entry_id", String(32), nullable=True),  # the ruling's ledger entry
    Column("created_at", TS, nullable=False),
    Column("resolved_at", TS, nullable=True),
    Column("updated_at", TS, nullable=False),
    # One dispute per trade, ever: a ruling is final.
    UniqueConstraint("trade_id", name="uq_disputes_trade_id"),
    Index("ix_disputes_status_created_at", "status", "created_at"),
    CheckConstraint("amount > 0", name="amount_positive"),
    CheckConstraint("buyer_amount IS NULL OR (buyer_amount >= 0 AND seller_amount >= 0 "
                    "AND buyer_amount + seller_amount = amount)", name="split_sums"),
)

# Evidence: words, a link, or a small file. Files are kept in the row (``content``):
# at most a few MB each, they then commit or roll back with the evidence row, are in
# every database backup, and no path on disk can be guessed, traversed or orphaned.
dispute_evidence = Table(
    "dispute_evidence",
    metadata,
    Column("id", String(32), primary_key=True),  # dpe_…
    Column("dispute_id", String(32), ForeignKey("disputes.id"), nullable=False),
    # 1, 2, 3… within the dispute (given under the trade's lock): the order it was given in.
    Column("position", Integer, nullable=False),
    Column("party", String(10), nullable=False),  # buyer | merchant
    Column("kind", String(10), nullable=False),  # text | url | file
    Column("text", String(4000), nullable=True),
    Column("url", String(2000), nullable=True),
    Column("file_name", String(200), nullable=True),
    Column("content_type", String(100), nullable=True),  # sniffed from the bytes
    Column("size", Integer, nullable=True),
    Column("sha256", String(64), nullable=True),
    Column("content", LargeBinary, nullable=True),
    Column("created_at", TS, nullable=False),
    UniqueConstraint("dispute_id", "position", name="uq_dispute_evidence_dispute_id_position"),
)

# --- collection codes and donation pages (0013) ------------------------------
# A merchant's static collection code (收款码, printed as a QR) and donation page
# (网上募捐). Paying either makes one instant trade for its merchant, paid at once;
# ``collection_payments`` ties that trade to the code or page with the payer's note.
# Totals are never stored: they are summed from the trades (paid, less refunds).
collection_codes = Table(
    "collection_codes",
    metadata,
    Column("id", String(32), primary_key=True),  # qrc_…
    Column("merchant_id", String(32), ForeignKey("users.id"), nullable=False),
    Column("label", String(80), nullable=False),
    Column("currency", String(3), nullable=False),
    Column("fixed_amount", Amount, nullable=True),  # None: the payer types the amount
    Column("status", String(10), nullable=False),  # active | disabled
    Column("created_at", TS, nullable=False),
    Column("disabled_at", TS, nullable=True),
    Index("ix_collection_codes_merchant_id", "merchant_id"),
    CheckConstraint("fixed_amount IS NULL OR fixed_amount > 0", name="fixed_amount_positive"),
)

donation_pages = Table(
    "donation_pages",
    metadata,
    Column("id", String(32), primary_key=True),  # don_…
    Column("merchant_id", String(32), ForeignKey("users.id"), nullable=False),
    Column("title", String(120), nullable=False),
    Column("story", String(4000), nullable=False),
    Column("currency", String(3), nullable=False),
    Column("goal", Amount, nullable=True),
    Column("suggested_amounts", String(200), nullable=False),  # JSON list of minor-unit ints
    Column("public", Boolean, nullable=False),  # show the total raised and the messages to everyone
    Column("status", String(10), nullable=False),  # active | disabled
    Column("created_at", TS, nullable=False),
    Column("disabled_at", TS, nullable=True),
    Index("ix_donation_pages_merchant_id", "merchant_id"),
    CheckConstraint("goal IS NULL OR goal > 0", name="goal_positive"),
)

collection_payments = Table(
    "collection_payments",
    metadata,
    Column("trade_id", String(32), ForeignKey("trades.id"), primary_key=True),
    Column("source_id", String(32), nullable=False),  # the qrc_ code or don_ page paid through
    Column("payer_id", String(32), ForeignKey("users.id"), nullable=False),
    Column("note", String(200), nullable=True),  # the payer's note / donation message
    Column("anonymous", Boolean, nullable=False, server_default="0"),
    Column("created_at", TS, nullable=False),
    Index("ix_collection_payments_source_id_created_at", "source_id", "created_at"),
)
