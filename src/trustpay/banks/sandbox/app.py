"""The sandbox bank's HTTP API (its own ASGI app; paths relative to where it is mounted).

* ``POST /cards`` ``{card_number, holder_name}`` → 201 ``{token, last4, brand}``
* ``DELETE /cards/{token}`` → 204; ``GET /cards/{token}/balance?currency=CNY``
  → ``{token, currency, balance}`` (the card account at the bank)
* ``POST /operations`` ``{kind: debit|payout, token, amount, currency,
  reference, callback_url?}`` → 201 new, 200 replayed (same reference), 409
  if the reference was used for something else
* ``GET /operations/{reference}`` → ``{bank_ref, reference, kind, status,
  amount, currency, failure_reason, completed_at}``
* ``GET /statements/{YYYY-MM-DD}`` → text/csv (also written to
  ``<data dir>/statements/<date>.csv``)
* ``GET, POST /control`` ``{fail?, fail_next?, latency_ms?, settle_seconds?}``
  → the control state; ``POST /control/tick`` settles what is due and
  delivers callbacks now → ``{settled, delivered}``
* ``GET /healthz`` → ``{ok: true}`` (no auth)

Every path but ``/healthz`` needs ``Authorization: Bearer <shared secret>``.
Errors: ``{"error": {"code", "message", "param"?}}``. The control knobs
(fail, latency) apply to the banking paths, never to ``/control`` itself.
"""

from __future__ import annotations

import asyncio
import hmac
import json
from datetime import date
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, PlainTextResponse, Response
from starlette.middleware.base import BaseHTTPMiddleware, RequestResponseEndpoint

from trustpay.banks.connector import OperationKind
from trustpay.banks.sandbox.bank import SandboxBank
from trustpay.banks.sandbox.wire import operation_json
from trustpay.errors import TrustPayError


def _error(status: int, code: str, message: str, param: str | None = None) -> JSONResponse:
    err = {"code": code, "message": message}
    if param:
        err["param"] = param
    return JSONResponse({"error": err}, status_code=status)


async def _json_body(request: Request) -> dict[str, Any]:
    try:
        body = json.loads(await request.body())
    except ValueError:
        body = None
    if not isinstance(body, dict):
        raise TrustPayError("The body must be a JSON object.", code="invalid_request")
    return body


def create_sandbox_app(bank: SandboxBank) -> FastAPI:
    app = FastAPI(title="TrustPay sandbox bank", docs_url=None, redoc_url=None, openapi_url=None)
    app.state.bank = bank

    class Gate(BaseHTTPMiddleware):
        """Authentication first, then the misbehaviour tests asked for."""

        async def dispatch(self, request: Request, call_next: RequestResponseEndpoint) -> Response:
            path = request.url.path[len(request.scope.get("root_path", "")):] or "/"
            if path == "/healthz":
                return await call_next(request)
            given = request.headers.get("authorization", "")
            if not hmac.compare_digest(given.encode(), f"Bearer {bank.secret}".encode()):
                return _error(401, "unauthorized", "Missing or wrong bank API credentials.")
            if not path.startswith("/control"):
                control = bank.control
                if control.latency_ms:
                    await asyncio.sleep(control.latency_ms / 1000)
                if control.fail or control.fail_next > 0:
                    control.fail_next = max(0, control.fail_next - 1)
                    return _error(500, "bank_error", "The bank is having trouble (induced by /control).")
            return await call_next(request)

    app.add_middleware(Gate)

    @app.exception_handler(TrustPayError)
    async def _domain(_: Request, exc: TrustPayError) -> JSONResponse:
        return _error(exc.status, exc.code, exc.message, exc.param)

    @app.get("/healthz")
    def healthz() -> dict[str, bool]:
        return {"ok": True}

    # The card number is read by hand, not through a pydantic model: a
    # validation error would echo the submitted value back (and into logs).
    @app.post("/cards", status_code=201)
    async def tokenize(request: Request) -> JSONResponse:
        body = await _json_body(request)
        number, holder = body.get("card_number"), body.get("holder_name")
        if not isinstance(number, str):
            return _error(400, "invalid_card_number", "card_number must be a string of digits.", "card_number")
        if not isinstance(holder, str) or not holder.strip():
            return _error(400, "missing_field", "holder_name is required.", "holder_name")
        card = await asyncio.to_thread(bank.tokenize, number, holder)
        return JSONResponse({"token": card.token, "last4": card.last4, "brand": card.brand}, status_code=201)

    @app.delete("/cards/{token}", status_code=204)
    def revoke(token: str) -> Response:
        bank.revoke(token)
        return Response(status_code=204)

    @app.get("/cards/{token}/balance")
    def balance(token: str, currency: str = "CNY") -> dict[str, object]:
        return {"token": token, "currency": currency, "balance": bank.balance(token, currency)}

    @app.post("/operations")
    async def start(request: Request) -> JSONResponse:
        body = await _json_body(request)
        try:
            kind = OperationKind(str(body.get("kind")))
        except ValueError:
            return _error(400, "invalid_request", "kind must be debit or payout.", "kind")
        for field in ("token", "currency", "reference"):
            if not isinstance(body.get(field), str):
                return _error(400, "missing_field", f"{field} is required.", field)
        callback_url = body.get("callback_url")
        if callback_url is not None and not isinstance(callback_url, str):
            return _error(400, "invalid_request", "callback_url must be a URL.", "callback_url")
        op, created = await asyncio.to_thread(
            bank.start, kind, body["token"], body.get("amount"), body["currency"], body["reference"],  # type: ignore[arg-type]
            callback_url,
        )
        return JSONResponse(operation_json(op), status_code=201 if created else 200)

    @app.get("/operations/{reference}")
    def get_operation(reference: str) -> dict[str, object]:
        return operation_json(bank.get(reference))

    @app.get("/statements/{business_date}")
    def statement(business_date: str) -> Response:
        try:
            day = date.fromisoformat(business_date)
        except ValueError:
            return _error(400, "invalid_request", "The date must be YYYY-MM-DD.", "business_date")
        bank.settle_due()
        path = bank.write_statement(day)
        return PlainTextResponse(path.read_text(encoding="utf-8"), media_type="text/csv; charset=utf-8")

    def control_state() -> dict[str, object]:
        c = bank.control
        return {"fail": c.fail, "fail_next": c.fail_next, "latency_ms": c.latency_ms,
                "settle_seconds": bank.settle_seconds}

    @app.get("/control")
    def get_control() -> dict[str, object]:
        return control_state()

    @app.post("/control")
    async def set_control(request: Request) -> JSONResponse:
        body = await _json_body(request)
        c = bank.control
        if "fail" in body:
            c.fail = bool(body["fail"])
        for field, low in (("fail_next", 0), ("latency_ms", 0)):
            if field in body:
                value = body[field]
                if isinstance(value, bool) or not isinstance(value, int) or value < low:
                    return _error(400, "invalid_request", f"{field} must be a whole number ≥ {low}.", field)
                setattr(c, field, value)
        if "settle_seconds" in body:
            value = body["settle_seconds"]
            if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
                return _error(400, "invalid_request", "settle_seconds must be ≥ 0.", "settle_seconds")
            bank.settle_seconds = float(value)
        return JSONResponse(control_state())

    @app.post("/control/tick")
    def tick() -> dict[str, int]:
        return {"settled": bank.settle_due(), "delivered": bank.deliver_callbacks()}

    return app
