"""``trustpay settle --date``: the daily run from the command line, with its progress bar."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import select
from tests.integration.test_reconcile_cli import flat
from tests.integration.test_settlement import CUTOFF, RUN_DAY, bind, choose_card, finished_at
from tests.integration.trade_support import AMOUNT, FEE, TradeEnv, make_trade_env
from typer.testing import CliRunner

from trustpay.cli import app
from trustpay.db.schema import settlements
from trustpay.settings import get_settings


@pytest.fixture
def t(db_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[TradeEnv]:
    bank_dir = str(tmp_path / "bank")
    monkeypatch.setenv("TRUSTPAY_DATABASE_URL", db_url)
    monkeypatch.setenv("TRUSTPAY_BANK_SANDBOX_DATA_DIR", bank_dir)
    monkeypatch.setenv("TRUSTPAY_NOTIFY_SINK", f"file:{tmp_path / 'cli.jsonl'}")
    get_settings.cache_clear()  # settings are read once per process
    yield from make_trade_env(db_url, tmp_path, bank_sandbox_data_dir=bank_dir, bank_sandbox_settle_seconds=2)
    get_settings.cache_clear()


def test_cli_batches_once_and_refuses_a_bad_date(t: TradeEnv) -> None:
    shop = t.merchant()
    buyer = t.user("buyer@example.com", fund=100_000)
    choose_card(t, shop, bind(t, shop))
    finished_at(t, shop, buyer, CUTOFF - timedelta(hours=1), "order-1")
    runner = CliRunner()
    # The command runs on the real clock, long after the test clock's January.
    first = runner.invoke(app, ["settle", "--date", RUN_DAY.isoformat()])
    assert first.exit_code == 0, first.output
    assert "1 merchant balance(s) due, 1 payout(s) started" in flat(first.output)
    again = runner.invoke(app, ["settle", "--date", RUN_DAY.isoformat()])
    assert again.exit_code == 0, again.output
    assert "0 payout(s) started" in flat(again.output)
    with t.platform.db.transaction(write=False) as conn:
        assert [tuple(r) for r in conn.execute(select(settlements.c.business_date, settlements.c.amount))] == [
            (RUN_DAY.isoformat(), AMOUNT - FEE)]
    bad = runner.invoke(app, ["settle", "--date", "2026-02-30"])
    assert bad.exit_code == 2 and "not a date" in bad.output
    future = runner.invoke(app, ["settle", "--date", "2999-01-01"])
    assert future.exit_code == 1 and "not settled" in future.output
