"""Server processes claim cores one each (``trustpay/cpu_slot.py``). Run in child
processes: pinning the test process itself would slow the rest of the suite."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.skipif(len(os.sched_getaffinity(0)) < 2, reason="one core: nothing to claim")

# Claims a core, prints it and the cores the process (every thread) may run on, then
# holds the claim until its standard input closes.
CLAIM = """
import os, sys, threading
from pathlib import Path
from trustpay import cpu_slot
before = threading.Thread(target=sys.stdin.readline)  # a thread that exists before the claim
before.start()
slot = cpu_slot.claim_free_cpu(Path(sys.argv[1]))
tasks = sorted(os.sched_getaffinity(int(t)) for t in os.listdir("/proc/self/task"))
print(slot.cpu if slot else None, sorted({c for t in tasks for c in t}), flush=True)
before.join()
"""


def claimer(directory: Path) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, "-c", CLAIM, str(directory)], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, text=True)


def answer(p: subprocess.Popen[str]) -> tuple[str, str]:
    assert p.stdout is not None
    cpu, _, allowed = p.stdout.readline().strip().partition(" ")
    return cpu, allowed


def finish(*ps: subprocess.Popen[str]) -> None:
    for p in ps:
        p.communicate(timeout=30)


def test_each_process_gets_a_core_of_its_own_until_none_is_left(tmp_path: Path) -> None:
    cores = sorted(os.sched_getaffinity(0))
    holders = [claimer(tmp_path) for _ in cores]
    try:
        got = [answer(p) for p in holders]
        assert sorted(int(cpu) for cpu, _ in got) == cores
        assert all(allowed == f"[{cpu}]" for cpu, allowed in got), got  # every thread, not just one
        extra = claimer(tmp_path)
        assert answer(extra) == ("None", str(cores)), "no core left: the process is left unpinned"
        finish(extra)
    finally:
        finish(*holders)


def test_a_core_is_free_again_once_its_process_ends(tmp_path: Path) -> None:
    first = claimer(tmp_path)
    cpu, _ = answer(first)
    finish(first)
    again = claimer(tmp_path)
    try:
        assert answer(again)[0] == cpu
    finally:
        finish(again)
