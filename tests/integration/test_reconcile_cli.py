"""``trustpay reconcile``: the same run from the command line, with its progress bar and exit code."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import select
from tests.integration.test_reconcile import DAY, NO_ANSWER, bind, settle_bank, status_of, topup
from tests.integration.wallet_support import WalletEnv, make_wallet_env
from typer.testing import CliRunner

from trustpay.cli import app
from trustpay.db.schema import recon_runs
from trustpay.settings import get_settings


def flat(output: str) -> str:
    return " ".join(output.split())  # Rich wraps lines at the terminal width


@pytest.fixture
def w(db_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[WalletEnv]:
    bank_dir = str(tmp_path / "bank")
    monkeypatch.setenv("TRUSTPAY_DATABASE_URL", db_url)
    monkeypatch.setenv("TRUSTPAY_BANK_SANDBOX_DATA_DIR", bank_dir)
    monkeypatch.setenv("TRUSTPAY_NOTIFY_SINK", f"file:{tmp_path / 'cli.jsonl'}")
    get_settings.cache_clear()  # settings are read once per process
    yield from make_wallet_env(db_url, tmp_path, bank_sandbox_data_dir=bank_dir, bank_sandbox_settle_seconds=2)
    get_settings.cache_clear()


def test_cli_settles_the_late_success_once_and_reports(w: WalletEnv) -> None:
    alice = w.user("alice@example.com")
    late = topup(w, alice, bind(w, alice, NO_ANSWER), 2_000)
    settle_bank(w)
    runner = CliRunner()
    first = runner.invoke(app, ["reconcile", "--bank", "sandbox", "--date", DAY.isoformat()])
    assert first.exit_code == 0, first.output
    said = flat(first.output)
    assert "1 lines, 1 matched, 1 settled late, 0 new exceptions (0 open), 1 moved out of clearing" in said
    assert status_of(w, alice, f"/v1/topups/{late}") == "succeeded"
    assert w.balance(alice)["available"] == 2_000
    again = runner.invoke(app, ["reconcile", "--bank", "sandbox", "--date", DAY.isoformat()])
    assert again.exit_code == 0, again.output
    assert "0 settled late, 0 new exceptions (0 open), 0 moved out of clearing" in flat(again.output)
    assert w.balance(alice)["available"] == 2_000
    with w.platform.db.transaction(write=False) as conn:
        assert conn.execute(select(recon_runs.c.passes)).scalars().all() == [2]
    w.ledger_ok()


def test_cli_refuses_a_bad_date_and_an_unknown_bank(w: WalletEnv) -> None:
    runner = CliRunner()
    bad = runner.invoke(app, ["reconcile", "--date", "2026-13-40"])
    assert bad.exit_code == 2 and "not a date" in bad.output
    unknown = runner.invoke(app, ["reconcile", "--bank", "nobank", "--date", DAY.isoformat()])
    assert unknown.exit_code == 1 and "not reconciled" in unknown.output
