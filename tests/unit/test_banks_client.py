"""The HTTP adapter against a scripted bank (httpx.MockTransport, no I/O): how
bank answers map to domain errors, and that the card number goes to the bank
and nowhere else — not the logs, not an error, not a repr."""

from __future__ import annotations

import json
import logging
from collections.abc import Callable

import httpx
import pytest

from trustpay.banks.cards import sample_card_number
from trustpay.banks.client import SandboxBankClient, scrub
from trustpay.banks.connector import OperationKind, OperationStatus
from trustpay.banks.errors import (
    BankReferenceConflict,
    BankRejected,
    BankUnavailable,
    InvalidCardNumber,
    UnknownBankOperation,
)

NUMBER = sample_card_number("4242")
OP = {"bank_ref": "bop_1", "reference": "top_1", "kind": "debit", "status": "pending", "amount": 100,
      "currency": "CNY", "failure_reason": None, "completed_at": None}


def client(handler: Callable[[httpx.Request], httpx.Response]) -> SandboxBankClient:
    return SandboxBankClient("http://bank.test", "s3cret", httpx.MockTransport(handler),
                             callback_url="http://platform.test/cb")


def answer(status: int, body: object) -> Callable[[httpx.Request], httpx.Response]:
    return lambda _: httpx.Response(status, json=body)


def test_requests_carry_credentials_reference_and_callback_url() -> None:
    seen: list[httpx.Request] = []

    def bank(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(201, json={**OP, "kind": "payout", "reference": "wd_9"})

    op = client(bank).start_payout("tok_1", 100, "CNY", "wd_9")
    assert op.kind is OperationKind.PAYOUT and op.status is OperationStatus.PENDING
    (request,) = seen
    assert request.headers["Authorization"] == "Bearer s3cret"
    assert json.loads(request.content) == {"kind": "payout", "token": "tok_1", "amount": 100, "currency": "CNY",
                                           "reference": "wd_9", "callback_url": "http://platform.test/cb"}


def test_the_number_reaches_the_bank_but_no_log_error_or_repr(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    bodies: list[bytes] = []

    def bank(request: httpx.Request) -> httpx.Response:
        bodies.append(request.content)
        return httpx.Response(201, json={"token": "tok_1", "last4": "4242", "brand": "unionpay"})

    c = client(bank)
    card = c.tokenize_card(NUMBER, "Li Lei")
    assert NUMBER.encode() in bodies[0]  # the bank does get it
    assert NUMBER not in caplog.text and NUMBER not in repr(card) and "s3cret" not in repr(c)

    echoing = client(answer(400, {"error": {"code": "card_unsupported", "message": f"card {NUMBER} unsupported"}}))
    with pytest.raises(BankRejected) as info:
        echoing.tokenize_card(NUMBER, "Li Lei")
    assert NUMBER not in str(info.value) and "[redacted]" in str(info.value)


def test_an_invalid_number_never_leaves_the_platform() -> None:
    def bank(_: httpx.Request) -> httpx.Response:
        raise AssertionError("the bank must not be asked")

    with pytest.raises(InvalidCardNumber):
        client(bank).tokenize_card(NUMBER[:-1] + str((int(NUMBER[-1]) + 1) % 10), "Li Lei")


@pytest.mark.parametrize(
    ("handler", "error"),
    [
        (answer(500, {"error": {"code": "x", "message": "down"}}), BankUnavailable),
        (answer(503, "maintenance"), BankUnavailable),
        (answer(401, {"error": {"code": "unauthorized", "message": "no"}}), BankUnavailable),
        (answer(201, {"unexpected": True}), BankUnavailable),  # unreadable acceptance: outcome unknown
        (answer(409, {"error": {"code": "reference_conflict", "message": "used"}}), BankReferenceConflict),
        (answer(400, {"error": {"code": "bank_rejected", "message": "Unknown card token."}}), BankRejected),
    ],
)
def test_start_maps_bank_answers_to_domain_errors(handler: Callable[[httpx.Request], httpx.Response],
                                                  error: type[Exception]) -> None:
    with pytest.raises(error):
        client(handler).start_debit("tok_1", 100, "CNY", "top_1")


@pytest.mark.parametrize("failure", [httpx.ConnectError, httpx.ReadTimeout])
def test_network_failures_mean_unavailable(failure: type[httpx.TransportError]) -> None:
    def bank(request: httpx.Request) -> httpx.Response:
        raise failure("boom", request=request)

    with pytest.raises(BankUnavailable):
        client(bank).get_operation("top_1")


def test_polling_an_operation_the_bank_never_got() -> None:
    with pytest.raises(UnknownBankOperation):
        client(answer(404, {"error": {"code": "not_found", "message": "no"}})).get_operation("top_1")


def test_a_completed_operation_is_parsed_with_its_time_and_reason() -> None:
    done = {**OP, "status": "failed", "failure_reason": "card_declined", "completed_at": "2026-03-01T08:00:00Z"}
    op = client(answer(200, done)).get_operation("top_1")
    assert op.status is OperationStatus.FAILED and op.failure_reason == "card_declined"
    assert op.completed_at is not None and op.completed_at.isoformat() == "2026-03-01T08:00:00+00:00"


def test_a_float_amount_from_the_bank_is_not_money() -> None:
    with pytest.raises(BankUnavailable):
        client(answer(200, {**OP, "amount": 100.0})).get_operation("top_1")


def test_scrub_masks_card_like_digit_runs_only() -> None:
    assert scrub(f"card {NUMBER} and 6222 0200 0005 0002 refused") == "card [redacted] and [redacted] refused"
    assert scrub("amount 10000000000 on 2026-03-01") == "amount 10000000000 on 2026-03-01"
