"""The statement (GET /v1/transactions) and receipts, on SQLite and PostgreSQL.

Money is posted straight through the ledger the way the wallet records it
(see statement_support), so these tests depend only on the ledger's contract.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Connection
from tests.integration.identity_support import Env, bearer, make_env
from tests.integration.statement_support import clearing, top_up, transfer, wallet_of, withdraw
from typer.testing import CliRunner

from trustpay.cli import app as cli
from trustpay.ledger import EntryDraft, credit, debit
from trustpay.wallet import receipt, statement
from trustpay.wallet.statement import LineType


@dataclass
class Pair:
    env: Env
    alice: str  # user id
    bob: str
    alice_token: str
    bob_token: str

    def lines(self, query: str = "", token: str | None = None) -> list[dict[str, Any]]:
        r = self.env.client.get(f"/v1/transactions{query}", headers=bearer(token or self.alice_token))
        assert r.status_code == 200, r.text
        body = r.json()
        assert body["object"] == "list"
        data: list[dict[str, Any]] = body["data"]
        return data

    def get(self, url: str, token: str | None = None) -> Any:
        return self.env.client.get(url, headers=bearer(token or self.alice_token))


@pytest.fixture
def pair(db_url: str, tmp_path: Path) -> Iterator[Pair]:
    for env in make_env(db_url, tmp_path):
        a, b = env.sign_up("alice@example.com"), env.sign_up("bob@example.com")
        yield Pair(env, a["id"], b["id"], env.token("alice@example.com"), env.token("bob@example.com"))


def history(pair: Pair) -> dict[str, str]:
    """Alice: two top-ups, a withdrawal with its fee, a transfer to Bob; a second apart each."""
    p = pair.env.platform
    refs = {"top1": top_up(p, pair.alice, 10_000, memo="salary")}
    pair.env.advance(seconds=1)
    refs["top2"] = top_up(p, pair.alice, 5_000)
    pair.env.advance(seconds=1)
    refs["wd"] = withdraw(p, pair.alice, 3_000, fee=200)
    pair.env.advance(seconds=1)
    refs["tr"] = transfer(p, pair.alice, pair.bob, 1_000, memo="lunch")
    return refs


def test_lines_are_posted_money_newest_first_with_running_balance(pair: Pair) -> None:
    refs = history(pair)
    lines = pair.lines()
    assert [(ln["type"], ln["amount"], ln["balance_after"], ln["reference"]) for ln in lines] == [
        ("transfer_out", -1_000, 10_800, refs["tr"]),
        ("withdrawal_fee", -200, 11_800, refs["wd"]),
        ("withdrawal", -3_000, 12_000, refs["wd"]),
        ("topup", 5_000, 15_000, refs["top2"]),
        ("topup", 10_000, 10_000, refs["top1"]),
    ]
    assert all(ln["currency"] == "CNY" and ln["id"].startswith("txn_") for ln in lines)
    assert len({ln["id"] for ln in lines}) == len(lines)
    assert lines[0]["memo"] == "lunch" and lines[-1]["memo"] == "salary"
    # The transfer's hold moved no posted money: one line each side, not two.
    (bobs,) = pair.lines(token=pair.bob_token)
    assert (bobs["type"], bobs["amount"], bobs["balance_after"]) == ("transfer_in", 1_000, 1_000)
    assert bobs["id"] != lines[0]["id"]  # same entry, different wallet: a different line


def test_every_type_filter_returns_exactly_the_lines_of_that_type(pair: Pair) -> None:
    history(pair)
    p = pair.env.platform
    with p.db.transaction() as conn:
        first = conn.exec_driver_sql("SELECT id FROM ledger_entries ORDER BY seq LIMIT 1").scalar_one()
        p.book.reverse(conn, first, memo="bank recalled it")
        _adjust(p, conn, pair.alice, 7)
    everything = pair.lines("?limit=100")
    assert {ln["type"] for ln in everything} >= {"topup", "withdrawal", "withdrawal_fee", "transfer_out",
                                                "reversal", "adjustment"}
    for t in LineType:
        filtered = pair.lines(f"?type={t.value}&limit=100")
        assert filtered == [ln for ln in everything if ln["type"] == t.value], t


def _adjust(p: Any, conn: Connection, user_id: str, amount: int) -> None:
    bank, wallet = clearing(p, conn), wallet_of(p, conn, user_id)
    p.book.post(conn, EntryDraft((debit(bank.id, amount, "CNY"), credit(wallet.id, amount, "CNY")),
                                 reference="adj-2026-11", memo="reconciliation correction"))


def test_time_filters_and_pages(pair: Pair) -> None:
    history(pair)
    lines = pair.lines()
    newest, oldest = lines[0]["created_at"], lines[-1]["created_at"]
    assert [ln["id"] for ln in pair.lines(f"?created_gte={newest}")] == [lines[0]["id"]]
    assert [ln["id"] for ln in pair.lines(f"?created_lt={lines[-2]['created_at']}")] == [lines[-1]["id"]]
    assert pair.lines(f"?created_lt={oldest}") == []

    seen: list[str] = []
    cursor = ""
    while True:
        r = pair.get(f"/v1/transactions?limit=2{cursor}").json()
        seen += [ln["id"] for ln in r["data"]]
        if not r["has_more"]:
            break
        cursor = f"&starting_after={r['data'][-1]['id']}"
    assert seen == [ln["id"] for ln in lines]


@pytest.mark.parametrize("query, param", [
    ("?limit=0", "limit"), ("?limit=101", "limit"), ("?type=gift", "type"),
    ("?created_gte=yesterday", "created_gte"), ("?starting_after=txn_nothing_here", "starting_after"),
])
def test_bad_queries_are_clear_errors(pair: Pair, query: str, param: str) -> None:
    r = pair.get(f"/v1/transactions{query}")
    assert r.status_code in (400, 404), r.text
    assert r.json()["error"]["param"] == param


def test_csv_export_is_the_same_lines(pair: Pair) -> None:
    history(pair)
    top_up(pair.env.platform, pair.alice, 1, memo="=HYPERLINK(\"http://evil\")")
    r = pair.get("/v1/transactions?format=csv")
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("text/csv")
    assert "attachment" in r.headers["content-disposition"]
    rows = list(csv.DictReader(io.StringIO(r.text)))
    lines = pair.lines("?limit=100")
    assert [row["id"] for row in rows] == [ln["id"] for ln in lines]
    assert [int(row["amount"]) for row in rows] == [ln["amount"] for ln in lines]
    assert [int(row["balance_after"]) for row in rows] == [ln["balance_after"] for ln in lines]
    assert rows[1]["amount_major"] == "-10.00" and rows[1]["type"] == "transfer_out"
    assert rows[0]["memo"].startswith("'="), "a memo must not run as a spreadsheet formula"
    # Filters apply to the export too.
    fees = list(csv.DictReader(io.StringIO(pair.get("/v1/transactions?format=csv&type=withdrawal_fee").text)))
    assert [row["amount"] for row in fees] == ["-200"]


def test_csv_export_streams_more_than_one_page(pair: Pair) -> None:
    for i in range(statement.MAX_LIMIT + 5):
        top_up(pair.env.platform, pair.alice, i + 1)
    rows = list(csv.DictReader(io.StringIO(pair.get("/v1/transactions?format=csv").text)))
    assert len(rows) == statement.MAX_LIMIT + 5
    assert int(rows[0]["balance_after"]) == sum(range(1, statement.MAX_LIMIT + 6))


def test_counterparty_comes_from_the_registered_capability(pair: Pair, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(statement, "_COUNTERPARTIES", {})
    asked: list[tuple[str, str]] = []

    def other_side(conn: Connection, reference: str, user_id: str) -> str | None:
        asked.append((reference, user_id))
        return "b***@example.com" if user_id == pair.alice else "a***@example.com"

    statement.register_counterparty("tr", other_side)
    refs = history(pair)
    lines = pair.lines()
    assert lines[0]["counterparty"] == "b***@example.com"
    assert pair.lines(token=pair.bob_token)[0]["counterparty"] == "a***@example.com"
    assert all(ln["counterparty"] is None for ln in lines[1:]), "unknown prefixes have no counterparty"
    assert (refs["tr"], pair.alice) in asked


def test_receipt_verifies_offline_and_names_what_was_tampered(pair: Pair, tmp_path: Path) -> None:
    history(pair)
    line = pair.lines()[1]  # the withdrawal fee
    r = pair.get(f"/v1/transactions/{line['id']}/receipt")
    assert r.status_code == 200, r.text
    doc = r.json()
    assert {k: doc[k] for k in line if k != "object"} == {k: v for k, v in line.items() if k != "object"}
    published = pair.get("/v1/ledger/digest").json()
    assert (doc["digest"]["height"], doc["digest"]["root"]) == (published["height"], published["root"])
    assert receipt.verify(doc, published=published).ok

    # More entries later: the old receipt still proves inclusion in its own tree.
    top_up(pair.env.platform, pair.alice, 50)
    assert receipt.verify(doc).ok

    saved = tmp_path / "receipt.json"
    saved.write_text(json.dumps(doc))
    ok = CliRunner().invoke(cli, ["receipt", "verify", str(saved)])
    assert ok.exit_code == 0, ok.output
    assert "verified:" in ok.output and "NOT verified" not in ok.output

    tampered: dict[str, Callable[[dict[str, Any]], object]] = {
        "amount": lambda d: d.update(amount=d["amount"] - 1),
        "inclusion proof": lambda d: d["digest"].update(root="ab" * 32),
        "entry hash": lambda d: d["entry"]["lines"][0].__setitem__(3, d["entry"]["lines"][0][3] + 1),
    }
    for failed_check, change in tampered.items():
        bad = json.loads(json.dumps(doc))
        change(bad)
        saved.write_text(json.dumps(bad))
        result = CliRunner().invoke(cli, ["receipt", "verify", str(saved)])
        assert result.exit_code == 1, (failed_check, result.output)
        assert "NOT verified" in result.output and failed_check in result.output.split("NOT verified")[1]
    proof = json.loads(json.dumps(doc))
    proof["proof"][0] = "00" * 32
    saved.write_text(json.dumps(proof))
    result = CliRunner().invoke(cli, ["receipt", "verify", str(saved)])
    assert result.exit_code == 1 and "inclusion proof" in result.output.split("NOT verified")[1]
    saved.write_text("not json")
    assert CliRunner().invoke(cli, ["receipt", "verify", str(saved)]).exit_code == 2


def test_another_users_receipt_is_not_found(pair: Pair) -> None:
    history(pair)
    line = pair.lines()[0]
    r = pair.get(f"/v1/transactions/{line['id']}/receipt", token=pair.bob_token)
    assert r.status_code == 404 and r.json()["error"]["code"] == "not_found"
    # Bob's own line of the same entry is his, with his own id.
    bobs = pair.lines(token=pair.bob_token)[0]
    assert pair.get(f"/v1/transactions/{bobs['id']}/receipt", token=pair.bob_token).status_code == 200
