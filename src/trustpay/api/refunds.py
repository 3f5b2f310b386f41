"""Refund routes (API.md "Trades", refunds; the return-of-goods steps are extensions,
docs/api-extensions.md).

``POST /v1/trades/{id}/refunds`` is one route for both sides: the trade's
merchant (secret key or session) refunds at once, its buyer asks for a refund
(escrow). The refund then decides who the caller is to it (merchant, buyer, or
nobody: 404), like a trade does.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, FastAPI, Request, Response
from pydantic import BaseModel, Field
from sqlalchemy import Connection

from trustpay.api.deps import PlatformDep
from trustpay.api.idempotency import idempotent
from trustpay.api.trades import Caller
from trustpay.platform.idempotency import EffectResult
from trustpay.trades import refunds
from trustpay.trades.refund_views import refund_shape
from trustpay.trades.refunds import NewRefund

router = APIRouter(prefix="/v1", tags=["refunds"])


class RefundIn(BaseModel):
    out_refund_no: str = Field(max_length=64, description="your refund number; unique among your refunds")
    amount: Any = Field(description="integer, minor units; at most what is left of the trade",
                        json_schema_extra={"type": "integer"})
    reason: str = Field(max_length=256, description="why, shown to the other side")


class ApproveIn(BaseModel):
    return_goods: bool = Field(default=False, description="shipped goods must come back first "
                                                          "(WAIT_BUYER_RETURN_GOODS)")


class AnswerIn(BaseModel):
    answer: str = Field(default="", max_length=256, description="shown to the buyer")


class ReturnIn(BaseModel):
    carrier: str = Field(max_length=64)
    tracking_no: str = Field(max_length=64)


class ReturnShippingOut(BaseModel):
    carrier: str
    tracking_no: str


class RefundOut(BaseModel):
    id: str
    object: str = "refund"
    trade: str
    out_refund_no: str
    requested_by: str = Field(description="merchant (issued) | buyer (asked for)")
    amount: int
    currency: str
    reason: str
    status: str = Field(description="WAIT_SELLER_AGREE | WAIT_BUYER_RETURN_GOODS | WAIT_SELLER_CONFIRM_GOODS | "
                                    "REFUND_SUCCESS | REFUND_CLOSED")
    fee_reversed: int = Field(description="instant trades: the part of the fee given back with this refund")
    return_shipping: ReturnShippingOut | None
    answer: str | None = Field(description="the merchant's words when declining")
    close_reason: str | None = Field(description="seller_rejected | seller_refused_goods | buyer_cancelled | "
                                                 "return_timeout | trade_closed | disputed")
    respond_by: str | None = Field(description="while open: when its deadline acts")
    created_at: str
    succeeded_at: str | None
    closed_at: str | None


class RefundList(BaseModel):
    object: str = "list"
    data: list[RefundOut]
    has_more: bool


ERRORS: dict[int | str, dict[str, Any]] = {
    404: {"description": "no such refund or trade, or not one this caller may act on"},
    409: {"description": "invalid_state: not allowed in the refund's or trade's current status"},
}


@router.post("/trades/{trade_id}/refunds", status_code=201, response_model=RefundOut,
             responses={**ERRORS, 400: {"description": "refund_exceeds_paid: more than is left of the trade"},
                        402: {"description": "insufficient_funds: an instant trade's money was settled already"}})
def create_refund(trade_id: str, body: RefundIn, request: Request, me: Caller, p: PlatformDep) -> Response:
    """The trade's merchant refunds (``REFUND_SUCCESS``: the money is back in the buyer's
    wallet now); its buyer asks for a refund of an escrow trade (``WAIT_SELLER_AGREE``).
    The same out_refund_no with the same body answers with the refund made the first time."""
    new = NewRefund(out_refund_no=body.out_refund_no, amount=body.amount, reason=body.reason)

    def effect(conn: Connection) -> EffectResult:
        me.still_valid(conn)
        return 201, refund_shape(refunds.create(p, conn, trade_id, me.user_id, new))

    return idempotent(request, p, effect=effect)


@router.get("/trades/{trade_id}/refunds", response_model=RefundList, responses={404: ERRORS[404]})
def list_refunds(trade_id: str, me: Caller, p: PlatformDep) -> dict[str, Any]:
    """The trade's refunds, oldest first (a trade has a handful at most)."""
    with p.db.transaction(write=False) as conn:
        rows = refunds.list_for(conn, trade_id, me.user_id)
    return {"object": "list", "data": [refund_shape(r) for r in rows], "has_more": False}


@router.get("/refunds/{refund_id}", response_model=RefundOut, responses={404: ERRORS[404]})
def get_refund(refund_id: str, me: Caller, p: PlatformDep) -> dict[str, Any]:
    with p.db.transaction(write=False) as conn:
        return refund_shape(refunds.get_for(conn, refund_id, me.user_id))


@router.post("/refunds/{refund_id}/approve", response_model=RefundOut, responses=ERRORS)
def approve_refund(refund_id: str, body: ApproveIn, request: Request, me: Caller, p: PlatformDep) -> Response:
    """The merchant approves a buyer's request: ``REFUND_SUCCESS``; or, with
    ``return_goods`` on a shipped trade, ``WAIT_BUYER_RETURN_GOODS``."""
    def effect(conn: Connection) -> EffectResult:
        me.still_valid(conn)
        return 200, refund_shape(refunds.approve(p, conn, refund_id, me.user_id, return_goods=body.return_goods))

    return idempotent(request, p, effect=effect)


@router.post("/refunds/{refund_id}/reject", response_model=RefundOut, responses=ERRORS)
def reject_refund(refund_id: str, request: Request, me: Caller, p: PlatformDep,
                  body: AnswerIn | None = None) -> Response:
    """The merchant declines a buyer's request: ``REFUND_CLOSED``; the buyer may dispute."""
    answer = body.answer if body else ""

    def effect(conn: Connection) -> EffectResult:
        me.still_valid(conn)
        return 200, refund_shape(refunds.reject(p, conn, refund_id, me.user_id, answer=answer))

    return idempotent(request, p, effect=effect)


@router.post("/refunds/{refund_id}/return-goods", response_model=RefundOut, responses=ERRORS)
def return_goods(refund_id: str, body: ReturnIn, request: Request, me: Caller, p: PlatformDep) -> Response:
    """The buyer shipped the goods back: ``WAIT_SELLER_CONFIRM_GOODS``."""
    def effect(conn: Connection) -> EffectResult:
        return 200, refund_shape(refunds.return_goods(p, conn, refund_id, me.user_id, carrier=body.carrier,
                                                      tracking_no=body.tracking_no))

    return idempotent(request, p, effect=effect)


@router.post("/refunds/{refund_id}/confirm-goods", response_model=RefundOut, responses=ERRORS)
def confirm_goods(refund_id: str, request: Request, me: Caller, p: PlatformDep) -> Response:
    """The merchant received the returned goods: ``REFUND_SUCCESS``."""
    def effect(conn: Connection) -> EffectResult:
        me.still_valid(conn)
        return 200, refund_shape(refunds.confirm_goods(p, conn, refund_id, me.user_id))

    return idempotent(request, p, effect=effect)


@router.post("/refunds/{refund_id}/refuse-goods", response_model=RefundOut, responses=ERRORS)
def refuse_goods(refund_id: str, body: AnswerIn, request: Request, me: Caller, p: PlatformDep) -> Response:
    """The goods did not come back as sent (``answer`` says how): ``REFUND_CLOSED``."""
    def effect(conn: Connection) -> EffectResult:
        me.still_valid(conn)
        return 200, refund_shape(refunds.refuse_goods(p, conn, refund_id, me.user_id, answer=body.answer))

    return idempotent(request, p, effect=effect)


@router.post("/refunds/{refund_id}/cancel", response_model=RefundOut, responses=ERRORS)
def cancel_refund(refund_id: str, request: Request, me: Caller, p: PlatformDep) -> Response:
    """The buyer withdraws the request: ``REFUND_CLOSED``."""
    def effect(conn: Connection) -> EffectResult:
        return 200, refund_shape(refunds.cancel(p, conn, refund_id, me.user_id))

    return idempotent(request, p, effect=effect)


def install(app: FastAPI) -> None:
    app.include_router(router)
