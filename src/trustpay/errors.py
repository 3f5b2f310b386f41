"""Domain errors. Each carries the API error ``code``; the HTTP status and
``type`` come from its class, mapped once in :mod:`trustpay.api.errors`."""

from __future__ import annotations

from typing import ClassVar


class TrustPayError(Exception):
    status: ClassVar[int] = 400
    type: ClassVar[str] = "invalid_request_error"
    code: str = "invalid_request"

    def __init__(self, message: str, *, code: str | None = None, param: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        if code is not None:
            self.code = code
        self.param = param

    def to_dict(self) -> dict[str, dict[str, str]]:
        body = {"type": self.type, "code": self.code, "message": self.message}
        if self.param:
            body["param"] = self.param
        return {"error": body}


class InvalidRequest(TrustPayError):
    status = 400
    type = "invalid_request_error"


class PayloadTooLarge(TrustPayError):
    status = 413
    type = "invalid_request_error"
    code = "request_too_large"


class InvalidAmount(InvalidRequest):
    code = "invalid_amount"


class InvalidCurrency(InvalidRequest):
    code = "invalid_currency"


class AuthenticationFailed(TrustPayError):
    status = 401
    type = "authentication_error"
    code = "invalid_credentials"


class PaymentFailed(TrustPayError):
    status = 402
    type = "payment_error"
    code = "payment_failed"


class InsufficientFunds(PaymentFailed):
    code = "insufficient_funds"


class Forbidden(TrustPayError):
    status = 403
    type = "permission_error"
    code = "forbidden"


class NotFound(TrustPayError):
    status = 404
    type = "not_found_error"
    code = "not_found"


class Conflict(TrustPayError):
    status = 409
    type = "conflict_error"
    code = "invalid_state"


class IdempotencyInProgress(Conflict):
    code = "idempotency_in_progress"


class IdempotencyKeyReused(TrustPayError):
    status = 422
    type = "idempotency_error"
    code = "idempotency_key_reused"


class AccountLocked(TrustPayError):
    status = 423
    type = "authentication_error"
    code = "account_locked"


class RateLimited(TrustPayError):
    status = 429
    type = "rate_limit_error"
    code = "rate_limited"
