"""Wallet load over real HTTP, shared by the bank test, the SIGKILL crash test and
``bench/api.py``: a ``trustpay serve`` process that can be killed and restarted
on the same database and port, users who can move money without a payment
password (免密), funding through the sandbox bank, and one-snapshot reads of
every wallet balance straight from the database.

Why the database and not ``GET /v1/wallet``: each GET is its own transaction,
so summing K of them mixes K moments and a transfer that commits between two
reads is counted twice or not at all. One ``SELECT`` over ``ledger_accounts``
is one snapshot on both engines (SQLite: one read transaction in WAL;
PostgreSQL: one statement's snapshot), which is what a "read of all balances"
needs. The per-user GETs are still exercised, and checked one by one.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import create_engine, text
from sqlalchemy.engine import Engine

from tests.e2e.conftest import _free_port, _trustpay_command

PASSWORD = "correct horse 42 battery"
PAY_PW = "246810"
CARD = "4111111111111111"
UA = "wallet-load/1.0"
CURRENCY = "CNY"
# After a SIGKILL an idempotency claim may be left ``in_progress`` with a
# 2-minute lease (platform/idempotency.CLAIM_LEASE); moving the test clock past
# it lets the retry take the key over instead of waiting two real minutes.
LEASE_SKIP_SECONDS = 121.0
# A cold start imports the whole app; on a loaded 2-core machine that alone has
# taken 25 s, so the bound is generous (a server that never comes up still fails).
STARTUP_TIMEOUT = 120.0


@dataclass
class User:
    id: str
    email: str
    token: str

    @property
    def auth(self) -> dict[str, str]:
        return {"authorization": f"Bearer {self.token}", "user-agent": UA}


class WalletServer:
    """``trustpay serve`` in a subprocess on one database; ``kill`` is SIGKILL, ``start``
    brings it back on the same port."""

    def __init__(self, database_url: str, tmp: Path, *, undo_seconds: int = 10,
                 extra_env: dict[str, str] | None = None) -> None:
        self.database_url = database_url
        self.tmp = tmp
        self.notify_file = tmp / "notify.jsonl"
        self.log_file = tmp / "server.log"
        self.port = _free_port()
        self.base_url = f"http://127.0.0.1:{self.port}"
        self.env = {
            **os.environ,
            "TRUSTPAY_DATABASE_URL": database_url,
            "TRUSTPAY_TEST_CLOCK": "1",
            "TRUSTPAY_NOTIFY_SINK": f"file:{self.notify_file}",
            "TRUSTPAY_TIER_LIMITS": "off",
            "TRUSTPAY_RISK_RULES": "off",
            "TRUSTPAY_TRANSFER_UNDO_SECONDS": str(undo_seconds),
            "TRUSTPAY_BANK_SANDBOX_SETTLE_SECONDS": "0",
            "TRUSTPAY_BANK_SANDBOX_DATA_DIR": str(tmp / "bank"),
            "TRUSTPAY_WORKER_INTERVAL": "0.2",
            "PYTHONUNBUFFERED": "1",
            **(extra_env or {}),
        }
        self.process: subprocess.Popen[bytes] | None = None
        self.starts = 0

    def cli(self, *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
        return subprocess.run([*_trustpay_command(), *args], env=self.env, cwd=self.tmp, capture_output=True,
                              text=True, timeout=timeout)

    def start(self) -> None:
        assert self.process is None or self.process.poll() is not None, "already running"
        with self.log_file.open("ab") as log:
            self.process = subprocess.Popen(
                [*_trustpay_command(), "serve", "--host", "127.0.0.1", "--port", str(self.port)],
                env=self.env, cwd=self.tmp, stdout=log, stderr=subprocess.STDOUT)
        self.starts += 1
        deadline = time.monotonic() + STARTUP_TIMEOUT
        while time.monotonic() < deadline:
            assert self.process.poll() is None, f"trustpay serve exited: {self.log_file.read_text(errors='replace')}"
            try:
                if httpx.get(self.base_url + "/healthz", timeout=2.0).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.1)
        raise AssertionError(f"trustpay serve not healthy after {STARTUP_TIMEOUT}s: "
                             f"{self.log_file.read_text(errors='replace')}")

    def kill(self) -> None:
        """SIGKILL: no shutdown hooks, no flush, transactions cut wherever they were."""
        assert self.process is not None
        os.kill(self.process.pid, signal.SIGKILL)
        self.process.wait(timeout=10)

    def stop(self) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        self.process.terminate()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout=10)

    def advance_clock(self, seconds: float) -> None:
        r = httpx.post(self.base_url + "/v1/test_clock/advance", json={"seconds": seconds}, timeout=180)
        assert r.status_code == 200, r.text

    def last_code(self, email: str) -> str:
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            if self.notify_file.exists():
                codes = [n["code"] for n in map(json.loads, self.notify_file.read_text("utf-8").splitlines())
                         if n.get("to") == email and "code" in n]
                if codes:
                    return str(codes[-1])
            time.sleep(0.05)
        raise AssertionError(f"no code was sent to {email}")


def _ok(r: httpx.Response, status: int = 200) -> Any:
    assert r.status_code == status, f"{r.request.method} {r.request.url.path}: {r.status_code} {r.text}"
    return r.json() if r.content else None


def make_user(server: WalletServer, client: httpx.Client, email: str, *, password_free_cap: int) -> User:
    """Signed up, e-mail verified, payment password set, 免密 up to ``password_free_cap``."""
    body = _ok(client.post("/v1/users", json={"email": email, "password": PASSWORD, "name": "Load"},
                           headers={"user-agent": UA}), 201)
    token = _ok(client.post("/v1/sessions", json={"email": email, "password": PASSWORD},
                            headers={"user-agent": UA}), 201)["token"]
    user = User(body["id"], email, token)
    _ok(client.post("/v1/users/me/verifications/confirm",
                    json={"channel": "email", "code": server.last_code(email)}, headers=user.auth), 204)
    _ok(client.put("/v1/users/me/payment-password", json={"password": PASSWORD, "payment_password": PAY_PW},
                   headers=user.auth), 204)
    _ok(client.put("/v1/wallet/preferences", json={"password_free_cap": password_free_cap, "daily_cap": None,
                                                   "payment_password": PAY_PW}, headers=user.auth))
    return user


def make_merchant(client: httpx.Client, email: str) -> tuple[User, str]:
    """A merchant user and one of its secret API keys (``sk_…``)."""
    body = _ok(client.post("/v1/users", json={"email": email, "password": PASSWORD, "name": "Load shop",
                                              "kind": "merchant"}, headers={"user-agent": UA}), 201)
    token = _ok(client.post("/v1/sessions", json={"email": email, "password": PASSWORD},
                            headers={"user-agent": UA}), 201)["token"]
    user = User(body["id"], email, token)
    key = _ok(client.post("/v1/merchant/api-keys", json={"label": "load"}, headers=user.auth), 201)["secret"]
    return user, str(key)


def balance(client: httpx.Client, user: User) -> dict[str, int]:
    for b in _ok(client.get("/v1/wallet", headers=user.auth))["balances"]:
        if b["currency"] == CURRENCY:
            return {k: int(b[k]) for k in ("available", "held", "pending_in")}
    return {"available": 0, "held": 0, "pending_in": 0}


def fund(client: httpx.Client, user: User, amount: int, *, timeout: float = 30) -> None:
    """Top up from a bound sandbox card and wait until the bank has settled it."""
    before = balance(client, user)["available"]
    card = _ok(client.post("/v1/bank-cards", json={"bank": "sandbox", "card_number": CARD, "holder_name": "Load"},
                           headers=user.auth), 201)["id"]
    _ok(client.post("/v1/topups", json={"card": card, "amount": amount, "currency": CURRENCY},
                    headers=user.auth), 201)
    deadline = time.monotonic() + timeout
    while balance(client, user)["available"] < before + amount:
        assert time.monotonic() < deadline, f"top-up of {amount} for {user.email} not settled in {timeout}s"
        time.sleep(0.1)


def transfer_body(to: str, amount: int, memo: str = "") -> dict[str, Any]:
    return {"to": to, "amount": amount, "currency": CURRENCY, "memo": memo}


# ------------------------------------------------------------------ direct reads
def engine_for(database_url: str) -> Engine:
    return create_engine(database_url, pool_size=2, max_overflow=0)


@dataclass(frozen=True)
class Snapshot:
    """Every wallet's stored balance, pending_out (held) and pending_in, at one instant."""
    wallets: dict[str, tuple[int, int, int]]

    @property
    def total(self) -> int:
        """Money in wallets: available + held = the posted balance. ``pending_in``
        is the same held money seen from the recipient's side, so adding it too
        would count every in-flight transfer twice."""
        return sum(b for b, _, _ in self.wallets.values())

    @property
    def held(self) -> int:
        return sum(h for _, h, _ in self.wallets.values())

    @property
    def pending_in(self) -> int:
        return sum(i for _, _, i in self.wallets.values())

    def negative(self) -> dict[str, int]:
        """Wallets whose available balance (balance − held) is below zero."""
        return {o: b - h for o, (b, h, _) in self.wallets.items() if b - h < 0}


SNAPSHOT_SQL = text("SELECT owner_id, balance, pending_out, pending_in FROM ledger_accounts "
                    "WHERE kind = 'wallet' AND currency = :ccy")


# Where money can be once trades are in the mix: wallets, escrow, merchants' pending
# settlement and the fee account; and what the open escrow trades say escrow holds.
# One statement, so one snapshot on both engines.
MONEY_SQL = text(
    "SELECT (SELECT COALESCE(SUM(balance), 0) FROM ledger_accounts WHERE currency = :ccy AND kind IN "
    "  ('wallet', 'escrow', 'settlement_pending', 'fee_revenue')), "
    " (SELECT COALESCE(SUM(balance), 0) FROM ledger_accounts WHERE currency = :ccy AND kind = 'escrow'), "
    " (SELECT COALESCE(SUM(amount - refunded_amount), 0) FROM trades WHERE currency = :ccy AND mode = 'escrow' "
    "  AND status IN ('WAIT_SELLER_SEND_GOODS', 'WAIT_BUYER_CONFIRM_GOODS'))")


def money_snapshot(engine: Engine) -> tuple[int, int, int]:
    """(all the money, what escrow holds, what the open escrow trades paid in), at one instant."""
    with engine.connect() as conn:
        row = conn.execute(MONEY_SQL, {"ccy": CURRENCY}).one()
    return int(row[0]), int(row[1]), int(row[2])


def snapshot(engine: Engine) -> Snapshot:
    with engine.connect() as conn:
        rows = conn.execute(SNAPSHOT_SQL, {"ccy": CURRENCY}).all()
    return Snapshot({str(r[0]): (int(r[1]), int(r[2]), int(r[3])) for r in rows})
