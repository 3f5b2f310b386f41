"""The platform's own periodic work. Capabilities add their job kinds here too
(one ``register_…_jobs(registry)`` call each), so every runner — the server's
embedded worker, ``trustpay worker``, the test-clock route — knows them all."""

from __future__ import annotations

from typing import TYPE_CHECKING

from sqlalchemy import Connection

from trustpay.banks import reconcile
from trustpay.events import webhooks
from trustpay.events.queue import send_queued
from trustpay.merchants import settlement
from trustpay.platform.idempotency import purge_expired
from trustpay.trades import refunds as trade_refunds
from trustpay.trades import timeouts as trade_timeouts
from trustpay.wallet import bank_ops, transfers

if TYPE_CHECKING:
    from trustpay.jobs.registry import Registry
    from trustpay.platform.context import Platform


def expire_holds(platform: Platform, conn: Connection) -> int:
    """Expired holds give their money back (the ledger's own rule, run on time)."""
    return platform.book.expire_due_holds(conn)


def purge_idempotency_keys(platform: Platform, conn: Connection) -> int:
    return purge_expired(conn, now=platform.clock.now())


def register_builtins(registry: Registry) -> None:
    registry.add_sweeper("expire-holds", expire_holds)
    registry.add_sweeper("purge-idempotency-keys", purge_idempotency_keys)
    registry.add_outside_sweeper("send-queued-notifications", send_queued)
    transfers.register_jobs(registry)
    bank_ops.register_jobs(registry)
    reconcile.register_jobs(registry)
    trade_timeouts.register_jobs(registry)
    trade_refunds.register_jobs(registry)
    webhooks.register_jobs(registry)
    settlement.register_jobs(registry)
