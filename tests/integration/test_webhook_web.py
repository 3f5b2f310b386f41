"""The webhooks dashboard pages over the app (cookie sessions, CSRF) on both engines:
only merchants see them, the secret is on the creating response only, bad URLs get a
clear message, another merchant's endpoint and deliveries are 404, resend and delete work."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from tests.integration.identity_support import Env, make_env
from tests.integration.webhook_support import Receiver, emit, receiver

from trustpay.jobs.runner import run_until_idle
from trustpay.web.auth import SESSION_COOKIE

CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')
SECRET = re.compile(r'data-testid="new-secret">(whsec_[A-Za-z0-9_-]+)<')
ENDPOINT = re.compile(r'data-endpoint-id="(whe_[a-z0-9]+)"')
DELIVERY = re.compile(r'data-delivery-id="(whd_[a-z0-9]+)" data-status="(\w+)"')


@pytest.fixture
def env(db_url: str, tmp_path: Path) -> Iterator[Env]:
    yield from make_env(db_url, tmp_path, webhook_allow_private=True, bank_sandbox_data_dir=str(tmp_path / "bank"))


@pytest.fixture
def rx() -> Iterator[Receiver]:
    yield from receiver()


def browser(env: Env, email: str, kind: str = "merchant") -> tuple[TestClient, str]:
    user = env.sign_up(email, kind=kind)
    client = TestClient(env.app)
    client.cookies.set(SESSION_COOKIE, env.token(email))
    return client, str(user["id"])


def csrf(client: TestClient, url: str) -> str:
    r = client.get(url)
    assert r.status_code == 200, r.text
    return str(CSRF.findall(r.text)[-1])


def test_add_an_endpoint_see_the_secret_once_then_the_log_resend_and_delete(env: Env, rx: Receiver) -> None:
    client, shop_id = browser(env, "shop@example.com")
    token = csrf(client, "/merchant/webhooks")
    r = client.post("/merchant/webhooks", data={"csrf_token": token, "url": rx.url,
                                                "events": ["topup.succeeded", "transfer.completed"]})
    assert r.status_code == 201, r.text
    (secret,) = SECRET.findall(r.text)
    (endpoint,) = ENDPOINT.findall(r.text)
    again = client.get("/merchant/webhooks")
    assert secret not in again.text and ENDPOINT.findall(again.text) == [endpoint]
    assert "topup.succeeded, transfer.completed" in again.text

    emit(env.platform, shop_id, "topup.succeeded", amount=100)
    rx.script = [503]
    run_until_idle(env.platform)
    page = client.get(f"/merchant/webhooks/{endpoint}")
    assert page.status_code == 200
    ((delivery, status),) = DELIVERY.findall(page.text)
    assert status == "pending" and "HTTP 503" in page.text

    r = client.post(f"/merchant/webhooks/{endpoint}/deliveries/{delivery}/resend",
                    data={"csrf_token": csrf(client, f"/merchant/webhooks/{endpoint}")}, follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"].endswith("notice=resent")
    run_until_idle(env.platform)
    page = client.get(f"/merchant/webhooks/{endpoint}")
    assert DELIVERY.findall(page.text) == [(delivery, "succeeded")]
    assert len(rx.received) == 2
    history = page.text[page.text.index('data-testid="attempt-log"'):page.text.index("</ol>")]
    assert re.findall(r"HTTP (\d+)", history) == ["503", "200"]  # every attempt, oldest first

    zh = client.get(f"/merchant/webhooks/{endpoint}?lang=zh-Hant").text
    assert "推送紀錄" in zh and "已送達" in zh

    r = client.post(f"/merchant/webhooks/{endpoint}/delete", data={"csrf_token": csrf(client, "/merchant/webhooks")},
                    follow_redirects=False)
    assert r.status_code == 303
    assert 'data-testid="no-endpoints"' in client.get("/merchant/webhooks").text
    assert client.get(f"/merchant/webhooks/{endpoint}").status_code == 404


def test_bad_urls_get_a_clear_message_and_nothing_is_made(db_url: str, tmp_path: Path) -> None:
    for strict in make_env(db_url, tmp_path, bank_sandbox_data_dir=str(tmp_path / "bank")):
        client, _ = browser(strict, "shop@example.com")
        for url, words in [("http://127.0.0.1:9/hook", "private network"), ("ftp://example.com/", "full https://")]:
            r = client.post("/merchant/webhooks", data={"csrf_token": csrf(client, "/merchant/webhooks"),
                                                        "url": url, "events": ["*"]})
            assert r.status_code == 400 and words in r.text, r.text
        r = client.post("/merchant/webhooks", data={"csrf_token": csrf(client, "/merchant/webhooks"),
                                                    "url": "http://127.0.0.1/"})
        assert r.status_code == 400 and "Choose the events" in r.text
        assert 'data-testid="no-endpoints"' in client.get("/merchant/webhooks").text


def test_only_the_owner_sees_an_endpoint_and_forms_need_csrf(env: Env, rx: Receiver) -> None:
    client, _ = browser(env, "shop@example.com")
    r = client.post("/merchant/webhooks", data={"csrf_token": csrf(client, "/merchant/webhooks"), "url": rx.url,
                                                "events": ["*"]})
    (endpoint,) = ENDPOINT.findall(r.text)
    rival, _ = browser(env, "rival@example.com")
    assert rival.get(f"/merchant/webhooks/{endpoint}").status_code == 404
    r = rival.post(f"/merchant/webhooks/{endpoint}/delete", data={"csrf_token": csrf(rival, "/merchant/webhooks")})
    assert r.status_code == 404
    person, _ = browser(env, "person@example.com", kind="personal")
    assert person.get("/merchant/webhooks").status_code == 404
    r = client.post(f"/merchant/webhooks/{endpoint}/delete", data={"csrf_token": "forged"})
    assert r.status_code == 403
    assert ENDPOINT.findall(client.get("/merchant/webhooks").text) == [endpoint]
    stranger = TestClient(env.app)
    r = stranger.get("/merchant/webhooks", follow_redirects=False)
    assert r.status_code == 303 and "/login" in r.headers["location"]
