"""One core per server process: each ``trustpay serve`` process keeps to a core
of its own.

A Python process runs Python on one core at a time (the GIL), but its threads
(request threads, the event loop, the job worker) are scheduled on any core,
and the GIL moves between cores with them: the lock and the data it guards
travel through the caches at every hand-over, and the threads wake each other
across cores tens of thousands of times a second. Measured with
``bench/api.py`` on this 2-core machine, pinning the one server process to one
core took a ``GET /v1/users/me`` from ~1.8 ms to ~0.6 ms of CPU and a
transfer from ~4.7 ms to ~2–2.9 ms, and throughput rose with it.

Cores are claimed like the job worker's lock: a ``flock`` on one file per core
in a per-user directory, held until the process ends (the kernel drops it
however it ends), so two servers on one machine, or the N processes of
``serve --processes N``, spread over different cores. When every core is taken
the process is left where the scheduler puts it.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

from trustpay import process_lock


@dataclass(frozen=True)
class CpuSlot:
    cpu: int
    fd: int  # holds the claim until the process ends


def slot_dir() -> Path:
    return Path(tempfile.gettempdir()) / f"trustpay-cpu-slots-{os.getuid()}"


def claim_free_cpu(directory: Path | None = None) -> CpuSlot | None:
    """Claim the first core nobody else here holds, and keep this whole process on it."""
    if not hasattr(os, "sched_setaffinity"):
        return None  # not Linux
    allowed = sorted(os.sched_getaffinity(0))
    if len(allowed) < 2:
        return None  # nothing to choose
    where = directory or slot_dir()
    where.mkdir(mode=0o700, exist_ok=True)
    for cpu in allowed:
        fd = process_lock.take(where / f"cpu-{cpu}.lock")
        if fd is not None:
            pin_process(cpu)
            return CpuSlot(cpu, fd)
    return None


def pin_process(cpu: int) -> None:
    """Every thread the process has now; threads started later inherit it from their creator."""
    for task in os.listdir("/proc/self/task"):
        with contextlib.suppress(ProcessLookupError):  # a thread that ended meanwhile
            os.sched_setaffinity(int(task), {cpu})
