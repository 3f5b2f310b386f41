"""Webhooks over HTTP against the real server, its own worker and the test clock, with a
receiver written only from API.md: a receiver that is down for a day gets every event
afterwards, each signed, in the order the events were created; a 500 is retried."""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.e2e.conftest import Server
from tests.integration.webhook_support import Receiver, receiver

pytestmark = pytest.mark.e2e

PASSWORD = "copper 61 kettle moon"
EMAIL = "hooks.http.e2e@example.com"


@pytest.fixture
def rx() -> Iterator[Receiver]:
    yield from receiver()


class Merchant:
    def __init__(self, server: Server) -> None:
        self.server = server
        r = httpx.post(server.url("/v1/users"), json={"email": EMAIL, "password": PASSWORD, "name": "Hooks HTTP",
                                                      "kind": "merchant"}, timeout=10)
        assert r.status_code == 201, r.text
        self.token = ""
        self.login()

    def login(self) -> None:
        """A fresh session: advancing the clock by hours outlives the 15-minute idle limit."""
        r = httpx.post(self.server.url("/v1/sessions"), json={"email": EMAIL, "password": PASSWORD}, timeout=10)
        assert r.status_code == 201, r.text
        self.token = r.json()["token"]

    def call(self, method: str, path: str, **kw: Any) -> httpx.Response:
        return httpx.request(method, self.server.url(path), headers={"authorization": f"Bearer {self.token}"},
                             timeout=30, **kw)


def advance(server: Server, seconds: float) -> None:
    r = httpx.post(server.url("/v1/test_clock/advance"), json={"seconds": seconds}, timeout=60)
    assert r.status_code == 200, r.text


def signed_by(secret: str, headers: dict[str, str], body: bytes) -> bool:
    """API.md: TrustPay-Signature: t=<unix>,v1=<hex HMAC-SHA256(secret, "<t>.<raw body>")>."""
    fields = dict(item.split("=", 1) for item in headers["trustpay-signature"].split(","))
    mac = hmac.new(secret.encode(), f"{fields['t']}.".encode() + body, hashlib.sha256).hexdigest()
    return hmac.compare_digest(mac, fields["v1"])


def topup_events(rx: Receiver) -> list[dict[str, Any]]:
    return [e for e in (json.loads(b) for b in rx.bodies()) if e["type"] == "topup.succeeded"]


def first_arrivals(rx: Receiver) -> list[dict[str, Any]]:
    """Each top-up event once, as the receiver API.md describes deduplicates them (by event
    id): delivery is at least once. Here a repeat can really happen: a test-clock hour
    outlasts a sender's lease while it is sending, so another runner sends the same event."""
    seen: dict[str, dict[str, Any]] = {}
    for e in topup_events(rx):
        assert seen.setdefault(e["id"], e) == e, "a repeat is the same event, byte for byte"
    return list(seen.values())


def wait_for(condition: Any, what: str, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


def test_a_receiver_down_for_a_day_gets_every_event_in_order(server: Server, rx: Receiver) -> None:
    shop = Merchant(server)
    r = shop.call("POST", "/v1/webhook-endpoints", json={"url": rx.url, "events": ["topup.succeeded"]})
    assert r.status_code == 201, r.text
    endpoint, secret = r.json()["id"], r.json()["secret"]
    card = shop.call("POST", "/v1/bank-cards", json={"card_number": "4111111111111111", "holder_name": "Shop"})
    assert card.status_code == 201, card.text

    rx.stop()  # the merchant's server goes down
    topups = []
    for amount in (1_001, 1_002, 1_003):
        r = shop.call("POST", "/v1/topups", json={"card": card.json()["id"], "amount": amount})
        assert r.status_code == 201, r.text
        topup = r.json()["id"]
        wait_for(lambda t=topup: shop.call("GET", f"/v1/topups/{t}").json()["status"] == "succeeded",
                 f"top-up {topup} to settle")
        topups.append(topup)

    for _ in range(24):  # a day passes, an hour at a time
        advance(server, 3600)
    shop.login()
    log = shop.call("GET", f"/v1/webhook-endpoints/{endpoint}/deliveries").json()["data"]
    assert len(log) == 3 and all(d["status"] == "pending" for d in log), log
    assert rx.received == []

    rx.start()  # back up
    # The first delivery's next retry is 14 h after its 17.5 h one, and each step here can
    # start a retry up to an hour late: a day and a half more covers it with room to spare.
    for _ in range(36):
        advance(server, 3600)
        if len(first_arrivals(rx)) == 3:
            break
    wait_for(lambda: len(first_arrivals(rx)) == 3, "all three deliveries")
    events = first_arrivals(rx)
    assert [e["data"]["object"]["id"] for e in events] == topups  # first arrivals in creation order
    assert all(signed_by(secret, r.headers, r.body) for r in rx.received)
    shop.login()
    wait_for(lambda: all(d["status"] == "succeeded" for d in
                         shop.call("GET", f"/v1/webhook-endpoints/{endpoint}/deliveries").json()["data"]),
             "the delivery log to show every delivery succeeded")

    # A 500 is retried on the documented schedule (5 s), which the test clock runs at once.
    rx.script = [500]
    received, sent = len(rx.received), len(topup_events(rx))
    r = shop.call("POST", "/v1/topups", json={"card": card.json()["id"], "amount": 1_004})
    wait_for(lambda: len(rx.received) == received + 1, "the first attempt (answered 500)")
    advance(server, 6)
    wait_for(lambda: len(topup_events(rx)) == sent + 2, "the retry")
    assert topup_events(rx)[-2] == topup_events(rx)[-1]
    assert topup_events(rx)[-1]["data"]["object"]["id"] == r.json()["id"]
    assert secret not in server.log()  # never logged
