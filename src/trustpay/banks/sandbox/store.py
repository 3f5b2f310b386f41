"""The sandbox bank's own storage: one SQLite file under its data directory
(never the platform database). Stdlib ``sqlite3``; the bank serialises its
writers with one lock, which is plenty for a test bank."""

from __future__ import annotations

import sqlite3
from pathlib import Path

SCHEMA = """
CREATE TABLE IF NOT EXISTS cards (
    token        TEXT PRIMARY KEY,
    number_hash  TEXT NOT NULL UNIQUE,   -- HMAC-SHA256(bank key, number): the number itself is never kept
    last4        TEXT NOT NULL,
    brand        TEXT NOT NULL,
    holder_name  TEXT NOT NULL,
    revoked      INTEGER NOT NULL DEFAULT 0,
    created_at   TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS accounts (
    token     TEXT NOT NULL REFERENCES cards(token),
    currency  TEXT NOT NULL,
    balance   INTEGER NOT NULL,
    PRIMARY KEY (token, currency)
);
CREATE TABLE IF NOT EXISTS operations (
    bank_ref        TEXT PRIMARY KEY,
    reference       TEXT NOT NULL UNIQUE,     -- the platform's id: the idempotency key
    kind            TEXT NOT NULL,
    token           TEXT NOT NULL REFERENCES cards(token),
    amount          INTEGER NOT NULL CHECK (amount > 0),
    currency        TEXT NOT NULL,
    status          TEXT NOT NULL,            -- the truth: pending / succeeded / failed
    failure_reason  TEXT,
    answers         INTEGER NOT NULL,         -- 0: the bank never answers (test card 0028)
    callback_url    TEXT,
    created_at      TEXT NOT NULL,
    due_at          TEXT NOT NULL,
    completed_at    TEXT,
    business_date   TEXT
);
CREATE INDEX IF NOT EXISTS operations_due ON operations (status, due_at);
CREATE INDEX IF NOT EXISTS operations_day ON operations (business_date, completed_at);
CREATE TABLE IF NOT EXISTS callbacks (
    bank_ref      TEXT PRIMARY KEY REFERENCES operations(bank_ref),
    url           TEXT NOT NULL,
    body          BLOB NOT NULL,
    attempts      INTEGER NOT NULL DEFAULT 0,
    next_at       TEXT NOT NULL,
    delivered_at  TEXT,
    last_status   INTEGER
);
"""


def open_db(path: Path) -> sqlite3.Connection:
    path.parent.mkdir(parents=True, exist_ok=True)
    conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False, timeout=10)
    conn.row_factory = sqlite3.Row
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=FULL")
    conn.execute("PRAGMA foreign_keys=ON")
    conn.executescript(SCHEMA)
    return conn
