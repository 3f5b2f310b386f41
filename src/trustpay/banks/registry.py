"""Which connector the platform uses for a bank, built once per platform.

``bank_sandbox_url`` empty (the default): the sandbox bank lives in this
process (its own SQLite file under ``bank_sandbox_data_dir``, its own back-office
thread started by the app's lifespan), reached through the same HTTP adapter
over an in-process ASGI bridge (no socket); it is also mounted at
``/sandbox-bank`` for anyone who wants to look at it over HTTP. Set to a URL
(``trustpay sandbox-bank`` running elsewhere) to use that one instead.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from trustpay.banks.bridge import AsgiBridgeTransport
from trustpay.banks.client import SandboxBankClient
from trustpay.banks.connector import BankConnector, callback_path
from trustpay.banks.errors import UnknownBank
from trustpay.banks.sandbox.app import create_sandbox_app
from trustpay.banks.sandbox.bank import SandboxBank

if TYPE_CHECKING:
    from trustpay.platform.context import Platform

SANDBOX = "sandbox"
MOUNT_PATH = "/sandbox-bank"
# Host name used for in-process requests (never resolved: the bridge serves them).
INPROCESS_ORIGIN = "http://trustpay.internal"

_BANK_KEY = "banks.sandbox.bank"
_APP_KEY = "banks.sandbox.app"
_CONNECTOR_KEY = "banks.sandbox.connector"
_DELIVER_KEY = "banks.sandbox.deliver"
_BACKGROUND_KEY = "banks.sandbox.background"


def is_inprocess(platform: Platform) -> bool:
    return not platform.settings.bank_sandbox_url


def sandbox_bank(platform: Platform) -> SandboxBank:
    """The in-process sandbox bank (tests use it to settle now, misbehave, look at balances)."""
    if not is_inprocess(platform):
        raise RuntimeError("the sandbox bank runs in another process (bank_sandbox_url is set)")
    bank = platform.extras.get(_BANK_KEY)
    if bank is None:
        s = platform.settings
        bank = SandboxBank(
            Path(s.bank_sandbox_data_dir),
            secret=s.bank_sandbox_secret,
            settle_seconds=s.bank_sandbox_settle_seconds,
            clock=platform.clock,  # one process, one time: the test clock settles the bank too
            deliver=platform.extras.get(_DELIVER_KEY),  # None until an app receives callbacks (install)
        )
        platform.extras[_BANK_KEY] = bank
        if platform.extras.get(_BACKGROUND_KEY):
            bank.start_background()
    return bank


def sandbox_app(platform: Platform) -> Any:
    app = platform.extras.get(_APP_KEY)
    if app is None:
        app = platform.extras[_APP_KEY] = create_sandbox_app(sandbox_bank(platform))
    return app


def connector_for(platform: Platform, bank: str = SANDBOX) -> BankConnector:
    """The connector for ``bank`` (API body field ``bank``); :class:`UnknownBank` otherwise."""
    if bank != SANDBOX:
        raise UnknownBank(bank)
    connector = platform.extras.get(_CONNECTOR_KEY)
    if connector is None:
        s = platform.settings
        if is_inprocess(platform):
            connector = SandboxBankClient(
                INPROCESS_ORIGIN,  # the bridge serves the bank's own app: paths start at its root
                s.bank_sandbox_secret,
                AsgiBridgeTransport(sandbox_app(platform)),
                callback_url=INPROCESS_ORIGIN + callback_path(SANDBOX),
            )
        else:
            connector = SandboxBankClient(
                s.bank_sandbox_url, s.bank_sandbox_secret, callback_url=s.bank_sandbox_callback_url or None
            )
        platform.extras[_CONNECTOR_KEY] = connector
    return connector


def install(app: Any, platform: Platform) -> None:
    """Mount the in-process sandbox bank and let it call the platform back in-process.

    Lazy: the bank (and its SQLite file) is built on first use, so an app that
    never touches a bank creates no bank files."""
    if not is_inprocess(platform):
        return

    async def mounted(scope: Any, receive: Any, send: Any) -> None:
        await sandbox_app(platform)(scope, receive, send)

    app.mount(MOUNT_PATH, mounted)
    to_platform = AsgiBridgeTransport(app)

    def deliver(url: str, headers: Any, body: bytes) -> int:
        import httpx

        with httpx.Client(transport=to_platform, timeout=10.0) as client:
            return client.post(url, headers=dict(headers), content=body).status_code

    platform.extras[_DELIVER_KEY] = deliver
    if _BANK_KEY in platform.extras:
        sandbox_bank(platform).deliver = deliver


def start(platform: Platform, *, now: bool = False) -> None:
    """Run the in-process bank's back office (settling, callbacks) from its first use on.

    ``now``: from now on, because the first use may come in another server
    process (``serve --processes N``), and the back office runs only here."""
    if is_inprocess(platform):
        platform.extras[_BACKGROUND_KEY] = True
        if now or _BANK_KEY in platform.extras:
            sandbox_bank(platform).start_background()


def stop(platform: Platform) -> None:
    platform.extras.pop(_BACKGROUND_KEY, None)
    bank = platform.extras.get(_BANK_KEY)
    if bank is not None:
        bank.stop_background()
