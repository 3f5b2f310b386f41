"""The ops reconciliation page over the app (cookie sessions, CSRF), on SQLite and PostgreSQL:
a credit to a user nobody has is told apart from a missing user and keeps what was typed; an
e-mail address names the user as well as an id; statuses are shown in the page's language; the
header does not mark "Wallet" as where ops are; the refused form's address leads back."""

from __future__ import annotations

import html
import re
from collections.abc import Iterator
from datetime import date
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from tests.integration.identity_support import PASSWORD
from tests.integration.test_reconcile import DAY, craft_day
from tests.integration.wallet_support import WalletEnv, make_wallet_env

from trustpay.banks import reconcile
from trustpay.banks.connector import OperationKind, OperationStatus, StatementLine
from trustpay.identity.service import create_ops_user
from trustpay.ids import new_id
from trustpay.web.auth import SESSION_COOKIE

CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')
PAGE = "/ops/reconciliation"


@pytest.fixture
def w(db_url: str, tmp_path: Path) -> Iterator[WalletEnv]:
    yield from make_wallet_env(db_url, tmp_path, bank_sandbox_data_dir=str(tmp_path / "bank"))


def browser(w: WalletEnv, email: str) -> TestClient:
    client = TestClient(w.env.app)
    client.cookies.set(SESSION_COOKIE, w.env.token(email))
    return client


def stray_finding(w: WalletEnv, amount: int = 700) -> str:
    """A debit the bank reports and we never made: a finding that names no user."""
    now = w.clock.now()
    line = StatementLine(date(2026, 1, 1), new_id("card", now), new_id("top", now), OperationKind.DEBIT, amount,
                         "CNY", OperationStatus.SUCCEEDED, now)
    reconcile.reconcile(w.platform, "sandbox", line.business_date, lines=[line])
    return line.reference


def ops_console(w: WalletEnv) -> TestClient:
    w.platform.db.run(lambda conn: create_ops_user(w.platform, conn, email="ops@example.com", password=PASSWORD))
    return browser(w, "ops@example.com")


def finding_of(page: str, reference: str) -> tuple[str, str]:
    """(exception id, that finding's HTML) on the page."""
    match = re.search(r'<li class="panel recon-exception"[^>]*data-reference="' + re.escape(reference)
                      + r'" id="([^"]+)">(.*?)</li>\s*(?:<li class="panel|</ul>)', page, re.S)
    assert match is not None, reference
    return match.group(1), match.group(2)


def resolve(ops: TestClient, exception_id: str, lang: str = "en", **form: str) -> tuple[int, str]:
    token = CSRF.findall(ops.get(PAGE).text)[0]
    r = ops.post(f"{PAGE}/{exception_id}/resolve", params={"lang": lang}, data={"csrf_token": token, **form},
                 follow_redirects=False)
    return r.status_code, r.text


def test_unknown_user_is_its_own_message_and_the_form_keeps_what_was_typed(w: WalletEnv) -> None:
    alice = w.user("alice@example.com")
    reference = stray_finding(w)
    ops = ops_console(w)
    exception_id, _ = finding_of(ops.get(PAGE, params={"lang": "en"}).text, reference)

    status, page = resolve(ops, exception_id, action="credit_wallet", user_id="usr_doesnotexist",
                           note="card debited twice")
    assert status == 400
    _, finding = finding_of(page, reference)
    assert "No user has this user id or e-mail address. Check it and try again." in finding
    assert "names no user" not in page
    assert '<option value="credit_wallet" selected>' in finding
    assert 'value="usr_doesnotexist"' in finding and 'value="card debited twice"' in finding
    # An e-mail address nobody has: the same message, the address kept.
    status, page = resolve(ops, exception_id, action="credit_wallet", user_id="nobody@example.com", note="n")
    assert status == 400 and "No user has this user id or e-mail address" in page
    assert 'value="nobody@example.com"' in finding_of(page, reference)[1]
    # No user at all, with money to move: that one's own message.
    status, page = resolve(ops, exception_id, action="debit_wallet", user_id=" ", note="n")
    assert status == 400
    assert "This finding names no user: enter the user id or e-mail address" in finding_of(page, reference)[1]
    assert '<option value="debit_wallet" selected>' in page
    assert w.balance(alice)["available"] == 0  # nothing moved

    # In Chinese too.
    status, page = resolve(ops, exception_id, lang="zh-Hans", action="credit_wallet", user_id="usr_doesnotexist",
                           note="n")
    assert status == 400 and "没有用户使用这个用户 ID 或电子邮箱" in page

    # An e-mail address (any case) names the user: the credit lands in their wallet.
    status, _page = resolve(ops, exception_id, action="credit_wallet", user_id=" Alice@Example.com ",
                            note="card debited, no top-up")
    assert status == 303
    assert w.balance(alice)["available"] == 700
    statement = browser(w, alice.email).get("/wallet/statement", params={"lang": "en"}).text
    assert "Correction after reconciliation with the bank" in statement
    assert "reconciliation adjustment (" not in statement

    # A user id names the user as before; a note-only decision ignores whatever is in the user field.
    first, second = stray_finding(w, 300), stray_finding(w, 400)
    page = ops.get(PAGE).text
    status, _page = resolve(ops, finding_of(page, first)[0], action="credit_wallet", user_id=alice.id, note="ok")
    assert status == 303 and w.balance(alice)["available"] == 1_000
    status, _page = resolve(ops, finding_of(page, second)[0], action="note_only", user_id="usr_doesnotexist",
                            note="the bank reverses it")
    assert status == 303 and w.balance(alice)["available"] == 1_000


def test_statuses_are_translated(w: WalletEnv) -> None:
    reference = stray_finding(w)
    ops = ops_console(w)
    for lang, succeeded in (("zh-Hans", "成功"), ("zh-Hant", "成功"), ("en", "Succeeded")):
        page = ops.get(PAGE, params={"lang": lang}).text
        _, finding = finding_of(page, reference)
        shown = re.search(r'data-testid="recon-bank-status">([^<]*)<', finding)
        assert shown is not None and html.unescape(shown.group(1)) == succeeded, lang
        assert "succeeded" not in finding


def test_the_refused_forms_address_leads_back_to_the_finding(w: WalletEnv) -> None:
    reference = stray_finding(w)
    ops = ops_console(w)
    exception_id, _ = finding_of(ops.get(PAGE).text, reference)
    r = ops.get(f"{PAGE}/{exception_id}/resolve", follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"] == f"{PAGE}#{exception_id}"
    customer = browser(w, w.user("alice@example.com").email)
    assert customer.get(f"{PAGE}/{exception_id}/resolve", follow_redirects=False).status_code == 404
    anon = TestClient(w.env.app).get(f"{PAGE}/{exception_id}/resolve", follow_redirects=False)
    assert anon.status_code == 303 and anon.headers["location"].startswith("/login")


def test_findings_name_their_user_and_the_history_says_what_was_decided_by_whom_latest_first(
        w: WalletEnv) -> None:
    day = craft_day(w)
    reconcile.reconcile(w.platform, "sandbox", DAY)
    ops = ops_console(w)
    page = ops.get(PAGE, params={"lang": "en"}).text
    differs_id, differs = finding_of(page, day["differs"])
    assert re.search(r'data-testid="recon-user">alice@example.com<', differs)
    ghost_id, ghost = finding_of(page, day["ghost"])
    assert 'data-testid="recon-user"' not in ghost  # a bank line we never made names nobody

    assert resolve(ops, differs_id, action="credit_wallet", note="the bank took 45.00")[0] == 303
    w.clock.advance(60)
    assert resolve(ops, ghost_id, action="note_only", note="the bank reverses it")[0] == 303
    history = ops.get(PAGE, params={"lang": "en"}).text.split('data-testid="recon-resolved"', 1)[1]
    items = re.findall(r'<li data-testid="recon-resolved-item" data-reference="([^"]+)">(.*?)</li>', history, re.S)
    assert [ref for ref, _ in items] == [day["ghost"], day["differs"]]  # the latest decision first
    (_, noted), (_, credited) = items
    assert "No money moves (note only)" in noted and 'data-testid="recon-moved"' not in noted
    assert "the bank reverses it" in noted and "by ops@example.com" in noted
    assert "Credit the user's wallet from bank clearing" in html.unescape(credited)
    assert re.search(r'data-testid="recon-moved">CN¥5.00<', credited)
    assert "alice@example.com" in credited and "by ops@example.com" in credited
    zh = ops.get(PAGE, params={"lang": "zh-Hans"}).text.split('data-testid="recon-resolved"', 1)[1]
    assert "由 ops@example.com 于" in zh
