#!/usr/bin/env python3
"""Start or stop a throwaway PostgreSQL server for tests and benchmarks.

    throwaway_pg.py start DIR [--no-fsync]  -> initdb in DIR, start on a free port, print the URL
    throwaway_pg.py stop DIR                -> stop it (the directory is left for inspection)

``--no-fsync`` is for the test suite only: the server does not wait for the
disk (fsync, synchronous_commit and full_page_writes off), which makes each
test's CREATE DATABASE and every commit cheap. Nothing in the suite survives
a power cut or relies on PostgreSQL doing so (the crash tests kill TrustPay,
not PostgreSQL). Benchmarks start it without the flag, durable as in production.

Runs the server as the ``postgres`` system user when started as root
(PostgreSQL refuses to run as root). Uses Debian's binaries.
"""

from __future__ import annotations

import glob
import os
import shutil
import socket
import subprocess
import sys
from pathlib import Path


def _bin(name: str) -> str:
    found = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"))
    if found:
        return found[-1]
    path = shutil.which(name)
    if path:
        return path
    sys.exit(f"PostgreSQL's {name} not found: apt-get install postgresql")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _as_owner(cmd: list[str]) -> list[str]:
    return ["runuser", "-u", "postgres", "--", *cmd] if os.geteuid() == 0 else cmd


def start(d: Path, *, durable: bool = True) -> str:
    d = d.resolve()
    data = d / "data"
    if d.exists():
        stop(d, quiet=True)
        shutil.rmtree(d)
    d.mkdir(parents=True)
    if os.geteuid() == 0:
        shutil.chown(d, "postgres", "postgres")
    subprocess.run(
        _as_owner([_bin("initdb"), "-D", str(data), "-U", "trustpay", "--auth=trust",
                   "-E", "UTF8", "--locale=C.UTF-8"]),
        check=True, stdout=subprocess.DEVNULL,
    )
    port = _free_port()
    opts = (f"-p {port} -k {d} -c listen_addresses=127.0.0.1 -c max_connections=200 "
            "-c shared_buffers=128MB")
    if not durable:
        opts += " -c fsync=off -c synchronous_commit=off -c full_page_writes=off"
    subprocess.run(
        _as_owner([_bin("pg_ctl"), "-D", str(data), "-l", str(d / "server.log"), "-o", opts, "-w", "start"]),
        check=True, stdout=subprocess.DEVNULL,
    )
    (d / "port").write_text(str(port))
    subprocess.run(_as_owner([_bin("createdb"), "-h", "127.0.0.1", "-p", str(port), "-U", "trustpay",
                              "trustpay"]), check=True)
    return f"postgresql+psycopg://trustpay@127.0.0.1:{port}/trustpay"


def stop(d: Path, quiet: bool = False) -> None:
    data = d.resolve() / "data"
    if not (data / "postmaster.pid").exists():
        return
    subprocess.run(_as_owner([_bin("pg_ctl"), "-D", str(data), "-m", "fast", "-w", "stop"]),
                   check=not quiet, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL if quiet else None)


if __name__ == "__main__":
    args = sys.argv[1:]
    fast = "--no-fsync" in args
    args = [a for a in args if a != "--no-fsync"]
    if len(args) != 2 or args[0] not in {"start", "stop"} or (fast and args[0] != "start"):
        sys.exit(__doc__)
    if args[0] == "start":
        print(start(Path(args[1]), durable=not fast))
    else:
        stop(Path(args[1]))
