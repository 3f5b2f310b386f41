"""Per-client fixed-window rate limit for sign-up and login.

In memory, per process: it blunts password spraying and sign-up floods from
one address; the per-account lockout is the durable defence. Windows are
counted on the platform clock so the test clock moves them too.
"""

from __future__ import annotations

import threading
from datetime import datetime

from trustpay.errors import RateLimited


class FixedWindowLimiter:
    def __init__(self, limit: int, window_seconds: int) -> None:
        self.limit = limit
        self.window = window_seconds
        self._counts: dict[tuple[str, str], int] = {}
        self._current = -1
        self._lock = threading.Lock()

    def hit(self, action: str, client: str, now: datetime) -> None:
        """Count one request; raise 429 once the client is past the limit in this window."""
        window = int(now.timestamp()) // self.window
        with self._lock:
            if window != self._current:
                # Only the current window matters, so old counts are dropped wholesale.
                self._counts.clear()
                self._current = window
            n = self._counts.get((action, client), 0) + 1
            self._counts[(action, client)] = n
        if n > self.limit:
            raise RateLimited(f"too many {action} requests; try again shortly")
