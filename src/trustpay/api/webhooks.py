"""Webhook endpoints and their delivery log (API.md "Webhooks"; extensions in
docs/api-extensions.md). A merchant's secret key or signed-in merchant user.

The signing secret is in the response that creates (or rolls) it and nowhere
else: the Idempotency-Key replay store keeps response bodies in the clear, so
what it stores carries ``"secret": null`` (as for API keys). A retry with the
same Idempotency-Key creates no second endpoint; roll the secret if the first
answer was lost.
"""

from __future__ import annotations

import json
from typing import Annotated, Any, Literal

from fastapi import APIRouter, FastAPI, Query, Request, Response
from pydantic import BaseModel, Field
from sqlalchemy import Connection

from trustpay.api.deps import PlatformDep
from trustpay.api.idempotency import REPLAYED_HEADER, idempotent
from trustpay.events import webhook_store, webhooks
from trustpay.merchants import webhooks as endpoints
from trustpay.merchants.auth import MerchantCaller, ensure_key_active
from trustpay.platform.idempotency import EffectResult

router = APIRouter(prefix="/v1", tags=["webhooks"])
Limit = Annotated[int, Query(ge=1, le=100)]
Events = str | list[Annotated[str, Field(max_length=64)]]
EVENTS_DOC = 'event types to receive (API.md "Webhooks"), or "*" for all'


class EndpointIn(BaseModel):
    url: str = Field(max_length=2048, description="https:// (or http://) URL that receives POSTs")
    events: Events = Field(description=EVENTS_DOC)


class EndpointPatch(BaseModel):
    url: str | None = Field(default=None, max_length=2048)
    events: Events | None = Field(default=None, description=EVENTS_DOC)
    status: Literal["active", "disabled"] | None = Field(
        default=None, description="disabled: nothing more is sent; active: turn it back on")


class EndpointOut(BaseModel):
    id: str
    object: str = "webhook_endpoint"
    url: str
    events: str | list[str]
    status: str = Field(description="active | failing (its last delivery ran out of retries) | disabled")
    disabled_reason: str | None
    created_at: str


class NewEndpointOut(EndpointOut):
    secret: str | None = Field(description="whsec_…: signs every delivery; shown in this response only "
                                           "(null in an Idempotency-Key replay)")


class EndpointList(BaseModel):
    object: str = "list"
    data: list[EndpointOut]
    has_more: bool


class DeliveryOut(BaseModel):
    id: str
    object: str = "webhook_delivery"
    endpoint: str
    event: str = Field(description="the evt_ id (the event's id field in the body)")
    event_type: str
    status: str = Field(description="pending | succeeded | failed")
    attempts: int = Field(description="attempts in the current round (a resend starts a new one)")
    next_attempt_at: str | None
    last_status_code: int | None = Field(description="the receiver's last HTTP status; null: no answer")
    last_error: str | None
    created_at: str
    completed_at: str | None


class DeliveryList(BaseModel):
    object: str = "list"
    data: list[DeliveryOut]
    has_more: bool


@router.post("/webhook-endpoints", status_code=201, response_model=NewEndpointOut,
             responses={400: {"description": "invalid_url, url_not_allowed (a private, loopback or link-local "
                                             "address), unknown event type"}})
def create_endpoint(body: EndpointIn, request: Request, me: MerchantCaller, p: PlatformDep) -> Response:
    """Register a receiver; the response carries its signing secret, once."""
    url = endpoints.check_url(p, body.url)  # DNS: before any transaction
    minted: dict[str, str] = {}

    def effect(conn: Connection) -> EffectResult:
        ensure_key_active(conn, me)
        row, secret = endpoints.create(p, conn, me.merchant_id, url=url, events=body.events)
        minted.clear()
        minted.update(id=row["id"], secret=secret)
        return 201, {**endpoints.shape(row), "secret": None}  # what is stored for replay: no secret

    return _with_secret(idempotent(request, p, effect=effect), minted)


@router.get("/webhook-endpoints", response_model=EndpointList)
def list_endpoints(me: MerchantCaller, p: PlatformDep, limit: Limit = 20,
                   starting_after: str | None = None) -> dict[str, Any]:
    """The merchant's endpoints, newest first (at most 16 exist)."""
    rows, more = p.db.run(lambda conn: endpoints.page_endpoints(conn, me.merchant_id, limit=limit,
                                                                starting_after=starting_after), write=False)
    return {"object": "list", "data": [endpoints.shape(r) for r in rows], "has_more": more}


@router.get("/webhook-endpoints/{endpoint_id}", response_model=EndpointOut)
def get_endpoint(endpoint_id: str, me: MerchantCaller, p: PlatformDep) -> dict[str, Any]:
    return endpoints.shape(p.db.run(lambda conn: endpoints.get(conn, me.merchant_id, endpoint_id), write=False))


@router.patch("/webhook-endpoints/{endpoint_id}", response_model=EndpointOut)
def update_endpoint(endpoint_id: str, body: EndpointPatch, me: MerchantCaller, p: PlatformDep) -> dict[str, Any]:
    """Change the URL or events, or disable / re-enable the endpoint."""
    url = endpoints.check_url(p, body.url) if body.url is not None else None

    def work(conn: Connection) -> Any:
        ensure_key_active(conn, me)
        return endpoints.update_endpoint(p, conn, me.merchant_id, endpoint_id, url=url, events=body.events,
                                         status=body.status)
    return endpoints.shape(p.db.run(work))


@router.delete("/webhook-endpoints/{endpoint_id}", status_code=204)
def delete_endpoint(endpoint_id: str, me: MerchantCaller, p: PlatformDep) -> Response:
    """Nothing more is sent to it; what was still queued is marked failed."""
    def work(conn: Connection) -> None:
        ensure_key_active(conn, me)
        endpoints.delete(p, conn, me.merchant_id, endpoint_id)
    p.db.run(work)
    return Response(status_code=204)


@router.post("/webhook-endpoints/{endpoint_id}/roll-secret", response_model=NewEndpointOut)
def roll_secret(endpoint_id: str, request: Request, me: MerchantCaller, p: PlatformDep) -> Response:
    """A new signing secret, used from the next delivery on; the old one stops at once."""
    minted: dict[str, str] = {}

    def effect(conn: Connection) -> EffectResult:
        ensure_key_active(conn, me)
        row, secret = endpoints.roll_secret(p, conn, me.merchant_id, endpoint_id)
        minted.clear()
        minted.update(id=row["id"], secret=secret)
        return 200, {**endpoints.shape(row), "secret": None}

    return _with_secret(idempotent(request, p, effect=effect), minted)


@router.get("/webhook-endpoints/{endpoint_id}/deliveries", response_model=DeliveryList)
def list_deliveries(endpoint_id: str, me: MerchantCaller, p: PlatformDep, limit: Limit = 20,
                    starting_after: str | None = None,
                    status: Literal["pending", "succeeded", "failed"] | None = None) -> dict[str, Any]:
    """The endpoint's delivery log, newest first."""
    rows, more = p.db.run(lambda conn: endpoints.deliveries(
        conn, me.merchant_id, endpoint_id, limit=limit, starting_after=starting_after, status=status), write=False)
    return {"object": "list", "data": [webhook_store.shape_delivery(r) for r in rows], "has_more": more}


@router.post("/webhook-deliveries/{delivery_id}/resend", response_model=DeliveryOut,
             responses={409: {"description": "invalid_state: the endpoint is disabled"}})
def resend_delivery(delivery_id: str, request: Request, me: MerchantCaller, p: PlatformDep) -> Response:
    """Queue the event for its endpoint again, with a fresh round of retries. It is sent
    in event order: after any older delivery of the same endpoint still pending."""
    def effect(conn: Connection) -> EffectResult:
        ensure_key_active(conn, me)
        return 200, webhook_store.shape_delivery(webhooks.resend(p, conn, me.merchant_id, delivery_id))
    return idempotent(request, p, effect=effect)


def _with_secret(resp: Response, minted: dict[str, str]) -> Response:
    """Put the secret into the response of the request that made it (never into a replay)."""
    if resp.status_code >= 300 or REPLAYED_HEADER.lower() in resp.headers or not minted:
        return resp
    body = json.loads(bytes(resp.body))
    if body.get("id") != minted["id"]:
        return resp
    body["secret"] = minted["secret"]
    headers = {k: v for k, v in resp.headers.items() if k.lower() != "content-length"}
    return Response(content=json.dumps(body, ensure_ascii=False, separators=(",", ":")).encode(),
                    status_code=resp.status_code, headers=headers)


def install(app: FastAPI) -> None:
    app.include_router(router)
