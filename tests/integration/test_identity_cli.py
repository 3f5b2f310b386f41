"""``trustpay ops create-user`` against a real database on both engines."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import create_engine, select
from tests.integration.identity_support import make_env
from typer.testing import CliRunner

from trustpay.cli import app
from trustpay.db.schema import users
from trustpay.settings import get_settings


@pytest.fixture
def cli_env(db_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    monkeypatch.setenv("TRUSTPAY_DATABASE_URL", db_url)
    monkeypatch.setenv("TRUSTPAY_NOTIFY_SINK", f"file:{tmp_path / 'cli.jsonl'}")
    get_settings.cache_clear()  # settings are read once per process
    yield db_url
    get_settings.cache_clear()


def test_ops_create_user_makes_an_ops_user_who_can_log_in(cli_env: str, tmp_path: Path) -> None:
    result = CliRunner().invoke(app, ["ops", "create-user", "--email", "Ops@Example.com",
                                      "--password", "ops password 2026", "--name", "Olga"])
    assert result.exit_code == 0, result.output
    engine = create_engine(cli_env)
    try:
        with engine.connect() as conn:
            row = conn.execute(select(users)).one()
    finally:
        engine.dispose()
    assert (row.email, row.kind, row.name) == ("ops@example.com", "ops", "Olga")
    assert row.email_verified_at is not None
    for env in make_env(cli_env, tmp_path / "app"):
        r = env.login("ops@example.com", "ops password 2026")
        assert r.status_code == 201 and r.json()["user"]["kind"] == "ops"


def test_ops_create_user_refuses_weak_passwords_and_duplicates(cli_env: str) -> None:
    runner = CliRunner()
    weak = runner.invoke(app, ["ops", "create-user", "--email", "o@example.com", "--password", "short"])
    assert weak.exit_code == 1 and "not created" in weak.output
    ok = runner.invoke(app, ["ops", "create-user", "--email", "o@example.com", "--password", "ops password 2026"])
    assert ok.exit_code == 0, ok.output
    dup = runner.invoke(app, ["ops", "create-user", "--email", "o@example.com", "--password", "ops password 2026"])
    assert dup.exit_code == 1
