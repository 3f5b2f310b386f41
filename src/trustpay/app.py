"""The composition root: builds the platform and the ASGI app."""

from __future__ import annotations

import gc
import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from fastapi import FastAPI

from trustpay import __version__, cpu_slot, process_lock
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
from trustpay.identity.touch import store_noted
from trustpay.jobs.worker import Worker
from trustpay.platform.context import Platform
from trustpay.settings import Settings, get_settings
from trustpay.web import routes as web

SERVE_JOB_LOCK_ENV = "TRUSTPAY_SERVE_JOB_LOCK"


def create_app(
    settings: Settings | None = None,
    *,
    platform: Platform | None = None,
    start_worker: bool = True,
    worker_lock: Path | None = None,
) -> FastAPI:
    """The app; with ``worker_lock`` it runs the job worker only if it can take
    that lock (one of several server processes does)."""
    platform = platform or Platform.build(settings)

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        # The job worker lives as long as the server (timeouts fire with no
        # separate process); `trustpay worker` runs the same loop standalone.
        held = process_lock.take(worker_lock) if start_worker and worker_lock is not None else None
        worker = Worker(platform) if start_worker and (worker_lock is None or held is not None) else None
        if worker is not None:
            worker.start()
            # The in-process sandbox bank's back office, if any.
            banks.start(platform, now=worker_lock is not None)
        try:
            yield
        finally:
            if worker is not None:
                worker.stop()
            banks.stop(platform)
            store_noted(platform)  # the idle timers' last refreshes
            platform.close()
            if held is not None:
                os.close(held)

    # Included routers' routes sit in the app's own route list (see trustpay.api.routing).
    app = FlatRoutesApp(
        title="TrustPay API",
        version=__version__,
        description="Third-party payment platform: wallet, escrow trades, verifiable ledger.",
        lifespan=lifespan,
        # No OpenTelemetry here: with it switched off FastAPI skips asking the
        # global tracer, meter and logger providers whether it is, per request.
        telemetry={"tracing": False, "metrics": False, "logs": False},
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


def create_serving_app() -> FastAPI:
    """The app each process of ``trustpay serve --processes N`` builds (uvicorn
    imports it by name); ``serve`` passes the job-worker lock in the environment."""
    claim_core()
    lock = os.environ.get(SERVE_JOB_LOCK_ENV, "")
    app = create_app(start_worker=bool(lock), worker_lock=Path(lock) if lock else None)
    freeze_startup_heap()
    return app


def claim_core() -> None:
    """A serve process keeps to a core of its own (``cpu_slot``), claimed until it
    ends; called before the app starts its threads."""
    if get_settings().serve_pin_cpu:
        cpu_slot.claim_free_cpu()


def freeze_startup_heap() -> None:
    """Leave what the server built at startup out of every later garbage collection.

    The app, its routes, models, SQLAlchemy metadata and imported modules are
    ~150k objects that live as long as the process; a full collection walks
    them all (~110 ms measured here), and every request in flight waits for it.
    Frozen, they are never scanned again; what requests create is collected as
    before. Only ``serve`` does this: a test process builds many apps, and
    frozen cyclic garbage would never be freed."""
    gc.collect()
    gc.freeze()


