"""Fresh, migrated databases for tests, on SQLite and PostgreSQL.

Migrations run once per session into a template (a file for SQLite, a
template database for PostgreSQL); each test gets a cheap copy.
If ``TRUSTPAY_TEST_PG_URL`` is unset a throwaway server is started for the
session (``make test`` starts one and sets the variable).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import uuid
from pathlib import Path

import psycopg
from sqlalchemy.engine import make_url

from trustpay.db.migrate import upgrade

ROOT = Path(__file__).resolve().parents[1]


class SqliteFactory:
    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.template = workdir / "template.db"
        upgrade(f"sqlite:///{self.template}")

    def fresh(self) -> str:
        path = self.workdir / f"t_{uuid.uuid4().hex[:12]}.db"
        shutil.copyfile(self.template, path)
        return f"sqlite:///{path}"


class PostgresFactory:
    def __init__(self, workdir: Path) -> None:
        self._owned: Path | None = None
        url = os.environ.get("TRUSTPAY_TEST_PG_URL")
        if not url:
            self._owned = Path(tempfile.mkdtemp(prefix="trustpay-pytest-pg-"))
            os.chmod(self._owned, 0o755)
            url = subprocess.run(
                [sys.executable, str(ROOT / "scripts" / "throwaway_pg.py"), "start", str(self._owned / "pg"),
                 "--no-fsync"],
                check=True, capture_output=True, text=True,
            ).stdout.strip()
        self.base = make_url(url)
        self.template = f"tpl_{uuid.uuid4().hex[:8]}"
        self._admin(f'CREATE DATABASE "{self.template}"')
        upgrade(self.url_for(self.template))
        self._admin(f'ALTER DATABASE "{self.template}" WITH IS_TEMPLATE true')

    def url_for(self, name: str) -> str:
        return self.base.set(database=name).render_as_string(hide_password=False)

    def _admin(self, sql: str) -> None:
        u = self.base
        with psycopg.connect(host=u.host, port=u.port, user=u.username, password=u.password,
                             dbname=u.database, autocommit=True) as c:
            c.execute(sql)  # type: ignore[arg-type]

    def fresh(self) -> str:
        name = f"t_{uuid.uuid4().hex[:12]}"
        self._admin(f'CREATE DATABASE "{name}" TEMPLATE "{self.template}"')
        return self.url_for(name)

    def drop(self, url: str) -> None:
        name = make_url(url).database
        self._admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

    def close(self) -> None:
        if self._owned:
            subprocess.run([sys.executable, str(ROOT / "scripts" / "throwaway_pg.py"), "stop",
                            str(self._owned / "pg")], check=False)
