"""The platform's own periodic work. Capabilities add their job kinds here too
(one ``register_…_jobs(registry)`` call each), so every runner — the server's
embedded worker, ``trustpay worker``, the test-clock route — knows them all."""

from __future__ import annotations

from datetime import timedelta
from typing import TYPE_CHECKING

from sqlalchemy import Connection

from trustpay.banks import reconcile
from trustpay.events import webhooks
from trustpay.events.queue import purge_sent, send_queued
from trustpay.jobs.store import purge_finished
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


def purge_finished_jobs(platform: Platform, conn: Connection) -> int:
    cutoff = platform.clock.now() - timedelta(days=platform.settings.job_retention_days)
    return purge_finished(conn, due_before=cutoff)


def purge_sent_notifications(platform: Platform, conn: Connection) -> int:
    cutoff = platform.clock.now() - timedelta(days=platform.settings.notification_retention_days)
    return purge_sent(conn, sent_before=cutoff)


def register_builtins(registry: Registry) -> None:
    registry.add_sweeper("expire-holds", expire_holds)
    registry.add_sweeper("purge-idempotency-keys", purge_idempotency_keys)
    registry.add_sweeper("purge-finished-jobs", purge_finished_jobs)
    registry.add_sweeper("purge-sent-notifications", purge_sent_notifications)
    registry.add_outside_sweeper("send-queued-notifications", send_queued)
    transfers.register_jobs(registry)
    bank_ops.register_jobs(registry)
    reconcile.register_jobs(registry)
    trade_timeouts.register_jobs(registry)
    trade_refunds.register_jobs(registry)
    webhooks.register_jobs(registry)
    settlement.register_jobs(registry)
