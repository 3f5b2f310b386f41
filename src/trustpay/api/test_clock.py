"""``POST /v1/test_clock/advance``: move platform time and run what became due.

Registered only when ``TRUSTPAY_TEST_CLOCK=1`` (never in production);
otherwise the path does not exist and answers 404.
"""

from __future__ import annotations

import threading
from typing import Annotated, Protocol, runtime_checkable

from fastapi import APIRouter
from pydantic import BaseModel, Field

from trustpay.api.deps import PlatformDep
from trustpay.clock import OffsetClock, rfc3339
from trustpay.errors import Conflict
from trustpay.jobs.runner import run_until_idle
from trustpay.platform.context import save_test_clock

router = APIRouter(tags=["test clock"])

MAX_ADVANCE_SECONDS = 400 * 24 * 3600
# One advance at a time per process: the persisted offset must only grow,
# and two drains of the same due jobs would just contend for them.
_advancing = threading.Lock()


@runtime_checkable
class _Movable(Protocol):
    def advance(self, seconds: float) -> object: ...


class AdvanceIn(BaseModel):
    seconds: Annotated[float, Field(gt=0, le=MAX_ADVANCE_SECONDS, strict=True,
                                    description="How far to move the clock forward, in seconds")]


class AdvanceOut(BaseModel):
    now: str = Field(description="The platform time after the move (RFC 3339, UTC)")


@router.post("/v1/test_clock/advance", response_model=AdvanceOut)
def advance(body: AdvanceIn, p: PlatformDep) -> AdvanceOut:
    """Move the platform clock forward, then run every job and sweeper now due."""
    clock = p.clock
    if not isinstance(clock, _Movable):
        raise Conflict("this server's clock is the system clock and cannot be moved")
    with _advancing:
        clock.advance(body.seconds)
        if isinstance(clock, OffsetClock):
            save_test_clock(p.db, clock)  # restarts (and other processes) keep the new time
        run_until_idle(p)
    return AdvanceOut(now=rfc3339(p.clock.now()))
