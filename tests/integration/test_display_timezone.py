"""Pages show times in the display time zone (TRUSTPAY_DISPLAY_TIMEZONE, by default the
limits zone, Asia/Shanghai) and say which; what machines read (the API, the CSV export,
receipt files, ``<time datetime>``) stays UTC. On SQLite and PostgreSQL."""

from __future__ import annotations

import csv
import io
import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from tests.integration.identity_support import Env, bearer, make_env
from tests.integration.statement_support import top_up, transfer

from trustpay.web.auth import SESSION_COOKIE

LINE = re.compile(r'href="/wallet/transactions/(txn_[a-z0-9_]+)"')
# 14:35 UTC on 4 December: 22:35 that evening in Shanghai. The transfer at 16:30 UTC is
# still 4 December in UTC but already 00:30 on 5 December in Shanghai.
TOP_UP_AT = datetime(2026, 12, 4, 14, 35, tzinfo=UTC)
TRANSFER_AT = datetime(2026, 12, 4, 16, 30, tzinfo=UTC)


@dataclass
class Alice:
    env: Env
    page: TestClient
    token: str


def _alice(env: Env) -> Alice:
    env.clock.set(TOP_UP_AT)
    a = env.sign_up("alice@example.com")
    b = env.sign_up("bob@example.com")
    top_up(env.platform, a["id"], 10_000, memo="salary-7781")
    env.clock.set(TRANSFER_AT)
    transfer(env.platform, a["id"], b["id"], 2_500, memo="rent-4412")
    token = env.token("alice@example.com")
    page = TestClient(env.app)
    page.cookies.set(SESSION_COOKIE, token)
    return Alice(env, page, token)


@pytest.fixture
def shanghai(db_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Alice]:
    monkeypatch.delenv("TRUSTPAY_DISPLAY_TIMEZONE", raising=False)
    monkeypatch.delenv("TRUSTPAY_LIMITS_TIMEZONE", raising=False)
    for env in make_env(db_url, tmp_path):
        assert env.platform.settings.display_timezone == "Asia/Shanghai"  # the default
        yield _alice(env)


@pytest.fixture
def utc(db_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Alice]:
    monkeypatch.setenv("TRUSTPAY_DISPLAY_TIMEZONE", "UTC")
    for env in make_env(db_url, tmp_path):
        assert env.platform.settings.limits_timezone == "Asia/Shanghai"  # the business day is not moved
        yield _alice(env)


def _statement(alice: Alice, lang: str = "en", **filters: str) -> str:
    r = alice.page.get("/wallet/statement", params={"lang": lang, **filters})
    assert r.status_code == 200
    return r.text


def test_the_statement_shows_shanghai_time_and_says_so(shanghai: Alice) -> None:
    page = _statement(shanghai)
    assert "Dec 4, 2026, 10:35:00\u202fPM\u00a0UTC+8" in page  # the top-up
    assert "Dec 5, 2026, 12:30:00\u202fAM\u00a0UTC+8" in page  # the transfer: already the 5th there
    assert "2:35:00" not in page and "(UTC)" not in page
    zh = _statement(shanghai, "zh-Hans")
    assert "2026年12月4日 22:35:00（UTC+8）" in zh and "2026年12月5日 00:30:00（UTC+8）" in zh
    assert "2026年12月5日 晚上12:30:00（UTC+8）" not in zh
    assert "2026年12月4日 晚上10:35:00（UTC+8）" in _statement(shanghai, "zh-Hant")


def test_the_same_times_in_utc_when_the_operator_says_so(utc: Alice) -> None:
    page = _statement(utc)
    assert "Dec 4, 2026, 2:35:00\u202fPM\u00a0UTC" in page
    assert "Dec 4, 2026, 4:30:00\u202fPM\u00a0UTC" in page
    assert "UTC+8" not in page
    assert "2026年12月4日 14:35:00（UTC）" in _statement(utc, "zh-Hans")


def test_the_receipt_page_is_local_and_its_file_utc(shanghai: Alice) -> None:
    line = LINE.findall(_statement(shanghai, type="topup"))[0]
    page = shanghai.page.get(f"/wallet/transactions/{line}", params={"lang": "en"}).text
    assert "Dec 4, 2026, 10:35:00\u202fPM\u00a0UTC+8" in page
    doc = json.loads(shanghai.page.get(f"/wallet/transactions/{line}/receipt.json").text)
    assert doc["created_at"] in ("2026-12-04T14:35:00Z", "2026-12-04T14:35:00+00:00")


def test_the_csv_and_the_api_stay_utc_while_the_page_is_local(shanghai: Alice) -> None:
    assert "Dec 4, 2026, 10:35:00\u202fPM\u00a0UTC+8" in _statement(shanghai)
    rows = list(csv.DictReader(io.StringIO(shanghai.page.get("/wallet/statement.csv").text)))
    assert sorted(row["created_at"] for row in rows) == ["2026-12-04T14:35:00Z", "2026-12-04T16:30:00Z"]
    r = shanghai.env.client.get("/v1/transactions", headers=bearer(shanghai.token))
    assert r.status_code == 200
    assert sorted(line["created_at"] for line in r.json()["data"]) == \
        ["2026-12-04T14:35:00Z", "2026-12-04T16:30:00Z"]


def test_the_statement_filter_counts_days_in_the_zone_it_shows(shanghai: Alice) -> None:
    page = _statement(shanghai, start="2026-12-05", end="2026-12-05")
    # 16:30 UTC on the 4th is the 5th in Shanghai, where the page dates it; the top-up is the 4th.
    assert "rent-4412" in page and "salary-7781" not in page
    assert "From (UTC+8)" in page and "To (UTC+8)" in page
    assert "开始日期（UTC+8）" in _statement(shanghai, "zh-Hans")
    page = _statement(shanghai, start="2026-12-04", end="2026-12-04")
    assert "salary-7781" in page and "rent-4412" not in page
    # The CSV link takes the same days (its timestamps stay UTC).
    rows = list(csv.DictReader(io.StringIO(
        shanghai.page.get("/wallet/statement.csv", params={"start": "2026-12-05", "end": "2026-12-05"}).text)))
    assert [row["created_at"] for row in rows] == ["2026-12-04T16:30:00Z"]


def test_with_utc_display_the_filter_days_are_utc_days(utc: Alice) -> None:
    page = _statement(utc, start="2026-12-04", end="2026-12-04")
    assert "rent-4412" in page and "salary-7781" in page
    assert "From (UTC)" in page
