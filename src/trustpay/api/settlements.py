"""Merchant settlements (docs/api-extensions.md "Settlements"): the batches that paid
finished trade money out to the merchant's settlement card, and each one's report."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, FastAPI, Query, Response
from pydantic import BaseModel, Field

from trustpay.api.deps import PlatformDep
from trustpay.merchants import settlement
from trustpay.merchants import settlement_store as store
from trustpay.merchants.auth import MerchantCaller

router = APIRouter(prefix="/v1", tags=["settlements"])
Limit = Annotated[int, Query(ge=1, le=100)]
NOT_FOUND: dict[int | str, dict[str, Any]] = {404: {"description": "no such settlement of this merchant"}}


class SettlementOut(BaseModel):
    id: str
    object: str = "settlement"
    status: str = Field(description="pending | succeeded | failed")
    currency: str
    gross: int = Field(description="what buyers paid for the batch's trades, less refunds")
    fee: int
    amount: int = Field(description="gross − fee: what the settlement card receives")
    trade_count: int
    business_date: str = Field(description="the settlement run's date (platform timezone)")
    cutoff: str = Field(description="money that became settleable before this instant is in the batch")
    card: str
    failure_reason: str | None
    created_at: str
    completed_at: str | None
    report_url: str


class SettlementList(BaseModel):
    object: str = "list"
    data: list[SettlementOut]
    has_more: bool


@router.get("/settlements", response_model=SettlementList)
def list_settlements(me: MerchantCaller, p: PlatformDep, limit: Limit = 20,
                     starting_after: str | None = None) -> dict[str, Any]:
    """Your settlement batches, newest first."""
    with p.db.transaction(write=False) as conn:
        rows, more = store.page(conn, me.merchant_id, limit=limit, starting_after=starting_after)
    return {"object": "list", "data": [settlement.shape(r) for r in rows], "has_more": more}


@router.get("/settlements/{settlement_id}", response_model=SettlementOut, responses=NOT_FOUND)
def get_settlement(settlement_id: str, me: MerchantCaller, p: PlatformDep) -> dict[str, Any]:
    with p.db.transaction(write=False) as conn:
        return settlement.shape(settlement.get_for(conn, settlement_id, me.merchant_id))


@router.get("/settlements/{settlement_id}/report.csv", response_class=Response, responses={
    200: {"content": {"text/csv": {}}, "description": "trade_id, out_trade_no, finished_at, amount, fee, net"},
    **NOT_FOUND})
def settlement_report(settlement_id: str, me: MerchantCaller, p: PlatformDep) -> Response:
    with p.db.transaction(write=False) as conn:
        body = settlement.report(conn, settlement_id, me.merchant_id)
    return Response(body, media_type="text/csv; charset=utf-8", headers={
        "Content-Disposition": f'attachment; filename="{settlement_id}.csv"'})


def install(app: FastAPI) -> None:
    app.include_router(router)
