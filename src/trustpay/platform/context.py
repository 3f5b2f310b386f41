"""The running platform's shared objects, built once by the composition root."""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

from sqlalchemy import select, update

from trustpay.clock import Clock, OffsetClock, SystemClock
from trustpay.db.engine import Database
from trustpay.db.schema import platform_clock
from trustpay.ledger.book import Book
from trustpay.ledger.digest import DigestCache
from trustpay.settings import Settings, get_settings

T = TypeVar("T")
_extras_lock = threading.Lock()


@dataclass
class Platform:
    settings: Settings
    db: Database
    clock: Clock
    book: Book
    digest: DigestCache
    # Filled by capabilities as they register (job handlers, sweepers, …).
    extras: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def build(cls, settings: Settings | None = None, *, clock: Clock | None = None) -> Platform:
        settings = settings or get_settings()
        db = Database(settings.database_url)
        if clock is None:
            clock = load_test_clock(db) if settings.test_clock else SystemClock()
        return cls(
            settings=settings,
            db=db,
            clock=clock,
            book=Book(clock, max_amount=settings.max_amount),
            digest=DigestCache(),
        )

    def shared(self, key: str, make: Callable[[], T]) -> T:
        """A capability's state kept under ``key``, made by ``make`` at first use
        (once, however many threads ask at the same moment)."""
        found = self.extras.get(key)
        if found is None:
            with _extras_lock:
                found = self.extras.get(key)
                if found is None:
                    found = self.extras[key] = make()
        return found

    def close(self) -> None:
        self.db.dispose()


def load_test_clock(db: Database) -> OffsetClock:
    """The test clock keeps its offset in the database so restarts keep platform time."""
    from datetime import timedelta

    with db.transaction(write=False) as conn:
        ms = conn.execute(select(platform_clock.c.offset_ms).where(platform_clock.c.id == 1)).scalar()
    return OffsetClock(timedelta(milliseconds=int(ms or 0)))


def save_test_clock(db: Database, clock: OffsetClock) -> None:
    ms = int(clock.offset.total_seconds() * 1000)
    with db.transaction() as conn:
        conn.execute(update(platform_clock).where(platform_clock.c.id == 1).values(offset_ms=ms))
