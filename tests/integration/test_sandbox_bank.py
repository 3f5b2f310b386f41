"""The sandbox bank in process, through the platform's HTTP adapter over an
ASGI bridge (no socket): cards, debits, payouts, test cards, idempotency,
signed callbacks, statements, and the fail/slow control knobs."""

from __future__ import annotations

import logging
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from pathlib import Path

import httpx
import pytest

from trustpay.banks.bridge import AsgiBridgeTransport
from trustpay.banks.cards import sample_card_number
from trustpay.banks.client import SandboxBankClient
from trustpay.banks.connector import (
    SIGNATURE_HEADER,
    BankConnector,
    OperationKind,
    OperationStatus,
)
from trustpay.banks.errors import (
    BadBankSignature,
    BankReferenceConflict,
    BankRejected,
    BankUnavailable,
    InvalidCardNumber,
    UnknownBankOperation,
)
from trustpay.banks.sandbox.app import create_sandbox_app
from trustpay.banks.sandbox.bank import SandboxBank
from trustpay.banks.statement import COLUMNS, parse_csv
from trustpay.clock import FrozenClock

SECRET = "test-bank-secret"
CALLBACK_URL = "http://platform.test/v1/bank-callbacks/sandbox"
START = datetime(2026, 3, 1, 9, 0, tzinfo=UTC)
GOOD, DECLINED, SILENT = sample_card_number("4242"), sample_card_number("0002"), sample_card_number("0028")


@dataclass
class Inbox:
    """The platform's callback endpoint, as far as the bank can tell."""

    answer: int = 200
    received: list[tuple[str, dict[str, str], bytes]] = field(default_factory=list)

    def __call__(self, url: str, headers: Mapping[str, str], body: bytes) -> int:
        self.received.append((url, dict(headers), body))
        return self.answer


@dataclass
class Env:
    bank: SandboxBank
    client: SandboxBankClient
    clock: FrozenClock
    inbox: Inbox
    http: httpx.Client  # raw access to the bank's API (control endpoints)


@pytest.fixture
def env(tmp_path: Path) -> Iterator[Env]:
    clock, inbox = FrozenClock(START), Inbox()
    bank = SandboxBank(tmp_path / "bank", secret=SECRET, settle_seconds=0, clock=clock, deliver=inbox)
    transport = AsgiBridgeTransport(create_sandbox_app(bank))
    client = SandboxBankClient("http://bank.test", SECRET, transport, callback_url=CALLBACK_URL, timeout=5)
    http = httpx.Client(base_url="http://bank.test", transport=transport,
                        headers={"Authorization": f"Bearer {SECRET}"})
    yield Env(bank, client, clock, inbox, http)
    client.close()
    transport.close()
    bank.close()


def test_the_adapter_implements_the_protocol(env: Env) -> None:
    assert isinstance(env.client, BankConnector)


# ------------------------------------------------------------------- cards
def test_binding_a_card_returns_token_last4_brand_and_the_same_token_again(env: Env) -> None:
    card = env.client.tokenize_card(GOOD, "Li Lei")
    assert card.token.startswith("tok_") and card.last4 == "4242" and card.brand == "unionpay"
    assert env.client.tokenize_card(" ".join([GOOD[:4], GOOD[4:8], GOOD[8:12], GOOD[12:]]), "Li Lei") == card
    other = env.client.tokenize_card(DECLINED, "Han Meimei")
    assert other.token != card.token and other.last4 == "0002"


def test_an_invalid_number_is_refused_before_the_bank_sees_it(env: Env) -> None:
    bad = GOOD[:-1] + str((int(GOOD[-1]) + 1) % 10)
    with pytest.raises(InvalidCardNumber):
        env.client.tokenize_card(bad, "Li Lei")
    # …and the bank refuses it too when asked directly, without echoing it.
    r = env.http.post("/cards", json={"card_number": bad, "holder_name": "x"})
    assert r.status_code == 400 and r.json()["error"]["code"] == "invalid_card_number" and bad not in r.text
    r = env.http.post("/cards", json={"card_number": 4242, "holder_name": "x"})
    assert r.status_code == 400 and "4242" not in r.text


def test_the_card_number_is_in_no_file_and_no_log_line(env: Env, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    card = env.client.tokenize_card(GOOD, "Li Lei")
    env.client.start_debit(card.token, 100, "CNY", "top_priv")
    env.bank.tick()
    env.client.statement(START.date())
    logged = "\n".join(r.getMessage() for r in caplog.records) + caplog.text
    assert card.token in logged  # the logs do talk about the card…
    for needle in (GOOD, GOOD[:12], GOOD[4:]):  # …never by its number
        assert needle not in logged
        for path in env.bank.data_dir.rglob("*"):
            if path.is_file():
                assert needle.encode() not in path.read_bytes(), path
    assert "tok_" not in repr(env.client) and SECRET not in repr(env.client) and SECRET not in repr(env.bank)


def test_a_revoked_token_cannot_be_charged_until_the_card_is_bound_again(env: Env) -> None:
    card = env.client.tokenize_card(GOOD, "Li Lei")
    env.client.revoke_card(card.token)
    env.client.revoke_card(card.token)  # idempotent
    with pytest.raises(BankRejected):
        env.client.start_debit(card.token, 100, "CNY", "top_revoked")
    assert env.client.tokenize_card(GOOD, "Li Lei").token == card.token
    assert env.client.start_debit(card.token, 100, "CNY", "top_revoked").status is OperationStatus.PENDING


# -------------------------------------------------------------- operations
def test_debit_is_pending_then_succeeds_and_the_card_account_pays(env: Env) -> None:
    card = env.client.tokenize_card(GOOD, "Li Lei")
    before = env.bank.balance(card.token, "CNY")
    op = env.client.start_debit(card.token, 12_345, "CNY", "top_1")
    assert (op.status, op.kind, op.amount, op.currency, op.reference) == (
        OperationStatus.PENDING, OperationKind.DEBIT, 12_345, "CNY", "top_1")
    assert op.completed_at is None
    done = env.client.get_operation("top_1")  # settle delay 0: the first poll completes it
    assert done.status is OperationStatus.SUCCEEDED and done.bank_ref == op.bank_ref
    assert done.completed_at == START
    assert env.bank.balance(card.token, "CNY") == before - 12_345


def test_payout_credits_the_card_account(env: Env) -> None:
    card = env.client.tokenize_card(GOOD, "Li Lei")
    before = env.bank.balance(card.token, "CNY")
    op = env.client.start_payout(card.token, 500, "CNY", "wd_1")
    assert op.kind is OperationKind.PAYOUT and op.status is OperationStatus.PENDING
    env.bank.tick()
    assert env.client.get_operation("wd_1").status is OperationStatus.SUCCEEDED
    assert env.bank.balance(card.token, "CNY") == before + 500


def test_card_ending_0002_is_declined(env: Env) -> None:
    card = env.client.tokenize_card(DECLINED, "Han Meimei")
    before = env.bank.balance(card.token, "CNY")
    env.client.start_debit(card.token, 100, "CNY", "top_declined")
    env.bank.tick()
    op = env.client.get_operation("top_declined")
    assert op.status is OperationStatus.FAILED and op.failure_reason == "card_declined"
    assert env.bank.balance(card.token, "CNY") == before
    (_, _, body), = env.inbox.received
    assert env.client.verify_callback(_headers(env), body).status is OperationStatus.FAILED


def test_a_debit_beyond_the_card_balance_fails_with_insufficient_funds(env: Env) -> None:
    card = env.client.tokenize_card(GOOD, "Li Lei")
    balance = env.bank.balance(card.token, "CNY")
    env.client.start_debit(card.token, balance + 1, "CNY", "top_big")
    op = env.client.get_operation("top_big")
    assert op.status is OperationStatus.FAILED and op.failure_reason == "insufficient_funds"
    assert env.bank.balance(card.token, "CNY") == balance


def test_card_ending_0028_never_answers_but_completes_on_the_statement(env: Env) -> None:
    card = env.client.tokenize_card(SILENT, "Li Lei")
    before = env.bank.balance(card.token, "CNY")
    env.client.start_debit(card.token, 700, "CNY", "top_silent")
    env.bank.tick()
    env.clock.advance(3600)
    env.bank.tick()
    op = env.client.get_operation("top_silent")
    assert op.status is OperationStatus.PENDING and op.completed_at is None
    assert env.inbox.received == []  # no callback, ever
    assert env.bank.true_status("top_silent") is OperationStatus.SUCCEEDED
    assert env.bank.balance(card.token, "CNY") == before - 700  # the bank did move the money
    (line,) = env.client.statement(START.date())
    assert (line.reference, line.status, line.amount, line.kind) == (
        "top_silent", OperationStatus.SUCCEEDED, 700, OperationKind.DEBIT)


def test_a_retried_start_with_the_same_reference_is_the_same_operation(env: Env) -> None:
    card = env.client.tokenize_card(GOOD, "Li Lei")
    before = env.bank.balance(card.token, "CNY")
    first = env.client.start_debit(card.token, 900, "CNY", "top_retry")
    again = env.client.start_debit(card.token, 900, "CNY", "top_retry")
    assert again == first
    r = env.http.post("/operations", json={"kind": "debit", "token": card.token, "amount": 900,
                                           "currency": "CNY", "reference": "top_retry"})
    assert r.status_code == 200 and r.json()["bank_ref"] == first.bank_ref  # 200 = replayed, not created
    env.bank.tick()
    after_settle = env.client.start_debit(card.token, 900, "CNY", "top_retry")
    assert after_settle.bank_ref == first.bank_ref and after_settle.status is OperationStatus.SUCCEEDED
    assert env.bank.balance(card.token, "CNY") == before - 900  # charged once
    assert [ln.reference for ln in env.client.statement(START.date())] == ["top_retry"]
    assert len(env.inbox.received) == 1


@pytest.mark.parametrize("change", [{"amount": 901}, {"currency": "USD"}, {"kind": "payout"}])
def test_the_same_reference_for_something_else_is_a_conflict(env: Env, change: dict[str, object]) -> None:
    card = env.client.tokenize_card(GOOD, "Li Lei")
    env.client.start_debit(card.token, 900, "CNY", "top_once")
    args = {"amount": 900, "currency": "CNY", "kind": "debit", **change}
    start = env.client.start_payout if args["kind"] == "payout" else env.client.start_debit
    with pytest.raises(BankReferenceConflict):
        start(card.token, args["amount"], args["currency"], "top_once")  # type: ignore[arg-type]


@pytest.mark.parametrize("amount", [0, -5, 10_000_000_001])
def test_bad_amounts_are_rejected_by_the_bank(env: Env, amount: int) -> None:
    card = env.client.tokenize_card(GOOD, "Li Lei")
    with pytest.raises(BankRejected):
        env.client.start_debit(card.token, amount, "CNY", f"top_bad{amount}")
    r = env.http.post("/operations", json={"kind": "debit", "token": card.token, "amount": 1.5,
                                           "currency": "CNY", "reference": "top_float"})
    assert r.status_code == 400 and r.json()["error"]["param"] == "amount"


def test_unknown_token_and_unknown_operation(env: Env) -> None:
    with pytest.raises(BankRejected):
        env.client.start_debit("tok_nobody", 100, "CNY", "top_x")
    with pytest.raises(UnknownBankOperation):
        env.client.get_operation("top_never_sent")


def test_settle_delay_keeps_it_pending_until_the_time_has_come(env: Env) -> None:
    env.bank.settle_seconds = 2
    card = env.client.tokenize_card(GOOD, "Li Lei")
    env.client.start_debit(card.token, 100, "CNY", "top_slow")
    env.clock.advance(1.9)
    env.bank.tick()
    assert env.client.get_operation("top_slow").status is OperationStatus.PENDING
    env.clock.advance(0.1)
    assert env.client.get_operation("top_slow").status is OperationStatus.SUCCEEDED


# --------------------------------------------------------------- callbacks
def _headers(env: Env) -> dict[str, str]:
    return env.inbox.received[-1][1]


def test_the_outcome_is_called_back_signed_to_the_url_given(env: Env) -> None:
    card = env.client.tokenize_card(GOOD, "Li Lei")
    op = env.client.start_debit(card.token, 4_200, "CNY", "top_cb")
    assert env.inbox.received == []  # nothing before it completes
    env.bank.tick()
    (url, headers, body), = env.inbox.received
    assert url == CALLBACK_URL and headers[SIGNATURE_HEADER].startswith("t=")
    cb = env.client.verify_callback(headers, body)
    assert (cb.reference, cb.bank_ref, cb.status, cb.amount, cb.currency, cb.kind) == (
        "top_cb", op.bank_ref, OperationStatus.SUCCEEDED, 4_200, "CNY", OperationKind.DEBIT)
    lower = {k.lower(): v for k, v in headers.items()}  # header names are case-insensitive
    assert env.client.verify_callback(lower, body) == cb
    assert env.bank.callbacks_for("top_cb") == [
        {"url": CALLBACK_URL, "attempts": 1, "delivered": True, "last_status": 200}]


def test_a_forged_or_replayed_callback_is_refused(env: Env) -> None:
    card = env.client.tokenize_card(GOOD, "Li Lei")
    env.client.start_debit(card.token, 4_200, "CNY", "top_forged")
    env.bank.tick()
    (_, headers, body), = env.inbox.received
    with pytest.raises(BadBankSignature):
        env.client.verify_callback(headers, body.replace(b"4200", b"9999999"))
    with pytest.raises(BadBankSignature):
        env.client.verify_callback({}, body)
    wrong_key = SandboxBankClient("http://bank.test", "not-the-secret")
    with pytest.raises(BadBankSignature):
        wrong_key.verify_callback(headers, body)
    signed_at = int(headers[SIGNATURE_HEADER].split(",")[0][2:])
    late = SandboxBankClient("http://bank.test", SECRET, wall_time=lambda: signed_at + 301.0)
    with pytest.raises(BadBankSignature, match="tolerance"):
        late.verify_callback(headers, body)


def test_a_refused_callback_is_retried_with_back_off(env: Env) -> None:
    env.inbox.answer = 503
    card = env.client.tokenize_card(GOOD, "Li Lei")
    env.client.start_debit(card.token, 100, "CNY", "top_retry_cb")
    env.bank.tick()
    env.bank.tick()  # not due again yet
    assert env.bank.callbacks_for("top_retry_cb")[0] == {
        "url": CALLBACK_URL, "attempts": 1, "delivered": False, "last_status": 503}
    env.inbox.answer = 200
    env.clock.advance(2)
    env.bank.tick()
    assert env.bank.callbacks_for("top_retry_cb")[0]["delivered"] is True
    assert len(env.inbox.received) == 2
    first, second = (env.client.verify_callback(h, b) for _, h, b in env.inbox.received)
    assert first == second  # the same news each time: the receiver applies it once


# --------------------------------------------------------------- statement
def test_statement_file_lists_every_completed_operation_of_the_day(env: Env) -> None:
    good = env.client.tokenize_card(GOOD, "Li Lei")
    declined = env.client.tokenize_card(DECLINED, "Han Meimei")
    env.client.start_debit(good.token, 100, "CNY", "top_a")
    env.client.start_debit(declined.token, 200, "CNY", "top_b")
    env.bank.tick()
    env.clock.advance(60)
    env.client.start_payout(good.token, 300, "CNY", "wd_c")
    env.bank.tick()
    env.client.start_debit(good.token, 400, "CNY", "top_pending")  # not completed: not on it
    env.clock.set(datetime(2026, 3, 2, 0, 0, 1, tzinfo=UTC))
    env.client.start_payout(good.token, 500, "CNY", "wd_next_day")
    env.bank.tick()  # completes top_pending and wd_next_day on 2 March

    path = env.bank.statement_path(date(2026, 3, 1))
    assert path == env.bank.data_dir / "statements" / "2026-03-01.csv"
    text = path.read_text(encoding="utf-8")
    rows = text.splitlines()
    assert rows[0] == ",".join(COLUMNS)
    assert [r.split(",")[2:7] for r in rows[1:]] == [
        ["top_a", "debit", "100", "CNY", "succeeded"],
        ["top_b", "debit", "200", "CNY", "failed"],
        ["wd_c", "payout", "300", "CNY", "succeeded"],
    ]
    assert env.client.statement(date(2026, 3, 1)) == parse_csv(text)
    assert [ln.reference for ln in env.client.statement(date(2026, 3, 2))] == ["top_pending", "wd_next_day"]
    assert env.client.statement(date(2026, 2, 28)) == []
    assert env.http.get("/statements/2026-02-30").status_code == 400


# ------------------------------------------------------------------ control
def test_told_to_fail_the_bank_answers_500_and_the_adapter_says_unavailable(env: Env) -> None:
    card = env.client.tokenize_card(GOOD, "Li Lei")
    assert env.http.post("/control", json={"fail": True}).json()["fail"] is True
    with pytest.raises(BankUnavailable):
        env.client.start_debit(card.token, 100, "CNY", "top_down")
    with pytest.raises(BankUnavailable):
        env.client.get_operation("top_down")
    env.http.post("/control", json={"fail": False})
    with pytest.raises(UnknownBankOperation):  # the failed start never reached the bank
        env.client.get_operation("top_down")


def test_fail_next_then_a_retry_with_the_same_reference_makes_one_operation(env: Env) -> None:
    card = env.client.tokenize_card(GOOD, "Li Lei")
    env.http.post("/control", json={"fail_next": 1})
    with pytest.raises(BankUnavailable):
        env.client.start_debit(card.token, 100, "CNY", "top_flaky")
    op = env.client.start_debit(card.token, 100, "CNY", "top_flaky")
    assert env.client.start_debit(card.token, 100, "CNY", "top_flaky") == op
    assert env.http.get("/control").json()["fail_next"] == 0


def test_told_to_slow_down_the_bank_times_out_the_adapter(env: Env, tmp_path: Path) -> None:
    env.http.post("/control", json={"latency_ms": 400})
    impatient = SandboxBankClient("http://bank.test", SECRET, AsgiBridgeTransport(create_sandbox_app(env.bank)),
                                  timeout=0.1)
    with pytest.raises(BankUnavailable, match="in time"):
        impatient.tokenize_card(GOOD, "Li Lei")
    patient = env.client.tokenize_card(GOOD, "Li Lei")  # 5 s timeout: slow but fine
    assert patient.last4 == "4242"
    env.http.post("/control", json={"latency_ms": 0})
    assert env.http.post("/control", json={"latency_ms": -1}).status_code == 400


def test_the_bank_refuses_wrong_credentials(env: Env) -> None:
    intruder = SandboxBankClient("http://bank.test", "guess", AsgiBridgeTransport(create_sandbox_app(env.bank)))
    with pytest.raises(BankUnavailable, match="credentials"):
        intruder.get_operation("top_1")
    assert env.http.get("/healthz", headers={"Authorization": ""}).status_code == 200
    assert httpx.Client(base_url="http://bank.test", transport=AsgiBridgeTransport(create_sandbox_app(env.bank))) \
        .post("/control", json={"fail": True}).status_code == 401
