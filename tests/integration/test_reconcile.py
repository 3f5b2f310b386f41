"""Reconciliation (对账) against the in-process sandbox bank, on both engines: a statement
with a missing line, an extra line, an amount mismatch and a late success (the card
ending 0028 never answers); a second run changes nothing; ops resolves the rest; the
daily job; clearing back to zero for what the statement confirmed."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select
from tests.integration.identity_support import PASSWORD, bearer
from tests.integration.wallet_support import PAY_PW, Wallet, WalletEnv, make_wallet_env

from trustpay.banks import reconcile
from trustpay.banks.connector import OperationKind
from trustpay.banks.registry import sandbox_bank
from trustpay.db.schema import audit_log, ledger_entries, recon_exceptions, recon_runs
from trustpay.identity.service import create_ops_user
from trustpay.ids import new_id
from trustpay.wallet import store as wallet_store

GOOD = "4111111111111111"
NO_ANSWER = "4000000000000028"
DAY = date(2026, 1, 1)  # the frozen clock starts at its midnight


@pytest.fixture
def w(db_url: str, tmp_path: Path) -> Iterator[WalletEnv]:
    yield from make_wallet_env(db_url, tmp_path, bank_sandbox_data_dir=str(tmp_path / "bank"),
                               bank_sandbox_settle_seconds=2)


def bind(w: WalletEnv, u: Wallet, number: str) -> str:
    r = w.client.post("/v1/bank-cards", json={"card_number": number, "holder_name": "Li Lei"}, headers=u.auth)
    assert r.status_code == 201, r.text
    return str(r.json()["id"])


def settle_bank(w: WalletEnv) -> None:
    w.clock.advance(2)
    sandbox_bank(w.platform).tick()


def topup(w: WalletEnv, u: Wallet, card: str, amount: int) -> str:
    r = w.client.post("/v1/topups", json={"card": card, "amount": amount}, headers=u.auth)
    assert r.status_code == 201, r.text
    return str(r.json()["id"])


def status_of(w: WalletEnv, u: Wallet, path: str) -> str:
    r = w.client.get(path, headers=u.auth)
    assert r.status_code == 200, r.text
    return str(r.json()["status"])


def balance(w: WalletEnv, kind: str, owner: str = "bank_sandbox") -> int:
    with w.platform.db.transaction(write=False) as conn:
        found = [a for a in w.platform.book.accounts_of(conn, owner) if a.kind == kind and a.currency == "CNY"]
    return found[0].balance if found else 0


def entries(w: WalletEnv) -> int:
    with w.platform.db.transaction(write=False) as conn:
        return int(conn.execute(select(func.count()).select_from(ledger_entries)).scalar_one())


def ops_token(w: WalletEnv, email: str = "ops@example.com") -> str:
    w.platform.db.run(lambda conn: create_ops_user(w.platform, conn, email=email, password=PASSWORD))
    return w.env.token(email)


def craft_day(w: WalletEnv) -> dict[str, Any]:
    """One business day: a clean top-up, a clean withdrawal, a late success (0028), a top-up the
    bank then loses (missing line), one whose amount the bank changes, and a bank line we never made."""
    alice = w.user("alice@example.com", fund=50_000)
    good, silent = bind(w, alice, GOOD), bind(w, alice, NO_ANSWER)
    clean, late = topup(w, alice, good, 10_000), topup(w, alice, silent, 2_000)
    missing, differs = topup(w, alice, good, 3_000), topup(w, alice, good, 4_000)
    r = w.client.post("/v1/withdrawals", json={"card": good, "amount": 1_000, "payment_password": PAY_PW},
                      headers=alice.auth)
    assert r.status_code == 201, r.text
    wd = str(r.json()["id"])
    settle_bank(w)
    for t in (clean, missing, differs):
        assert status_of(w, alice, f"/v1/topups/{t}") == "succeeded"
    assert status_of(w, alice, f"/v1/withdrawals/{wd}") == "succeeded"
    assert status_of(w, alice, f"/v1/topups/{late}") == "pending"  # done at the bank, never answered
    bank = sandbox_bank(w.platform)
    with w.platform.db.transaction(write=False) as conn:
        token = conn.execute(select(wallet_store.bank_cards.c.token)
                             .where(wallet_store.bank_cards.c.id == good)).scalar_one()
    ghost = new_id("top", w.clock.now())
    bank.start(OperationKind.DEBIT, token, 700, "CNY", ghost)  # no callback URL: only the statement tells
    settle_bank(w)
    with bank._tx() as db:  # the bank's own books go wrong
        db.execute("DELETE FROM callbacks WHERE bank_ref IN (SELECT bank_ref FROM operations WHERE reference = ?)",
                   (missing,))
        db.execute("DELETE FROM operations WHERE reference = ?", (missing,))
        db.execute("UPDATE operations SET amount = 4500 WHERE reference = ?", (differs,))
    assert len(bank.statement_lines(DAY)) == 5
    w.clock.advance(23 * 3600)  # the next day; no job runs (the clock moved without the worker)
    w.relogin(alice)
    return {"alice": alice, "clean": clean, "late": late, "missing": missing, "differs": differs, "wd": wd,
            "ghost": ghost}


def open_findings(w: WalletEnv) -> dict[str, str]:
    with w.platform.db.transaction(write=False) as conn:
        rows = conn.execute(select(recon_exceptions.c.reference, recon_exceptions.c.kind)).all()
    return {r.reference: r.kind for r in rows}


def test_statement_with_missing_extra_mismatch_and_late_success(w: WalletEnv) -> None:
    day = craft_day(w)
    alice = day["alice"]
    before = w.balance(alice)["available"]
    cleared_before = balance(w, "bank_clearing")
    # Clearing holds every bank operation so far: −top-ups (bank owes us) + the payout.
    assert cleared_before == -(10_000 + 3_000 + 4_000) + 1_000

    first = reconcile.reconcile(w.platform, "sandbox", DAY)
    assert (first.lines, first.matched, first.settled, first.new_exceptions) == (5, 3, 1, 3)
    assert status_of(w, alice, f"/v1/topups/{day['late']}") == "succeeded"
    assert w.balance(alice)["available"] == before + 2_000  # the late success, credited once
    assert open_findings(w) == {day["missing"]: "missing_bank", day["ghost"]: "missing_ours",
                                day["differs"]: "amount_differs"}
    # What the statement confirmed (clean top-up, late top-up, payout) left clearing for bank cash;
    # what it did not (the missing and the mismatched top-ups) is all that clearing still holds.
    assert balance(w, "bank_clearing") == -(3_000 + 4_000)
    assert balance(w, "bank_cash") == -(10_000 + 2_000) + 1_000
    assert first.cleared == 3 and first.clearing_entry_id is not None
    with w.platform.db.transaction(write=False) as conn:
        entry_refs = conn.execute(select(ledger_entries.c.reference)
                                  .where(ledger_entries.c.id == first.clearing_entry_id)).scalar_one()
    assert entry_refs == first.run_id
    w.ledger_ok()

    # The same date again: nothing new, nothing moves, one run record.
    n = entries(w)
    again = reconcile.reconcile(w.platform, "sandbox", DAY)
    assert (again.run_id, again.settled, again.new_exceptions, again.cleared) == (first.run_id, 0, 0, 0)
    assert again.open_exceptions == 3 and again.clearing_entry_id is None
    assert entries(w) == n
    assert w.balance(alice)["available"] == before + 2_000
    with w.platform.db.transaction(write=False) as conn:
        runs = conn.execute(select(recon_runs)).mappings().all()
    assert len(runs) == 1
    assert (runs[0]["lines"], runs[0]["matched"], runs[0]["settled"], runs[0]["exceptions"], runs[0]["passes"]) \
        == (5, 3, 1, 3, 2)

    # Ops works the queue; everyone else does not see it.
    ops = ops_token(w)
    assert w.client.get("/v1/ops/reconciliation/exceptions", headers=alice.auth).status_code == 404
    listed = w.client.get("/v1/ops/reconciliation/exceptions", headers=bearer(ops))
    assert listed.status_code == 200, listed.text
    by_ref = {e["reference"]: e for e in listed.json()["data"]}
    assert set(by_ref) == {day["missing"], day["ghost"], day["differs"]}
    assert by_ref[day["differs"]]["bank_amount"] == 4_500 and by_ref[day["differs"]]["our_amount"] == 4_000

    def resolve(ref: str, token: str, **body: Any) -> Any:
        return w.client.post(f"/v1/ops/reconciliation/exceptions/{by_ref[ref]['id']}/resolve", json=body,
                             headers=bearer(token))

    assert resolve(day["missing"], alice.token, action="note_only", note="x").status_code == 404
    assert resolve(day["missing"], ops, action="note_only", note=" ").status_code == 400
    assert resolve(day["missing"], ops, action="refund_everyone", note="x").status_code == 400
    # The bank never collected this top-up: take it back from the wallet into clearing.
    took = resolve(day["missing"], ops, action="debit_wallet", note="bank confirms it never collected")
    assert took.status_code == 200, took.text
    assert took.json()["resolution"]["amount"] == 3_000 and took.json()["resolution"]["entry"]
    # The bank took 500 more than we credited: the user gets the difference.
    gave = resolve(day["differs"], ops, action="credit_wallet", note="bank took 45.00, we credited 40.00")
    assert gave.status_code == 200 and gave.json()["resolution"]["amount"] == 500
    # A line we never made: the bank reverses it on its side; nothing moves here.
    noted = resolve(day["ghost"], ops, action="note_only", note="bank will reverse its stray debit")
    assert noted.status_code == 200 and noted.json()["resolution"]["entry"] is None
    # Resolving again: the same request answers the same; another decision is refused.
    n = entries(w)
    same = resolve(day["missing"], ops, action="debit_wallet", note="bank confirms it never collected")
    assert same.status_code == 200 and same.json() == took.json()
    assert resolve(day["missing"], ops, action="note_only", note="changed my mind").status_code == 409
    assert entries(w) == n
    assert w.balance(alice)["available"] == before + 2_000 - 3_000 + 500
    # The missing top-up is back out of clearing; the mismatched one is what the bank really holds.
    assert balance(w, "bank_clearing") == -(4_000 + 500)
    resolved = w.client.get("/v1/ops/reconciliation/exceptions?status=resolved", headers=bearer(ops)).json()["data"]
    assert len(resolved) == 3
    assert w.client.get("/v1/ops/reconciliation/exceptions", headers=bearer(ops)).json()["data"] == []
    with w.platform.db.transaction(write=False) as conn:
        audited = conn.execute(select(func.count()).select_from(audit_log)
                               .where(audit_log.c.event == "reconciliation.exception_resolved")).scalar_one()
    assert audited == 3
    # A third run: resolved findings stay resolved, nothing is queued again.
    third = reconcile.reconcile(w.platform, "sandbox", DAY)
    assert third.new_exceptions == 0 and third.open_exceptions == 0
    w.ledger_ok()


def test_a_status_the_bank_contradicts_and_a_duplicate_line(w: WalletEnv) -> None:
    alice = w.user("alice@example.com")
    card = bind(w, alice, GOOD)
    t = topup(w, alice, card, 5_000)
    settle_bank(w)
    assert status_of(w, alice, f"/v1/topups/{t}") == "succeeded"
    bank = sandbox_bank(w.platform)
    with bank._tx() as db:
        db.execute("UPDATE operations SET status = 'failed', failure_reason = 'card_declined' WHERE reference = ?",
                   (t,))
    (line,) = bank.statement_lines(DAY)
    w.clock.advance(23 * 3600)
    w.relogin(alice)
    run = reconcile.reconcile(w.platform, "sandbox", DAY, lines=[line, line])
    assert run.new_exceptions == 2 and run.matched == 0 and run.cleared == 0
    with w.platform.db.transaction(write=False) as conn:
        kinds = conn.execute(select(recon_exceptions.c.kind).order_by(recon_exceptions.c.kind)).scalars().all()
    assert kinds == ["duplicate", "status_differs"]
    assert balance(w, "bank_clearing") == -5_000  # unconfirmed: stays in clearing
    assert reconcile.reconcile(w.platform, "sandbox", DAY, lines=[line, line]).new_exceptions == 0
    w.ledger_ok()


def test_an_operation_stuck_pending_all_day_is_missing_at_the_bank(w: WalletEnv) -> None:
    alice = w.user("alice@example.com")
    card = bind(w, alice, GOOD)
    bank = sandbox_bank(w.platform)
    bank.control.fail = True  # the bank never hears of it
    t = topup(w, alice, card, 1_000)
    bank.control.fail = False
    w.clock.advance(25 * 3600)
    w.relogin(alice)
    run = reconcile.reconcile(w.platform, "sandbox", DAY)
    assert run.lines == 0 and run.new_exceptions == 1
    assert open_findings(w) == {t: "missing_bank"}
    assert status_of(w, alice, f"/v1/topups/{t}") == "pending"


def test_the_daily_job_reconciles_each_closed_day_and_books_the_next(w: WalletEnv) -> None:
    alice = w.user("alice@example.com")
    late = topup(w, alice, bind(w, alice, NO_ANSWER), 2_000)
    settle_bank(w)
    w.advance(3 * 3600)  # polls ask and hear "pending"; the worker books the daily run
    assert status_of(w, alice, f"/v1/topups/{late}") == "pending"
    w.advance(23 * 3600)  # past 01:00 on the next day: the job for DAY has run
    assert status_of(w, alice, f"/v1/topups/{late}") == "succeeded"
    assert w.balance(alice)["available"] == 2_000
    assert balance(w, "bank_clearing") == 0 and balance(w, "bank_cash") == -2_000
    with w.platform.db.transaction(write=False) as conn:
        days = conn.execute(select(recon_runs.c.business_date).order_by(recon_runs.c.business_date)).scalars().all()
    assert DAY.isoformat() in days
    w.advance(24 * 3600)
    with w.platform.db.transaction(write=False) as conn:
        days = conn.execute(select(recon_runs.c.business_date)).scalars().all()
    assert (DAY + timedelta(days=1)).isoformat() in days
    w.ledger_ok()

