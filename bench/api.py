"""HTTP benchmark: ``POST /v1/transfers`` end to end vs a trivial authenticated GET.

Serves the app the way ``trustpay serve --processes N`` does (uvicorn, N server
processes, the job worker in one of them; N = 1 unless ``--processes`` says
otherwise) on a fresh SQLite database and — given ``--pg-url`` — a fresh
PostgreSQL database. On this 2-core machine a second process speeds up reads,
and on SQLite transfers too (391 → 497/s in one run, December 2026, since
sessions' idle timers are written behind and no longer queue for the one
writer), but slows PostgreSQL's transfers down (the two processes' group
leaders take turns at the journal's lock in smaller groups, while sharing the
cores with the load generator and PostgreSQL's backends: 251 → 197/s, p99
seconds), so the default is one.
Users get a 免密 cap so no argon2 runs per transfer. The KYC-tier limits and
the risk rules are on, as they are by default, with figures no benchmark user
reaches: every transfer runs the checks (today's outflow, the last hour's
velocity, the first-payment-to-a-recipient rule) and none is refused. So what
is measured is the whole wallet path: auth, idempotency key, limits and risk,
ledger hold, transfer row, undo-window job, outbox/notification queue — and
the worker closing the undo windows: the window is 1 s here (10 s by default)
and the transfers are warmed up past it, so the measured seconds post as many
holds as they make, as a server at that rate does all day. (Until December
2026 the window was the default 10 s, longer than a run, and the closes fell
outside the transfers' measured seconds.)
``--checks off`` switches limits and risk off, to see what they cost.

The load is spread over ``--users`` users (64), so a user's last hour holds
hundreds of transfers, not tens of thousands: the velocity rule itself would
stop one user from sending more than a few dozen an hour.

Two measures per engine, each for the transfer and for ``GET /v1/users/me``:
- throughput: ``--clients`` keep-alive connections in a closed loop for ``--seconds``;
- latency at a steady ``--rate`` (open loop: a request is due every 1/rate s
  and its latency counts from when it was due, so a stall is not hidden).

The client is a minimal asyncio HTTP/1.1 client (a few µs per request) so the
load generator takes as little of the two cores as it can; it still shares
them with the server, so figures are lower bounds. The machine is shared:
read the ratios, not the absolute numbers.

    python bench/api.py [--pg-url postgresql+psycopg://…] [--clients 16] [--seconds 10] [--rate 300]
                        [--processes N] [--users 64] [--checks on|off] [--skip-sqlite]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import statistics
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

import httpx
import psycopg
from sqlalchemy.engine import make_url

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "src"))

from tests.e2e.wallet_load import User, WalletServer, fund, make_user  # noqa: E402

GOAL_TPS = 1_000
# The undo window (default 10 s) made short, so that the windows of the measured
# transfers close, and their holds are posted, inside the measured seconds.
UNDO_SECONDS = 1
GOAL_P99_MS = 50.0
NEVER = 10**12  # a limit or velocity figure no benchmark user reaches


def check_settings(on: bool) -> dict[str, str]:
    """Tier limits and risk rules on with figures that never refuse, or both off."""
    if not on:
        return {"TRUSTPAY_TIER_LIMITS": "off", "TRUSTPAY_RISK_RULES": "off"}
    table = {tier: {"balance": NEVER, "single": NEVER, "daily": NEVER} for tier in ("0", "1", "2")}
    return {"TRUSTPAY_TIER_LIMITS": "on", "TRUSTPAY_TIER_LIMIT_TABLE": json.dumps(table),
            "TRUSTPAY_RISK_RULES": "on", "TRUSTPAY_RISK_VELOCITY_COUNT": str(NEVER),
            "TRUSTPAY_RISK_VELOCITY_AMOUNT": str(NEVER)}


def fresh_pg(url: str) -> str:
    base = make_url(url)
    name = f"bench_api_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(host=base.host, port=base.port, user=base.username, password=base.password,
                         dbname=base.database, autocommit=True) as c:
        c.execute(f'CREATE DATABASE "{name}"')
    return base.set(database=name).render_as_string(hide_password=False)


def drop_pg(admin_url: str, url: str) -> None:
    base = make_url(admin_url)
    with psycopg.connect(host=base.host, port=base.port, user=base.username, password=base.password,
                         dbname=base.database, autocommit=True) as c:
        c.execute(f'DROP DATABASE IF EXISTS "{make_url(url).database}" WITH (FORCE)')


def tree_cpu_seconds(root: int) -> float:
    """CPU seconds (user + system) used so far by ``root`` and every live process under it:
    the server's own cost, which a neighbour on the shared machine slows down far less than
    it does the throughput (PostgreSQL's backends are not under it, so not counted)."""
    parent: dict[int, int] = {}
    times: dict[int, int] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                fields = f.read().rpartition(")")[2].split()
        except OSError:  # gone meanwhile
            continue
        parent[int(entry)], times[int(entry)] = int(fields[1]), int(fields[11]) + int(fields[12])
    tree, frontier = {root}, [root]
    while frontier:
        pid = frontier.pop()
        for child, ppid in parent.items():
            if ppid == pid and child not in tree:
                tree.add(child)
                frontier.append(child)
    return sum(times.get(pid, 0) for pid in tree) / os.sysconf("SC_CLK_TCK")




# ------------------------------------------------------------------ a tiny HTTP/1.1 client
class Conn:
    """One keep-alive connection; one request at a time."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, host: str) -> None:
        self.reader, self.writer, self.host = reader, writer, host

    @classmethod
    async def open(cls, host: str, port: int) -> Conn:
        reader, writer = await asyncio.open_connection(host, port)
        return cls(reader, writer, f"{host}:{port}")

    async def request(self, method: str, path: str, headers: dict[str, str], body: bytes = b"") -> int:
        head = [f"{method} {path} HTTP/1.1", f"host: {self.host}", f"content-length: {len(body)}"]
        head += [f"{k}: {v}" for k, v in headers.items()]
        self.writer.write(("\r\n".join(head) + "\r\n\r\n").encode() + body)
        status_line = await self.reader.readline()
        if not status_line:  # the server closed a keep-alive connection that sat idle too long
            raise ConnectionResetError("connection closed before an answer")
        length = 0
        while (line := await self.reader.readline()) not in (b"\r\n", b""):
            name, _, value = line.decode("latin-1").partition(":")
            if name.strip().lower() == "content-length":
                length = int(value)
        if length:
            await self.reader.readexactly(length)
        return int(status_line.split()[1])

    def close(self) -> None:
        self.writer.close()


@dataclass
class Load:
    host: str
    port: int
    users: list[User]

    def transfer(self, rng: random.Random) -> tuple[str, str, dict[str, str], bytes]:
        sender, recipient = rng.sample(self.users, 2)
        body = json.dumps({"to": recipient.id, "amount": 1, "currency": "CNY"}).encode()
        headers = {**sender.auth, "content-type": "application/json", "idempotency-key": uuid.uuid4().hex}
        return "POST", "/v1/transfers", headers, body

    def me(self, rng: random.Random) -> tuple[str, str, dict[str, str], bytes]:
        return "GET", "/v1/users/me", dict(rng.choice(self.users).auth), b""


async def closed_loop(load: Load, make: str, clients: int, seconds: float) -> tuple[float, dict[int, int]]:
    """Requests per second with ``clients`` connections each sending back to back."""
    statuses: dict[int, int] = {}
    stop_at = time.perf_counter() + seconds

    async def client(i: int) -> None:
        rng = random.Random(i)
        conn = await Conn.open(load.host, load.port)
        try:
            while time.perf_counter() < stop_at:
                status = await conn.request(*getattr(load, make)(rng))
                statuses[status] = statuses.get(status, 0) + 1
        finally:
            conn.close()

    t = time.perf_counter()
    await asyncio.gather(*(client(i) for i in range(clients)))
    elapsed = time.perf_counter() - t
    ok = sum(n for s, n in statuses.items() if s < 300)
    return ok / elapsed, statuses


async def open_loop(load: Load, make: str, rate: float, seconds: float) -> tuple[float, float, dict[int, int]]:
    """p50 and p99 latency (ms) when a request is due every 1/rate seconds."""
    idle: list[Conn] = []
    latencies: list[float] = []
    statuses: dict[int, int] = {}
    rng = random.Random(7)

    async def one(due: float) -> None:
        request = getattr(load, make)(rng)
        conn = idle.pop() if idle else await Conn.open(load.host, load.port)
        try:
            status = await conn.request(*request)
        except (ConnectionResetError, asyncio.IncompleteReadError):
            # An idle connection the server had closed (uvicorn: 5 s keep-alive) never
            # carried the request; send it on a fresh one.
            conn.close()
            conn = await Conn.open(load.host, load.port)
            status = await conn.request(*request)
        latencies.append(time.perf_counter() - due)
        statuses[status] = statuses.get(status, 0) + 1
        idle.append(conn)

    start = time.perf_counter()
    tasks = []
    for i in range(int(rate * seconds)):
        due = start + i / rate
        delay = due - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        tasks.append(asyncio.create_task(one(due)))
    await asyncio.gather(*tasks)
    for c in idle:
        c.close()
    q = statistics.quantiles(latencies, n=100)
    return q[49] * 1000, q[98] * 1000, statuses


def measured(server: WalletServer, load: Load, make: str, args: argparse.Namespace
             ) -> tuple[float, dict[int, int], float]:
    """The closed loop's throughput and statuses, and the server's CPU milliseconds per successful request."""
    assert server.process is not None
    cpu = tree_cpu_seconds(server.process.pid)
    t = time.perf_counter()
    rps, statuses = asyncio.run(closed_loop(load, make, args.clients, args.seconds))
    elapsed = time.perf_counter() - t
    used = tree_cpu_seconds(server.process.pid) - cpu
    return rps, statuses, used * 1000 / max(1.0, rps * elapsed)


def run_engine(label: str, url: str, args: argparse.Namespace) -> None:
    with tempfile.TemporaryDirectory() as d:
        # The real clock and the default worker interval (the test clock and quick worker are for tests).
        server = WalletServer(url, Path(d), extra_env={"TRUSTPAY_TEST_CLOCK": "0", "TRUSTPAY_WORKER_INTERVAL": "0.5",
                                                       "TRUSTPAY_SERVE_PROCESSES": str(args.processes),
                                                       "TRUSTPAY_TRANSFER_UNDO_SECONDS": str(UNDO_SECONDS),
                                                       # the users' sign-ups all come from this one address
                                                       "TRUSTPAY_AUTH_RATE_LIMIT": "10000",
                                                       **check_settings(args.checks == "on")})
        migrated = server.cli("migrate")
        if migrated.returncode != 0:
            raise SystemExit(f"migrate failed: {migrated.stdout}{migrated.stderr}")
        server.start()
        try:
            with httpx.Client(base_url=server.base_url, timeout=60) as c:
                users = [make_user(server, c, f"bench{i}@example.com", password_free_cap=1_000)
                         for i in range(args.users)]
                for u in users:
                    fund(c, u, 1_000_000)  # one sandbox card funds everyone: ¥1,000,000 in all
            load = Load("127.0.0.1", server.port, users)
            print(f"-- {label}: {args.users} users, {args.clients} clients × {args.seconds:g} s, "
                  f"steady {args.rate:g} req/s × {args.steady:g} s")
            asyncio.run(closed_loop(load, "me", args.clients, 2))  # warm up
            get_rps, get_st, get_cpu = measured(server, load, "me", args)
            # Warmed up past one undo window, so that the measured seconds also close the
            # windows of the transfers sent a window before: the steady state of a server
            # at this rate, whose worker posts as many holds as the requests make.
            asyncio.run(closed_loop(load, "transfer", args.clients, UNDO_SECONDS + 1))
            tr_rps, tr_st, tr_cpu = measured(server, load, "transfer", args)
            # A server slower than --rate would only pile up a queue (latency = queue length);
            # then the latency is measured at half of what it sustained, and said so.
            g_rate = args.rate if get_rps >= 1.1 * args.rate else round(get_rps / 2)
            t_rate = args.rate if tr_rps >= 1.1 * args.rate else round(tr_rps / 2)
            g50, g99, g_st = asyncio.run(open_loop(load, "me", g_rate, args.steady))
            t50, t99, t_st = asyncio.run(open_loop(load, "transfer", t_rate, args.steady))
        finally:
            server.stop()
        verified = server.cli("ledger", "verify")
    print(f"   GET /v1/users/me      {get_rps:8.0f} req/s        at {g_rate:g}/s: p50 {g50:7.1f} ms  "
          f"p99 {g99:7.1f} ms   statuses {get_st} / {g_st}")
    print(f"   POST /v1/transfers    {tr_rps:8.0f} transfers/s  at {t_rate:g}/s: p50 {t50:7.1f} ms  "
          f"p99 {t99:7.1f} ms   statuses {tr_st} / {t_st}")
    steady = (f"p99 ≤ {GOAL_P99_MS:g} ms at {args.rate:g}/s: {'met' if t99 <= GOAL_P99_MS else 'NOT met'}"
              if t_rate == args.rate else f"{args.rate:g}/s NOT sustainable (latency shown at {t_rate:g}/s)")
    print(f"   server CPU per request (TrustPay processes): GET {get_cpu:.2f} ms, transfer {tr_cpu:.2f} ms "
          f"(GET / transfer {get_cpu / tr_cpu:.2f}; 1,000 transfers/s on 2 cores needs under 2 ms)")
    print(f"   transfer / GET throughput ratio {tr_rps / get_rps:.2f}; "
          f"≥ {GOAL_TPS}/s: {'met' if tr_rps >= GOAL_TPS else 'NOT met'}; {steady}; "
          f"ledger verify afterwards: {'OK' if verified.returncode == 0 else 'BROKEN'}")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--pg-url")
    ap.add_argument("--users", type=int, default=64)
    ap.add_argument("--checks", choices=("on", "off"), default="on",
                    help="tier limits and risk rules (on: with figures nobody reaches)")
    ap.add_argument("--clients", type=int, default=16, help="connections in the closed loop")
    ap.add_argument("--seconds", type=float, default=10, help="length of each closed-loop run")
    ap.add_argument("--rate", type=float, default=300, help="requests per second in the open loop")
    ap.add_argument("--steady", type=float, default=10, help="length of each open-loop run")
    ap.add_argument("--processes", type=int, default=1, help="server processes (serve --processes)")
    ap.add_argument("--skip-sqlite", action="store_true", help="with --pg-url: PostgreSQL only")
    args = ap.parse_args()
    print(f"HTTP benchmark (trustpay serve: uvicorn, {args.processes} process(es); limits and risk checks "
          f"{args.checks}; shared, noisy machine — compare ratios)")
    if not (args.skip_sqlite and args.pg_url):
        with tempfile.TemporaryDirectory() as d:
            run_engine("SQLite", f"sqlite:///{d}/bench.db", args)
    if args.pg_url:
        url = fresh_pg(args.pg_url)
        try:
            run_engine("PostgreSQL", url, args)
        finally:
            drop_pg(args.pg_url, url)
    print(f"goals (QUALITY.md): POST /v1/transfers ≥ {GOAL_TPS}/s, p99 ≤ {GOAL_P99_MS:g} ms at 300 req/s")


if __name__ == "__main__":
    main()
