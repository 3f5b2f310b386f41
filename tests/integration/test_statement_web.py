"""Statement and receipt pages over the app (cookie sessions), on SQLite and PostgreSQL:
who may see what, forgiving filters, and a verify view that notices a doctored journal."""

from __future__ import annotations

import csv
import io
import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import update
from tests.integration.identity_support import Env, make_env
from tests.integration.statement_support import top_up, transfer

from trustpay.db.schema import ledger_entries
from trustpay.wallet import receipt
from trustpay.wallet.statement import parse_line_id
from trustpay.web.auth import SESSION_COOKIE

LINE = re.compile(r'href="/wallet/transactions/(txn_[a-z0-9_]+)"')


@dataclass
class People:
    env: Env
    alice: TestClient
    bob: TestClient
    alice_id: str


def browser_of(env: Env, email: str) -> TestClient:
    client = TestClient(env.app)
    client.cookies.set(SESSION_COOKIE, env.token(email))
    return client


@pytest.fixture
def people(db_url: str, tmp_path: Path) -> Iterator[People]:
    for env in make_env(db_url, tmp_path):
        a = env.sign_up("alice@example.com")
        b = env.sign_up("bob@example.com")
        top_up(env.platform, a["id"], 10_000, memo="salary-7781")
        env.advance(seconds=1)
        transfer(env.platform, a["id"], b["id"], 2_500, memo="rent-4412")
        yield People(env, browser_of(env, "alice@example.com"), browser_of(env, "bob@example.com"), a["id"])


def alices_lines(people: People) -> list[str]:
    r = people.alice.get("/wallet/statement")
    assert r.status_code == 200
    return LINE.findall(r.text)


def test_signed_out_visitors_are_sent_to_log_in(people: People) -> None:
    anon = TestClient(people.env.app)
    line = alices_lines(people)[0]
    for url in ("/wallet/statement", "/wallet/statement.csv", f"/wallet/transactions/{line}",
                f"/wallet/transactions/{line}/verify", f"/wallet/transactions/{line}/receipt.json"):
        r = anon.get(url, follow_redirects=False)
        assert r.status_code == 303 and r.headers["location"].startswith("/login"), url


def test_another_persons_receipt_pages_are_not_found(people: People) -> None:
    line = alices_lines(people)[0]
    for suffix in ("", "/verify", "/receipt.json"):
        assert people.alice.get(f"/wallet/transactions/{line}{suffix}").status_code == 200
        r = people.bob.get(f"/wallet/transactions/{line}{suffix}", headers={"accept": "text/html"})
        assert r.status_code == 404, suffix
        assert "salary-7781" not in r.text and "rent-4412" not in r.text
    # Someone else's line as the "older" cursor: the first page of one's own statement, nothing of hers.
    r = people.bob.get(f"/wallet/statement?after={line}")
    assert r.status_code == 200 and LINE.findall(r.text) and line not in LINE.findall(r.text)


def test_filters_shown_and_forgiving(people: People) -> None:
    r = people.alice.get("/wallet/statement?type=transfer_out")
    assert len(LINE.findall(r.text)) == 1 and "rent-4412" in r.text and "salary-7781" not in r.text
    assert 'value="transfer_out" selected' in r.text
    r = people.alice.get("/wallet/statement?type=bogus&start=not-a-day&end=2999-13-40")
    assert r.status_code == 200 and len(LINE.findall(r.text)) == 2
    assert people.alice.get("/wallet/statement?end=2000-01-01").text.count("statement-empty") == 1


def test_csv_download_follows_the_filters(people: People) -> None:
    r = people.alice.get("/wallet/statement.csv?type=topup")
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(r.text)))
    assert [(row["type"], row["amount"], row["memo"]) for row in rows] == [("topup", "10000", "salary-7781")]


def test_downloaded_receipt_verifies_offline(people: People) -> None:
    line = alices_lines(people)[0]
    doc = json.loads(people.alice.get(f"/wallet/transactions/{line}/receipt.json").text)
    assert doc["id"] == line and receipt.verify(doc).ok


def test_verify_view_notices_a_doctored_journal(people: People) -> None:
    line = alices_lines(people)[-1]  # the top-up
    page = people.alice.get(f"/wallet/transactions/{line}/verify")
    assert 'data-ok="true"' in page.text
    entry_id = parse_line_id(line)
    assert entry_id is not None
    with people.env.platform.db.transaction() as conn:
        conn.execute(update(ledger_entries).where(ledger_entries.c.id == entry_id[0]).values(memo="bonus"))
    page = people.alice.get(f"/wallet/transactions/{line}/verify")
    assert 'data-ok="false"' in page.text
    assert re.search(r'data-check="entry hash"><span class="tag bad">', page.text)


def test_older_link_pages_through_the_whole_statement(people: People) -> None:
    for i in range(25):
        top_up(people.env.platform, people.alice_id, i + 1)
    seen: list[str] = []
    url: str | None = "/wallet/statement"
    while url is not None:
        page = people.alice.get(url).text
        seen += LINE.findall(page)
        older = re.search(r'href="([^"]+)" data-testid="older"', page)
        url = older.group(1).replace("&amp;", "&") if older else None
    assert len(seen) == 27 and len(set(seen)) == 27
