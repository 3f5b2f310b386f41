"""End-to-end fixtures: the real ``trustpay serve`` in a subprocess, and headless Chromium.

The server runs on a fresh, migrated SQLite database in a temporary directory,
with the test clock on, private webhook URLs allowed and notifications written
to a JSON-lines file, exactly as outside tests drive it.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from playwright.sync_api import Browser, BrowserContext, sync_playwright

ROOT = Path(__file__).resolve().parents[2]
SCREENSHOTS = ROOT / "test-artifacts" / "screenshots"
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]
# A cold start imports the whole app; with several test sessions on 2 cores that alone has
# taken over 30 s (see wallet_load.STARTUP_TIMEOUT): generous, a server that never comes up still fails.
STARTUP_TIMEOUT = 120.0
SHUTDOWN_TIMEOUT = 10.0


@dataclass(frozen=True)
class Server:
    base_url: str
    env: dict[str, str]
    tmp: Path
    database_url: str
    notify_file: Path
    log_file: Path
    process: subprocess.Popen[bytes]

    def url(self, path: str) -> str:
        return self.base_url + path

    def log(self) -> str:
        return self.log_file.read_text(errors="replace") if self.log_file.exists() else ""


def _trustpay_command() -> list[str]:
    script = Path(sys.executable).with_name("trustpay")
    return [str(script)] if script.exists() else [sys.executable, "-m", "trustpay.cli"]


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def _wait_healthy(base_url: str, process: subprocess.Popen[bytes], log_file: Path) -> None:
    deadline = time.monotonic() + STARTUP_TIMEOUT
    last_error = "no answer yet"
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"trustpay serve exited with {process.returncode}:\n"
                               f"{log_file.read_text(errors='replace')}")
        try:
            r = httpx.get(base_url + "/healthz", timeout=2.0)
            if r.status_code == 200:
                return
            last_error = f"HTTP {r.status_code}"
        except httpx.TransportError as exc:
            last_error = repr(exc)
        time.sleep(0.1)
    raise RuntimeError(f"trustpay serve not healthy after {STARTUP_TIMEOUT}s ({last_error}):\n"
                       f"{log_file.read_text(errors='replace')}")


def _stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is not None:
        return
    process.terminate()
    try:
        process.wait(timeout=SHUTDOWN_TIMEOUT)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(timeout=SHUTDOWN_TIMEOUT)


@pytest.fixture(scope="session")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    with running_server(tmp_path_factory.mktemp("e2e-server")) as started:
        yield started


@contextmanager
def running_server(tmp: Path) -> Iterator[Server]:
    """A migrated, healthy ``trustpay serve`` on its own database under ``tmp``; for a test
    that needs a server of its own (e.g. one whose test clock nobody has moved)."""
    database_url = f"sqlite:///{tmp / 'trustpay.db'}"
    notify_file = tmp / "notify.jsonl"
    log_file = tmp / "server.log"
    env = {
        **os.environ,
        "TRUSTPAY_DATABASE_URL": database_url,
        "TRUSTPAY_TEST_CLOCK": "1",
        "TRUSTPAY_WEBHOOK_ALLOW_PRIVATE": "1",
        "TRUSTPAY_NOTIFY_SINK": f"file:{notify_file}",
        "TRUSTPAY_BANK_SANDBOX_DATA_DIR": str(tmp / "bank"),  # this server's own bank
        "PYTHONUNBUFFERED": "1",
    }
    command = _trustpay_command()
    migrated = subprocess.run([*command, "migrate"], env=env, cwd=tmp, capture_output=True,
                              text=True, timeout=120)
    if migrated.returncode != 0:
        raise RuntimeError(f"trustpay migrate failed:\n{migrated.stdout}\n{migrated.stderr}")
    port = _free_port()
    base_url = f"http://127.0.0.1:{port}"
    with log_file.open("wb") as log:
        process = subprocess.Popen(
            [*command, "serve", "--host", "127.0.0.1", "--port", str(port)],
            env=env, cwd=tmp, stdout=log, stderr=subprocess.STDOUT,
        )
    try:
        _wait_healthy(base_url, process, log_file)
        yield Server(base_url, env, tmp, database_url, notify_file, log_file, process)
    finally:
        _stop(process)


@pytest.fixture(scope="session")
def browser() -> Iterator[Browser]:
    if not Path(CHROMIUM).exists():
        pytest.fail(f"{CHROMIUM} is missing: run `make system-deps`")
    with sync_playwright() as pw:
        chromium = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        try:
            yield chromium
        finally:
            chromium.close()


@pytest.fixture(scope="session")
def screenshots_dir() -> Path:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    return SCREENSHOTS


@pytest.fixture
def contexts(browser: Browser) -> Iterator[list[BrowserContext]]:
    """Browser contexts a test opens (one per actor); closed after it."""
    opened: list[BrowserContext] = []
    yield opened
    for ctx in opened:
        ctx.close()
