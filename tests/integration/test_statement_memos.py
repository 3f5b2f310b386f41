"""The statement and receipt pages as a person reads them, on SQLite and PostgreSQL: memos the
platform writes (top-up, payout, demo, reconciliation) shown as labels in the page's language
while a memo someone typed is shown as typed and the API keeps the journal's text; the CSV's
balance in major units; the receipt's verify command naming the file the download is saved as;
the way back to the wallet."""

from __future__ import annotations

import csv
import html
import io
import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Connection
from tests.integration.identity_support import bearer
from tests.integration.wallet_support import PAY_PW, Wallet, WalletEnv, make_wallet_env

from trustpay.banks.registry import sandbox_bank
from trustpay.ledger import EntryDraft, credit, debit
from trustpay.ledger.model import AccountKind
from trustpay.wallet import statement
from trustpay.web.auth import SESSION_COOKIE

GOOD = "4111111111111111"
LINE = re.compile(r'data-testid="statement-line" data-type="([a-z_]+)"[^>]*>\s*<a href="/wallet/transactions/'
                  r'(txn_[a-z0-9_]+)">.*?<span class="line-what muted small">([^<]*)</span>', re.S)
# Every memo text the platform writes on a line of these people's statements, in the journal.
SYSTEM_MEMOS = ("top-up", "paid out by the bank", "demo opening balance", "reconciliation adjustment (amount_differs)")


@pytest.fixture
def w(db_url: str, tmp_path: Path) -> Iterator[WalletEnv]:
    yield from make_wallet_env(db_url, tmp_path, bank_sandbox_data_dir=str(tmp_path / "bank"),
                               bank_sandbox_settle_seconds=2)


def browser(w: WalletEnv, who: Wallet) -> TestClient:
    client = TestClient(w.env.app)
    client.cookies.set(SESSION_COOKIE, w.env.token(who.email))
    return client


def settle_bank(w: WalletEnv) -> None:
    w.clock.advance(2)
    sandbox_bank(w.platform).tick()


def post_as_platform(w: WalletEnv, user_id: str, amount: int, reference: str, memo: str) -> None:
    """An entry as the demo seeder / the reconciliation console write one (same reference and memo)."""
    p = w.platform

    def work(conn: Connection) -> None:
        src = p.book.open_account(conn, currency="CNY", kind=AccountKind.EQUITY.value, owner_id="platform",
                                  allow_negative=True)
        dst = p.book.open_account(conn, currency="CNY", kind=AccountKind.WALLET.value, owner_id=user_id)
        p.book.post(conn, EntryDraft((debit(src.id, amount, "CNY"), credit(dst.id, amount, "CNY")),
                                     reference=reference, memo=memo))
    p.db.run(work)


def history(w: WalletEnv) -> tuple[Wallet, Wallet]:
    """Alice: a top-up through the sandbox bank, a paid-out withdrawal (and its fee), a demo opening
    balance, a reconciliation correction, and a transfer from Bob whose typed memo is "top-up"."""
    alice, bob = w.user("alice@example.com"), w.user("bob@example.com", fund=5_000)
    r = w.client.post("/v1/bank-cards", json={"card_number": GOOD, "holder_name": "Li Lei"}, headers=alice.auth)
    assert r.status_code == 201, r.text
    card = str(r.json()["id"])
    r = w.client.post("/v1/topups", json={"card": card, "amount": 10_000}, headers=alice.auth)
    assert r.status_code == 201, r.text
    settle_bank(w)
    r = w.client.post("/v1/withdrawals", json={"card": card, "amount": 1_000, "payment_password": PAY_PW},
                      headers=alice.auth)
    assert r.status_code == 201, r.text
    settle_bank(w)
    post_as_platform(w, alice.id, 20_000, "demo:opening:alice@example.com", "demo opening balance")
    post_as_platform(w, alice.id, 500, "rex_0000000000000000000001", "reconciliation adjustment (amount_differs)")
    assert w.transfer(bob, alice.email, 300, memo="top-up").status_code == 201
    w.advance(w.platform.settings.transfer_undo_seconds + 1)
    return alice, bob


def journal_memos(w: WalletEnv, who: Wallet) -> dict[str, str]:
    r = w.client.get("/v1/transactions?limit=100", headers=bearer(w.env.token(who.email)))
    assert r.status_code == 200, r.text
    return {ln["id"]: ln["memo"] for ln in r.json()["data"]}


@pytest.mark.parametrize(("lang", "labels"), [
    ("en", {"topup": "Top-up from your bank card", "withdrawal": "Paid out to your bank card",
            "withdrawal_fee": "Fee for a withdrawal paid out to your bank card",
            "demo": "Opening balance (demo data)", "rex": "Correction after reconciliation with the bank"}),
    ("zh-Hans", {"topup": "从银行卡充值", "withdrawal": "已打到你的银行卡",
                 "withdrawal_fee": "提现手续费（款项已打到你的银行卡）",
                 "demo": "期初余额（演示数据）", "rex": "与银行对账后的更正"}),
])
def test_system_memos_are_labels_typed_memos_are_as_typed(w: WalletEnv, lang: str, labels: dict[str, str]) -> None:
    alice, _bob = history(w)
    memos = journal_memos(w, alice)
    # The API gives the journal's own text, untouched.
    assert sorted(set(memos.values()) - {""}) == sorted(SYSTEM_MEMOS)
    me = browser(w, alice)
    page = me.get("/wallet/statement", params={"lang": lang})
    assert page.status_code == 200
    shown = {line_id: (kind, html.unescape(what)) for kind, line_id, what in LINE.findall(page.text)}
    assert len(shown) == len(memos) == 6
    for memo in SYSTEM_MEMOS:
        assert f">{memo}<" not in page.text, f"{memo!r} is shown raw on the statement"
    by_memo = {memos[i]: what for i, (_kind, what) in shown.items() if shown[i][0] != "transfer_in"}
    assert by_memo["top-up"] == labels["topup"]
    assert by_memo["demo opening balance"] == labels["demo"]
    assert by_memo["reconciliation adjustment (amount_differs)"] == labels["rex"]
    payouts = {kind: what for kind, what in shown.values() if kind.startswith("withdrawal")}
    assert payouts == {"withdrawal": labels["withdrawal"], "withdrawal_fee": labels["withdrawal_fee"]}

    # The receipt's "Note" row: the same label for a platform memo, the typed text for a transfer's.
    for line_id, memo in memos.items():
        receipt = me.get(f"/wallet/transactions/{line_id}", params={"lang": lang})
        note = re.search(r'data-testid="receipt-memo">([^<]*)<', receipt.text)
        if shown[line_id][0] == "transfer_in":
            assert note is not None and html.unescape(note.group(1)) == "top-up"  # Bob typed it
        elif memo == "top-up":
            assert note is not None and html.unescape(note.group(1)) == labels["topup"]
        elif memo:
            assert note is not None and html.unescape(note.group(1)) == shown[line_id][1]
        # The receipt file still carries the journal's text, so it verifies.
        doc = me.get(f"/wallet/transactions/{line_id}/receipt.json").json()
        assert doc["memo"] == memo
    assert journal_memos(w, alice) == memos


def test_refund_memos_keep_the_merchants_subject() -> None:
    """Refund memos are the platform's prefix and the trade's subject, as its merchant typed it;
    a payment's memo (the subject alone) and any transfer's are never relabelled."""
    from starlette.requests import Request

    from trustpay.web.wallet_pages import shown_memo

    request = Request({"type": "http", "query_string": b"lang=zh-Hans", "headers": []})
    refund, payment = statement.LineType.REFUND, statement.LineType.PAYMENT
    late = shown_memo(request, refund, "trd_1", "refund: not shipped in time — Blue mug")
    assert late == "退款：卖家未按时发货 — Blue mug"
    assert shown_memo(request, refund, "trd_1", "refund: 100% wool") == "退款：100% wool"
    assert shown_memo(request, refund, "trd_1", "dispute ruling — Lamp") == "争议裁决后退款 — Lamp"
    assert shown_memo(request, payment, "trd_1", "refund: Blue mug") == "refund: Blue mug"
    assert shown_memo(request, statement.LineType.TRANSFER_IN, "tr_1", "paid out by the bank") == "paid out by the bank"
    assert shown_memo(request, statement.LineType.ADJUSTMENT, "usr_x", "demo opening balance") == "demo opening balance"


def test_csv_has_the_balance_in_major_units_too(w: WalletEnv) -> None:
    alice, _bob = history(w)
    for r in (browser(w, alice).get("/wallet/statement.csv"),
              w.client.get("/v1/transactions?format=csv", headers=bearer(w.env.token(alice.email)))):
        assert r.status_code == 200
        reader = csv.DictReader(io.StringIO(r.text))
        assert reader.fieldnames == ["id", "created_at", "type", "amount", "amount_major", "currency",
                                     "balance_after", "balance_after_major", "counterparty", "reference", "memo"]
        rows = list(reader)
        assert rows and all(row["balance_after_major"] == f"{int(row['balance_after']) / 100:.2f}" for row in rows)
        assert int(rows[0]["balance_after"]) == w.balance(alice)["available"] == 29_790
        assert rows[0]["balance_after_major"] == "297.90"  # 100 − 10 − 0.10 (the fee) + 200 + 5 + 3


def test_receipt_names_the_downloaded_file_in_its_verify_command(w: WalletEnv) -> None:
    alice, _bob = history(w)
    me = browser(w, alice)
    line_id = next(iter(journal_memos(w, alice)))
    for lang, lead in (("en", "Check a downloaded receipt on your own computer with:"), ("zh-Hans", None)):
        page = me.get(f"/wallet/transactions/{line_id}", params={"lang": lang}).text
        download = me.get(f"/wallet/transactions/{line_id}/receipt.json")
        name = re.search(r'filename="([^"]+)"', download.headers["content-disposition"])
        assert name is not None and name.group(1) == f"receipt-{line_id}.json"
        hint = re.search(r'data-testid="verify-command">(.*?)</p>', page, re.S)
        assert hint is not None
        assert re.search(r"\S <code>trustpay receipt verify " + re.escape(name.group(1)) + "</code>$", hint.group(1))
        if lead:
            assert hint.group(1).startswith(lead + " <code>")
        assert f'download="{name.group(1)}"' in page


def test_statement_links_back_to_the_wallet(w: WalletEnv) -> None:
    alice = w.user("alice@example.com", fund=100)
    page = browser(w, alice).get("/wallet/statement", params={"lang": "en"}).text
    back = re.search(r'<a class="text-link" href="/wallet"[^>]*>([^<]*)</a>', page)
    assert back is not None and back.group(1) == "← Wallet"
    assert page.index(back.group(0)) < page.index("<h1>")
