"""Broken object-level authorisation (QUALITY.md, Security): for every /v1 path that carries an id,
another user's token gets 404 ``not_found`` and changes nothing; an id that does not exist gets the
very same 404, so the answer is no oracle for "does this object exist".

The route table is read from the live app, so a new route with an id is picked up by itself.
Each such route needs an entry in ``PATH_OBJECTS`` (how user A makes an object the route
addresses); list routes with an id-bearing query parameter (``starting_after`` …) need one in
``QUERY_OBJECTS``. A route without an entry fails ``test_every_id_route_has_a_bola_entry``.
Runs on SQLite and PostgreSQL (the ``db_url`` fixture).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from fastapi.routing import APIRoute, iter_route_contexts
from sqlalchemy import or_, select, update
from tests.integration.identity_support import PASSWORD, Env, bearer, make_env
from tests.integration.statement_support import top_up

from trustpay.banks import reconcile
from trustpay.banks.connector import OperationKind, OperationStatus, StatementLine
from trustpay.db.schema import audit_log, idempotency_keys, metadata, users
from trustpay.events import webhooks
from trustpay.identity.audit import Origin
from trustpay.ids import new_id
from trustpay.merchants import service as merchant_service
from trustpay.merchants import settlement
from trustpay.merchants import webhooks as webhook_endpoints
from trustpay.platform import outbox

PARAM = re.compile(r"{([^}:]+)(?::[^}]*)?}")
# Query parameters that name an object (pagination cursors, filters by id).
ID_QUERY = re.compile(r"^(starting_after|ending_before|.+_id)$")


@dataclass(frozen=True)
class Actor:
    email: str
    user_id: str
    token: str


@dataclass
class Owned:
    """An object owned by user A, as a route addresses it."""

    params: dict[str, str]  # path or query parameter -> A's object id
    still_works: Callable[[], None]  # asserts A's object is still there and usable
    # Bodies a legitimate caller would send, per method (None: no body).
    bodies: Mapping[str, Any] = field(default_factory=dict)


Maker = Callable[[Env, Actor], Owned]


# ------------------------------------------------------------ registry: sessions
def _new_session_of(env: Env, a: Actor) -> tuple[str, str]:
    """A fresh login of A: its token and its session id."""
    token = env.token(a.email)
    data = env.client.get("/v1/users/me/sessions", headers=bearer(token)).json()["data"]
    (current,) = [s["id"] for s in data if s["current"]]
    return token, str(current)


def _session_still_works(env: Env, a: Actor, token: str, session_id: str) -> Callable[[], None]:
    def check() -> None:
        assert env.me(token).status_code == 200, "A's session token stopped working"
        listed = env.client.get("/v1/users/me/sessions", headers=bearer(a.token)).json()["data"]
        assert session_id in [s["id"] for s in listed], "A's session disappeared from A's list"
    return check


def make_session(env: Env, a: Actor) -> Owned:
    token, session_id = _new_session_of(env, a)
    return Owned({"session_id": session_id}, _session_still_works(env, a, token, session_id))


def make_session_cursor(env: Env, a: Actor) -> Owned:
    token, session_id = _new_session_of(env, a)
    return Owned({"starting_after": session_id}, _session_still_works(env, a, token, session_id))


def make_audit_cursor(env: Env, a: Actor) -> Owned:
    rows = env.client.get("/v1/users/me/audit-log", headers=bearer(a.token)).json()["data"]
    entry = str(rows[0]["id"])

    def check() -> None:
        listed = env.client.get("/v1/users/me/audit-log?limit=100", headers=bearer(a.token)).json()["data"]
        assert entry in [r["id"] for r in listed], "A's audit entry disappeared"
    return Owned({"starting_after": entry}, check)


# ------------------------------------------------------ registry: statement lines
def _statement_line_of(env: Env, a: Actor) -> tuple[str, Callable[[], None]]:
    top_up(env.platform, a.user_id, 1_000)
    line = str(env.client.get("/v1/transactions", headers=bearer(a.token)).json()["data"][0]["id"])

    def check() -> None:
        listed = env.client.get("/v1/transactions?limit=100", headers=bearer(a.token)).json()["data"]
        assert line in [t["id"] for t in listed], "A's statement line disappeared"
    return line, check


def make_transaction(env: Env, a: Actor) -> Owned:
    line, check = _statement_line_of(env, a)
    return Owned({"transaction_id": line}, check)


def make_transaction_cursor(env: Env, a: Actor) -> Owned:
    line, check = _statement_line_of(env, a)
    return Owned({"starting_after": line}, check)


# ------------------------------------------------------------ registry: wallet
PAY_PW = "246810"


def _ready_to_pay(env: Env, a: Actor, fund: int = 100_000) -> None:
    """A verified e-mail, a payment password and money in the wallet."""
    if not env.me(a.token).json()["email_verified"]:
        code = env.last_code(a.email)
        r = env.client.post("/v1/users/me/verifications/confirm", json={"channel": "email", "code": code},
                            headers=bearer(a.token))
        assert r.status_code == 204, r.text
    r = env.client.put("/v1/users/me/payment-password", json={"password": PASSWORD, "payment_password": PAY_PW},
                       headers=bearer(a.token))
    assert r.status_code == 204, r.text
    top_up(env.platform, a.user_id, fund)


def _third_party(env: Env) -> Actor:
    email = f"carol-{new_id('usr', env.clock.now())[4:].lower()}@example.com"
    return _actor(env, email)


def _transfer(env: Env, sender: Actor, to: Actor, **extra: Any) -> str:
    _ready_to_pay(env, sender)
    r = env.client.post("/v1/transfers", headers=bearer(sender.token),
                        json={"to": to.user_id, "amount": 100, "payment_password": PAY_PW, **extra})
    assert r.status_code == 201, r.text
    return str(r.json()["id"])


def _transfer_still_there(env: Env, a: Actor, transfer_id: str) -> Callable[[], None]:
    status = env.client.get(f"/v1/transfers/{transfer_id}", headers=bearer(a.token)).json()["status"]

    def check() -> None:
        r = env.client.get(f"/v1/transfers/{transfer_id}", headers=bearer(a.token))
        assert r.status_code == 200 and r.json()["status"] == status, r.text
    return check


def make_sent_transfer(env: Env, a: Actor) -> Owned:
    """A's transfer to someone else, still inside its undo window."""
    tr = _transfer(env, a, _third_party(env))
    return Owned({"transfer_id": tr}, _transfer_still_there(env, a, tr))


def make_sent_transfer_cursor(env: Env, a: Actor) -> Owned:
    tr = _transfer(env, a, _third_party(env))
    return Owned({"starting_after": tr}, _transfer_still_there(env, a, tr))


def make_incoming_transfer(env: Env, a: Actor) -> Owned:
    """A transfer to A awaiting A's answer (accept/decline are the recipient's)."""
    tr = _transfer(env, _third_party(env), a, require_acceptance=True)
    return Owned({"transfer_id": tr}, _transfer_still_there(env, a, tr))


def _card(env: Env, a: Actor) -> str:
    r = env.client.post("/v1/bank-cards", json={"card_number": "4111111111111111", "holder_name": "A"},
                        headers=bearer(a.token))
    if r.status_code == 409:  # bound by an earlier maker call of this test
        return str(env.client.get("/v1/bank-cards", headers=bearer(a.token)).json()["data"][0]["id"])
    assert r.status_code == 201, r.text
    return str(r.json()["id"])


def make_card(env: Env, a: Actor) -> Owned:
    card = _card(env, a)

    def check() -> None:
        listed = env.client.get("/v1/bank-cards", headers=bearer(a.token)).json()["data"]
        assert card in [c["id"] for c in listed], "A's card was unbound"
    return Owned({"card_id": card}, check)


def _get_works(env: Env, a: Actor, path: str) -> Callable[[], None]:
    def check() -> None:
        assert env.client.get(path, headers=bearer(a.token)).status_code == 200, path
    return check


def make_topup(env: Env, a: Actor) -> Owned:
    r = env.client.post("/v1/topups", json={"card": _card(env, a), "amount": 1_000}, headers=bearer(a.token))
    assert r.status_code == 201, r.text
    top = str(r.json()["id"])
    return Owned({"topup_id": top}, _get_works(env, a, f"/v1/topups/{top}"))


def make_withdrawal(env: Env, a: Actor) -> Owned:
    _ready_to_pay(env, a)
    r = env.client.post("/v1/withdrawals", headers=bearer(a.token),
                        json={"card": _card(env, a), "amount": 1_000, "payment_password": PAY_PW})
    assert r.status_code == 201, r.text
    wd = str(r.json()["id"])
    return Owned({"withdrawal_id": wd}, _get_works(env, a, f"/v1/withdrawals/{wd}"))


# ------------------------------------------------------ registry: ops (reconciliation)
def make_recon_exception(env: Env, a: Actor) -> Owned:
    """Ops-only routes: A is made an ops user (the queue's only legitimate reader), B stays
    a customer, who must get the same 404 as for an exception that does not exist."""
    env.platform.db.run(lambda conn: conn.execute(update(users).where(users.c.id == a.user_id).values(kind="ops")))
    now = env.clock.now()
    stray = StatementLine(date(2026, 1, 1), new_id("card", now), new_id("top", now), OperationKind.DEBIT, 700,
                          "CNY", OperationStatus.SUCCEEDED, now)
    reconcile.reconcile(env.platform, "sandbox", stray.business_date, lines=[stray])
    listed = env.client.get("/v1/ops/reconciliation/exceptions", headers=bearer(a.token)).json()["data"]
    (finding,) = [e["id"] for e in listed if e["reference"] == stray.reference]

    def check() -> None:
        mine = env.client.get("/v1/ops/reconciliation/exceptions", headers=bearer(a.token)).json()["data"]
        assert finding in [e["id"] for e in mine], "A's open exception disappeared"
    return Owned({"exception_id": finding}, check,
                 bodies={"POST": {"action": "note_only", "note": "the bank reverses its stray line"}})


# ------------------------------------------------------------ registry: merchants
def _make_merchants(env: Env, a: Actor) -> None:
    """Merchant routes refuse personal users with 403 before any id is looked at; the case that
    matters is another merchant, so A and B (bob@example.com) both become merchants here."""
    env.platform.db.run(lambda conn: conn.execute(update(users).where(
        or_(users.c.id == a.user_id, users.c.email == "bob@example.com")).values(kind="merchant")))


def make_api_key(env: Env, a: Actor) -> Owned:
    _make_merchants(env, a)
    r = env.client.post("/v1/merchant/api-keys", json={"label": "bola"}, headers=bearer(a.token))
    assert r.status_code == 201, r.text
    key_id, secret = str(r.json()["id"]), str(r.json()["secret"])

    def check() -> None:
        assert env.client.get("/v1/merchant/profile", headers=bearer(secret)).status_code == 200, \
            "A's API key stopped working"
    return Owned({"key_id": key_id, "starting_after": key_id}, check)


def make_fee_plan_merchant(env: Env, a: Actor) -> Owned:
    """Ops-only: A is ops and addresses a merchant; B (a customer) gets the unknown-merchant 404."""
    env.platform.db.run(lambda conn: conn.execute(update(users).where(users.c.id == a.user_id).values(kind="ops")))
    shop = env.sign_up(f"shop-{new_id('usr', env.clock.now())[-8:]}@example.com", kind="merchant")
    shop_token = env.token(shop["email"])

    def check() -> None:
        r = env.client.get("/v1/merchant/profile", headers=bearer(shop_token))
        assert r.status_code == 200 and r.json()["id"] == shop["id"], "the merchant's profile is gone"
    return Owned({"merchant_id": str(shop["id"])}, check, bodies={"PUT": {"margin": "0.001"}})


# ------------------------------------------------------------ registry: trades
def _shop(env: Env) -> dict[str, str]:
    """A third party's merchant account; returns its session's headers."""
    email = f"shop-{new_id('usr', env.clock.now())[-8:].lower()}@example.com"
    env.sign_up(email, kind="merchant")
    return bearer(env.token(email))


def _trade(env: Env, seller: dict[str, str], **extra: Any) -> str:
    body = {"out_trade_no": new_id("trd", env.clock.now())[-20:], "amount": 100, "subject": "BOLA tea", **extra}
    r = env.client.post("/v1/trades", json=body, headers=seller)
    assert r.status_code == 201, r.text
    return str(r.json()["id"])


def _pay_trade(env: Env, buyer: Actor, trade_id: str) -> None:
    _ready_to_pay(env, buyer)
    r = env.client.post(f"/v1/trades/{trade_id}/pay", json={"payment_password": PAY_PW}, headers=bearer(buyer.token))
    assert r.status_code == 200, r.text


def _trade_unchanged(env: Env, token: str, trade_id: str) -> Callable[[], None]:
    status = env.client.get(f"/v1/trades/{trade_id}", headers=bearer(token)).json()["status"]

    def check() -> None:
        r = env.client.get(f"/v1/trades/{trade_id}", headers=bearer(token))
        assert r.status_code == 200 and r.json()["status"] == status, r.text
    return check


def make_bought_trade(env: Env, a: Actor) -> Owned:
    """A paid another merchant's trade: from then on only A and that merchant see it."""
    trade = _trade(env, _shop(env))
    _pay_trade(env, a, trade)
    return Owned({"trade_id": trade, "starting_after": trade}, _trade_unchanged(env, a.token, trade))


def make_trade_to_pay(env: Env, a: Actor) -> Owned:
    """A trade whose merchant named A as its buyer (an unnamed unpaid trade is, by design,
    payable by whoever holds its id: the checkout link)."""
    _ready_to_pay(env, a)
    trade = _trade(env, _shop(env), buyer=a.user_id)
    return Owned({"trade_id": trade}, _trade_unchanged(env, a.token, trade),
                 bodies={"POST": {"payment_password": PAY_PW}})


def make_shipped_trade(env: Env, a: Actor) -> Owned:
    shop = _shop(env)
    trade = _trade(env, shop)
    _pay_trade(env, a, trade)
    r = env.client.post(f"/v1/trades/{trade}/ship", json={"carrier": "SF", "tracking_no": "1"}, headers=shop)
    assert r.status_code == 200, r.text
    return Owned({"trade_id": trade}, _trade_unchanged(env, a.token, trade),
                 bodies={"POST": {"payment_password": PAY_PW}})


def make_sold_trade(env: Env, a: Actor) -> Owned:
    """A (a merchant, as is B) sold a trade someone else paid: A ships it."""
    _make_merchants(env, a)
    trade = _trade(env, bearer(a.token))
    _pay_trade(env, _third_party(env), trade)
    return Owned({"trade_id": trade}, _trade_unchanged(env, a.token, trade),
                 bodies={"POST": {"carrier": "SF Express", "tracking_no": "SF1"}})


def make_unpaid_sold_trade(env: Env, a: Actor) -> Owned:
    """A (a merchant, as is B) may close its unpaid trade; to B it is at most a trade to pay."""
    _make_merchants(env, a)
    trade = _trade(env, bearer(a.token))
    return Owned({"trade_id": trade}, _trade_unchanged(env, a.token, trade))


# ------------------------------------------------------------ registry: refunds
REFUND_BODY = {"return_goods": False, "answer": "BOLA answer"}


def _refund_request(env: Env, buyer: Actor, trade: str) -> str:
    r = env.client.post(f"/v1/trades/{trade}/refunds", headers=bearer(buyer.token),
                        json={"amount": 50, "reason": "BOLA", "out_refund_no": new_id("rf", env.clock.now())[-20:]})
    assert r.status_code == 201, r.text
    return str(r.json()["id"])


def _refund_unchanged(env: Env, token: str, refund: str) -> Callable[[], None]:
    status = env.client.get(f"/v1/refunds/{refund}", headers=bearer(token)).json()["status"]

    def check() -> None:
        r = env.client.get(f"/v1/refunds/{refund}", headers=bearer(token))
        assert r.status_code == 200 and r.json()["status"] == status, r.text
    return check


def make_refundable_trade(env: Env, a: Actor) -> Owned:
    """A paid another merchant's escrow trade: A may ask for a refund and list its refunds."""
    trade = _trade(env, _shop(env))
    _pay_trade(env, a, trade)
    body = {"amount": 50, "reason": "BOLA", "out_refund_no": new_id("rf", env.clock.now())[-20:]}
    return Owned({"trade_id": trade}, _trade_unchanged(env, a.token, trade), bodies={"POST": body})


def make_refund_request(env: Env, a: Actor) -> Owned:
    """A asked for part of a paid trade back: A sees it and may withdraw it."""
    trade = _trade(env, _shop(env))
    _pay_trade(env, a, trade)
    refund = _refund_request(env, a, trade)
    return Owned({"refund_id": refund}, _refund_unchanged(env, a.token, refund))


def make_refund_to_return(env: Env, a: Actor) -> Owned:
    """A's request was approved on condition the shipped goods come back: A ships them."""
    shop = _shop(env)
    trade = _trade(env, shop)
    _pay_trade(env, a, trade)
    assert env.client.post(f"/v1/trades/{trade}/ship", json={"carrier": "SF", "tracking_no": "1"},
                           headers=shop).status_code == 200
    refund = _refund_request(env, a, trade)
    assert env.client.post(f"/v1/refunds/{refund}/approve", json={"return_goods": True},
                           headers=shop).status_code == 200
    return Owned({"refund_id": refund}, _refund_unchanged(env, a.token, refund),
                 bodies={"POST": {"carrier": "SF", "tracking_no": "R1"}})


def make_refund_to_answer(env: Env, a: Actor) -> Owned:
    """A (a merchant, as is B) was asked for a refund by its buyer: A approves or rejects."""
    _make_merchants(env, a)
    trade = _trade(env, bearer(a.token))
    buyer = _third_party(env)
    _pay_trade(env, buyer, trade)
    refund = _refund_request(env, buyer, trade)
    return Owned({"refund_id": refund}, _refund_unchanged(env, a.token, refund), bodies={"POST": REFUND_BODY})


def make_returned_goods(env: Env, a: Actor) -> Owned:
    """A (a merchant, as is B) asked for the goods back and they were shipped: A confirms or refuses."""
    _make_merchants(env, a)
    trade = _trade(env, bearer(a.token))
    buyer = _third_party(env)
    _pay_trade(env, buyer, trade)
    assert env.client.post(f"/v1/trades/{trade}/ship", json={"carrier": "SF", "tracking_no": "1"},
                           headers=bearer(a.token)).status_code == 200
    refund = _refund_request(env, buyer, trade)
    assert env.client.post(f"/v1/refunds/{refund}/approve", json={"return_goods": True},
                           headers=bearer(a.token)).status_code == 200
    assert env.client.post(f"/v1/refunds/{refund}/return-goods", json={"carrier": "SF", "tracking_no": "R1"},
                           headers=bearer(buyer.token)).status_code == 200
    return Owned({"refund_id": refund}, _refund_unchanged(env, a.token, refund), bodies={"POST": REFUND_BODY})


# ------------------------------------------------------------ registry: settlements
def make_settlement(env: Env, a: Actor) -> Owned:
    """A (a merchant, as is B) was paid for an instant trade on T+0 to its settlement card."""
    _make_merchants(env, a)
    p = env.platform
    trade = _trade(env, bearer(a.token), mode="instant")
    _pay_trade(env, _third_party(env), trade)
    r = env.client.post("/v1/bank-cards", json={"bank": "sandbox", "card_number": "4111111111111111",
                                                "holder_name": "A"}, headers=bearer(a.token))
    assert r.status_code == 201, r.text
    card = str(r.json()["id"])
    p.db.run(lambda conn: merchant_service.update_profile(p, conn, a.user_id, origin=Origin(),
                                                          settlement_card_id=card, settlement_delay_days=0))
    assert settlement.run(p, settlement.today(p)).created == 1
    stl = str(env.client.get("/v1/settlements", headers=bearer(a.token)).json()["data"][0]["id"])

    def check() -> None:
        r = env.client.get(f"/v1/settlements/{stl}/report.csv", headers=bearer(a.token))
        assert r.status_code == 200 and trade in r.text, r.text
    return Owned({"settlement_id": stl, "starting_after": stl}, check)


# ------------------------------------------------------------ registry: disputes
EVIDENCE_PNG = b"\x89PNG\r\n\x1a\n" + b"\0" * 64


@dataclass(frozen=True)
class Multipart:
    """A body sent as multipart/form-data (file uploads) instead of JSON."""

    files: dict[str, tuple[str, bytes, str]]


def _dispute(env: Env, buyer: Actor, shop: dict[str, str] | None = None) -> tuple[str, str]:
    """buyer paid a trade and opened a dispute about it: (trade, dispute)."""
    trade = _trade(env, shop or _shop(env))
    _pay_trade(env, buyer, trade)
    r = env.client.post(f"/v1/trades/{trade}/disputes", json={"reason": "BOLA: never arrived"},
                        headers=bearer(buyer.token))
    assert r.status_code == 201, r.text
    return trade, str(r.json()["id"])


def _dispute_unchanged(env: Env, token: str, dispute: str) -> Callable[[], None]:
    seen = env.client.get(f"/v1/disputes/{dispute}", headers=bearer(token)).json()

    def check() -> None:
        r = env.client.get(f"/v1/disputes/{dispute}", headers=bearer(token))
        assert r.status_code == 200 and r.json() == seen, r.text
    return check


def make_disputable_trade(env: Env, a: Actor) -> Owned:
    """A paid another merchant's trade: A may open a dispute about it."""
    trade = _trade(env, _shop(env))
    _pay_trade(env, a, trade)
    return Owned({"trade_id": trade}, _trade_unchanged(env, a.token, trade),
                 bodies={"POST": {"reason": "BOLA: not as described"}})


def make_dispute(env: Env, a: Actor) -> Owned:
    """A opened a dispute about a trade A paid: A sees it and adds evidence."""
    _, dispute = _dispute(env, a)
    return Owned({"dispute_id": dispute}, _dispute_unchanged(env, a.token, dispute),
                 bodies={"POST": Multipart({"file": ("photo.png", EVIDENCE_PNG, "image/png")})})


def make_dispute_file(env: Env, a: Actor) -> Owned:
    """A uploaded a photo to its dispute: A downloads it."""
    _, dispute = _dispute(env, a)
    r = env.client.post(f"/v1/disputes/{dispute}/evidence", headers=bearer(a.token),
                        files={"file": ("photo.png", EVIDENCE_PNG, "image/png")})
    assert r.status_code == 201, r.text
    evidence = str(r.json()["evidence"][-1]["id"])
    return Owned({"dispute_id": dispute, "evidence_id": evidence}, _dispute_unchanged(env, a.token, dispute))


def make_ops_dispute(env: Env, a: Actor) -> Owned:
    """Ops-only: A is ops and rules on two other people's dispute; B (a customer) gets the
    same 404 as for a dispute that does not exist."""
    env.platform.db.run(lambda conn: conn.execute(update(users).where(users.c.id == a.user_id).values(kind="ops")))
    _, dispute = _dispute(env, _third_party(env))

    def check() -> None:
        r = env.client.get(f"/v1/ops/disputes/{dispute}", headers=bearer(a.token))
        assert r.status_code == 200 and r.json()["status"] == "open", r.text
    return Owned({"dispute_id": dispute}, check,
                 bodies={"POST": {"buyer_amount": 60, "seller_amount": 40, "note": "BOLA ruling"}})


# ------------------------------------------------------------ registry: webhooks
def _webhook_endpoint(env: Env, a: Actor) -> str:
    """A's endpoint, made by the service (the URL check would look the host up in DNS)."""
    _make_merchants(env, a)
    p = env.platform
    row, _ = p.db.run(lambda conn: webhook_endpoints.create(p, conn, a.user_id, url="https://hooks.example.com/bola",
                                                            events="*"))
    return str(row["id"])


def _endpoint_still_there(env: Env, a: Actor, endpoint_id: str) -> Callable[[], None]:
    def check() -> None:
        r = env.client.get(f"/v1/webhook-endpoints/{endpoint_id}", headers=bearer(a.token))
        assert r.status_code == 200 and r.json()["status"] == "active", r.text
    return check


def make_webhook_endpoint(env: Env, a: Actor) -> Owned:
    endpoint = _webhook_endpoint(env, a)
    return Owned({"endpoint_id": endpoint}, _endpoint_still_there(env, a, endpoint),
                 bodies={"PATCH": {"events": ["trade.paid"]}})


def make_webhook_endpoint_cursor(env: Env, a: Actor) -> Owned:
    endpoint = _webhook_endpoint(env, a)
    return Owned({"starting_after": endpoint}, _endpoint_still_there(env, a, endpoint))


def make_webhook_delivery(env: Env, a: Actor) -> Owned:
    """A delivery queued for A's endpoint (not sent: no worker runs here)."""
    endpoint = _webhook_endpoint(env, a)
    p = env.platform
    p.db.run(lambda conn: outbox.emit(conn, "topup.succeeded", {"id": "top_bola"}, a.user_id, now=p.clock.now()))
    p.db.run(lambda conn: webhooks.fan_out(p, conn))
    listed = env.client.get(f"/v1/webhook-endpoints/{endpoint}/deliveries", headers=bearer(a.token)).json()
    delivery = str(listed["data"][0]["id"])

    def check() -> None:
        r = env.client.get(f"/v1/webhook-endpoints/{endpoint}/deliveries", headers=bearer(a.token))
        assert [d["id"] for d in r.json()["data"]] == [delivery], r.text
        assert r.json()["data"][0]["attempts"] == 0, "B's call touched A's delivery"
    return Owned({"delivery_id": delivery, "endpoint_id": endpoint, "starting_after": delivery}, check)


# ------------------------------------------------------------ registry: collection codes, donation pages
def make_collection_code(env: Env, a: Actor) -> Owned:
    _make_merchants(env, a)
    r = env.client.post("/v1/merchant/collection-codes", json={"label": "BOLA stall"}, headers=bearer(a.token))
    assert r.status_code == 201, r.text
    code = str(r.json()["id"])

    def check() -> None:
        r = env.client.get(f"/v1/merchant/collection-codes/{code}", headers=bearer(a.token))
        assert r.status_code == 200 and r.json()["status"] == "active", r.text
    return Owned({"code_id": code}, check)


def make_donation_page(env: Env, a: Actor) -> Owned:
    _make_merchants(env, a)
    r = env.client.post("/v1/merchant/donation-pages", json={"title": "BOLA wells", "story": "Water."},
                        headers=bearer(a.token))
    assert r.status_code == 201, r.text
    page = str(r.json()["id"])

    def check() -> None:
        r = env.client.get(f"/v1/merchant/donation-pages/{page}", headers=bearer(a.token))
        assert r.status_code == 200 and r.json()["status"] == "active", r.text
    return Owned({"page_id": page}, check)


# Path pattern (exactly as in the route table) -> how A makes an object it addresses.
# A NEW ROUTE WITH AN ID IN ITS PATH NEEDS AN ENTRY HERE.
PATH_OBJECTS: dict[str, Maker] = {
    "/v1/users/me/sessions/{session_id}": make_session,
    "/v1/transactions/{transaction_id}/receipt": make_transaction,
    "/v1/transfers/{transfer_id}": make_sent_transfer,
    "/v1/transfers/{transfer_id}/undo": make_sent_transfer,
    "/v1/transfers/{transfer_id}/accept": make_incoming_transfer,
    "/v1/transfers/{transfer_id}/decline": make_incoming_transfer,
    "/v1/bank-cards/{card_id}": make_card,
    "/v1/topups/{topup_id}": make_topup,
    "/v1/withdrawals/{withdrawal_id}": make_withdrawal,
    "/v1/ops/reconciliation/exceptions/{exception_id}/resolve": make_recon_exception,
    "/v1/merchant/api-keys/{key_id}": make_api_key,
    "/v1/webhook-endpoints/{endpoint_id}": make_webhook_endpoint,
    "/v1/webhook-endpoints/{endpoint_id}/roll-secret": make_webhook_endpoint,
    "/v1/webhook-endpoints/{endpoint_id}/deliveries": make_webhook_endpoint,
    "/v1/webhook-deliveries/{delivery_id}/resend": make_webhook_delivery,
    "/v1/ops/merchants/{merchant_id}/fee-plan": make_fee_plan_merchant,
    "/v1/trades/{trade_id}": make_bought_trade,
    "/v1/trades/{trade_id}/pay": make_trade_to_pay,
    "/v1/trades/{trade_id}/ship": make_sold_trade,
    "/v1/trades/{trade_id}/confirm": make_shipped_trade,
    "/v1/trades/{trade_id}/close": make_unpaid_sold_trade,
    "/v1/trades/{trade_id}/refunds": make_refundable_trade,
    "/v1/refunds/{refund_id}": make_refund_request,
    "/v1/refunds/{refund_id}/cancel": make_refund_request,
    "/v1/refunds/{refund_id}/return-goods": make_refund_to_return,
    "/v1/refunds/{refund_id}/approve": make_refund_to_answer,
    "/v1/refunds/{refund_id}/reject": make_refund_to_answer,
    "/v1/refunds/{refund_id}/confirm-goods": make_returned_goods,
    "/v1/refunds/{refund_id}/refuse-goods": make_returned_goods,
    "/v1/settlements/{settlement_id}": make_settlement,
    "/v1/settlements/{settlement_id}/report.csv": make_settlement,
    "/v1/trades/{trade_id}/disputes": make_disputable_trade,
    "/v1/disputes/{dispute_id}": make_dispute,
    "/v1/disputes/{dispute_id}/evidence": make_dispute,
    "/v1/disputes/{dispute_id}/evidence/{evidence_id}": make_dispute_file,
    "/v1/ops/disputes/{dispute_id}": make_ops_dispute,
    "/v1/ops/disputes/{dispute_id}/resolve": make_ops_dispute,
    "/v1/merchant/collection-codes/{code_id}": make_collection_code,
    "/v1/merchant/collection-codes/{code_id}/disable": make_collection_code,
    "/v1/merchant/donation-pages/{page_id}": make_donation_page,
    "/v1/merchant/donation-pages/{page_id}/disable": make_donation_page,
}
# Routes whose path parameter is not a user's object, and what authenticates them instead.
NOT_USER_OBJECTS: dict[str, str] = {
    "/v1/bank-callbacks/{bank}": "a bank's callback, authenticated by the bank's signature; {bank} is a bank name",
    # Printed and shared by design (a QR on a counter, a public page): any signed-in payer may pay them.
    "/v1/collection-codes/{code_id}/pay": "a merchant's public collection code; paying it is open to every payer",
    "/v1/donation-pages/{page_id}/donate": "a merchant's public donation page; donating is open to every payer",
}
# List routes whose query names an object (a cursor, an id filter) -> A's object for it.
QUERY_OBJECTS: dict[str, Maker] = {
    "/v1/users/me/sessions": make_session_cursor,
    "/v1/users/me/audit-log": make_audit_cursor,
    "/v1/transactions": make_transaction_cursor,
    "/v1/transfers": make_sent_transfer_cursor,
    "/v1/merchant/api-keys": make_api_key,
    "/v1/webhook-endpoints": make_webhook_endpoint_cursor,
    "/v1/webhook-endpoints/{endpoint_id}/deliveries": make_webhook_delivery,
    "/v1/trades": make_bought_trade,
    "/v1/settlements": make_settlement,
}


# ------------------------------------------------------------------- machinery
@dataclass(frozen=True)
class RouteInfo:
    path: str
    methods: frozenset[str]
    path_params: tuple[str, ...]
    id_query_params: tuple[str, ...]
    # The methods whose route takes an id query parameter (a GET list and a POST
    # create may share a path; only the list reads ``starting_after``).
    query_methods: frozenset[str] = frozenset()


def v1_routes(app: FastAPI) -> dict[str, RouteInfo]:
    """Every APIRoute under /v1, merged by path (one path may have several methods)."""
    found: dict[str, RouteInfo] = {}
    for ctx in iter_route_contexts(app.routes):
        route = ctx.original_route
        path = ctx.path
        if not isinstance(route, APIRoute) or not isinstance(path, str) or not path.startswith("/v1"):
            continue
        methods = frozenset(ctx.methods or ()) - {"HEAD", "OPTIONS"}
        queries = tuple(q.alias for q in route.dependant.query_params if ID_QUERY.match(q.alias))
        query_methods = methods if queries else frozenset()
        prev = found.get(path)
        if prev is not None:
            methods |= prev.methods
            query_methods |= prev.query_methods
            queries = tuple(sorted(set(queries) | set(prev.id_query_params)))
        found[path] = RouteInfo(path, methods, tuple(PARAM.findall(path)), queries, query_methods)
    return found


def fill(path: str, params: Mapping[str, str]) -> str:
    return PARAM.sub(lambda m: params[m.group(1)], path)


def missing_like(object_id: str, env: Env) -> str:
    """A well-formed id of the same kind that names nothing."""
    prefix, sep, _ = object_id.partition("_")
    try:
        return new_id(prefix, env.clock.now()) if sep else object_id + "x"
    except ValueError:
        return prefix + "_doesnotexist0000000000000000"


def snapshot(env: Env, ignore_user: str) -> dict[str, list[str]]:
    """Every row of every table, except what the caller B may legitimately leave behind
    about themselves (their own audit rows and idempotency keys)."""
    out: dict[str, list[str]] = {}
    with env.platform.db.transaction(write=False) as conn:
        for table in metadata.sorted_tables:
            if table is idempotency_keys:
                continue
            q = select(table)
            if table is audit_log:
                q = q.where(or_(audit_log.c.user_id.is_(None), audit_log.c.user_id != ignore_user))
            out[table.name] = sorted(repr(tuple(r)) for r in conn.execute(q).all())
    return out


def call(env: Env, method: str, url: str, token: str, body: Any) -> httpx.Response:
    if isinstance(body, Multipart):
        sent: httpx.Response = env.client.request(method, url, headers=bearer(token), files=body.files)
        return sent
    r: httpx.Response = env.client.request(method, url, headers=bearer(token), json=body)
    return r


def error_of(r: httpx.Response, *ids: str) -> dict[str, Any]:
    """The JSON error, with the ids it was asked about masked (so two answers compare)."""
    assert r.headers.get("content-type", "").startswith("application/json"), r.text
    err: dict[str, Any] = dict(r.json()["error"])
    assert set(err) <= {"type", "code", "message", "param"} and {"type", "code", "message"} <= set(err), err
    for i in ids:
        err["message"] = str(err["message"]).replace(i, "<id>")
    return err


def assert_not_found(r: httpx.Response, what: str, *ids: str) -> dict[str, Any]:
    assert r.status_code == 404, f"{what}: expected 404, got {r.status_code} {r.text}"
    err = error_of(r, *ids)
    assert (err["type"], err["code"]) == ("not_found_error", "not_found"), f"{what}: {err}"
    return err


# -------------------------------------------------------------------- fixtures
@dataclass
class World:
    env: Env
    a: Actor
    b: Actor
    routes: dict[str, RouteInfo]


def _actor(env: Env, email: str) -> Actor:
    user = env.sign_up(email)
    return Actor(email, str(user["id"]), env.token(email))


@pytest.fixture
def world(db_url: str, tmp_path: Path) -> Iterator[World]:
    # test_clock on: the widest route table the app can have.
    for env in make_env(db_url, tmp_path, test_clock=True, bank_sandbox_data_dir=str(tmp_path / "bank")):
        a, b = _actor(env, "alice@example.com"), _actor(env, "bob@example.com")
        yield World(env, a, b, v1_routes(env.app))


# ----------------------------------------------------------------------- tests
def test_every_id_route_has_a_bola_entry(world: World) -> None:
    with_path_ids = {p for p, r in world.routes.items() if r.path_params}
    with_query_ids = {p for p, r in world.routes.items() if r.id_query_params}
    assert "/v1/users/me/sessions/{session_id}" in with_path_ids  # the table is really being read
    missing = sorted(with_path_ids - PATH_OBJECTS.keys() - NOT_USER_OBJECTS.keys())
    assert not missing, (
        f"routes with an id in the path but no BOLA entry: {missing}. Add each to PATH_OBJECTS in "
        "tests/integration/test_bola.py with a function that creates the object as user A and returns "
        "its id(s), so the test can check that user B gets 404 and changes nothing."
    )
    missing_q = sorted(with_query_ids - QUERY_OBJECTS.keys())
    assert not missing_q, (
        f"list routes with an id query parameter but no BOLA entry: {missing_q}. Add each to "
        "QUERY_OBJECTS in tests/integration/test_bola.py (an object of user A to pass as that parameter)."
    )
    stale = sorted((PATH_OBJECTS.keys() - with_path_ids) | (QUERY_OBJECTS.keys() - with_query_ids)
                   | (NOT_USER_OBJECTS.keys() - with_path_ids))
    assert not stale, f"BOLA entries for routes that no longer exist: {stale}; remove or rename them"


def _check_route(world: World, path: str, maker: Maker, params_of: Callable[[RouteInfo], tuple[str, ...]],
                 url_of: Callable[[Mapping[str, str]], str], *, query: bool = False) -> None:
    env, a, b = world.env, world.a, world.b
    info = world.routes.get(path)
    assert info is not None, f"{path} is not in the route table (see test_every_id_route_has_a_bola_entry)"
    methods = info.query_methods if query else info.methods
    assert methods, path
    for method in sorted(methods):
        owned = maker(env, a)
        names = params_of(info)
        assert set(names) <= owned.params.keys(), f"{path}: the maker must return ids for {names}"
        ids = {n: owned.params[n] for n in names}
        ghost = {n: missing_like(i, env) for n, i in ids.items()}
        body = owned.bodies.get(method)
        what = f"{method} {path} as another user"

        before = snapshot(env, ignore_user=b.user_id)
        if query and PARAM.search(path):  # a list under an object: /v1/x/{id}/items?starting_after=
            ids = {**{n: owned.params[n] for n in PARAM.findall(path)}, **ids}
            ghost = {n: missing_like(i, env) for n, i in ids.items()}
        theirs = assert_not_found(call(env, method, url_of(ids), b.token, body), what, *ids.values())
        nobodys = assert_not_found(call(env, method, url_of(ghost), b.token, body),
                                   f"{method} {path} with an id that does not exist", *ghost.values())
        assert theirs == nobodys, f"{what}: differs from a missing id (an existence oracle): {theirs} {nobodys}"
        after = snapshot(env, ignore_user=b.user_id)
        changed = {t for t in before if before[t] != after[t]}
        assert not changed, f"{what} changed rows in {sorted(changed)}"
        owned.still_works()

        # The owner, same missing id: the same answer (so B learns nothing B could not learn alone).
        own_missing = assert_not_found(call(env, method, url_of(ghost), a.token, body),
                                       f"{method} {path} by the owner with a missing id", *ghost.values())
        assert own_missing == nobodys
        # Control: the URL really reaches the route and names a real object (else the 404s prove nothing).
        mine = call(env, method, url_of(ids), a.token, body)
        assert mine.status_code < 400, f"{method} {path} by its owner: {mine.status_code} {mine.text}"


@pytest.mark.parametrize("path", sorted(PATH_OBJECTS))
def test_another_users_object_in_the_path_is_404_and_untouched(world: World, path: str) -> None:
    _check_route(world, path, PATH_OBJECTS[path], lambda r: r.path_params, lambda ids: fill(path, ids))


@pytest.mark.parametrize("path", sorted(QUERY_OBJECTS))
def test_another_users_object_in_the_query_is_404_and_untouched(world: World, path: str) -> None:
    names = world.routes[path].id_query_params if path in world.routes else ()

    def url(ids: Mapping[str, str]) -> str:
        return str(httpx.URL(fill(path, ids), params={n: ids[n] for n in names}))
    _check_route(world, path, QUERY_OBJECTS[path], lambda r: r.id_query_params, url, query=True)
