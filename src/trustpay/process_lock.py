"""A lock file held for as long as a process keeps it: the job worker's lock
among ``serve`` processes, and each server process's core (``cpu_slot``)."""

from __future__ import annotations

import fcntl
import os
from pathlib import Path


def take(lock: Path) -> int | None:
    """An open descriptor holding ``lock`` for as long as it stays open (the
    kernel releases it when the process ends, however it ends), or None if
    another process holds it."""
    fd = os.open(lock, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        return None
    return fd
