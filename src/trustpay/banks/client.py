"""The HTTP adapter of :class:`~trustpay.banks.connector.BankConnector` for the
sandbox bank (a real bank's adapter has the same shape: map its API, its
errors and its signature scheme onto the protocol)."""

from __future__ import annotations

import json
import re
import time
from collections.abc import Callable, Mapping
from datetime import date, datetime
from typing import Any

import httpx

from trustpay.banks import cards, signing
from trustpay.banks.connector import (
    SIGNATURE_HEADER,
    BankCallback,
    BankOperation,
    CardToken,
    OperationKind,
    OperationStatus,
    StatementLine,
)
from trustpay.banks.errors import (
    BadBankSignature,
    BankReferenceConflict,
    BankRejected,
    BankUnavailable,
    InvalidCardNumber,
    UnknownBankOperation,
)
from trustpay.banks.statement import parse_csv
from trustpay.clock import to_utc


class SandboxBankClient:
    name = "sandbox"

    def __init__(
        self,
        base_url: str,
        secret: str,
        transport: httpx.BaseTransport | None = None,
        *,
        callback_url: str | None = None,
        timeout: float = 10.0,
        wall_time: Callable[[], float] = time.time,
    ) -> None:
        self._secret = secret
        self.callback_url = callback_url
        self._wall_time = wall_time
        self._http = httpx.Client(
            base_url=base_url.rstrip("/"),
            transport=transport,
            timeout=timeout,
            headers={"Authorization": f"Bearer {secret}"},
        )

    def __repr__(self) -> str:  # never the secret
        return f"SandboxBankClient({str(self._http.base_url)!r})"

    def close(self) -> None:
        self._http.close()

    # ---------------------------------------------------------------- transport
    def _call(self, method: str, path: str, payload: dict[str, Any] | None = None) -> httpx.Response:
        try:
            response = self._http.request(method, path, json=payload)
        except httpx.TimeoutException:
            raise BankUnavailable("The bank did not answer in time; the outcome is unknown.") from None
        except httpx.TransportError as exc:
            raise BankUnavailable(f"The bank could not be reached ({type(exc).__name__}).") from None
        if response.status_code >= 500:
            raise BankUnavailable(f"The bank answered HTTP {response.status_code}; the outcome is unknown.")
        if response.status_code == 401:
            # Our credentials are wrong: an operator problem, not the customer's; nothing happened at the bank.
            raise BankUnavailable("The bank refused the platform's credentials (check bank_sandbox_secret).")
        return response

    @staticmethod
    def _error(response: httpx.Response) -> tuple[str, str, str | None]:
        """(code, message, param) of a bank's refusal; the message is scrubbed of
        long digit runs, since a bank may quote back the card number it refused."""
        try:
            err = response.json()["error"]
            param = err.get("param")
            return (str(err.get("code", "")), scrub(str(err.get("message", ""))[:300]),
                    param if isinstance(param, str) else None)
        except (ValueError, KeyError, TypeError, AttributeError):
            return "", f"The bank answered HTTP {response.status_code}.", None

    @staticmethod
    def _operation(response: httpx.Response) -> BankOperation:
        try:
            return operation_from_json(response.json())
        except (ValueError, KeyError, TypeError, AttributeError):
            # Accepted or not, we cannot tell: the same as no answer.
            raise BankUnavailable("The bank's answer could not be read; the outcome is unknown.") from None

    def _card(self, response: httpx.Response) -> CardToken:
        try:
            data = response.json()
            token, last4, brand = data["token"], data["last4"], data["brand"]
            if not (isinstance(token, str) and isinstance(last4, str) and len(last4) == 4 and last4.isdigit()):
                raise ValueError("not a card token")
            return CardToken(token=token, last4=last4, brand=str(brand))
        except (ValueError, KeyError, TypeError, AttributeError):
            raise BankUnavailable("The bank's answer could not be read; the card was not bound.") from None

    # -------------------------------------------------------------------- cards
    def tokenize_card(self, card_number: str, holder_name: str) -> CardToken:
        digits = cards.normalize_card_number(card_number)  # the platform checks before the bank sees it
        response = self._call("POST", "/cards", {"card_number": digits, "holder_name": holder_name})
        if response.status_code != 201:
            code, message, param = self._error(response)
            if code == "invalid_card_number":
                raise InvalidCardNumber(message)
            raise BankRejected(message or "The bank refused the card.", param=param)
        return self._card(response)

    def revoke_card(self, token: str) -> None:
        response = self._call("DELETE", f"/cards/{token}")
        if response.status_code != 204:
            raise BankRejected(self._error(response)[1] or "The bank refused to revoke the card.")

    # --------------------------------------------------------------- operations
    def start_debit(self, token: str, amount: int, currency: str, reference: str) -> BankOperation:
        return self._start(OperationKind.DEBIT, token, amount, currency, reference)

    def start_payout(self, token: str, amount: int, currency: str, reference: str) -> BankOperation:
        return self._start(OperationKind.PAYOUT, token, amount, currency, reference)

    def _start(self, kind: OperationKind, token: str, amount: int, currency: str, reference: str) -> BankOperation:
        payload: dict[str, Any] = {"kind": kind.value, "token": token, "amount": amount, "currency": currency,
                                   "reference": reference}
        if self.callback_url:
            payload["callback_url"] = self.callback_url
        response = self._call("POST", "/operations", payload)
        if response.status_code in (200, 201):
            return self._operation(response)
        _code, message, param = self._error(response)
        if response.status_code == 409:
            raise BankReferenceConflict(message or f"Reference {reference} was used for another operation.")
        raise BankRejected(message or "The bank refused the operation.", param=param, code="bank_rejected")

    def get_operation(self, reference: str) -> BankOperation:
        response = self._call("GET", f"/operations/{reference}")
        if response.status_code == 404:
            raise UnknownBankOperation(f"The bank has no operation {reference[:100]}.")
        if response.status_code != 200:
            raise BankRejected(self._error(response)[1] or "The bank refused the query.")
        return self._operation(response)

    # ---------------------------------------------------------------- callbacks
    def verify_callback(self, headers: Mapping[str, str], body: bytes) -> BankCallback:
        header = _header(headers, SIGNATURE_HEADER)
        signing.verify(self._secret, header, body, now=self._wall_time())
        try:
            op = operation_from_json(json.loads(body))
        except (ValueError, KeyError, TypeError) as exc:
            # Signed by the bank yet unreadable: refuse it the same way, so it is audited and retried.
            raise BadBankSignature(f"The signed callback body is not a bank operation ({type(exc).__name__}).") \
                from None
        if not op.status.is_final:
            raise BadBankSignature("A callback must carry a final status.")
        return BankCallback(
            reference=op.reference,
            bank_ref=op.bank_ref,
            kind=op.kind,
            status=op.status,
            amount=op.amount,
            currency=op.currency,
            failure_reason=op.failure_reason,
            completed_at=op.completed_at,
        )

    # ---------------------------------------------------------------- statement
    def statement(self, business_date: date) -> list[StatementLine]:
        response = self._call("GET", f"/statements/{business_date.isoformat()}")
        if response.status_code != 200:
            raise BankRejected(self._error(response)[1] or "The bank refused the statement.")
        lines = parse_csv(response.text)
        strays = [line.reference for line in lines if line.business_date != business_date]
        if strays:
            raise BankRejected(f"The statement for {business_date} holds lines of other dates: {strays[:3]}")
        return lines


_DIGIT_RUN = re.compile(r"\d[\d -]{10,}\d")


def scrub(text: str) -> str:
    """Text with every run of 12 or more digits (spaces and dashes allowed) masked."""
    return _DIGIT_RUN.sub("[redacted]", text)


def _header(headers: Mapping[str, str], name: str) -> str | None:
    value = headers.get(name)
    if value is not None:
        return value
    lower = name.lower()
    return next((v for k, v in headers.items() if k.lower() == lower), None)


def operation_from_json(data: Mapping[str, Any]) -> BankOperation:
    amount = data["amount"]
    if isinstance(amount, bool) or not isinstance(amount, int):
        raise TypeError("amount is not an integer")
    completed = data.get("completed_at")
    return BankOperation(
        bank_ref=str(data["bank_ref"]),
        reference=str(data["reference"]),
        kind=OperationKind(data["kind"]),
        status=OperationStatus(data["status"]),
        amount=amount,
        currency=str(data["currency"]),
        failure_reason=data.get("failure_reason"),
        completed_at=to_utc(datetime.fromisoformat(completed.replace("Z", "+00:00"))) if completed else None,
    )
