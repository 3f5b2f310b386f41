"""One mapping from failures to the API error format of API.md."""

from __future__ import annotations

import logging

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, RedirectResponse, Response
from starlette.exceptions import HTTPException as StarletteHTTPException

from trustpay.errors import TrustPayError
from trustpay.web.notfound import not_found_page, wants_html_page
from trustpay.web.templating import form_page_of

log = logging.getLogger("trustpay.api")

_STATUS_TYPES = {
    400: ("invalid_request_error", "invalid_request"),
    401: ("authentication_error", "invalid_credentials"),
    402: ("payment_error", "payment_failed"),
    403: ("permission_error", "forbidden"),
    404: ("not_found_error", "not_found"),
    405: ("invalid_request_error", "method_not_allowed"),
    409: ("conflict_error", "invalid_state"),
    415: ("invalid_request_error", "unsupported_media_type"),
    422: ("idempotency_error", "idempotency_key_reused"),
    423: ("authentication_error", "account_locked"),
    429: ("rate_limit_error", "rate_limited"),
}


def error_body(status: int, code: str, message: str, param: str | None = None) -> dict[str, object]:
    type_, _ = _STATUS_TYPES.get(status, ("api_error", "internal_error"))
    err: dict[str, str] = {"type": type_, "code": code, "message": message}
    if param:
        err["param"] = param
    return {"error": err}


def install(app: FastAPI) -> None:
    @app.exception_handler(TrustPayError)
    async def _domain(_: Request, exc: TrustPayError) -> JSONResponse:
        return JSONResponse(exc.to_dict(), status_code=exc.status)

    @app.exception_handler(RequestValidationError)
    async def _validation(_: Request, exc: RequestValidationError) -> JSONResponse:
        first = exc.errors()[0] if exc.errors() else {}
        loc = [str(p) for p in first.get("loc", ()) if p not in ("body", "query", "path", "header")]
        param = ".".join(loc) or None
        kind = str(first.get("type", ""))
        if kind == "missing":
            code, msg = "missing_field", f"{param or 'a field'} is required"
        elif param in {"amount", "buyer_amount", "seller_amount"}:
            code, msg = "invalid_amount", "amount must be a positive integer of minor units"
        elif param == "currency":
            code, msg = "invalid_currency", "currency must be an ISO 4217 code such as CNY"
        else:
            code, msg = "invalid_request", f"{param or 'request'}: {first.get('msg', 'is not valid')}"
        return JSONResponse(error_body(400, code, msg, param), status_code=400)

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> Response:
        # People browsing to a page that does not exist get a page; /v1 stays JSON.
        if exc.status_code == 404 and wants_html_page(request):
            return not_found_page(request)
        if exc.status_code == 405 and wants_html_page(request):
            # A browser opening a form's address (a bookmark, the language switch on a
            # page a form answered, "reload" after the form) is sent to the page the form
            # belongs to, with its query (``?lang=``) kept, rather than shown a JSON error.
            return RedirectResponse(form_page_of(request), status_code=303)
        _, code = _STATUS_TYPES.get(exc.status_code, ("api_error", "error"))
        message = exc.detail if isinstance(exc.detail, str) else "request failed"
        if exc.status_code == 404:
            message = "no such resource"
        return JSONResponse(error_body(exc.status_code, code, message), status_code=exc.status_code,
                            headers=getattr(exc, "headers", None))

    @app.exception_handler(Exception)
    async def _bug(_: Request, exc: Exception) -> JSONResponse:
        # A 5xx is a bug; the transaction that raised it has rolled back.
        log.exception("unhandled error", exc_info=exc)
        return JSONResponse(error_body(500, "internal_error", "something went wrong on our side; "
                                       "nothing was charged — please try again"), status_code=500)
