"""The worker loop: every ``settings.worker_interval`` seconds, sweep and run due jobs.

``trustpay serve`` runs it in a background thread of the server process;
``trustpay worker`` runs it alone. Several workers may run at once (claims
keep them apart). A tick does bounded work; a tick that finds work is
followed by another at once, an idle one by a pause; errors (say, the
database restarting) are logged and answered with a growing pause, never
with the thread dying.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import TYPE_CHECKING

from sqlalchemy import select

from trustpay.clock import OffsetClock
from trustpay.db.schema import platform_clock
from trustpay.jobs.runner import MOST_TOGETHER, run_due, run_sweepers

if TYPE_CHECKING:
    from trustpay.platform.context import Platform

log = logging.getLogger("trustpay.jobs")

MAX_ERROR_PAUSE = 30.0  # seconds
MAX_BUSY_TICKS = 20  # back-to-back busy ticks before pausing anyway (no spinning)


class Worker:
    def __init__(
        self, platform: Platform, *, interval: float | None = None, batch: int = 4 * MOST_TOGETHER
    ) -> None:
        self.platform = platform
        self.interval = interval if interval is not None else platform.settings.worker_interval
        self.batch = batch
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._next_sweep: dict[str, float] = {}  # sweeper name -> time.monotonic() of its next run

    def tick(self) -> int:
        """One round of bounded work; returns how much was done (0 = idle).

        Due jobs every tick; each sweeper at most once per interval unless its
        last sweep found work (a backlog drains at full speed). A busy server
        ticks back to back for its jobs, and sweeping every empty queue each
        time, each in a write transaction, took a tenth of its CPU and the
        writer lock from the requests."""
        sync_test_clock(self.platform)
        now = time.monotonic()
        swept = run_sweepers(self.platform, only=lambda name: now >= self._next_sweep.get(name, 0.0))
        for name, did in swept.items():
            self._next_sweep[name] = now if did else now + self.interval
        return sum(swept.values()) + run_due(self.platform, self.batch)

    def run(self, stop: threading.Event | None = None) -> None:
        """Tick until ``stop`` is set (by default this worker's own stop event)."""
        stop = stop or self._stop
        failures = busy_ticks = 0
        while not stop.is_set():
            try:
                did = self.tick()
                failures = 0
            except Exception:
                failures += 1
                did = 0
                log.exception("worker tick failed (%d in a row)", failures)
            busy_ticks = busy_ticks + 1 if did else 0
            if did and busy_ticks < MAX_BUSY_TICKS:
                continue
            busy_ticks = 0
            pause = min(MAX_ERROR_PAUSE, self.interval * 2 ** min(failures, 10)) if failures \
                else self.interval
            stop.wait(pause)

    def start(self) -> threading.Thread:
        """Run in a daemon thread (it cannot keep the process alive on its own)."""
        if self._thread is not None and self._thread.is_alive():
            return self._thread
        self._stop.clear()
        self._thread = threading.Thread(target=self.run, name="trustpay-worker", daemon=True)
        self._thread.start()
        return self._thread

    def stop(self, timeout: float = 10.0) -> None:
        """Ask the loop to stop and wait for the tick in progress to finish."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)
            if self._thread.is_alive():
                log.warning("worker did not stop within %.1f s", timeout)
            self._thread = None


def sync_test_clock(platform: Platform) -> None:
    """With the test clock on, follow advances made by another process.

    The server persists the clock's offset when it moves; a standalone
    ``trustpay worker`` would otherwise keep running on the time it started with.
    """
    clock = platform.clock
    if not platform.settings.test_clock or not isinstance(clock, OffsetClock):
        return
    with platform.db.transaction(write=False) as conn:
        ms = conn.execute(
            select(platform_clock.c.offset_ms).where(platform_clock.c.id == 1)
        ).scalar()
    behind = int(ms or 0) / 1000 - clock.offset.total_seconds()
    if behind > 0:
        clock.advance(behind)
