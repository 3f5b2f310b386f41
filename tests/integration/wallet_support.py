"""Shared set-up for the wallet tests: the real app (frozen clock, file sink), users
who can move money, wallets funded through the ledger, jobs run on demand."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
from tests.integration.identity_support import PASSWORD, UA, Env, bearer, make_env

from trustpay.jobs.runner import run_until_idle
from trustpay.ledger import EntryDraft, credit, debit
from trustpay.ledger.model import AccountKind
from trustpay.ledger.verify import verify
from trustpay.platform import outbox

PAY_PW = "246810"


@dataclass
class Wallet:
    id: str
    email: str
    token: str

    @property
    def auth(self) -> dict[str, str]:
        return bearer(self.token)


class WalletEnv:
    def __init__(self, env: Env) -> None:
        self.env = env
        self.client = env.client
        self.platform = env.platform
        self.clock = env.clock
        self.wallets: list[Wallet] = []

    def user(self, email: str, *, fund: int = 0, currency: str = "CNY", verify_email: bool = True,
             payment_password: str | None = PAY_PW, **signup: Any) -> Wallet:
        body = self.env.sign_up(email, **signup)
        token = self.env.token(email)
        if verify_email:
            code = self.env.last_code(email)
            r = self.client.post("/v1/users/me/verifications/confirm", json={"channel": "email", "code": code},
                                 headers=bearer(token))
            assert r.status_code == 204, r.text
        if payment_password:
            r = self.client.put("/v1/users/me/payment-password",
                                json={"password": PASSWORD, "payment_password": payment_password},
                                headers=bearer(token))
            assert r.status_code == 204, r.text
        if fund:
            self.fund(body["id"], fund, currency)
        wallet = Wallet(body["id"], email, token)
        self.wallets.append(wallet)
        return wallet

    def relogin(self, w: Wallet) -> None:
        """A fresh session (after the test clock has outrun the 12 h lifetime)."""
        w.token = self.env.token(w.email)

    def fund(self, user_id: str, amount: int, currency: str = "CNY") -> None:
        """Money in as if a top-up had cleared (a test-only source: an equity account)."""
        p = self.platform

        def work(conn: Any) -> None:
            src = p.book.open_account(conn, currency=currency, kind=AccountKind.EQUITY.value, owner_id="test_funding",
                                      allow_negative=True)
            dst = p.book.open_account(conn, currency=currency, kind=AccountKind.WALLET.value, owner_id=user_id)
            p.book.post(conn, EntryDraft((debit(src.id, amount, currency), credit(dst.id, amount, currency)),
                                         reference="test_funding"))
        p.db.run(work)

    def balance(self, w: Wallet, currency: str = "CNY") -> dict[str, int]:
        r = self.client.get("/v1/wallet", headers=w.auth)
        assert r.status_code == 200, r.text
        for b in r.json()["balances"]:
            if b["currency"] == currency:
                return {k: int(b[k]) for k in ("available", "held", "pending_in")}
        return {"available": 0, "held": 0, "pending_in": 0}

    def transfer(self, w: Wallet, to: str, amount: int, *, key: str | None = None, **extra: Any) -> httpx.Response:
        headers = dict(w.auth)
        if key:
            headers["Idempotency-Key"] = key
        body = {"to": to, "amount": amount, "currency": "CNY", "payment_password": PAY_PW, **extra}
        r: httpx.Response = self.client.post("/v1/transfers", json=body, headers=headers)
        return r

    def advance(self, seconds: float) -> None:
        """Move the platform clock and run what became due; sessions the jump
        outlived (15 min idle) are renewed so the test can go on asking."""
        self.clock.advance(seconds)
        run_until_idle(self.platform)
        if seconds >= 10 * 60:
            for w in self.wallets:
                self.relogin(w)

    def ledger_ok(self) -> None:
        with self.platform.db.transaction(write=False) as conn:
            report = verify(conn)
        assert report.ok, report


def make_wallet_env(db_url: str, tmp_path: Path, **settings: Any) -> Iterator[WalletEnv]:
    for env in make_env(db_url, tmp_path, **settings):
        yield WalletEnv(env)


__all__ = ["PAY_PW", "UA", "Wallet", "WalletEnv", "make_wallet_env"]


def another_write_during(w: WalletEnv, started: threading.Event, action: Callable[[], Any]) -> tuple[float, Any]:
    """Runs ``action`` in a thread; once it sets ``started`` (it is then in its slow
    part), times another grouped write. Returns that write's seconds and what
    ``action`` returned."""
    result: list[Any] = []
    worker = threading.Thread(target=lambda: result.append(action()))
    worker.start()
    assert started.wait(10)
    t = time.perf_counter()
    w.platform.db.run_grouped(lambda conn: outbox.emit(conn, "other.write", {}, now=w.platform.clock.now()))
    took = time.perf_counter() - t
    worker.join(30)
    return took, result[0] if result else None
