"""The composition root: builds the platform and the ASGI app."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from trustpay import __version__
from trustpay.api import (
    banking,
    collections,
    disputes,
    errors,
    identity,
    merchants,
    ops_reconciliation,
    refunds,
    settlements,
    system,
    test_clock,
    trades,
    transactions,
    wallet,
    webhooks,
)
from trustpay.api.body_limit import FORM_OVERHEAD, BodyLimit
from trustpay.api.routing import FlatRoutesApp
from trustpay.banks import registry as banks
from trustpay.jobs.worker import Worker
from trustpay.platform.context import Platform
from trustpay.settings import Settings
from trustpay.web import routes as web


def create_app(
    settings: Settings | None = None, *, platform: Platform | None = None, start_worker: bool = True
) -> FastAPI:
    platform = platform or Platform.build(settings)

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        # The job worker lives as long as the server (timeouts fire with no
        # separate process); `trustpay worker` runs the same loop standalone.
        worker = Worker(platform) if start_worker else None
        if worker is not None:
            worker.start()
            banks.start(platform)  # the in-process sandbox bank's back office, if any
        try:
            yield
        finally:
            if worker is not None:
                worker.stop()
            banks.stop(platform)
            platform.close()

    # Included routers' routes sit in the app's own route list (see trustpay.api.routing).
    app = FlatRoutesApp(
        title="TrustPay API",
        version=__version__,
        description="Third-party payment platform: wallet, escrow trades, verifiable ledger.",
        lifespan=lifespan,
    )
    app.state.platform = platform
    errors.install(app)
    app.add_middleware(BodyLimit, limit=platform.settings.dispute_evidence_max_bytes + FORM_OVERHEAD)
    app.include_router(system.router)
    identity.install(app, platform)
    merchants.install(app, platform)  # after identity: wraps its idempotency scope
    banks.install(app, platform)  # mounts the sandbox bank at /sandbox-bank unless it runs elsewhere
    wallet.install(app)
    trades.install(app)
    disputes.install(app)
    refunds.install(app)
    collections.install(app)
    banking.install(app)
    webhooks.install(app)
    settlements.install(app)
    app.include_router(transactions.router)
    app.include_router(ops_reconciliation.router)
    web.install(app)
    if platform.settings.test_clock:  # otherwise the path does not exist (404)
        app.include_router(test_clock.router)
    return app
