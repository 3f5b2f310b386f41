"""The real server over HTTP: health, the digest, error formats, the schema, static files."""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import datetime

import httpx
import pytest

from tests.e2e.conftest import Server

pytestmark = pytest.mark.e2e

BROWSER_ACCEPT = "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"
RFC3339_UTC = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|\+00:00)$")


@pytest.fixture
def client(server: Server) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=server.base_url, timeout=10) as c:
        yield c


def _assert_json_error(r: httpx.Response, status: int, type_: str, code: str) -> None:
    assert r.status_code == status
    assert r.headers["content-type"].startswith("application/json")
    body = r.json()
    assert set(body) == {"error"}
    assert body["error"]["type"] == type_
    assert body["error"]["code"] == code
    assert isinstance(body["error"]["message"], str) and body["error"]["message"]


def test_healthz(client: httpx.Client) -> None:
    r = client.get("/healthz")
    assert r.status_code == 200
    assert r.json() == {"status": "ok"}


def test_ledger_digest(client: httpx.Client) -> None:
    r = client.get("/v1/ledger/digest")
    assert r.status_code == 200
    body = r.json()
    assert set(body) == {"height", "root", "at"}
    assert isinstance(body["height"], int) and body["height"] >= 0
    assert re.fullmatch(r"[0-9a-f]{64}", body["root"])
    assert RFC3339_UTC.match(body["at"])
    datetime.fromisoformat(body["at"].replace("Z", "+00:00"))


@pytest.mark.parametrize("accept", [None, "application/json", BROWSER_ACCEPT])
def test_unknown_api_path_is_json_even_for_browsers(
    client: httpx.Client, accept: str | None
) -> None:
    headers = {"accept": accept} if accept else {}
    r = client.get("/v1/no-such-thing", headers=headers)
    _assert_json_error(r, 404, "not_found_error", "not_found")


def test_unknown_page_for_a_browser_is_html(client: httpx.Client) -> None:
    r = client.get("/no-such-page", headers={"accept": BROWSER_ACCEPT, "accept-language": "zh-HK"})
    assert r.status_code == 404
    assert r.headers["content-type"].startswith("text/html")
    assert '<html lang="zh-Hant">' in r.text
    assert "找不到這個頁面" in r.text


def test_unknown_page_for_a_program_is_json(client: httpx.Client) -> None:
    _assert_json_error(client.get("/no-such-page"), 404, "not_found_error", "not_found")


def test_openapi_schema(client: httpx.Client) -> None:
    r = client.get("/openapi.json")
    assert r.status_code == 200
    schema = r.json()
    assert schema["openapi"].startswith("3.")
    assert "/v1/ledger/digest" in schema["paths"]
    # Web pages are not part of the API contract.
    assert "/" not in schema["paths"]
    assert not any(p.startswith("/fragments") for p in schema["paths"])


def test_lang_query_sets_the_cookie_and_the_cookie_sticks(server: Server) -> None:
    with httpx.Client(base_url=server.base_url, timeout=10) as c:
        r = c.get("/", params={"lang": "zh-Hant"}, headers={"accept-language": "en"})
        assert r.status_code == 200
        assert '<html lang="zh-Hant">' in r.text
        assert r.headers["set-cookie"].startswith("tp_lang=zh-Hant;")
        assert "httponly" in r.headers["set-cookie"].lower()
        assert r.headers["content-language"] == "zh-Hant"
        assert "Accept-Language" in r.headers["vary"] and "Cookie" in r.headers["vary"]
        # Next visit: no ?lang=, the browser still says English, the cookie wins.
        again = c.get("/", headers={"accept-language": "en"})
        assert '<html lang="zh-Hant">' in again.text
        assert "set-cookie" not in again.headers


def test_unknown_lang_falls_back_and_sets_no_cookie(client: httpx.Client) -> None:
    r = client.get("/", params={"lang": "tlh"}, headers={"accept-language": "zh-SG"})
    assert r.status_code == 200
    assert '<html lang="zh-Hans">' in r.text
    assert "set-cookie" not in r.headers


def test_digest_fragment_matches_the_api(client: httpx.Client) -> None:
    digest = client.get("/v1/ledger/digest").json()
    r = client.get("/fragments/ledger-digest", params={"lang": "en"})
    assert r.status_code == 200
    assert f'data-root="{digest["root"]}"' in r.text
    assert f'data-height="{digest["height"]}"' in r.text


def test_static_files(client: httpx.Client) -> None:
    js = client.get("/static/htmx.min.js")
    assert js.status_code == 200
    assert "javascript" in js.headers["content-type"]
    assert js.text.startswith("var htmx=")
    css = client.get("/static/trustpay.css")
    assert css.status_code == 200 and css.headers["content-type"].startswith("text/css")
    assert "Noto Sans CJK SC" in css.text and "Noto Sans CJK TC" in css.text
    _assert_json_error(client.get("/static/nope.js"), 404, "not_found_error", "not_found")
