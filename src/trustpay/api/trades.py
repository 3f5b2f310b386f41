"""Trade routes (API.md "Trades"): a merchant creates a trade with its secret key,
the buyer pays it (escrow or instant), the merchant ships, the buyer confirms.

Every trade route but creation takes either credential: a secret key acts as
its merchant, a session as its user; the trade then decides who that is to it
(merchant, buyer, or nobody: 404). Before payment anyone holding the id may
see and pay the trade (it is the checkout link); after, only its two parties.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import APIRouter, Depends, FastAPI, Query, Request, Response
from pydantic import BaseModel, Field
from sqlalchemy import Connection

from trustpay.api.deps import OriginDep, PlatformDep, bearer_token, get_current_user
from trustpay.api.idempotency import idempotent
from trustpay.errors import AuthenticationFailed, Forbidden
from trustpay.merchants import auth as merchant_auth
from trustpay.merchants.auth import MerchantCaller, MerchantPrincipal
from trustpay.merchants.model import looks_like_secret_key
from trustpay.platform.idempotency import EffectResult
from trustpay.trades import service, store
from trustpay.trades.model import not_found
from trustpay.trades.service import NewTrade
from trustpay.trades.views import shape

router = APIRouter(prefix="/v1", tags=["trades"])
Limit = Annotated[int, Query(ge=1, le=100)]


# ---------------------------------------------------------------- who is calling
@dataclass(frozen=True)
class TradeCaller:
    user_id: str  # the merchant's id for a secret key
    key_id: str | None  # the secret key, re-checked inside the write transaction

    def spending(self) -> None:
        """Money leaves a wallet only on its owner's own session: a secret key is for the
        merchant's backend, and must not spend the merchant's balance if it leaks."""
        if self.key_id is not None:
            raise Forbidden("a secret key cannot pay or confirm trades; sign in as the buyer")

    def still_valid(self, conn: Connection) -> None:
        """401 if the key was revoked after this request was let in."""
        merchant_auth.ensure_key_active(conn, MerchantPrincipal(self.user_id, self.key_id))


def get_trade_caller(request: Request, p: PlatformDep) -> TradeCaller:
    token = bearer_token(request)
    if token is None:
        raise AuthenticationFailed("send Authorization: Bearer <session token or secret key>")
    if looks_like_secret_key(token):
        key = merchant_auth.authenticate_key(p, token)
        return TradeCaller(key.merchant_id, key.key_id)
    return TradeCaller(get_current_user(request, p).user.id, None)


Caller = Annotated[TradeCaller, Depends(get_trade_caller)]


# ---------------------------------------------------------------- shapes
class TradeIn(BaseModel):
    out_trade_no: str = Field(max_length=64, description="your order number; unique among your trades")
    # Checked by the service (not coerced): "12", 12.0 and true are refused.
    amount: Any = Field(description="integer, minor units", json_schema_extra={"type": "integer"})
    currency: str = Field(default="CNY", max_length=3)
    subject: str = Field(max_length=256, description="what is being bought, shown to the payer")
    mode: str = Field(default="escrow", max_length=10, description="escrow (担保交易) | instant (即时到账)")
    pay_within_minutes: Any = Field(default=None, description="default 30; 1 to 21600",
                                    json_schema_extra={"type": "integer", "nullable": True})
    ship_within_hours: Any = Field(default=None, description="escrow: default 120; 1 to 720",
                                   json_schema_extra={"type": "integer", "nullable": True})
    confirm_within_hours: Any = Field(default=None, description="escrow: default 240; 24 to 2160",
                                      json_schema_extra={"type": "integer", "nullable": True})
    buyer: str | None = Field(default=None, max_length=32,
                              description="extension: a user id; only this user may see and pay the trade")


class PayIn(BaseModel):
    payment_password: str | None = Field(default=None, max_length=16)
    # Needed when risk control asks for a step-up and two-factor is on (401 mfa_required otherwise).
    totp_code: str | None = Field(default=None, max_length=32)


class ConfirmIn(BaseModel):
    payment_password: str = Field(max_length=16)


class ShipIn(BaseModel):
    carrier: str = Field(max_length=64)
    tracking_no: str = Field(max_length=64)


class DeadlinesOut(BaseModel):
    pay_within_minutes: int
    ship_within_hours: int
    confirm_within_hours: int
    pay_by: str
    ship_by: str | None = Field(description="set when paid (escrow)")
    confirm_by: str | None = Field(description="set when shipped")


class ShippingOut(BaseModel):
    carrier: str
    tracking_no: str


class TradeOut(BaseModel):
    id: str
    object: str = "trade"
    out_trade_no: str
    merchant: str
    buyer: str | None
    mode: str
    status: str = Field(description="WAIT_BUYER_PAY | WAIT_SELLER_SEND_GOODS | WAIT_BUYER_CONFIRM_GOODS | "
                                    "TRADE_SUCCESS | TRADE_FINISHED | TRADE_CLOSED")
    amount: int
    currency: str
    subject: str
    fee: int = Field(description="the merchant's fee; the merchant receives amount − fee")
    refunded_amount: int
    dispute_status: str = Field(description="none | open | resolved")
    deadlines: DeadlinesOut
    shipping: ShippingOut | None
    close_reason: str | None = Field(description="merchant_closed | pay_timeout | ship_timeout | refunded")
    checkout_url: str = Field(description="the hosted checkout page, relative to this server")
    qr_code_url: str = Field(description="an SVG QR code of the checkout page, relative to this server")
    created_at: str
    paid_at: str | None
    shipped_at: str | None
    finished_at: str | None
    closed_at: str | None


class TradeList(BaseModel):
    object: str = "list"
    data: list[TradeOut]
    has_more: bool


CONFLICTS: dict[int | str, dict[str, Any]] = {
    409: {"description": "invalid_state: not allowed in the trade's current status"},
    404: {"description": "no such trade, or not one this caller may act on"},
}


# ---------------------------------------------------------------- routes
@router.post("/trades", status_code=201, response_model=TradeOut,
             responses={409: {"description": "already_exists: this out_trade_no was used with another body"}})
def create_trade(body: TradeIn, request: Request, me: MerchantCaller, p: PlatformDep) -> Response:
    """A trade awaiting payment. Sending the same out_trade_no with the same body again
    answers with the trade made the first time."""
    new = NewTrade(out_trade_no=body.out_trade_no, amount=body.amount, currency=body.currency,
                   subject=body.subject, mode=body.mode, pay_within_minutes=body.pay_within_minutes,
                   ship_within_hours=body.ship_within_hours, confirm_within_hours=body.confirm_within_hours,
                   buyer=body.buyer)

    def effect(conn: Connection) -> EffectResult:
        merchant_auth.ensure_key_active(conn, me)
        return 201, shape(service.create(p, conn, me.merchant_id, new))

    return idempotent(request, p, effect=effect)


@router.get("/trades", response_model=TradeOut | TradeList, responses={404: CONFLICTS[404]})
def list_trades(me: Caller, p: PlatformDep, limit: Limit = 20, starting_after: str | None = None,
                out_trade_no: str | None = Query(default=None, max_length=64)) -> dict[str, Any]:
    """With ``out_trade_no``: that trade of yours (the merchant's own order number), or 404.
    Without: the trades you sold or bought, newest first."""
    with p.db.transaction(write=False) as conn:
        if out_trade_no is not None:
            row = store.by_out_trade_no(conn, me.user_id, out_trade_no)
            if row is None:
                raise not_found(out_trade_no)
            return shape(row)
        rows, more = store.page(conn, me.user_id, limit=limit, starting_after=starting_after)
    return {"object": "list", "data": [shape(r) for r in rows], "has_more": more}


@router.get("/trades/{trade_id}", response_model=TradeOut, responses={404: CONFLICTS[404]})
def get_trade(trade_id: str, me: Caller, p: PlatformDep) -> dict[str, Any]:
    with p.db.transaction(write=False) as conn:
        return shape(service.get_for(conn, trade_id, me.user_id))


PAY_ERRORS: dict[int | str, dict[str, Any]] = {
    **CONFLICTS,
    402: {"description": "insufficient_funds, limit_exceeded, account_frozen, payment_password_invalid, "
                         "risk_declined"},
    403: {"description": "forbidden: a secret key cannot pay or confirm (the buyer's session does)"},
}


@router.post("/trades/{trade_id}/pay", response_model=TradeOut, responses=PAY_ERRORS)
def pay_trade(trade_id: str, body: PayIn, request: Request, me: Caller, p: PlatformDep,
              origin: OriginDep) -> Response:
    """The buyer pays: escrow → ``WAIT_SELLER_SEND_GOODS`` (the money waits with us);
    instant → ``TRADE_SUCCESS`` (the merchant has it)."""
    me.spending()
    stepped_up = authorised = False

    def before() -> None:  # not for a replay: the first answer is replayed as it was
        nonlocal stepped_up, authorised
        stepped_up = service.authorise_pay(p, me.user_id, trade_id, payment_password=body.payment_password,
                                           totp_code=body.totp_code, origin=origin)
        authorised = True

    def effect(conn: Connection) -> EffectResult:
        return 200, shape(service.pay(p, conn, trade_id, me.user_id, stepped_up=stepped_up, authorised=authorised))

    # As a transfer: with no password or code to check, a 免密 payment is tried in one transaction at once.
    return idempotent(request, p, effect=effect, before=before,
                      optimistic=not body.payment_password and not body.totp_code)


@router.post("/trades/{trade_id}/ship", response_model=TradeOut, responses=CONFLICTS)
def ship_trade(trade_id: str, body: ShipIn, request: Request, me: Caller, p: PlatformDep) -> Response:
    """The merchant ships: ``WAIT_BUYER_CONFIRM_GOODS``; the buyer's confirm deadline starts."""
    def effect(conn: Connection) -> EffectResult:
        me.still_valid(conn)
        return 200, shape(service.ship(p, conn, trade_id, me.user_id, carrier=body.carrier,
                                       tracking_no=body.tracking_no))

    return idempotent(request, p, effect=effect)


@router.post("/trades/{trade_id}/confirm", response_model=TradeOut, responses=PAY_ERRORS)
def confirm_trade(trade_id: str, body: ConfirmIn, request: Request, me: Caller, p: PlatformDep,
                  origin: OriginDep) -> Response:
    """The buyer confirms receipt: ``TRADE_FINISHED``, the merchant is paid (minus the fee)."""
    me.spending()

    def before() -> None:
        service.authorise_confirm(p, me.user_id, trade_id, payment_password=body.payment_password, origin=origin)

    def effect(conn: Connection) -> EffectResult:
        return 200, shape(service.confirm(p, conn, trade_id, me.user_id))

    return idempotent(request, p, effect=effect, before=before)


@router.post("/trades/{trade_id}/close", response_model=TradeOut, responses=CONFLICTS)
def close_trade(trade_id: str, request: Request, me: Caller, p: PlatformDep) -> Response:
    """The merchant calls off an unpaid trade: ``TRADE_CLOSED``."""
    def effect(conn: Connection) -> EffectResult:
        me.still_valid(conn)
        return 200, shape(service.close(p, conn, trade_id, me.user_id))

    return idempotent(request, p, effect=effect)


def install(app: FastAPI) -> None:
    app.include_router(router)
