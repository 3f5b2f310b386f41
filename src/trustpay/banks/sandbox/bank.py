"""The sandbox bank's behaviour, independent of HTTP: cards, card accounts,
operations, settling, callbacks and statement files (outcome rules in :mod:`.rules`).

Like a real card bank it is asynchronous: an operation is accepted as
``pending`` and completed ``settle_seconds`` later (by the background settler,
or on the first poll after that), then announced by a signed callback to the
URL the platform gave when starting it.
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import logging
import os
import secrets
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

from trustpay.banks import cards
from trustpay.banks.connector import (
    CARD_REVOKED,
    SIGNATURE_HEADER,
    BankOperation,
    CardToken,
    OperationKind,
    OperationStatus,
    StatementLine,
)
from trustpay.banks.errors import BankReferenceConflict, BankRejected, UnknownBankOperation
from trustpay.banks.sandbox import rules
from trustpay.banks.sandbox.store import open_db
from trustpay.banks.sandbox.wire import callback_body
from trustpay.banks.signing import sign
from trustpay.banks.statement import to_csv
from trustpay.clock import Clock, SystemClock, rfc3339, to_utc

log = logging.getLogger("trustpay.banks.sandbox")

# POST the signed body to a URL; return the HTTP status (raise on network failure).
Deliver = Callable[[str, Mapping[str, str], bytes], int]

MAX_AMOUNT = 10_000_000_000
CALLBACK_ATTEMPTS = 8  # then the platform must poll or reconcile


@dataclass
class BankControl:
    """Knobs tests turn to make the bank misbehave (``POST /control``)."""

    fail: bool = False  # every API call answers HTTP 500 until switched off
    fail_next: int = 0  # the next N API calls answer HTTP 500
    latency_ms: int = 0  # every API call waits this long before answering


def http_deliver(url: str, headers: Mapping[str, str], body: bytes) -> int:
    import httpx

    return httpx.post(url, headers=dict(headers), content=body, timeout=5.0).status_code


def _ts(dt: datetime) -> str:
    return rfc3339(dt)


def _dt(text: str) -> datetime:
    return to_utc(datetime.fromisoformat(text.replace("Z", "+00:00")))


class SandboxBank:
    def __init__(
        self,
        data_dir: Path | str,
        *,
        secret: str,
        settle_seconds: float = 2.0,
        clock: Clock | None = None,
        deliver: Deliver | None = http_deliver,
        opening_balance: int = 100_000_000,
        wall_time: Callable[[], float] = time.time,
    ) -> None:
        self.data_dir = Path(data_dir)
        self.secret = secret
        self.settle_seconds = settle_seconds
        self.clock = clock or SystemClock()
        self.deliver = deliver
        self.opening_balance = opening_balance
        self.wall_time = wall_time
        self.control = BankControl()
        self._lock = threading.RLock()
        self._db = open_db(self.data_dir / "bank.db")
        self._key = self._load_key()
        self._stop: threading.Event | None = None
        self._thread: threading.Thread | None = None

    def __repr__(self) -> str:  # no secret, no key
        return f"SandboxBank(data_dir={str(self.data_dir)!r}, settle_seconds={self.settle_seconds})"

    # ----------------------------------------------------------------- storage
    def _load_key(self) -> bytes:
        """The bank's own key for hashing card numbers, made once per data dir.
        Written to a private temp file, then linked into place: a second process
        starting at the same moment sees either no key or the whole key."""
        path = self.data_dir / "bank.key"
        if not path.exists():
            tmp = path.with_name(f".bank.key.{os.getpid()}.{threading.get_ident()}")
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(fd, "w") as f:
                f.write(secrets.token_hex(32))
            with contextlib.suppress(FileExistsError):
                os.link(tmp, path)
            tmp.unlink()
        return bytes.fromhex(path.read_text().strip())

    @contextlib.contextmanager
    def _tx(self) -> Iterator[sqlite3.Connection]:
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                yield self._db
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")

    def close(self) -> None:
        self.stop_background()
        with self._lock:
            self._db.close()

    # ------------------------------------------------------------------- cards
    def tokenize(self, card_number: str, holder_name: str) -> CardToken:
        digits = cards.normalize_card_number(card_number)
        number_hash = hmac.new(self._key, digits.encode(), hashlib.sha256).hexdigest()
        last4, brand = cards.last4(digits), cards.brand_of(digits)
        del digits  # from here on only the hash and the last four digits exist
        holder = holder_name.strip()[:100]
        now = _ts(self.clock.now())
        with self._tx() as db:
            row = db.execute("SELECT token FROM cards WHERE number_hash = ?", (number_hash,)).fetchone()
            if row is not None:
                token = row["token"]
                db.execute("UPDATE cards SET revoked = 0, holder_name = ? WHERE token = ?", (holder, token))
            else:
                token = "tok_" + secrets.token_hex(12)
                db.execute(
                    "INSERT INTO cards (token, number_hash, last4, brand, holder_name, created_at)"
                    " VALUES (?,?,?,?,?,?)",
                    (token, number_hash, last4, brand, holder, now),
                )
        log.info("card tokenised token=%s last4=%s brand=%s", token, last4, brand)
        return CardToken(token=token, last4=last4, brand=brand)

    def revoke(self, token: str) -> None:
        with self._tx() as db:
            db.execute("UPDATE cards SET revoked = 1 WHERE token = ?", (token,))

    def balance(self, token: str, currency: str) -> int:
        with self._lock:
            card = self._db.execute("SELECT token FROM cards WHERE token = ?", (token,)).fetchone()
            if card is None:
                raise BankRejected("Unknown card token.", param="token")
            row = self._db.execute(
                "SELECT balance FROM accounts WHERE token = ? AND currency = ?", (token, currency)
            ).fetchone()
        return int(row["balance"]) if row is not None else self.opening_balance

    # -------------------------------------------------------------- operations
    def start(
        self,
        kind: OperationKind,
        token: str,
        amount: int,
        currency: str,
        reference: str,
        callback_url: str | None = None,
    ) -> tuple[BankOperation, bool]:
        """Accept an operation (``pending``); returns it and whether it is new.
        The same reference with the same parameters returns the first one."""
        if isinstance(amount, bool) or not isinstance(amount, int) or not 0 < amount <= MAX_AMOUNT:
            raise BankRejected("amount must be a positive whole number of minor units.", param="amount")
        if not (isinstance(currency, str) and len(currency) == 3 and currency.isascii() and currency.isupper()):
            raise BankRejected("currency must be an ISO 4217 code.", param="currency")
        if not reference or len(reference) > 100:
            raise BankRejected("reference must be 1 to 100 characters.", param="reference")
        now = self.clock.now()
        with self._tx() as db:
            existing = db.execute("SELECT * FROM operations WHERE reference = ?", (reference,)).fetchone()
            if existing is not None:
                same = (existing["kind"], existing["token"], existing["amount"], existing["currency"]) == (
                    kind.value, token, amount, currency)
                if not same:
                    raise BankReferenceConflict(
                        f"Reference {reference} was already used for a different operation.", param="reference"
                    )
                return self._public(existing), False
            card = db.execute("SELECT last4, revoked FROM cards WHERE token = ?", (token,)).fetchone()
            if card is None:
                raise BankRejected("Unknown card token.", param="token")
            if card["revoked"]:
                raise BankRejected("The card token was revoked.", param="token", code=CARD_REVOKED)
            bank_ref = "bop_" + format(int(now.timestamp() * 1000), "012x") + secrets.token_hex(6)
            due = now + timedelta(seconds=self.settle_seconds)
            db.execute(
                "INSERT INTO operations (bank_ref, reference, kind, token, amount, currency, status, answers,"
                " callback_url, created_at, due_at) VALUES (?,?,?,?,?,?,?,?,?,?,?)",
                (bank_ref, reference, kind.value, token, amount, currency, OperationStatus.PENDING.value,
                 int(rules.answers(card["last4"])), callback_url, _ts(now), _ts(due)),
            )
            row = db.execute("SELECT * FROM operations WHERE bank_ref = ?", (bank_ref,)).fetchone()
        log.info("operation accepted bank_ref=%s reference=%s kind=%s amount=%s %s",
                 bank_ref, reference, kind.value, amount, currency)
        return self._public(row), True

    def get(self, reference: str) -> BankOperation:
        """The operation as the bank's API reports it (settling it first if it is due)."""
        self.settle_due()
        with self._lock:
            row = self._db.execute("SELECT * FROM operations WHERE reference = ?", (reference,)).fetchone()
        if row is None:
            raise UnknownBankOperation(f"The bank has no operation {reference[:100]}.")
        return self._public(row)

    def true_status(self, reference: str) -> OperationStatus:
        """What the bank really did (for tests and the statement), answered or not."""
        with self._lock:
            row = self._db.execute("SELECT status FROM operations WHERE reference = ?", (reference,)).fetchone()
        if row is None:
            raise UnknownBankOperation(f"The bank has no operation {reference[:100]}.")
        return OperationStatus(row["status"])

    @staticmethod
    def _operation(row: sqlite3.Row) -> BankOperation:
        return BankOperation(
            bank_ref=row["bank_ref"],
            reference=row["reference"],
            kind=OperationKind(row["kind"]),
            status=OperationStatus(row["status"]),
            amount=int(row["amount"]),
            currency=row["currency"],
            failure_reason=row["failure_reason"],
            completed_at=_dt(row["completed_at"]) if row["completed_at"] else None,
        )

    def _public(self, row: sqlite3.Row) -> BankOperation:
        op = self._operation(row)
        if row["answers"]:
            return op
        # The no-answer card: whatever happened, the API only ever says pending.
        return BankOperation(op.bank_ref, op.reference, op.kind, OperationStatus.PENDING, op.amount, op.currency)

    # ---------------------------------------------------------------- settling
    def settle_due(self) -> int:
        """Complete every pending operation whose settle time has come; queue
        callbacks; rewrite the statement files of the dates touched."""
        now = self.clock.now()
        days: set[date] = set()
        done = 0
        with self._tx() as db:
            due = db.execute(
                "SELECT o.*, c.last4, c.revoked FROM operations o JOIN cards c ON c.token = o.token"
                " WHERE o.status = 'pending' AND o.due_at <= ? ORDER BY o.due_at, o.rowid",
                (_ts(now),),
            ).fetchall()
            for op in due:
                status, reason = self._complete(db, op)
                day = now.astimezone(UTC).date()
                db.execute(
                    "UPDATE operations SET status = ?, failure_reason = ?, completed_at = ?, business_date = ?"
                    " WHERE bank_ref = ?",
                    (status.value, reason, _ts(now), day.isoformat(), op["bank_ref"]),
                )
                if op["answers"] and op["callback_url"]:
                    row = db.execute("SELECT * FROM operations WHERE bank_ref = ?", (op["bank_ref"],)).fetchone()
                    db.execute(
                        "INSERT INTO callbacks (bank_ref, url, body, next_at) VALUES (?,?,?,?)",
                        (op["bank_ref"], op["callback_url"], callback_body(self._operation(row)), _ts(now)),
                    )
                days.add(day)
                done += 1
        for day in days:
            self.write_statement(day)
        if done:
            log.info("settled %d operations", done)
        return done

    def _complete(self, db: sqlite3.Connection, op: sqlite3.Row) -> tuple[OperationStatus, str | None]:
        kind, token, currency, amount = OperationKind(op["kind"]), op["token"], op["currency"], int(op["amount"])
        db.execute(
            "INSERT OR IGNORE INTO accounts (token, currency, balance) VALUES (?,?,?)",
            (token, currency, self.opening_balance),
        )
        balance = db.execute(
            "SELECT balance FROM accounts WHERE token = ? AND currency = ?", (token, currency)
        ).fetchone()["balance"]
        status, reason = rules.outcome(kind, last4=op["last4"], revoked=bool(op["revoked"]),
                                       balance=int(balance), amount=amount)
        if status is OperationStatus.SUCCEEDED:
            db.execute(
                "UPDATE accounts SET balance = balance + ? WHERE token = ? AND currency = ?",
                (rules.balance_change(kind, amount), token, currency),
            )
        return status, reason

    # --------------------------------------------------------------- callbacks
    def deliver_callbacks(self) -> int:
        """Try every callback that is due; a non-2xx or a network failure is
        retried with doubling back-off, up to ``CALLBACK_ATTEMPTS`` attempts.
        The bank's lock is NOT held while posting: the receiver may call back in."""
        if self.deliver is None:
            return 0
        now = self.clock.now()
        with self._lock:
            due = self._db.execute(
                "SELECT bank_ref, url, body, attempts FROM callbacks"
                " WHERE delivered_at IS NULL AND attempts < ? AND next_at <= ? ORDER BY next_at",
                (CALLBACK_ATTEMPTS, _ts(now)),
            ).fetchall()
        delivered = 0
        for cb in due:
            body = bytes(cb["body"])
            headers = {
                "Content-Type": "application/json",
                SIGNATURE_HEADER: sign(self.secret, body, int(self.wall_time())),
            }
            try:
                status: int | None = self.deliver(cb["url"], headers, body)
            except Exception as exc:  # network trouble is the receiver's problem; retry later
                log.warning("callback to %s failed: %s", cb["url"], type(exc).__name__)
                status = None
            ok = status is not None and 200 <= status < 300
            attempts = cb["attempts"] + 1
            with self._tx() as db:
                db.execute(
                    "UPDATE callbacks SET attempts = ?, last_status = ?, delivered_at = ?, next_at = ?"
                    " WHERE bank_ref = ?",
                    (attempts, status, _ts(now) if ok else None,
                     _ts(now + timedelta(seconds=2 ** attempts)), cb["bank_ref"]),
                )
            delivered += ok
        return delivered

    def callbacks_for(self, reference: str) -> list[dict[str, object]]:
        """Delivery state of an operation's callback (tests, control endpoint)."""
        with self._lock:
            rows = self._db.execute(
                "SELECT cb.* FROM callbacks cb JOIN operations o ON o.bank_ref = cb.bank_ref WHERE o.reference = ?",
                (reference,),
            ).fetchall()
        return [
            {"url": r["url"], "attempts": r["attempts"], "delivered": r["delivered_at"] is not None,
             "last_status": r["last_status"]}
            for r in rows
        ]

    # --------------------------------------------------------------- statement
    def statement_lines(self, business_date: date) -> list[StatementLine]:
        with self._lock:
            rows = self._db.execute(
                "SELECT * FROM operations WHERE business_date = ? ORDER BY completed_at, rowid",
                (business_date.isoformat(),),
            ).fetchall()
        return [
            StatementLine(
                business_date=business_date,
                bank_ref=r["bank_ref"],
                reference=r["reference"],
                kind=OperationKind(r["kind"]),
                amount=int(r["amount"]),
                currency=r["currency"],
                status=OperationStatus(r["status"]),
                completed_at=_dt(r["completed_at"]),
            )
            for r in rows
        ]

    def statement_path(self, business_date: date) -> Path:
        return self.data_dir / "statements" / f"{business_date.isoformat()}.csv"

    def write_statement(self, business_date: date) -> Path:
        """(Re)write the day's file atomically: readers see the old or the new file, never half."""
        path = self.statement_path(business_date)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.{threading.get_ident()}.tmp")
        tmp.write_text(to_csv(self.statement_lines(business_date)), encoding="utf-8")
        os.replace(tmp, path)
        return path

    # -------------------------------------------------------------- background
    def tick(self) -> None:
        self.settle_due()
        self.deliver_callbacks()

    def start_background(self, interval: float = 0.2) -> None:
        """Settle and call back on a daemon thread (the bank's own back office)."""
        if self._thread is not None:
            return
        stop = threading.Event()

        def run() -> None:
            while not stop.wait(interval):
                try:
                    self.tick()
                except Exception:
                    log.exception("sandbox bank settler tick failed")

        self._stop = stop
        self._thread = threading.Thread(target=run, name="sandbox-bank-settler", daemon=True)
        self._thread.start()

    def stop_background(self) -> None:
        if self._thread is None or self._stop is None:
            return
        self._stop.set()
        self._thread.join(timeout=5)
        self._thread = self._stop = None
