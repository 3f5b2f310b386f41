"""Due-job runner: timeouts, retries, expiries, settlement — rows in ``jobs``.

    from trustpay import jobs
    jobs.schedule(conn, "trade.unpaid_timeout", deadline, {"trade": trade_id},
                  dedupe_key=f"trade-unpaid:{trade_id}", now=now)
    jobs.cancel(conn, f"trade-unpaid:{trade_id}", now=now)
    jobs.registry_of(platform).register("trade.unpaid_timeout", handler)
"""

from trustpay.jobs.registry import Backoff, Handler, Registry, Sweeper, registry_of
from trustpay.jobs.runner import Outcome, run_claimed, run_due, run_sweepers, run_until_idle
from trustpay.jobs.store import Job, cancel, schedule
from trustpay.jobs.worker import Worker

__all__ = [
    "Backoff",
    "Handler",
    "Job",
    "Outcome",
    "Registry",
    "Sweeper",
    "Worker",
    "cancel",
    "registry_of",
    "run_claimed",
    "run_due",
    "run_sweepers",
    "run_until_idle",
    "schedule",
]
