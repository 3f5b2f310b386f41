"""Annotated dependency aliases, FastAPI-template style."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from trustpay.platform.context import Platform


def get_platform(request: Request) -> Platform:
    platform: Platform = request.app.state.platform
    return platform


PlatformDep = Annotated[Platform, Depends(get_platform)]
