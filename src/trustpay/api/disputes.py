"""Dispute routes (API.md "Trades"; evidence upload, the evidence file, the ops
queue and the ops view are extensions, docs/api-extensions.md).

Either party of the trade (merchant by secret key or session, buyer by session)
opens a dispute and adds evidence; both of them and ops see it; only ops rules.
Anyone else gets the 404 a missing dispute gets.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, FastAPI, File, Form, Query, Request, Response, UploadFile
from pydantic import BaseModel, Field
from sqlalchemy import Connection

from trustpay.api.deps import CurrentUser, OriginDep, PlatformDep
from trustpay.api.idempotency import idempotent
from trustpay.api.trades import Caller
from trustpay.errors import InvalidRequest
from trustpay.platform.idempotency import EffectResult
from trustpay.trades import dispute_store, disputes
from trustpay.trades.disputes import EvidenceIn

router = APIRouter(prefix="/v1", tags=["disputes"])

ERRORS: dict[int | str, dict[str, Any]] = {
    404: {"description": "no such dispute or trade, or not one this caller may see"},
    409: {"description": "invalid_state: not allowed in the trade's or dispute's current status"},
}


class EvidenceItemIn(BaseModel):
    kind: str = Field(max_length=10, description="text | url (files: POST /v1/disputes/{id}/evidence)")
    text: str | None = Field(default=None, max_length=4000)
    url: str | None = Field(default=None, max_length=2000)


class DisputeIn(BaseModel):
    reason: str = Field(max_length=1000, description="what went wrong, shown to the other side and ops")
    evidence: list[EvidenceItemIn] = Field(default_factory=list, max_length=30)


class ResolveIn(BaseModel):
    # Checked by the service (not coerced): "12", 12.0 and true are refused.
    buyer_amount: Any = Field(description="integer, minor units, back to the buyer",
                              json_schema_extra={"type": "integer"})
    seller_amount: Any = Field(description="integer, minor units, to the merchant (less the fee on it)",
                               json_schema_extra={"type": "integer"})
    note: str = Field(max_length=1000, description="the ruling's reasons, sent to both parties")


def _full(conn: Connection, row: Any) -> dict[str, Any]:
    return disputes.shape(row, dispute_store.evidence_of(conn, row["id"]))


@router.post("/trades/{trade_id}/disputes", status_code=201, responses=ERRORS)
def open_dispute(trade_id: str, body: DisputeIn, request: Request, me: Caller, p: PlatformDep) -> Response:
    """The trade's buyer or merchant opens its one dispute: ``dispute_status`` becomes
    ``open`` and the trade's money is frozen until ops rules."""
    items = [EvidenceIn(e.kind, e.text, e.url) for e in body.evidence]

    def effect(conn: Connection) -> EffectResult:
        me.still_valid(conn)
        row = disputes.open_dispute(p, conn, trade_id, me.user_id, reason=body.reason, evidence=items)
        return 201, _full(conn, row)

    return idempotent(request, p, effect=effect)


@router.get("/disputes/{dispute_id}", responses={404: ERRORS[404]})
def get_dispute(dispute_id: str, me: Caller, p: PlatformDep) -> dict[str, Any]:
    with p.db.transaction(write=False) as conn:
        return _full(conn, disputes.get_for(conn, dispute_id, me.user_id))


@router.post("/disputes/{dispute_id}/evidence", status_code=201,
             responses={**ERRORS, 400: {"description": "file_too_large | unsupported_file_type | empty_file"}})
def add_evidence(dispute_id: str, me: Caller, p: PlatformDep,
                 file: Annotated[UploadFile | None, File(description="PNG, JPEG, PDF or plain text")] = None,
                 text: Annotated[str | None, Form(max_length=4000)] = None,
                 url: Annotated[str | None, Form(max_length=2000)] = None) -> dict[str, Any]:
    """``multipart/form-data`` with one of ``file``, ``text`` or ``url``. A file's type
    is sniffed from its bytes (the part's Content-Type is ignored)."""
    if sum(x is not None for x in (file, text, url)) != 1:
        raise InvalidRequest("send exactly one of file, text or url", param="file")
    if file is not None:
        # Read one byte past the limit: enough to refuse a bigger file without holding all of it.
        data = file.file.read(p.settings.dispute_evidence_max_bytes + 1)
        name = file.filename or ""

        def add(conn: Connection) -> Any:
            me.still_valid(conn)
            return _full(conn, disputes.add_file(p, conn, dispute_id, me.user_id, file_name=name, data=data))
    else:
        item = EvidenceIn("text", text=text) if text is not None else EvidenceIn("url", url=url)

        def add(conn: Connection) -> Any:
            me.still_valid(conn)
            return _full(conn, disputes.add_evidence(p, conn, dispute_id, me.user_id, item))
    return p.db.run(add)


@router.get("/disputes/{dispute_id}/evidence/{evidence_id}", responses={404: ERRORS[404]},
            response_class=Response)
def evidence_file(dispute_id: str, evidence_id: str, me: Caller, p: PlatformDep) -> Response:
    """An uploaded file, as a download of its sniffed type (never rendered inline)."""
    row = p.db.run(lambda conn: disputes.evidence_file(conn, dispute_id, evidence_id, me.user_id), write=False)
    safe_name = "".join(c for c in row["file_name"] if c.isascii() and (c.isalnum() or c in "._-")) or "evidence"
    return Response(bytes(row["content"]), media_type=row["content_type"], headers={
        "Content-Disposition": f'attachment; filename="{safe_name}"', "X-Content-Type-Options": "nosniff",
        "Content-Security-Policy": "default-src 'none'; sandbox", "Cache-Control": "private, no-store"})


# ------------------------------------------------------------------ ops
@router.get("/ops/disputes")
def ops_queue(p: PlatformDep, me: CurrentUser,
              status: Annotated[Literal["open", "resolved", "all"], Query()] = "all",
              limit: Annotated[int, Query(ge=1, le=100)] = 50) -> dict[str, Any]:
    """Open disputes first (oldest first), then resolved ones; each with its trade and timeline."""
    rows = p.db.run(lambda conn: disputes.queue(conn, me.user, status=None if status == "all" else status,
                                                limit=limit + 1), write=False)
    return {"object": "list", "data": rows[:limit], "has_more": len(rows) > limit}


@router.get("/ops/disputes/{dispute_id}", responses={404: ERRORS[404]})
def ops_dispute(dispute_id: str, p: PlatformDep, me: CurrentUser) -> dict[str, Any]:
    def view(conn: Connection) -> dict[str, Any]:
        disputes.ensure_ops(me.user, dispute_id)
        return disputes.ops_view(conn, dispute_store.get(conn, dispute_id))

    return p.db.run(view, write=False)


@router.post("/ops/disputes/{dispute_id}/resolve",
             responses={**ERRORS, 400: {"description": "invalid_split: the amounts do not sum to the disputed "
                                                       "amount"}})
def resolve_dispute(dispute_id: str, body: ResolveIn, request: Request, p: PlatformDep, me: CurrentUser,
                    origin: OriginDep) -> Response:
    """Ops rules: ``buyer_amount + seller_amount`` must equal the disputed amount."""
    def effect(conn: Connection) -> EffectResult:
        row = disputes.resolve(p, conn, dispute_id, me.user, buyer_amount=body.buyer_amount,
                               seller_amount=body.seller_amount, note=body.note, origin=origin)
        return 200, _full(conn, row)

    return idempotent(request, p, effect=effect)


def install(app: FastAPI) -> None:
    app.include_router(router)
