"""Merchant routes: secret API keys, the merchant profile, and the ops fee-plan switch.

Key management and profile changes need the merchant user's own session
(``MerchantUser``): a stolen key must not be able to mint more keys or move the
settlement card. Reading the profile works with a key too (``MerchantCaller``).

The secret of a new key is never stored for Idempotency-Key replay (the replay
store keeps response bodies in the clear): the stored response carries
``"secret": null``, the secret is put into the first response only. A retry with
the same key therefore creates no second key and gets the same key object back,
without its secret — revoke it and create another if the first answer was lost.
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, FastAPI, Query, Request, Response
from pydantic import BaseModel, Field
from sqlalchemy import Connection

from trustpay.api import idempotency as idempotency_api
from trustpay.api.deps import CurrentUser, OriginDep, PlatformDep, bearer_token
from trustpay.api.idempotency import REPLAYED_HEADER, ScopeResolver, default_scope, idempotent, set_scope_resolver
from trustpay.clock import rfc3339
from trustpay.merchants import auth, model, service
from trustpay.merchants.auth import MerchantCaller, MerchantUser
from trustpay.merchants.model import ApiKey, FeeOverrides, MerchantProfile
from trustpay.platform.context import Platform
from trustpay.platform.idempotency import EffectResult
from trustpay.wallet.model import FeePlan

router = APIRouter(prefix="/v1", tags=["merchants"])
Limit = Annotated[int, Query(ge=1, le=100)]


# ---------------------------------------------------------------- shapes
class ApiKeyIn(BaseModel):
    label: str = Field(default="", max_length=model.LABEL_MAX_LENGTH, description="your name for the key")


class ApiKeyOut(BaseModel):
    id: str
    object: str = "api_key"
    prefix: str = Field(description="the secret's first characters, to tell keys apart")
    label: str
    status: str = Field(description="active | revoked")
    created_at: str
    last_used_at: str | None = Field(description="to the minute")
    revoked_at: str | None


class NewApiKeyOut(ApiKeyOut):
    secret: str | None = Field(description="sk_…: shown in this response only; null in an Idempotency-Key replay")


class ApiKeyList(BaseModel):
    object: str = "list"
    data: list[ApiKeyOut]
    has_more: bool


class FeePlanOut(BaseModel):
    bank_rate: str = Field(description="the bank's base rate, a decimal fraction (\"0.0038\" = 0.38 %)")
    margin: str = Field(description="the platform's margin on top of it")
    rate: str = Field(description="bank_rate + margin")
    fixed: int = Field(description="fixed fee per trade, minor units")
    minimum: int = Field(description="no fee is below this, minor units")
    is_default: bool = Field(description="true while the operator's defaults apply")


class ProfileOut(BaseModel):
    object: str = "merchant_profile"
    id: str = Field(description="the merchant user's usr_ id")
    display_name: str
    fee_plan: FeePlanOut
    settlement_card_id: str | None
    settlement_delay_days: int = Field(description="T+N: finished trade money is paid out N days later")
    updated_at: str | None


class ProfilePatch(BaseModel):
    display_name: str | None = Field(default=None, max_length=model.DISPLAY_NAME_MAX_LENGTH)
    settlement_card_id: str | None = Field(default=None, max_length=40,
                                           description="one of your active cards; null clears it")
    settlement_delay_days: int | None = Field(default=None, ge=0, le=model.MAX_SETTLEMENT_DELAY_DAYS,
                                              description="null: the operator's default")


class FeePlanIn(BaseModel):
    """Every field left out or null follows the operator's default."""

    bank_rate: str | None = Field(default=None, max_length=24, description="decimal fraction, e.g. \"0.0038\"")
    margin: str | None = Field(default=None, max_length=24)
    fixed: int | None = Field(default=None, ge=0)
    minimum: int | None = Field(default=None, ge=0)


def _ts(v: datetime | None) -> str | None:
    return rfc3339(v) if v is not None else None


def key_out(key: ApiKey) -> dict[str, Any]:
    return {"id": key.id, "object": "api_key", "prefix": key.prefix, "label": key.label,
            "status": "active" if key.active else "revoked", "created_at": rfc3339(key.created_at),
            "last_used_at": _ts(key.last_used_at), "revoked_at": _ts(key.revoked_at)}


def fee_plan_out(plan: FeePlan, *, is_default: bool) -> dict[str, Any]:
    return {"bank_rate": model.rate_text(plan.bank_rate), "margin": model.rate_text(plan.margin),
            "rate": model.rate_text(plan.rate), "fixed": plan.fixed, "minimum": plan.minimum,
            "is_default": is_default}


def profile_out(prof: MerchantProfile) -> dict[str, Any]:
    return {"object": "merchant_profile", "id": prof.merchant_id, "display_name": prof.display_name,
            "fee_plan": fee_plan_out(prof.fee_plan, is_default=prof.fee_plan_is_default),
            "settlement_card_id": prof.settlement_card_id,
            "settlement_delay_days": prof.settlement_delay_days, "updated_at": _ts(prof.updated_at)}


# ---------------------------------------------------------------- API keys
@router.post("/merchant/api-keys", status_code=201, response_model=NewApiKeyOut,
             responses={403: {"description": "forbidden: not a merchant user's session (keys cannot mint keys)"}})
def create_api_key(request: Request, me: MerchantUser, p: PlatformDep, origin: OriginDep,
                   body: ApiKeyIn | None = None) -> Response:
    """A new secret key (``sk_live_…``; ``sk_test_…`` on a test-clock server). Several may be active."""
    minted: dict[str, str] = {}

    def effect(conn: Connection) -> EffectResult:
        key, secret = service.create_key(p, conn, me.user.id, label=body.label if body else "", origin=origin)
        minted.clear()
        minted.update(id=key.id, secret=secret)
        return 201, {**key_out(key), "secret": None}  # what is stored for replay: no secret

    resp = idempotent(request, p, effect=effect)
    return _with_secret(resp, minted)


def _with_secret(resp: Response, minted: dict[str, str]) -> Response:
    """Put the secret into the response of the request that created the key (never a replay)."""
    if resp.status_code != 201 or REPLAYED_HEADER.lower() in resp.headers or not minted:
        return resp
    body = json.loads(bytes(resp.body))
    if body.get("id") != minted["id"]:  # another request's key (a claim taken over)
        return resp
    body["secret"] = minted["secret"]
    headers = {k: v for k, v in resp.headers.items() if k.lower() != "content-length"}
    return Response(content=json.dumps(body, ensure_ascii=False, separators=(",", ":")).encode(),
                    status_code=201, headers=headers)


@router.get("/merchant/api-keys", response_model=ApiKeyList)
def list_api_keys(me: MerchantUser, p: PlatformDep, limit: Limit = 20, starting_after: str | None = None,
                  include_revoked: bool = False) -> dict[str, Any]:
    """Newest first; secrets are never listed (only their prefix)."""
    keys, more = p.db.run(lambda conn: service.list_keys(
        conn, me.user.id, limit=limit, starting_after=starting_after, include_revoked=include_revoked),
        write=False)
    return {"object": "list", "data": [key_out(k) for k in keys], "has_more": more}


@router.get("/merchant/api-keys/{key_id}", response_model=ApiKeyOut)
def get_api_key(key_id: str, me: MerchantUser, p: PlatformDep) -> dict[str, Any]:
    return key_out(p.db.run(lambda conn: service.get_key(conn, me.user.id, key_id), write=False))


@router.delete("/merchant/api-keys/{key_id}", response_model=ApiKeyOut)
def revoke_api_key(key_id: str, me: MerchantUser, p: PlatformDep, origin: OriginDep) -> dict[str, Any]:
    """Revoke: requests with the key get 401 from now on, including ones already under way
    that have not yet committed their change."""
    return key_out(p.db.run(lambda conn: service.revoke_key(p, conn, me.user.id, key_id, origin=origin)))


# ---------------------------------------------------------------- profile
@router.get("/merchant/profile", response_model=ProfileOut)
def get_profile(me: MerchantCaller, p: PlatformDep) -> dict[str, Any]:
    """Display name, the fee plan (set by ops), settlement card and delay. A key may read it."""
    return profile_out(p.db.run(lambda conn: service.get_profile(p, conn, me.merchant_id), write=False))


@router.patch("/merchant/profile", response_model=ProfileOut,
              responses={404: {"description": "the card is not one of yours"},
                         409: {"description": "invalid_state: the card is unbound"}})
def patch_profile(body: ProfilePatch, me: MerchantUser, p: PlatformDep, origin: OriginDep) -> dict[str, Any]:
    """Fields sent are changed; ``null`` clears the card or restores the default delay."""
    sent = body.model_fields_set
    changes: dict[str, Any] = {}
    if body.display_name is not None:
        changes["display_name"] = body.display_name
    if "settlement_card_id" in sent:
        changes["settlement_card_id"] = body.settlement_card_id
    if "settlement_delay_days" in sent:
        changes["settlement_delay_days"] = body.settlement_delay_days
    return profile_out(p.db.run(lambda conn: service.update_profile(p, conn, me.user.id, origin=origin,
                                                                    **changes)))


# ---------------------------------------------------------------- ops
@router.put("/ops/merchants/{merchant_id}/fee-plan", response_model=ProfileOut,
            responses={404: {"description": "no such merchant, or you are not ops"}})
def put_fee_plan(merchant_id: str, body: FeePlanIn, me: CurrentUser, p: PlatformDep,
                 origin: OriginDep) -> dict[str, Any]:
    """Ops only: the merchant's own fee plan. Fields left null follow the operator's defaults."""
    overrides = FeeOverrides(
        bank_rate=None if body.bank_rate is None else model.parse_rate(body.bank_rate, param="bank_rate"),
        margin=None if body.margin is None else model.parse_rate(body.margin, param="margin"),
        fixed=body.fixed, minimum=body.minimum)
    return profile_out(p.db.run(lambda conn: service.set_fee_plan(p, conn, merchant_id, actor=me.user,
                                                                  origin=origin, overrides=overrides)))


# ---------------------------------------------------------------- wiring
def install(app: FastAPI, platform: Platform) -> None:
    """After identity's install: idempotency keys sent with a secret key belong to its merchant
    (the same key space as the merchant user's sessions); anything else goes to the resolver
    that was there before."""
    previous: ScopeResolver = platform.extras.get(idempotency_api._RESOLVER, default_scope)

    def merchant_scope(request: Request, p: Platform) -> str:
        token = bearer_token(request)
        if token is not None and model.looks_like_secret_key(token):
            owner = auth.merchant_scope(p, token)
            if owner is not None:
                return owner
        return previous(request, p)

    set_scope_resolver(platform, merchant_scope)
    app.include_router(router)
