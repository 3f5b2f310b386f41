"""``trustpay sandbox-bank`` as its own process, spoken to over real HTTP: it
settles on its own (background back office), posts signed callbacks to the
platform's URL, and serves its statement."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import TypeVar

import httpx
import pytest

from trustpay.banks.cards import sample_card_number
from trustpay.banks.client import SandboxBankClient
from trustpay.banks.connector import OperationStatus

SECRET = "process-test-secret"
WAIT = 20.0  # seconds: an upper bound, the loops below return as soon as the thing happened
STARTUP = 60.0  # a cold start imports the whole app; shared test machines are slow
T = TypeVar("T")


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_for(what: str, probe: Callable[[], T | None], timeout: float = WAIT) -> T:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = probe()
        if value is not None:
            return value
        time.sleep(0.05)
    raise AssertionError(f"gave up waiting for {what} after {timeout} s")


class Receiver(ThreadingHTTPServer):
    """The platform's callback endpoint: keeps what it was sent."""

    def __init__(self) -> None:
        self.calls: list[tuple[dict[str, str], bytes]] = []

        class Handler(BaseHTTPRequestHandler):
            def do_POST(handler) -> None:
                body = handler.rfile.read(int(handler.headers.get("Content-Length", 0)))
                self.calls.append((dict(handler.headers.items()), body))
                handler.send_response(200)
                handler.end_headers()

            def log_message(handler, *_: object) -> None:
                pass

        super().__init__(("127.0.0.1", 0), Handler)


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    server = Receiver()
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


@pytest.fixture
def bank_process(tmp_path: Path) -> Iterator[tuple[str, Path, subprocess.Popen[bytes]]]:
    port = free_port()
    data = tmp_path / "bank-data"
    script = Path(sys.executable).with_name("trustpay")
    command = [str(script)] if script.exists() else [sys.executable, "-m", "trustpay.cli"]
    env = {**os.environ, "TRUSTPAY_BANK_SANDBOX_SECRET": SECRET}
    log = (tmp_path / "bank.log").open("wb")
    proc = subprocess.Popen(
        [*command, "sandbox-bank", "--host", "127.0.0.1", "--port", str(port), "--data", str(data),
         "--settle-seconds", "0.3"],
        env=env, cwd=tmp_path, stdout=log, stderr=subprocess.STDOUT,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        def up() -> bool | None:
            if proc.poll() is not None:
                raise AssertionError(f"sandbox bank exited: {(tmp_path / 'bank.log').read_text()}")
            try:
                return httpx.get(base + "/healthz", timeout=1).status_code == 200 or None
            except httpx.TransportError:
                return None

        wait_for("the sandbox bank to listen", up, STARTUP)
        yield base, data, proc
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)
        log.close()


@pytest.mark.slow
def test_the_bank_process_settles_calls_back_and_writes_its_statement(
    bank_process: tuple[str, Path, subprocess.Popen[bytes]], receiver: Receiver
) -> None:
    base, data, _ = bank_process
    callback_url = f"http://127.0.0.1:{receiver.server_address[1]}/v1/bank-callbacks/sandbox"
    client = SandboxBankClient(base, SECRET, callback_url=callback_url, timeout=5)
    card = client.tokenize_card(sample_card_number("4242"), "Li Lei")
    declined = client.tokenize_card(sample_card_number("0002"), "Han Meimei")

    debit = client.start_debit(card.token, 1_000, "CNY", "top_proc")
    assert debit.status is OperationStatus.PENDING
    client.start_debit(declined.token, 2_000, "CNY", "top_proc_declined")

    # Nobody polls: the bank's own back office settles and calls back.
    wait_for("two callbacks", lambda: True if len(receiver.calls) >= 2 else None)
    outcomes = {cb.reference: cb for cb in (client.verify_callback(h, b) for h, b in receiver.calls)}
    assert outcomes["top_proc"].status is OperationStatus.SUCCEEDED
    assert outcomes["top_proc"].bank_ref == debit.bank_ref
    assert outcomes["top_proc_declined"].status is OperationStatus.FAILED
    assert outcomes["top_proc_declined"].failure_reason == "card_declined"
    assert client.get_operation("top_proc").status is OperationStatus.SUCCEEDED

    for reference, status in (("top_proc", "succeeded"), ("top_proc_declined", "failed")):
        completed = outcomes[reference].completed_at
        assert completed is not None and abs((datetime.now(UTC) - completed).total_seconds()) < 2 * WAIT
        today = completed.date()
        assert (reference, status) in [(ln.reference, ln.status.value) for ln in client.statement(today)]
    assert (data / "statements" / f"{today.isoformat()}.csv").exists()
    assert (data / "bank.db").exists()
    client.close()


@pytest.mark.slow
def test_trustpay_serve_has_the_bank_mounted_in_process(tmp_path: Path) -> None:
    port = free_port()
    script = Path(sys.executable).with_name("trustpay")
    command = [str(script)] if script.exists() else [sys.executable, "-m", "trustpay.cli"]
    env = {**os.environ, "TRUSTPAY_DATABASE_URL": f"sqlite:///{tmp_path / 'platform.db'}",
           "TRUSTPAY_BANK_SANDBOX_SECRET": SECRET, "TRUSTPAY_BANK_SANDBOX_SETTLE_SECONDS": "0"}
    env.pop("TRUSTPAY_BANK_SANDBOX_URL", None)
    env.pop("TRUSTPAY_BANK_SANDBOX_DATA_DIR", None)  # the default: ./var/sandbox-bank under the cwd
    subprocess.run([*command, "migrate"], env=env, cwd=tmp_path, check=True, capture_output=True, timeout=120)
    log = (tmp_path / "serve.log").open("wb")
    proc = subprocess.Popen([*command, "serve", "--host", "127.0.0.1", "--port", str(port)],
                            env=env, cwd=tmp_path, stdout=log, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}/sandbox-bank"
    try:
        def up() -> bool | None:
            if proc.poll() is not None:
                raise AssertionError(f"serve exited: {(tmp_path / 'serve.log').read_text()}")
            try:
                return httpx.get(base + "/healthz", timeout=1).status_code == 200 or None
            except httpx.TransportError:
                return None

        wait_for("trustpay serve to listen", up, STARTUP)
        client = SandboxBankClient(base, SECRET, timeout=5)
        card = client.tokenize_card(sample_card_number("4242"), "Li Lei")
        client.start_payout(card.token, 100, "CNY", "wd_serve")
        done = wait_for("the payout to settle", lambda: (
            op if (op := client.get_operation("wd_serve")).status is OperationStatus.SUCCEEDED else None))
        assert done.completed_at is not None
        # The bank keeps its own file under the server's working directory, not in the platform database.
        assert (tmp_path / "var" / "sandbox-bank" / "bank.db").exists()
        client.close()
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)
        log.close()
