"""Request bodies over the cap are refused with 413 before anything parses them."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient

from trustpay.api.body_limit import FORM_OVERHEAD
from trustpay.app import create_app
from trustpay.platform.context import Platform


@pytest.fixture
def client(platform: Platform) -> Iterator[TestClient]:
    with TestClient(create_app(platform=platform, start_worker=False)) as c:
        yield c


def cap(platform: Platform) -> int:
    return platform.settings.dispute_evidence_max_bytes + FORM_OVERHEAD


def test_a_declared_length_over_the_cap_is_refused_unread(client: TestClient, platform: Platform) -> None:
    r = client.post("/v1/users", content=b"x" * (cap(platform) + 1), headers={"content-type": "application/json"})
    assert r.status_code == 413
    assert r.json()["error"] == {"type": "invalid_request_error", "code": "request_too_large",
                                 "message": f"the request body is larger than {cap(platform)} bytes"}


def test_a_body_without_a_length_is_counted_as_it_arrives(client: TestClient, platform: Platform) -> None:
    def chunks() -> Iterator[bytes]:
        for _ in range(cap(platform) // 65536 + 2):
            yield b"x" * 65536

    r = client.post("/v1/users", content=chunks(), headers={"content-type": "application/json"})
    assert r.status_code == 413 and r.json()["error"]["code"] == "request_too_large"


def test_a_body_at_the_cap_goes_through_to_the_route(client: TestClient, platform: Platform) -> None:
    r = client.post("/v1/users", content=b" " * 10 + b"{}", headers={"content-type": "application/json"})
    assert r.status_code == 400 and r.json()["error"]["code"] == "missing_field"
