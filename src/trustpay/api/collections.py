"""Collection codes (收款码) and donation pages (网上募捐), API.md "Trades" extension.

The merchant (secret key or its own session) creates, lists, reads and disables
its codes and pages; a payer pays one with a session (a secret key never spends)
and the payment is an instant trade of that merchant, paid at once. The codes
are public by design (they are printed), so the payer routes take any code id;
the merchant routes answer 404 for another merchant's.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, FastAPI, Request, Response
from pydantic import BaseModel, Field
from sqlalchemy import Connection

from trustpay.api.deps import CurrentUser, OriginDep, PlatformDep
from trustpay.api.idempotency import idempotent
from trustpay.merchants import auth as merchant_auth
from trustpay.merchants.auth import MerchantCaller
from trustpay.platform.idempotency import EffectResult
from trustpay.trades import collection
from trustpay.trades.collection import NewCode, NewDonationPage

router = APIRouter(prefix="/v1", tags=["collection"])


class CodeIn(BaseModel):
    label: str = Field(max_length=80, description="shown to the payer, e.g. the shop's name")
    currency: str = Field(default="CNY", max_length=3)
    amount: Any = Field(default=None, description="a fixed amount in minor units; omit to let the payer type it",
                        json_schema_extra={"type": "integer", "nullable": True})


class CodeOut(BaseModel):
    id: str
    object: str = "collection_code"
    label: str
    currency: str
    amount: int | None
    status: str = Field(description="active | disabled")
    url: str = Field(description="the payer's page, relative to this server")
    qr_code_url: str = Field(description="an SVG QR code of that page")
    created_at: str
    disabled_at: str | None


class CodeList(BaseModel):
    object: str = "list"
    data: list[CodeOut]


class PageIn(BaseModel):
    title: str = Field(max_length=120)
    story: str = Field(max_length=4000, description="plain text, shown on the page")
    currency: str = Field(default="CNY", max_length=3)
    goal: Any = Field(default=None, json_schema_extra={"type": "integer", "nullable": True})
    suggested_amounts: list[Any] = Field(default_factory=list, max_length=6,
                                         json_schema_extra={"items": {"type": "integer"}})
    public: bool = Field(default=True, description="show the total raised and the messages on the page")


class PageOut(BaseModel):
    id: str
    object: str = "donation_page"
    title: str
    story: str
    currency: str
    goal: int | None
    suggested_amounts: list[int]
    public: bool
    status: str
    url: str
    qr_code_url: str
    raised: int = Field(description="paid less refunded, minor units")
    donations: int = Field(description="paid donations not wholly refunded")
    created_at: str
    disabled_at: str | None


class PageList(BaseModel):
    object: str = "list"
    data: list[PageOut]


class PayIn(BaseModel):
    amount: Any = Field(default=None, description="minor units; may be omitted for a fixed-amount code",
                        json_schema_extra={"type": "integer", "nullable": True})
    payment_password: str | None = Field(default=None, max_length=16)
    totp_code: str | None = Field(default=None, max_length=32)
    note: str | None = Field(default=None, max_length=1000, description="at most 200 characters, one line")
    anonymous: bool = Field(default=False, description="donations: hide the donor's name on the page")


class PaymentOut(BaseModel):
    object: str = "collection_payment"
    source: str = Field(description="the qrc_ code or don_ page paid")
    note: str | None
    anonymous: bool
    trade: dict[str, Any] = Field(description="the instant trade, status TRADE_SUCCESS")


ERRORS: dict[int | str, dict[str, Any]] = {
    404: {"description": "no such code or page (or another merchant's)"},
    409: {"description": "invalid_state: the code or page is disabled"},
}
PAY_ERRORS: dict[int | str, dict[str, Any]] = {
    **ERRORS,
    400: {"description": "invalid_amount, invalid_request (not the code's fixed amount, note too long)"},
    402: {"description": "insufficient_funds, limit_exceeded, account_frozen, payment_password_invalid, "
                         "risk_declined"},
}


# ---------------------------------------------------------------- merchant: codes
@router.post("/merchant/collection-codes", status_code=201, response_model=CodeOut)
def create_code(body: CodeIn, request: Request, me: MerchantCaller, p: PlatformDep) -> Response:
    new = NewCode(label=body.label, currency=body.currency, amount=body.amount)

    def effect(conn: Connection) -> EffectResult:
        merchant_auth.ensure_key_active(conn, me)
        return 201, collection.code_shape(collection.create_code(p, conn, me.merchant_id, new))

    return idempotent(request, p, effect=effect)


@router.get("/merchant/collection-codes", response_model=CodeList)
def list_codes(me: MerchantCaller, p: PlatformDep) -> dict[str, Any]:
    with p.db.transaction(write=False) as conn:
        return {"object": "list", "data": [collection.code_shape(r) for r in collection.codes_of(conn, me.merchant_id)]}


@router.get("/merchant/collection-codes/{code_id}", response_model=CodeOut, responses=ERRORS)
def get_code(code_id: str, me: MerchantCaller, p: PlatformDep) -> dict[str, Any]:
    with p.db.transaction(write=False) as conn:
        return collection.code_shape(collection.code(conn, code_id, merchant_id=me.merchant_id))


@router.post("/merchant/collection-codes/{code_id}/disable", response_model=CodeOut, responses=ERRORS)
def disable_code(code_id: str, request: Request, me: MerchantCaller, p: PlatformDep) -> Response:
    def effect(conn: Connection) -> EffectResult:
        merchant_auth.ensure_key_active(conn, me)
        return 200, collection.code_shape(collection.disable_code(p, conn, code_id, me.merchant_id))

    return idempotent(request, p, effect=effect)


# ---------------------------------------------------------------- merchant: donation pages
@router.post("/merchant/donation-pages", status_code=201, response_model=PageOut)
def create_page(body: PageIn, request: Request, me: MerchantCaller, p: PlatformDep) -> Response:
    new = NewDonationPage(title=body.title, story=body.story, currency=body.currency, goal=body.goal,
                          suggested_amounts=tuple(body.suggested_amounts), public=body.public)

    def effect(conn: Connection) -> EffectResult:
        merchant_auth.ensure_key_active(conn, me)
        return 201, collection.page_shape(conn, collection.create_page(p, conn, me.merchant_id, new))

    return idempotent(request, p, effect=effect)


@router.get("/merchant/donation-pages", response_model=PageList)
def list_pages(me: MerchantCaller, p: PlatformDep) -> dict[str, Any]:
    with p.db.transaction(write=False) as conn:
        return {"object": "list",
                "data": [collection.page_shape(conn, r) for r in collection.pages_of(conn, me.merchant_id)]}


@router.get("/merchant/donation-pages/{page_id}", response_model=PageOut, responses=ERRORS)
def get_page(page_id: str, me: MerchantCaller, p: PlatformDep) -> dict[str, Any]:
    with p.db.transaction(write=False) as conn:
        return collection.page_shape(conn, collection.page(conn, page_id, merchant_id=me.merchant_id))


@router.post("/merchant/donation-pages/{page_id}/disable", response_model=PageOut, responses=ERRORS)
def disable_page(page_id: str, request: Request, me: MerchantCaller, p: PlatformDep) -> Response:
    def effect(conn: Connection) -> EffectResult:
        merchant_auth.ensure_key_active(conn, me)
        return 200, collection.page_shape(conn, collection.disable_page(p, conn, page_id, me.merchant_id))

    return idempotent(request, p, effect=effect)


# ---------------------------------------------------------------- payer
def _pay(source_id: str, body: PayIn, request: Request, me: CurrentUser, p: PlatformDep,
         origin: OriginDep) -> Response:
    stepped_up = False

    def before() -> None:
        nonlocal stepped_up
        stepped_up = collection.authorise(p, me.user.id, source_id, body.amount,
                                          payment_password=body.payment_password, totp_code=body.totp_code,
                                          note=body.note, origin=origin)

    def effect(conn: Connection) -> EffectResult:
        return 201, collection.pay(p, conn, source_id, me.user.id, body.amount, note=body.note,
                                   anonymous=body.anonymous, stepped_up=stepped_up)

    return idempotent(request, p, effect=effect, before=before)


@router.post("/collection-codes/{code_id}/pay", status_code=201, response_model=PaymentOut, responses=PAY_ERRORS)
def pay_code(code_id: str, body: PayIn, request: Request, me: CurrentUser, p: PlatformDep,
             origin: OriginDep) -> Response:
    """Pay a collection code from the balance: an instant trade for its merchant, paid at once."""
    if not code_id.startswith("qrc_"):
        raise collection.not_found(code_id)
    return _pay(code_id, body, request, me, p, origin)


@router.post("/donation-pages/{page_id}/donate", status_code=201, response_model=PaymentOut,
             responses=PAY_ERRORS)
def donate(page_id: str, body: PayIn, request: Request, me: CurrentUser, p: PlatformDep,
           origin: OriginDep) -> Response:
    """Donate from the balance, with an optional message (and ``anonymous``)."""
    if not page_id.startswith("don_"):
        raise collection.not_found(page_id)
    return _pay(page_id, body, request, me, p, origin)


def install(app: FastAPI) -> None:
    app.include_router(router)
