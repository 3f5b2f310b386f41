"""The whole escrow flow over HTTP against the real ``trustpay serve`` (issue 5, "Done when"):
a merchant with a secret key and a webhook endpoint, a buyer who signs up, verifies the
e-mail, sets a payment password and tops up through the sandbox bank; the trade is paid,
shipped and confirmed, the ledger moves exactly buyer −amount, merchant pending settlement
+amount−fee, fee revenue +fee, escrow back to where it was, ``trustpay ledger verify``
passes, and the merchant's receiver gets trade.paid, trade.shipped and trade.finished,
every one signed. Then the timeouts through the test clock: a trade not shipped in time
is refunded and closed, one not paid in time is closed, one not confirmed in time
finishes, each announced by a webhook.

The receiver below is written from API.md alone (no TrustPay code): a threaded
``http.server`` that checks ``TrustPay-Signature: t=<unix>,v1=<hex HMAC-SHA256(secret,
"<t>.<raw body>")>`` on every delivery, answers 400 to a bad one and records it either way.

Balances: the buyer's wallet and the merchant's pending settlement (``pending_in`` of a
merchant's wallet, API.md "Wallet") are read through the API; the platform's escrow and
fee revenue accounts have no API, so they are read from the database, read-only, like
``wallet_load.py`` does. The server is shared by the whole e2e session, so the platform
accounts are compared before and after (and escrow against the trades it must hold)
rather than against absolute numbers.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import subprocess
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx
import pytest
from sqlalchemy import create_engine, text

from tests.e2e.conftest import Server, _trustpay_command

pytestmark = pytest.mark.e2e

PASSWORD = "walnut 83 lantern rain"
PAY_PW = "135792"
CARD = "4111111111111111"
CURRENCY = "CNY"
WAIT_S = 30.0


# ------------------------------------------------------------------ the merchant's receiver
@dataclass(frozen=True)
class Delivery:
    signature: str
    body: bytes
    valid: bool

    @property
    def event(self) -> dict[str, Any]:
        parsed: dict[str, Any] = json.loads(self.body)
        return parsed


def signature_valid(secret: str, header: str, body: bytes) -> bool:
    """API.md: ``t=<unix>,v1=<hex HMAC-SHA256(secret, "<t>.<raw body>")>``, over the raw bytes."""
    fields: dict[str, list[str]] = {}
    for item in header.split(","):
        key, sep, value = item.partition("=")
        if sep:
            fields.setdefault(key.strip(), []).append(value.strip())
    stamps, macs = fields.get("t", []), fields.get("v1", [])
    if len(stamps) != 1 or not stamps[0].isdigit() or not macs:
        return False
    expected = hmac.new(secret.encode(), f"{stamps[0]}.".encode() + body, hashlib.sha256).hexdigest()
    return any(hmac.compare_digest(expected, mac) for mac in macs)


@dataclass
class ShopReceiver:
    """The merchant's webhook URL: every delivery is checked and kept, valid or not."""
    secret: str = ""
    deliveries: list[Delivery] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)
    url: str = ""

    def take(self, signature: str, body: bytes) -> bool:
        valid = bool(self.secret) and signature_valid(self.secret, signature, body)
        with self.lock:
            self.deliveries.append(Delivery(signature, body, valid))
        return valid

    def events(self) -> list[dict[str, Any]]:
        """Each event once, in the order first received (delivery is at least once)."""
        with self.lock:
            seen: dict[str, dict[str, Any]] = {}
            for d in self.deliveries:
                seen.setdefault(d.event["id"], d.event)
        return list(seen.values())

    def events_for(self, trade_id: str) -> list[dict[str, Any]]:
        return [e for e in self.events() if e["type"].startswith("trade.") and e["data"]["object"]["id"] == trade_id]


def handler_for(shop: ShopReceiver) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
            ok = shop.take(self.headers.get("TrustPay-Signature", ""), body)
            self.send_response(200 if ok else 400)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, format: str, *args: Any) -> None:
            pass  # keep the test output quiet

    return Handler


@pytest.fixture
def shop_receiver() -> Iterator[ShopReceiver]:
    shop = ShopReceiver()
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler_for(shop))
    shop.url = f"http://127.0.0.1:{httpd.server_address[1]}/trustpay/webhooks"
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield shop
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join(timeout=5)


# ------------------------------------------------------------------ API helpers
def ok(r: httpx.Response, status: int = 200) -> Any:
    assert r.status_code == status, f"{r.request.method} {r.request.url.path}: {r.status_code} {r.text}"
    return r.json() if r.content else None


def wait_for(condition: Callable[[], bool], what: str, timeout: float = WAIT_S) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.1)


@dataclass
class Person:
    http: httpx.Client
    email: str
    id: str = ""
    token: str = ""

    def login(self) -> None:
        """A new session: the test clock outruns the 15-minute idle limit of the last one."""
        self.token = ok(self.http.post("/v1/sessions", json={"email": self.email, "password": PASSWORD}), 201)["token"]

    @property
    def auth(self) -> dict[str, str]:
        return {"authorization": f"Bearer {self.token}"}

    def available(self) -> int:
        return self.balance("available")

    def balance(self, part: str) -> int:
        balances = ok(self.http.get("/v1/wallet", headers=self.auth))["balances"]
        return sum(int(b[part]) for b in balances if b["currency"] == CURRENCY)


def sign_up(http: httpx.Client, who: str, kind: str) -> Person:
    person = Person(http, f"{who}.{uuid.uuid4().hex[:10]}@example.com")
    person.id = ok(http.post("/v1/users", json={"email": person.email, "password": PASSWORD, "name": who,
                                                "kind": kind}), 201)["id"]
    person.login()
    return person


def last_code(server: Server, email: str) -> str:
    """The e-mail code, from the notification file sink (API.md "Running it")."""
    found: list[str] = []

    def sent() -> bool:
        if server.notify_file.exists():
            lines = server.notify_file.read_text("utf-8").splitlines()
            found[:] = [str(n["code"]) for n in map(json.loads, lines) if n.get("to") == email and "code" in n]
        return bool(found)

    wait_for(sent, f"a code for {email}")
    return found[-1]


def ready_buyer(server: Server, http: httpx.Client, amount: int) -> Person:
    """Signed up, e-mail verified, payment password set, ``amount`` topped up from the sandbox bank."""
    buyer = sign_up(http, "buyer", "personal")
    ok(http.post("/v1/users/me/verifications/confirm", json={"channel": "email",
                                                             "code": last_code(server, buyer.email)},
                 headers=buyer.auth), 204)
    ok(http.put("/v1/users/me/payment-password", json={"password": PASSWORD, "payment_password": PAY_PW},
                headers=buyer.auth), 204)
    card = ok(http.post("/v1/bank-cards", json={"bank": "sandbox", "card_number": CARD, "holder_name": "Buyer"},
                        headers=buyer.auth), 201)["id"]
    topup = ok(http.post("/v1/topups", json={"card": card, "amount": amount, "currency": CURRENCY},
                         headers=buyer.auth), 201)["id"]
    wait_for(lambda: ok(http.get(f"/v1/topups/{topup}", headers=buyer.auth))["status"] == "succeeded",
             "the sandbox bank to settle the top-up")
    assert buyer.available() == amount
    return buyer


@dataclass
class Shop:
    owner: Person
    key: dict[str, str]
    endpoint: str


def open_shop(http: httpx.Client, receiver: ShopReceiver) -> Shop:
    """A merchant user, a secret key, and a webhook endpoint for every event at the receiver."""
    owner = sign_up(http, "shop", "merchant")
    secret_key = ok(http.post("/v1/merchant/api-keys", json={"label": "backend"}, headers=owner.auth), 201)["secret"]
    assert secret_key.startswith("sk_")
    key = {"authorization": f"Bearer {secret_key}"}
    created = ok(http.post("/v1/webhook-endpoints", json={"url": receiver.url, "events": ["*"]}, headers=key), 201)
    receiver.secret = created["secret"]
    return Shop(owner, key, created["id"])


def advance(http: httpx.Client, seconds: float) -> None:
    ok(http.post("/v1/test_clock/advance", json={"seconds": seconds}, timeout=120))


# ------------------------------------------------------------------ the platform's own accounts (read-only)
@dataclass(frozen=True)
class PlatformAccounts:
    escrow: int
    fee_revenue: int
    held_in_escrow: int  # what the open escrow trades hold: the escrow balance must equal it


def platform_accounts(server: Server) -> PlatformAccounts:
    engine = create_engine(server.database_url)
    try:
        with engine.connect() as conn:
            sums: dict[str, int] = dict(conn.execute(text(
                "SELECT kind, COALESCE(SUM(balance), 0) FROM ledger_accounts "
                "WHERE owner_id = 'platform' AND currency = :ccy AND kind IN ('escrow', 'fee_revenue') GROUP BY kind"),
                {"ccy": CURRENCY}).all())
            held = conn.execute(text(
                "SELECT COALESCE(SUM(amount - refunded_amount), 0) FROM trades WHERE mode = 'escrow' "
                "AND currency = :ccy AND status IN ('WAIT_SELLER_SEND_GOODS', 'WAIT_BUYER_CONFIRM_GOODS')"),
                {"ccy": CURRENCY}).scalar_one()
    finally:
        engine.dispose()
    return PlatformAccounts(int(sums.get("escrow", 0)), int(sums.get("fee_revenue", 0)), int(held))


def ledger_verifies(server: Server) -> None:
    done = subprocess.run([*_trustpay_command(), "ledger", "verify"], env=server.env, cwd=server.tmp,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, f"trustpay ledger verify failed:\n{done.stdout}\n{done.stderr}"


# ------------------------------------------------------------------ the tests
def test_escrow_trade_paid_shipped_confirmed_moves_the_money_and_tells_the_merchant(
        server: Server, shop_receiver: ShopReceiver) -> None:
    amount = 12_345  # ¥123.45
    http = httpx.Client(base_url=server.base_url, timeout=30.0)
    shop = open_shop(http, shop_receiver)
    buyer = ready_buyer(server, http, 50_000)

    trade = ok(http.post("/v1/trades", headers=shop.key, json={
        "out_trade_no": "ORDER-1001", "amount": amount, "currency": CURRENCY,
        "subject": "Tieguanyin oolong, 500 g", "mode": "escrow"}), 201)
    assert trade["status"] == "WAIT_BUYER_PAY" and trade["id"].startswith("trd_")
    assert trade["checkout_url"] and trade["qr_code_url"]
    assert 0 < trade["fee"] < amount
    fee = trade["fee"]
    checkout = http.get(trade["checkout_url"], headers=buyer.auth)
    assert checkout.status_code == 200 and "text/html" in checkout.headers["content-type"]
    qr = http.get(trade["qr_code_url"])
    assert qr.status_code == 200 and b"<svg" in qr.content

    before = platform_accounts(server)
    merchant_pending_before = shop.owner.balance("pending_in")

    paid = ok(http.post(f"/v1/trades/{trade['id']}/pay", json={"payment_password": PAY_PW}, headers=buyer.auth))
    assert paid["status"] == "WAIT_SELLER_SEND_GOODS"
    assert buyer.available() == 50_000 - amount
    mid = platform_accounts(server)
    assert mid.escrow == before.escrow + amount  # the money waits in escrow, not with the merchant
    assert mid.escrow == mid.held_in_escrow
    assert shop.owner.balance("pending_in") == merchant_pending_before

    shipped = ok(http.post(f"/v1/trades/{trade['id']}/ship", json={"carrier": "SF Express",
                                                                    "tracking_no": "SF7364519283"},
                           headers=shop.key))
    assert shipped["status"] == "WAIT_BUYER_CONFIRM_GOODS"
    assert shipped["shipping"] == {"carrier": "SF Express", "tracking_no": "SF7364519283"}

    finished = ok(http.post(f"/v1/trades/{trade['id']}/confirm", json={"payment_password": PAY_PW},
                            headers=buyer.auth))
    assert finished["status"] == "TRADE_FINISHED"
    assert ok(http.get(f"/v1/trades/{trade['id']}", headers=shop.key))["status"] == "TRADE_FINISHED"

    # The ledger: buyer −amount, merchant pending settlement +amount−fee, fee revenue +fee, escrow back.
    assert buyer.available() == 50_000 - amount
    assert shop.owner.balance("pending_in") == merchant_pending_before + amount - fee
    after = platform_accounts(server)
    assert after.fee_revenue == before.fee_revenue + fee
    assert after.escrow == before.escrow
    assert after.escrow == after.held_in_escrow  # 0 on a server with no other open escrow trade
    ledger_verifies(server)

    # The receiver: each event once, in order, every delivery signed with the endpoint's secret.
    wait_for(lambda: len(shop_receiver.events_for(trade["id"])) == 3, "trade.paid, trade.shipped, trade.finished")
    events = shop_receiver.events_for(trade["id"])
    assert [e["type"] for e in events] == ["trade.paid", "trade.shipped", "trade.finished"]
    assert [e["data"]["object"]["status"] for e in events] == [
        "WAIT_SELLER_SEND_GOODS", "WAIT_BUYER_CONFIRM_GOODS", "TRADE_FINISHED"]
    assert all(e["id"].startswith("evt_") for e in events)
    assert shop_receiver.deliveries and all(d.valid for d in shop_receiver.deliveries)
    assert sum(1 for d in shop_receiver.deliveries if d.event["type"].startswith("trade.")) == 3  # nothing resent
    assert not signature_valid("whsec_not_the_secret", shop_receiver.deliveries[0].signature,
                               shop_receiver.deliveries[0].body)  # the check can fail

    def delivery_log() -> list[dict[str, Any]]:
        data: list[dict[str, Any]] = ok(http.get(f"/v1/webhook-endpoints/{shop.endpoint}/deliveries",
                                                 headers=shop.key))["data"]
        return data

    wait_for(lambda: all(d["status"] == "succeeded" for d in delivery_log()),
             "the delivery log to show every delivery succeeded")
    assert {d["event_type"] for d in delivery_log()} >= {"trade.paid", "trade.shipped", "trade.finished"}


def test_timeouts_on_the_test_clock_close_refund_or_finish_and_tell_the_merchant(
        server: Server, shop_receiver: ShopReceiver) -> None:
    amount = 8_800
    http = httpx.Client(base_url=server.base_url, timeout=30.0)
    shop = open_shop(http, shop_receiver)
    buyer = ready_buyer(server, http, 20_000)

    not_shipped = ok(http.post("/v1/trades", headers=shop.key, json={
        "out_trade_no": "ORDER-2001", "amount": amount, "subject": "Pu'er cake, 357 g", "mode": "escrow",
        "ship_within_hours": 1}), 201)
    not_paid = ok(http.post("/v1/trades", headers=shop.key, json={
        "out_trade_no": "ORDER-2002", "amount": 1_500, "subject": "Tea cup", "mode": "escrow",
        "pay_within_minutes": 30}), 201)
    before = platform_accounts(server)
    ok(http.post(f"/v1/trades/{not_shipped['id']}/pay", json={"payment_password": PAY_PW}, headers=buyer.auth))
    assert buyer.available() == 20_000 - amount
    assert platform_accounts(server).escrow == before.escrow + amount

    advance(http, 31 * 60)  # past pay_by of the unpaid trade, not yet past ship_by
    gone = ok(http.get(f"/v1/trades/{not_paid['id']}", headers=shop.key))
    assert (gone["status"], gone["close_reason"]) == ("TRADE_CLOSED", "pay_timeout")
    assert ok(http.get(f"/v1/trades/{not_shipped['id']}", headers=shop.key))["status"] == "WAIT_SELLER_SEND_GOODS"

    advance(http, 30 * 60 + 1)  # now one hour and a second after payment: ship_by has passed
    closed = ok(http.get(f"/v1/trades/{not_shipped['id']}", headers=shop.key))
    assert (closed["status"], closed["close_reason"]) == ("TRADE_CLOSED", "ship_timeout")
    buyer.login()
    assert buyer.available() == 20_000  # refunded in full
    after = platform_accounts(server)
    assert after.escrow == before.escrow and after.escrow == after.held_in_escrow
    assert after.fee_revenue == before.fee_revenue  # no fee on a trade that never finished
    ledger_verifies(server)

    wait_for(lambda: [e["type"] for e in shop_receiver.events_for(not_shipped["id"])] == ["trade.paid", "trade.closed"],
             "trade.paid then trade.closed for the trade never shipped")
    wait_for(lambda: [e["type"] for e in shop_receiver.events_for(not_paid["id"])] == ["trade.closed"],
             "trade.closed for the trade never paid")
    closed_event = shop_receiver.events_for(not_shipped["id"])[-1]["data"]["object"]
    assert (closed_event["status"], closed_event["close_reason"]) == ("TRADE_CLOSED", "ship_timeout")

    # Shipped but never confirmed: confirm_by passes and the trade finishes for the buyer.
    not_confirmed = ok(http.post("/v1/trades", headers=shop.key, json={
        "out_trade_no": "ORDER-2003", "amount": 5_000, "subject": "Tea tray", "mode": "escrow",
        "confirm_within_hours": 24}), 201)
    ok(http.post(f"/v1/trades/{not_confirmed['id']}/pay", json={"payment_password": PAY_PW}, headers=buyer.auth))
    ok(http.post(f"/v1/trades/{not_confirmed['id']}/ship", json={"carrier": "EMS", "tracking_no": "EE123456789CN"},
                 headers=shop.key))
    shop.owner.login()
    pending_before = shop.owner.balance("pending_in")
    advance(http, 24 * 3600 + 1)
    finished = ok(http.get(f"/v1/trades/{not_confirmed['id']}", headers=shop.key))
    assert finished["status"] == "TRADE_FINISHED"
    shop.owner.login()
    assert shop.owner.balance("pending_in") == pending_before + 5_000 - finished["fee"]
    last = platform_accounts(server)
    assert last.escrow == before.escrow and last.fee_revenue == before.fee_revenue + finished["fee"]
    ledger_verifies(server)
    wait_for(lambda: [e["type"] for e in shop_receiver.events_for(not_confirmed["id"])] == [
        "trade.paid", "trade.shipped", "trade.finished"], "trade.finished after the confirm deadline")
    assert all(d.valid for d in shop_receiver.deliveries)
