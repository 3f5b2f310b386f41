"""Which code runs for each job kind, and the sweepers run on every tick.

One registry per platform (kept in ``platform.extras``), created on first use
with the built-in kinds and sweepers of :mod:`trustpay.jobs.builtin`, so the
server's embedded worker, ``trustpay worker`` and the test-clock route all
run the same set.

    registry_of(platform).register("trade.unpaid_timeout", close_unpaid_trade)
    registry_of(platform).add_sweeper("expire-holds", lambda p, conn: p.book.expire_due_holds(conn))
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import TYPE_CHECKING

from sqlalchemy import Connection

from trustpay.jobs.store import Job

if TYPE_CHECKING:
    from trustpay.platform.context import Platform

# A handler does the job's work with ``conn``, inside the transaction that
# also marks the job done; raising rolls both back and schedules a retry.
# Handlers must tolerate running for a situation that has since changed
# (a trade paid just before its unpaid-timeout ran): check state, don't assume.
Handler = Callable[["Platform", Connection, Job], None]
# Optionally, a kind's handler for many due jobs at once, in the same transaction:
# it must do exactly what the handler does for each job in turn, and raise if any
# of them would (the runner then undoes it and runs them one by one, so a job that
# fails is retried alone).
TogetherHandler = Callable[["Platform", Connection, "list[Job]"], None]
# An outside handler runs with no transaction open (it talks to a bank or another
# service, which must not happen while a database write lock is held). It opens
# its own transactions and must be idempotent: the done-mark commits after it,
# separately, so a crash in between runs it again.
OutsideHandler = Callable[["Platform", Job], None]
# A sweeper does a bounded batch of periodic work with ``conn`` and returns how
# many things it did (0 = nothing to do, so a drain loop can stop). A tick's
# sweepers share one grouped transaction, each in its own savepoint (see
# ``runner.run_sweepers``), so like a grouped member a sweeper touches the
# database only through ``conn``, may run again, and never waits for another
# grouped transaction.
Sweeper = Callable[["Platform", Connection], int]
# An outside sweeper runs with no transaction open, after the others: it talks to
# something slow (a mail server) between transactions of its own, and must
# fence itself against another runner doing the same (a claim with a lease).
OutsideSweeper = Callable[["Platform"], int]

_KEY = "jobs.registry"


@dataclass(frozen=True)
class Backoff:
    """Delay before retry n (1-based): base · 2^(n-1), capped. Deterministic, so
    the test clock can step through the retries exactly."""

    base: timedelta = timedelta(seconds=10)
    cap: timedelta = timedelta(hours=1)

    def delay(self, attempt: int) -> timedelta:
        doublings: int = max(0, min(attempt - 1, 40))
        return min(self.cap, self.base * (1 << doublings))


@dataclass(frozen=True)
class Registration:
    handler: Handler
    backoff: Backoff
    outside: OutsideHandler | None = None
    together: TogetherHandler | None = None


class Registry:
    def __init__(self) -> None:
        self._handlers: dict[str, Registration] = {}
        self._sweepers: dict[str, Sweeper] = {}
        self._outside_sweepers: dict[str, OutsideSweeper] = {}

    def register(self, kind: str, handler: Handler, *, backoff: Backoff | None = None,
                 together: TogetherHandler | None = None) -> None:
        if kind in self._handlers and self._handlers[kind].handler is not handler:
            raise ValueError(f"job kind {kind!r} already has a handler")
        self._handlers[kind] = Registration(handler, backoff or Backoff(), together=together)

    def register_outside(self, kind: str, handler: OutsideHandler, *, backoff: Backoff | None = None) -> None:
        """A job kind whose handler runs outside any transaction (see :data:`OutsideHandler`)."""
        if kind in self._handlers and self._handlers[kind].outside is not handler:
            raise ValueError(f"job kind {kind!r} already has a handler")

        def in_transaction(platform: Platform, conn: Connection, job: Job) -> None:
            raise RuntimeError(f"job kind {kind!r} runs outside a transaction")

        self._handlers[kind] = Registration(in_transaction, backoff or Backoff(), handler)

    def add_sweeper(self, name: str, sweeper: Sweeper) -> None:
        if name in self._outside_sweepers or self._sweepers.get(name, sweeper) is not sweeper:
            raise ValueError(f"sweeper {name!r} is already registered")
        self._sweepers[name] = sweeper

    def add_outside_sweeper(self, name: str, sweeper: OutsideSweeper) -> None:
        """A sweeper that runs outside any transaction (see :data:`OutsideSweeper`)."""
        if name in self._sweepers or self._outside_sweepers.get(name, sweeper) is not sweeper:
            raise ValueError(f"sweeper {name!r} is already registered")
        self._outside_sweepers[name] = sweeper

    def handler_for(self, kind: str) -> Registration | None:
        return self._handlers.get(kind)

    @property
    def kinds(self) -> frozenset[str]:
        return frozenset(self._handlers)

    @property
    def sweepers(self) -> list[tuple[str, Sweeper]]:
        return list(self._sweepers.items())

    @property
    def outside_sweepers(self) -> list[tuple[str, OutsideSweeper]]:
        return list(self._outside_sweepers.items())


def registry_of(platform: Platform) -> Registry:
    return platform.shared(_KEY, _with_builtins)


def _with_builtins() -> Registry:
    from trustpay.jobs.builtin import register_builtins

    reg = Registry()
    register_builtins(reg)
    return reg
