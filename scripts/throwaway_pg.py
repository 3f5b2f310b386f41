#!/usr/bin/env python3
"""Start or stop a throwaway PostgreSQL server for tests and benchmarks.

    throwaway_pg.py start DIR   -> initdb in DIR, start on a free port, print the URL
    throwaway_pg.py stop DIR    -> stop it (the directory is left for inspection)

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


def start(d: Path) -> str:
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
    if len(sys.argv) != 3 or sys.argv[1] not in {"start", "stop"}:
        sys.exit(__doc__)
    if sys.argv[1] == "start":
        print(start(Path(sys.argv[2])))
    else:
        stop(Path(sys.argv[2]))
