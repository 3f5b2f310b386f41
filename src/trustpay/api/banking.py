"""Bank cards, top-ups, withdrawals (API.md "Wallet") and the banks' callback route."""

from __future__ import annotations

import json
from typing import Annotated, Any

from fastapi import APIRouter, FastAPI, Query, Request, Response
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field
from sqlalchemy import Connection
from starlette.concurrency import run_in_threadpool

from trustpay.api.deps import CurrentUser, OriginDep, PlatformDep
from trustpay.api.idempotency import idempotent
from trustpay.banks.errors import BadBankSignature
from trustpay.banks.registry import connector_for
from trustpay.identity import audit
from trustpay.identity.model import Outcome
from trustpay.merchants import settlement
from trustpay.money import check_amount
from trustpay.platform.idempotency import EffectResult
from trustpay.wallet import bank_ops, cards, store

router = APIRouter(prefix="/v1", tags=["wallet"])
Limit = Annotated[int, Query(ge=1, le=100)]
AMOUNT = Field(description="integer, minor units", json_schema_extra={"type": "integer"})


class CardIn(BaseModel):
    bank: str = Field(default="sandbox", max_length=32)
    card_number: str = Field(max_length=40)
    holder_name: str = Field(max_length=120)


class CardOut(BaseModel):
    id: str
    object: str = "bank_card"
    bank: str
    last4: str
    brand: str
    holder_name: str
    status: str
    created_at: str


class CardList(BaseModel):
    object: str = "list"
    data: list[CardOut]
    has_more: bool = False


class TopupIn(BaseModel):
    card: str = Field(max_length=40)
    amount: Any = AMOUNT
    currency: str = Field(default="CNY", max_length=3)


class TopupOut(BaseModel):
    id: str
    object: str = "topup"
    status: str
    amount: int
    currency: str
    card: str
    failure_reason: str | None
    created_at: str
    completed_at: str | None


class WithdrawalIn(TopupIn):
    payment_password: str = Field(max_length=16)
    # Needed when risk control asks for a step-up and two-factor is on.
    totp_code: str | None = Field(default=None, max_length=32)


class WithdrawalOut(TopupOut):
    object: str = "withdrawal"
    fee: int


class QuoteOut(BaseModel):
    amount: int
    fee: int
    total: int
    rate: str
    fixed: int
    minimum: int


@router.post("/bank-cards", status_code=201, response_model=CardOut)
def bind_card(body: CardIn, request: Request, me: CurrentUser, p: PlatformDep) -> Response:
    """Bind a card: the bank tokenises it; only the token and the last four digits are kept."""
    row = cards.bind(p, me.user.id, bank=body.bank, card_number=body.card_number, holder_name=body.holder_name)
    return JSONResponse(cards.shape(row), status_code=201)


@router.get("/bank-cards", response_model=CardList)
def list_cards(me: CurrentUser, p: PlatformDep) -> dict[str, Any]:
    with p.db.transaction(write=False) as conn:
        rows = store.active_cards(conn, me.user.id)
    return {"object": "list", "data": [cards.shape(r) for r in rows], "has_more": False}


@router.delete("/bank-cards/{card_id}", status_code=204)
def unbind_card(card_id: str, me: CurrentUser, p: PlatformDep) -> Response:
    row = p.db.run(lambda conn: cards.unbind(p, conn, me.user.id, card_id))
    cards.revoke_at_bank(p, row)
    return Response(status_code=204)


@router.post("/topups", status_code=201, response_model=TopupOut)
def create_topup(body: TopupIn, request: Request, me: CurrentUser, p: PlatformDep) -> Response:
    """充值: pending until the bank confirms; the wallet is credited only then."""
    amount = check_amount(body.amount, p.settings.max_amount)

    def effect(conn: Connection) -> EffectResult:
        row = bank_ops.create_topup(p, conn, me.user.id, card_id=body.card, amount=amount,
                                    currency=body.currency.upper())
        return 201, bank_ops.shape_topup(row)

    response = idempotent(request, p, effect=effect)
    return _submit_after(p, response, bank_ops.shape_topup)


@router.get("/topups/{topup_id}", response_model=TopupOut)
def get_topup(topup_id: str, me: CurrentUser, p: PlatformDep) -> dict[str, Any]:
    with p.db.transaction(write=False) as conn:
        return bank_ops.shape_topup(store.get_row(conn, store.topups, topup_id, owner_col="user_id",
                                                  owner_id=me.user.id))


@router.get("/withdrawals/quote", response_model=QuoteOut)
def quote_withdrawal(p: PlatformDep, me: CurrentUser, amount: Annotated[int, Query(gt=0)]) -> dict[str, Any]:
    """The fee for withdrawing ``amount``, to show before the user confirms."""
    return bank_ops.quote_withdrawal(p, amount)


@router.post("/withdrawals", status_code=201, response_model=WithdrawalOut)
def create_withdrawal(body: WithdrawalIn, request: Request, me: CurrentUser, p: PlatformDep,
                      origin: OriginDep) -> Response:
    """提现: the card receives ``amount``; the wallet pays ``amount + fee``, held until
    the bank confirms and returned if it fails."""
    amount = check_amount(body.amount, p.settings.max_amount)
    stepped_up = False

    def before() -> None:  # not for a replay
        nonlocal stepped_up
        stepped_up = bank_ops.authorise_withdrawal(p, me.user.id, amount=amount,
                                                   payment_password=body.payment_password,
                                                   totp_code=body.totp_code, origin=origin)

    def effect(conn: Connection) -> EffectResult:
        row = bank_ops.create_withdrawal(p, conn, me.user.id, card_id=body.card, amount=amount,
                                         currency=body.currency.upper(), stepped_up=stepped_up)
        return 201, bank_ops.shape_withdrawal(row)

    response = idempotent(request, p, effect=effect, before=before)
    return _submit_after(p, response, bank_ops.shape_withdrawal)


@router.get("/withdrawals/{withdrawal_id}", response_model=WithdrawalOut)
def get_withdrawal(withdrawal_id: str, me: CurrentUser, p: PlatformDep) -> dict[str, Any]:
    with p.db.transaction(write=False) as conn:
        return bank_ops.shape_withdrawal(store.get_row(conn, store.withdrawals, withdrawal_id,
                                                       owner_col="user_id", owner_id=me.user.id))


def _submit_after(p: Any, response: Response, shape: Any) -> Response:
    """Once the pending row has committed, tell the bank (no transaction open).

    The response the caller gets is the row as it stands afterwards; a replay of
    the same Idempotency-Key gets the stored first answer (``pending``) — the
    object's current state is always at its GET."""
    if response.status_code != 201 or response.headers.get("Idempotent-Replayed"):
        return response
    obj_id = json.loads(bytes(response.body))["id"]
    row = bank_ops.submit_quietly(p, obj_id)
    return JSONResponse(shape(row), status_code=201, headers={
        k: v for k, v in response.headers.items() if k.lower() not in ("content-length", "content-type")})


@router.post("/bank-callbacks/{bank}", include_in_schema=False)
async def bank_callback(bank: str, request: Request, p: PlatformDep) -> Response:
    """A bank telling us an operation finished. Signature first; nothing is parsed before."""
    body = await request.body()
    connector = connector_for(p, bank)
    origin = audit.Origin(ip=request.client.host if request.client else "",
                          user_agent=request.headers.get("user-agent", ""))
    try:
        cb = connector.verify_callback(request.headers, body)
    except BadBankSignature as exc:
        now = p.clock.now()
        await run_in_threadpool(p.db.run, lambda conn: audit.record(
            conn, event="bank.callback_rejected", outcome=Outcome.FAILURE, user_id=None, origin=origin, now=now,
            resource=bank))
        return JSONResponse(exc.to_dict(), status_code=400)
    # Settlement payouts (stl_…) are settled by their own service; everything else is the wallet's.
    settle = settlement.settle if cb.reference.startswith("stl_") else bank_ops.settle
    await run_in_threadpool(p.db.run, lambda conn: settle(p, conn, cb.reference, cb.status,
                                                          cb.failure_reason, bank_ref=cb.bank_ref))
    return JSONResponse({"received": True})


def install(app: FastAPI) -> None:
    app.include_router(router)
