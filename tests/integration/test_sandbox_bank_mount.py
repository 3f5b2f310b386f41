"""The sandbox bank as the platform wires it: in process by default (mounted at
/sandbox-bank, reached through the connector without a socket, calling the
platform back in process), or elsewhere when ``bank_sandbox_url`` is set."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi import FastAPI, Request
from fastapi.testclient import TestClient
from tests.dbs import SqliteFactory

from trustpay.app import create_app
from trustpay.banks import registry
from trustpay.banks.cards import sample_card_number
from trustpay.banks.client import SandboxBankClient
from trustpay.banks.connector import OperationStatus, callback_path
from trustpay.banks.errors import UnknownBank
from trustpay.clock import FrozenClock
from trustpay.platform.context import Platform
from trustpay.settings import Settings


@pytest.fixture
def platform(sqlite_factory: SqliteFactory, tmp_path: Path) -> Iterator[Platform]:
    settings = Settings(database_url=sqlite_factory.fresh(), bank_sandbox_data_dir=str(tmp_path / "bank"),
                        bank_sandbox_settle_seconds=0)
    p = Platform.build(settings, clock=FrozenClock())
    yield p
    registry.stop(p)
    p.close()


def test_in_process_bank_calls_the_platform_app_back_signed(platform: Platform) -> None:
    app = FastAPI()
    received: list[tuple[dict[str, str], bytes]] = []

    @app.post(callback_path("sandbox"))
    async def bank_callback(request: Request) -> dict[str, bool]:
        received.append((dict(request.headers), await request.body()))
        return {"ok": True}

    registry.install(app, platform)
    bank = registry.connector_for(platform)
    assert registry.connector_for(platform) is bank  # one per platform
    card = bank.tokenize_card(sample_card_number("4242"), "Li Lei")
    op = bank.start_debit(card.token, 5_000, "CNY", "top_inproc")
    registry.sandbox_bank(platform).tick()
    (headers, body), = received
    cb = bank.verify_callback(headers, body)
    assert (cb.reference, cb.bank_ref, cb.status, cb.amount) == ("top_inproc", op.bank_ref,
                                                                 OperationStatus.SUCCEEDED, 5_000)
    # The mount serves the same bank over HTTP.
    http = TestClient(app)
    r = http.get("/sandbox-bank/operations/top_inproc",
                 headers={"Authorization": f"Bearer {platform.settings.bank_sandbox_secret}"})
    assert r.status_code == 200 and r.json()["status"] == "succeeded"


def test_the_back_office_settles_on_its_own_once_started(platform: Platform) -> None:
    registry.start(platform)
    bank = registry.connector_for(platform)
    card = bank.tokenize_card(sample_card_number("4242"), "Li Lei")
    bank.start_payout(card.token, 300, "CNY", "wd_background")
    sandbox = registry.sandbox_bank(platform)
    deadline = time.monotonic() + 10
    while sandbox.true_status("wd_background") is OperationStatus.PENDING and time.monotonic() < deadline:
        time.sleep(0.05)
    assert sandbox.true_status("wd_background") is OperationStatus.SUCCEEDED  # nobody polled


def test_the_platform_app_mounts_the_bank_lazily(platform: Platform) -> None:
    app = create_app(platform=platform, start_worker=False)
    data_dir = Path(platform.settings.bank_sandbox_data_dir)
    assert not (data_dir / "bank.db").exists()  # an app that never uses the bank makes no bank files
    http = TestClient(app)
    assert http.get("/sandbox-bank/healthz").json() == {"ok": True}
    assert http.get("/sandbox-bank/control").status_code == 401  # the bank's own credentials
    assert (data_dir / "bank.db").exists()


def test_only_the_sandbox_bank_is_connected(platform: Platform) -> None:
    with pytest.raises(UnknownBank) as info:
        registry.connector_for(platform, "icbc")
    assert info.value.code == "invalid_bank" and info.value.param == "bank"


def test_with_a_url_the_bank_is_the_one_running_elsewhere(sqlite_factory: SqliteFactory, tmp_path: Path) -> None:
    settings = Settings(database_url=sqlite_factory.fresh(), bank_sandbox_url="http://127.0.0.1:9/",
                        bank_sandbox_data_dir=str(tmp_path / "bank"),
                        bank_sandbox_callback_url="http://127.0.0.1:8000/v1/bank-callbacks/sandbox")
    p = Platform.build(settings, clock=FrozenClock())
    try:
        connector = registry.connector_for(p)
        assert isinstance(connector, SandboxBankClient) and "127.0.0.1:9" in repr(connector)
        assert connector.callback_url == settings.bank_sandbox_callback_url
        with pytest.raises(RuntimeError):
            registry.sandbox_bank(p)
        app = FastAPI()
        registry.install(app, p)
        assert not [r for r in app.routes if getattr(r, "path", "") == registry.MOUNT_PATH]
        assert not (tmp_path / "bank").exists()
    finally:
        p.close()
