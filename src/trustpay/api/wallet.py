"""Wallet routes (API.md "Wallet"): balances, transfers with undo and acceptance,
the user's own caps. Bank cards, top-ups and withdrawals are in :mod:`.banking`."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, FastAPI, Query, Request, Response
from pydantic import BaseModel, Field
from sqlalchemy import Connection

from trustpay.api.deps import CurrentUser, OriginDep, PlatformDep
from trustpay.api.idempotency import idempotent
from trustpay.identity import service as identity
from trustpay.money import check_amount
from trustpay.platform.idempotency import EffectResult
from trustpay.wallet import service, store, transfers

router = APIRouter(prefix="/v1", tags=["wallet"])
Limit = Annotated[int, Query(ge=1, le=100)]


class BalanceOut(BaseModel):
    currency: str
    available: int
    held: int
    pending_in: int


class WalletOut(BaseModel):
    balances: list[BalanceOut]


class TransferIn(BaseModel):
    to: str = Field(max_length=320, description="recipient: user id, e-mail or phone")
    # Checked by money.check_amount (not coerced): "12", 12.0 and true are refused.
    amount: Any = Field(description="integer, minor units", json_schema_extra={"type": "integer"})
    currency: str = Field(default="CNY", max_length=3)
    memo: str = Field(default="", max_length=200)
    payment_password: str | None = Field(default=None, max_length=16)
    require_acceptance: bool = False
    # Needed when risk control asks for a step-up and two-factor is on (401 mfa_required otherwise).
    totp_code: str | None = Field(default=None, max_length=32)


class TransferOut(BaseModel):
    id: str
    object: str = "transfer"
    status: str
    amount: int
    currency: str
    sender: str
    recipient: str
    memo: str
    require_acceptance: bool
    undo_until: str | None
    accept_until: str | None
    settled: bool
    created_at: str


class TransferList(BaseModel):
    object: str = "list"
    data: list[TransferOut]
    has_more: bool


class PreferencesIn(BaseModel):
    daily_cap: int | None = Field(default=None, description="your own daily outflow cap (minor units); null: none")
    password_free_cap: int = Field(default=0, ge=0, description="免密支付: payments up to this need no payment "
                                                                "password; 0 turns it off")
    payment_password: str = Field(max_length=16)


class PreferencesOut(BaseModel):
    daily_cap: int | None
    password_free_cap: int


@router.get("/wallet", response_model=WalletOut)
def wallet(me: CurrentUser, p: PlatformDep) -> dict[str, Any]:
    with p.db.transaction(write=False) as conn:
        return service.shape_balances(service.balances(conn, me.user.id))


@router.post("/transfers", status_code=201, response_model=TransferOut,
             responses={402: {"description": "insufficient_funds, limit_exceeded, account_frozen, "
                                             "payment_password_invalid"},
                        401: {"description": "mfa_required: risk control asks for a fresh TOTP code"},
                        404: {"description": "unknown recipient"}})
def create_transfer(body: TransferIn, request: Request, me: CurrentUser, p: PlatformDep,
                    origin: OriginDep) -> Response:
    """即时到账. Completes at once with an undo window (``undo_until``), or with
    ``require_acceptance`` waits for the recipient (24 h, then returned)."""
    amount = check_amount(body.amount, p.settings.max_amount)
    currency = body.currency.upper()
    stepped_up = authorised = False

    def before() -> None:  # not for a replay: the first answer is replayed as it was
        nonlocal stepped_up, authorised
        stepped_up = transfers.authorise(p, me.user.id, to=body.to, amount=amount,
                                         payment_password=body.payment_password, totp_code=body.totp_code,
                                         origin=origin)
        authorised = True

    def effect(conn: Connection) -> EffectResult:
        row = transfers.send(p, conn, me.user.id, to=body.to, amount=amount, currency=currency,
                             memo=body.memo, require_acceptance=body.require_acceptance, stepped_up=stepped_up,
                             authorised=authorised)
        return 201, transfers.shape(row)

    # With no password or code to check, nothing in `before` would commit: a 免密
    # transfer is tried in one transaction at once, and only a refusal takes the long way.
    return idempotent(request, p, effect=effect, before=before,
                      optimistic=not body.payment_password and not body.totp_code)


@router.get("/transfers", response_model=TransferList)
def list_transfers(me: CurrentUser, p: PlatformDep, limit: Limit = 20,
                   starting_after: str | None = None) -> dict[str, Any]:
    with p.db.transaction(write=False) as conn:
        rows, more = store.page(conn, store.transfers, ("sender_id", "recipient_id"), me.user.id, limit=limit,
                                starting_after=starting_after)
    return {"object": "list", "data": [transfers.shape(r) for r in rows], "has_more": more}


@router.get("/transfers/{transfer_id}", response_model=TransferOut)
def get_transfer(transfer_id: str, me: CurrentUser, p: PlatformDep) -> dict[str, Any]:
    with p.db.transaction(write=False) as conn:
        return transfers.shape(transfers.get_for(conn, transfer_id, me.user.id))


def _transfer_action(action: Any) -> Any:
    def route(transfer_id: str, request: Request, me: CurrentUser, p: PlatformDep) -> Response:
        return idempotent(request, p, effect=lambda conn: (
            200, transfers.shape(action(p, conn, transfer_id, me.user.id))))
    return route


router.add_api_route("/transfers/{transfer_id}/undo", _transfer_action(transfers.undo), methods=["POST"],
                     response_model=TransferOut, summary="Undo a transfer (sender, before undo_until)",
                     responses={409: {"description": "invalid_state: past the undo window"}})
router.add_api_route("/transfers/{transfer_id}/accept", _transfer_action(transfers.accept), methods=["POST"],
                     response_model=TransferOut, summary="Accept a transfer (recipient)")
router.add_api_route("/transfers/{transfer_id}/decline", _transfer_action(transfers.decline), methods=["POST"],
                     response_model=TransferOut, summary="Decline a transfer (recipient): money goes back")


@router.get("/wallet/preferences", response_model=PreferencesOut)
def get_preferences(me: CurrentUser, p: PlatformDep) -> dict[str, Any]:
    with p.db.transaction(write=False) as conn:
        prefs = service.preferences(conn, me.user.id)
    return {"daily_cap": prefs.daily_cap, "password_free_cap": prefs.password_free_cap}


@router.put("/wallet/preferences", response_model=PreferencesOut)
def put_preferences(body: PreferencesIn, me: CurrentUser, p: PlatformDep, origin: OriginDep) -> dict[str, Any]:
    """Your own daily cap and 免密 cap. Needs the payment password, always."""
    identity.require_payment_password(p, me.user.id, body.payment_password, origin)
    prefs = p.db.run(lambda conn: service.set_preferences(p, conn, me.user.id, daily_cap=body.daily_cap,
                                                          password_free_cap=body.password_free_cap))
    return {"daily_cap": prefs.daily_cap, "password_free_cap": prefs.password_free_cap}


def install(app: FastAPI) -> None:
    app.include_router(router)
