"""Statement and receipts (API.md "Wallet"): GET /v1/transactions, GET /v1/transactions/{id}/receipt."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query
from fastapi.responses import Response, StreamingResponse
from pydantic import BaseModel

from trustpay.api.deps import CurrentUser, PlatformDep
from trustpay.clock import rfc3339
from trustpay.platform.context import Platform
from trustpay.wallet import receipt as receipts
from trustpay.wallet import statement
from trustpay.wallet.statement import Filters, LineType, StatementLine

router = APIRouter(prefix="/v1", tags=["wallet"])
Limit = Annotated[int, Query(ge=1, le=statement.MAX_LIMIT)]


class TransactionOut(BaseModel):
    id: str
    object: Literal["transaction"] = "transaction"
    type: LineType
    amount: int  # signed minor units: + into the wallet, - out of it
    currency: str
    balance_after: int
    counterparty: str | None
    reference: str | None
    memo: str
    created_at: str


class TransactionList(BaseModel):
    object: Literal["list"] = "list"
    data: list[TransactionOut]
    has_more: bool


class DigestRef(BaseModel):
    height: int
    root: str
    at: str


class ReceiptOut(TransactionOut):
    object: Literal["receipt"] = "receipt"  # type: ignore[assignment]
    account_id: str
    entry: dict[str, Any]  # exactly what the entry hash covers (see trustpay.wallet.receipt)
    entry_hash: str
    prev_hash: str
    leaf_index: int
    proof: list[str]
    digest: DigestRef


def filters_of(type: str | None, currency: str | None, created_gte: datetime | None,
               created_lt: datetime | None) -> Filters:
    return Filters(type=statement.parse_type(type), currency=currency or None,
                   created_gte=created_gte, created_lt=created_lt)


def csv_response(p: Platform, user_id: str, filters: Filters, filename: str) -> StreamingResponse:
    def read(cursor: str | None) -> tuple[list[StatementLine], bool]:
        with p.db.transaction(write=False) as conn:
            return statement.list_lines(conn, user_id, filters, limit=statement.MAX_LIMIT,
                                        starting_after=cursor)

    # The first page is read before streaming starts, so a failure there is
    # still a JSON error rather than a cut-off download.
    first = read(None)

    def page(cursor: str | None) -> tuple[list[StatementLine], bool]:
        return first if cursor is None else read(cursor)

    return StreamingResponse(
        statement.export_csv(page), media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": f'attachment; filename="{filename}"', "Cache-Control": "no-store"},
    )


@router.get("/transactions", response_model=TransactionList,
            responses={200: {"content": {"text/csv": {"schema": {"type": "string"}}},
                             "description": "The statement; with format=csv, every matching line as CSV"}})
def list_transactions(
    me: CurrentUser, p: PlatformDep, limit: Limit = 20, starting_after: str | None = None,
    type: Annotated[str | None, Query(description="one of: " + ", ".join(LineType))] = None,
    currency: Annotated[str | None, Query(max_length=3)] = None,
    created_gte: datetime | None = None, created_lt: datetime | None = None,
    format: Literal["json", "csv"] = "json",
) -> Response | TransactionList:
    """The wallet statement, newest first; ``?format=csv`` downloads every matching line."""
    filters = filters_of(type, currency, created_gte, created_lt)
    if format == "csv":
        return csv_response(p, me.user.id, filters, f"trustpay-statement-{rfc3339(p.clock.now())[:10]}.csv")
    with p.db.transaction(write=False) as conn:
        lines, more = statement.list_lines(conn, me.user.id, filters, limit=limit, starting_after=starting_after)
    return TransactionList(data=[TransactionOut.model_validate(ln.as_json()) for ln in lines], has_more=more)


@router.get("/transactions/{transaction_id}/receipt", response_model=ReceiptOut)
def get_receipt(transaction_id: str, me: CurrentUser, p: PlatformDep) -> ReceiptOut:
    """The line with its entry, hash link and Merkle inclusion proof:
    `trustpay receipt verify FILE` checks it offline."""
    with p.db.transaction(write=False) as conn:
        doc = receipts.make_receipt(p, conn, me.user.id, transaction_id)
    return ReceiptOut.model_validate(doc)
