"""Webhook rules with no I/O: retry schedule, signature, subscriptions, the SSRF guard."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta

import pytest

from trustpay.events.webhook_guard import InvalidUrl, UrlRefused, check_url
from trustpay.events.webhook_model import (
    MAX_ATTEMPTS,
    RETRY_DELAYS,
    event_body,
    is_success,
    normalize_events,
    refused_address,
    retry_delay,
    signature,
    signature_header,
    verify_signature,
    wants,
)

NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


# ------------------------------------------------------------------ schedule
class _Fixed(random.Random):
    def __init__(self, value: float) -> None:
        super().__init__()
        self.value = value

    def random(self) -> float:
        return self.value


def test_schedule_is_the_documented_one_after_an_immediate_first_attempt() -> None:
    nominal = [retry_delay(n, _Fixed(0.0)) for n in range(1, MAX_ATTEMPTS)]
    assert nominal == [timedelta(seconds=5), timedelta(minutes=5), timedelta(minutes=30), timedelta(hours=2),
                       timedelta(hours=5), timedelta(hours=10), timedelta(hours=14), timedelta(hours=20),
                       timedelta(hours=24)]
    assert MAX_ATTEMPTS == 10
    assert retry_delay(MAX_ATTEMPTS, _Fixed(0.0)) is None  # out of attempts
    # API.md: retries go on for at least three days.
    assert sum(RETRY_DELAYS, timedelta()) >= timedelta(days=3)


def test_jitter_only_lengthens_a_delay_by_at_most_ten_percent() -> None:
    for n, base in enumerate(RETRY_DELAYS, start=1):
        longest = retry_delay(n, _Fixed(0.999999))
        assert longest is not None and base < longest <= base * 1.1
    rng = random.Random(7)
    delays = {retry_delay(4, rng) for _ in range(50)}
    assert len(delays) > 40  # really random, so retries of many endpoints spread out
    assert all(d is not None and timedelta(hours=2) <= d <= timedelta(hours=2.2) for d in delays)


def test_attempts_are_counted_from_one() -> None:
    with pytest.raises(ValueError):
        retry_delay(0)


def test_only_2xx_is_success() -> None:
    assert [is_success(c) for c in (200, 204, 299)] == [True, True, True]
    assert [is_success(c) for c in (199, 301, 302, 304, 400, 410, 500)] == [False] * 7


# ----------------------------------------------------------------- signature
def test_signature_is_hmac_sha256_of_timestamp_dot_body() -> None:
    # Known answer, computed independently:
    # hmac.new(b"whsec_test", b'1700000000.{"a":1}', hashlib.sha256).hexdigest()
    expected = "38877139021993b830af32feea6e18a8da83eb2f6e49ee50bd9e4cf4ca4d3789"
    assert signature("whsec_test", 1700000000, b'{"a":1}') == expected
    assert signature_header("whsec_test", datetime.fromtimestamp(1700000000, UTC), b'{"a":1}') == \
        f"t=1700000000,v1={expected}"


def test_a_receiver_accepts_only_the_right_secret_body_and_a_fresh_timestamp() -> None:
    body = event_body({"id": "evt_1", "type": "trade.paid", "data": {"object": {"amount": 100}}})
    header = signature_header("whsec_right", NOW, body)
    assert verify_signature(header, body, "whsec_right", now=NOW + timedelta(seconds=30))
    assert not verify_signature(header, body, "whsec_wrong", now=NOW)
    assert not verify_signature(header, body + b" ", "whsec_right", now=NOW)
    assert not verify_signature(header, body, "whsec_right", now=NOW + timedelta(minutes=6))  # a replay
    assert not verify_signature("v1=" + header.split("v1=")[1], body, "whsec_right", now=NOW)  # no t
    assert not verify_signature("t=abc,v1=00", body, "whsec_right", now=NOW)
    # Several v1 values (during a secret roll) pass if one matches.
    assert verify_signature(f"{header},v1=deadbeef", body, "whsec_right", now=NOW)


def test_event_body_is_compact_utf8_and_stable() -> None:
    payload = {"id": "evt_1", "type": "transfer.completed", "data": {"object": {"memo": "午饭"}}}
    assert event_body(payload) == event_body(dict(payload))
    expected = '{"id":"evt_1","type":"transfer.completed","data":{"object":{"memo":"午饭"}}}'
    assert event_body(payload) == expected.encode()


# ------------------------------------------------------------- subscriptions
def test_events_star_or_known_types() -> None:
    assert normalize_events("*") == "*"
    assert normalize_events(["trade.paid", "*"]) == "*"
    assert normalize_events(["trade.paid", "topup.succeeded", "trade.paid"]) == ["topup.succeeded", "trade.paid"]
    with pytest.raises(ValueError, match="unknown event type"):
        normalize_events(["trade.exploded"])
    with pytest.raises(ValueError, match="at least one"):
        normalize_events([])
    assert wants("*", "anything.at_all")
    assert wants(["trade.paid"], "trade.paid") and not wants(["trade.paid"], "trade.closed")


# ---------------------------------------------------------------- SSRF guard
@pytest.mark.parametrize("address", [
    "127.0.0.1", "127.8.9.10", "10.0.0.1", "172.16.0.1", "172.31.255.254", "192.168.1.1", "169.254.169.254",
    "0.0.0.0", "100.64.0.1", "224.0.0.1", "239.255.255.250", "255.255.255.255", "192.0.2.10",
    "::1", "::", "fe80::1", "fe80::1%eth0", "fc00::1", "fd12:3456::1", "ff02::1", "2001:db8::1",
    "::ffff:127.0.0.1", "::ffff:10.1.2.3", "::ffff:169.254.169.254",  # IPv4-mapped
    "64:ff9b::7f00:1",  # NAT64 of 127.0.0.1
    "2002:7f00:1::1",  # 6to4 of 127.0.0.1
])
def test_non_public_addresses_are_refused(address: str) -> None:
    assert refused_address(address) is not None, address


@pytest.mark.parametrize("address", ["8.8.8.8", "1.1.1.1", "93.184.216.34", "2606:4700:4700::1111",
                                     "::ffff:8.8.8.8", "2a00:1450:4001:80b::200e"])
def test_public_addresses_pass(address: str) -> None:
    assert refused_address(address) is None, address


def test_the_reason_names_the_kind_of_address() -> None:
    assert "loopback" in (refused_address("::ffff:127.0.0.1") or "")
    assert "link-local" in (refused_address("169.254.169.254") or "")
    assert "private" in (refused_address("192.168.0.1") or "")


def _resolver(table: dict[str, list[str]]):  # type: ignore[no-untyped-def]
    def resolve(host: str, port: int) -> list[str]:
        if host not in table:
            raise OSError("no such host")
        return table[host]
    return resolve


def test_check_url_resolves_the_host_and_judges_every_address() -> None:
    dns = _resolver({"hooks.example.com": ["93.184.216.34"], "sneaky.example.com": ["93.184.216.34", "10.0.0.5"],
                     "localhost": ["127.0.0.1", "::1"]})
    target = check_url("https://hooks.example.com/tp?x=1", allow_private=False, resolver=dns)
    assert (target.host, target.port, target.address) == ("hooks.example.com", 443, "93.184.216.34")
    assert check_url("http://hooks.example.com:8080/", allow_private=False, resolver=dns).port == 8080
    for url in ("https://sneaky.example.com/", "http://localhost:9000/", "http://[::1]/"):
        with pytest.raises(UrlRefused):
            check_url(url, allow_private=False, resolver=_resolver({"[::1]": ["::1"], "::1": ["::1"],
                                                                     "sneaky.example.com": ["93.184.216.34",
                                                                                            "10.0.0.5"],
                                                                     "localhost": ["127.0.0.1"]}))
    # The operator's switch lets private addresses through (tests, `make run`).
    assert check_url("http://localhost:9000/", allow_private=True, resolver=dns).address == "127.0.0.1"


@pytest.mark.parametrize("url", ["ftp://hooks.example.com/", "hooks.example.com/x", "https:///nohost",
                                 "https://user:pw@hooks.example.com/", "https://hooks.example.com/#frag",
                                 "https://hooks.example.com:99999/", "https://nowhere.invalid/",
                                 "https://hooks.example.com/" + "a" * 2100])
def test_malformed_or_unresolvable_urls_are_refused(url: str) -> None:
    with pytest.raises(InvalidUrl):
        check_url(url, allow_private=True, resolver=_resolver({"hooks.example.com": ["93.184.216.34"]}))
