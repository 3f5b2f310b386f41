"""The composition root: builds the platform and the ASGI app."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from trustpay import __version__
from trustpay.api import errors, system
from trustpay.platform.context import Platform
from trustpay.settings import Settings


def create_app(settings: Settings | None = None, *, platform: Platform | None = None) -> FastAPI:
    platform = platform or Platform.build(settings)

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        yield
        platform.close()

    app = FastAPI(
        title="TrustPay API",
        version=__version__,
        description="Third-party payment platform: wallet, escrow trades, verifiable ledger.",
        lifespan=lifespan,
    )
    app.state.platform = platform
    errors.install(app)
    app.include_router(system.router)
    return app
