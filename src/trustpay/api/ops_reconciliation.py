"""Ops: the reconciliation exceptions queue (ops role only; anyone else gets 404)."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query
from pydantic import BaseModel, Field

from trustpay.api.deps import CurrentUser, OriginDep, PlatformDep
from trustpay.banks import recon_resolve

router = APIRouter(prefix="/v1/ops/reconciliation", tags=["ops"])


class ResolveIn(BaseModel):
    action: str = Field(max_length=20, description="note_only | credit_wallet | debit_wallet")
    note: str = Field(max_length=1000)
    amount: Any = Field(default=None, description="integer, minor units; default: what the finding says is off",
                        json_schema_extra={"type": "integer"})
    user_id: str | None = Field(default=None, max_length=40,
                                description="whose wallet, when the finding names no user")


@router.get("/exceptions")
def list_exceptions(p: PlatformDep, me: CurrentUser,
                    status: Annotated[Literal["open", "resolved", "all"], Query()] = "open",
                    limit: Annotated[int, Query(ge=1, le=100)] = 50) -> dict[str, Any]:
    recon_resolve.ensure_ops(me.user)
    rows, more = p.db.run(lambda conn: recon_resolve.list_exceptions(
        conn, status=None if status == "all" else status, limit=limit), write=False)
    return {"object": "list", "data": [recon_resolve.shape(r) for r in rows], "has_more": more}


@router.post("/exceptions/{exception_id}/resolve")
def resolve_exception(exception_id: str, body: ResolveIn, p: PlatformDep, me: CurrentUser,
                      origin: OriginDep) -> dict[str, Any]:
    row = p.db.run(lambda conn: recon_resolve.resolve(
        p, conn, exception_id, actor=me.user, action=body.action, note=body.note, origin=origin,
        amount=body.amount, user_id=body.user_id))
    return recon_resolve.shape(row)
