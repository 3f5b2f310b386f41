"""Shared fixtures: fresh databases on both engines, a frozen clock, a platform."""

from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path

# Before anything imports trustpay.identity.crypto: argon2id with the smallest parameters
# (the suite signs up thousands of users; production keeps RFC 9106's profile, see
# tests/unit/test_password_hashing.py). Servers the e2e tests start inherit it.
os.environ.setdefault("TRUSTPAY_TEST_FAST_PASSWORD_HASHING", "1")
# A bytecode cache for every server and CLI process the suite starts, even where the environment
# says PYTHONDONTWRITEBYTECODE (scripts/test.sh sets the same before pytest itself starts): without
# it each `trustpay serve` compiles the whole app from source, ~3x its start-up time. It lives under
# the venv, out of the source tree, and Python checks it against each source file's mtime and size.
os.environ.setdefault("PYTHONPYCACHEPREFIX", str(Path(sys.prefix) / "pycache"))
os.environ.pop("PYTHONDONTWRITEBYTECODE", None)
from collections.abc import Iterator

import pytest
from hypothesis import HealthCheck, settings

from tests.dbs import PostgresFactory, SqliteFactory
from trustpay.clock import FrozenClock
from trustpay.platform.context import Platform
from trustpay.settings import Settings

settings.register_profile(
    "ci", max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)
settings.register_profile(
    "dev", max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "dev"))

ENGINES = ["sqlite", "postgresql"]

# The in-process sandbox bank keeps its own files; tests that do not choose a
# directory share one per test session instead of writing into ./var.
os.environ.setdefault("TRUSTPAY_BANK_SANDBOX_DATA_DIR", tempfile.mkdtemp(prefix="trustpay-test-bank-"))


@pytest.fixture(scope="session")
def sqlite_factory(tmp_path_factory: pytest.TempPathFactory) -> SqliteFactory:
    return SqliteFactory(tmp_path_factory.mktemp("sqlite"))


@pytest.fixture(scope="session")
def pg_factory(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PostgresFactory]:
    f = PostgresFactory(Path(tmp_path_factory.mktemp("pg")))
    yield f
    f.close()


@pytest.fixture(params=ENGINES)
def db_url(request: pytest.FixtureRequest) -> Iterator[str]:
    """A freshly migrated, empty database: once on SQLite, once on PostgreSQL."""
    if request.param == "sqlite":
        yield request.getfixturevalue("sqlite_factory").fresh()
        return
    pg: PostgresFactory = request.getfixturevalue("pg_factory")
    url = pg.fresh()
    yield url
    pg.drop(url)


@pytest.fixture
def clock() -> FrozenClock:
    return FrozenClock()


@pytest.fixture
def platform(db_url: str, clock: FrozenClock) -> Iterator[Platform]:
    p = Platform.build(Settings(database_url=db_url), clock=clock)
    yield p
    p.close()
