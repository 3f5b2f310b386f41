"""``trustpay serve --processes N`` on SQLite and PostgreSQL: several HTTP server
processes on one database move money exactly as one does.

Concurrent transfers from many connections (the kernel hands each to whichever
process accepts it) all complete; once their undo windows close, every hold is
posted by the one job worker, each recipient got exactly what was sent, the
total is unchanged and ``trustpay ledger verify`` passes. The processes share
one secret key (a cookie or CSRF token signed by one is good at the other), and
``serve`` refuses the test clock, which would move only one process's time.
Each process keeps to a core of its own (``trustpay/cpu_slot.py``).
"""

from __future__ import annotations

import os
import subprocess
import threading
import time
from collections import Counter
from pathlib import Path

import httpx
import pytest

from tests.e2e.conftest import _trustpay_command
from tests.e2e.wallet_load import WalletServer, engine_for, fund, make_user, snapshot, transfer_body

pytestmark = pytest.mark.e2e

PROCESSES = 2
USERS = 4
FUNDS = 50_000
THREADS = 6
TRANSFERS_EACH = 30
DEADLINE_SECONDS = 180


def server_processes(supervisor: int) -> list[int]:
    """The supervisor's children that serve HTTP (uvicorn spawns them)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            cmdline = (entry / "cmdline").read_bytes()
        except OSError:
            continue
        if int(stat[1]) == supervisor and b"spawn_main" in cmdline:
            found.append(int(entry.name))
    return found


def environ_of(pid: int) -> dict[str, str]:
    pairs = (item.partition(b"=") for item in Path(f"/proc/{pid}/environ").read_bytes().split(b"\0") if item)
    return {k.decode(): v.decode(errors="replace") for k, _, v in pairs}


def cpus_of(pid: int) -> set[int]:
    return set(os.sched_getaffinity(pid))


def test_several_processes_serve_one_database_without_losing_or_doubling_money(db_url: str, tmp_path: Path) -> None:
    private_tmp = tmp_path / "tmp"  # its own core claims, apart from other servers the suite runs
    private_tmp.mkdir()
    server = WalletServer(db_url, tmp_path, undo_seconds=1,
                          extra_env={"TRUSTPAY_TEST_CLOCK": "0", "TRUSTPAY_SERVE_PROCESSES": str(PROCESSES),
                                     "TMPDIR": str(private_tmp)})
    server.env.pop("TRUSTPAY_SECRET_KEY", None)  # serve must pick one key for all its processes
    server.start()
    engine = engine_for(db_url)
    try:
        assert server.process is not None
        children = server_processes(server.process.pid)
        assert len(children) == PROCESSES, children
        keys = {environ_of(pid).get("TRUSTPAY_SECRET_KEY") for pid in children}
        assert len(keys) == 1 and None not in keys, "the processes must sign with one key"
        if len(os.sched_getaffinity(0)) >= PROCESSES:
            # /healthz answered from the first process up; the others may still be starting.
            pin_by = time.monotonic() + 60
            while not all(len(cpus_of(pid)) == 1 for pid in children) and time.monotonic() < pin_by:
                time.sleep(0.1)
            pinned = [cpus_of(pid) for pid in children]
            assert all(len(c) == 1 for c in pinned) and len(set.union(*pinned)) == PROCESSES, pinned

        with httpx.Client(base_url=server.base_url, timeout=30) as c:
            users = [make_user(server, c, f"procs{i}@example.com", password_free_cap=1_000) for i in range(USERS)]
            for u in users:
                fund(c, u, FUNDS)
        before = snapshot(engine)

        sent: Counter[tuple[str, str]] = Counter()  # (sender, recipient) -> amount answered 201
        statuses: Counter[int] = Counter()
        lock = threading.Lock()
        deadline = time.monotonic() + DEADLINE_SECONDS

        def client(n: int) -> None:
            for i in range(TRANSFERS_EACH):
                sender, recipient = users[(n + i) % USERS], users[(n + i + 1 + i % (USERS - 1)) % USERS]
                amount = 1 + (n * TRANSFERS_EACH + i) % 97
                # A fresh connection each time, so the requests spread over the processes.
                with httpx.Client(base_url=server.base_url, timeout=30) as one:
                    r = one.post("/v1/transfers", json=transfer_body(recipient.id, amount),
                                 headers={**sender.auth, "idempotency-key": f"procs-{n}-{i}"})
                with lock:
                    statuses[r.status_code] += 1
                    if r.status_code == 201:
                        sent[(sender.id, recipient.id)] += amount
                if time.monotonic() > deadline:
                    return

        threads = [threading.Thread(target=client, args=(n,)) for n in range(THREADS)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=DEADLINE_SECONDS)
        assert statuses == {201: THREADS * TRANSFERS_EACH}, statuses

        # The undo windows (1 s) close; the job worker posts every hold.
        settle_by = time.monotonic() + 60
        while snapshot(engine).held:
            assert time.monotonic() < settle_by, "holds not posted: is a job worker running?"
            time.sleep(0.2)
        after = snapshot(engine)
        assert after.total == before.total
        net = Counter[str]()
        for (s, r), amount in sent.items():
            net[s] -= amount
            net[r] += amount
        for u in users:
            assert after.wallets[u.id][0] - before.wallets[u.id][0] == net[u.id], u.email
        assert not after.negative()
    finally:
        server.stop()
        engine.dispose()
    verified = server.cli("ledger", "verify")
    assert verified.returncode == 0, verified.stdout + verified.stderr


def test_serve_refuses_several_processes_with_the_test_clock(tmp_path: Path) -> None:
    env = {**os.environ, "TRUSTPAY_DATABASE_URL": f"sqlite:///{tmp_path}/x.db", "TRUSTPAY_TEST_CLOCK": "1"}
    done = subprocess.run([*_trustpay_command(), "serve", "--processes", "2", "--port", "1"], env=env,
                          cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert done.returncode == 2
    assert "--processes 1" in done.stdout

