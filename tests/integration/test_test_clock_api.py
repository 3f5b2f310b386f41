"""POST /v1/test_clock/advance against the real app, on SQLite and PostgreSQL."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from datetime import datetime, timedelta

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy import Connection, select

from trustpay import jobs
from trustpay.app import create_app
from trustpay.clock import OffsetClock
from trustpay.db.schema import platform_clock
from trustpay.platform.context import Platform, load_test_clock
from trustpay.settings import Settings

ADVANCE = "/v1/test_clock/advance"


def ran(p: Platform, conn: Connection, job: jobs.Job) -> None:
    p.extras.setdefault("ran", []).append(job.payload["n"])


@pytest.fixture
def app(db_url: str) -> Iterator[FastAPI]:
    application = create_app(Settings(database_url=db_url, test_clock=True), start_worker=False)
    yield application
    application.state.platform.close()


def parse(ts: str) -> datetime:
    return datetime.fromisoformat(ts.replace("Z", "+00:00"))


def test_advance_moves_time_and_runs_what_became_due(app: FastAPI) -> None:
    p: Platform = app.state.platform
    assert isinstance(p.clock, OffsetClock)
    jobs.registry_of(p).register("test.ran", ran)
    start = p.clock.now()
    with p.db.transaction() as c:
        jobs.schedule(c, "test.ran", start + timedelta(hours=1), {"n": 1}, now=start)
        jobs.schedule(c, "test.ran", start + timedelta(days=3), {"n": 2}, now=start)
    client = TestClient(app)

    r = client.post(ADVANCE, json={"seconds": 1800})
    assert r.status_code == 200 and p.extras.get("ran", []) == []
    now = parse(r.json()["now"])
    assert timedelta(seconds=1800) <= now - start < timedelta(seconds=1860)

    r = client.post(ADVANCE, json={"seconds": 1800})
    assert r.status_code == 200 and p.extras["ran"] == [1]  # ran before the response
    assert parse(r.json()["now"]) - start >= timedelta(hours=1)

    client.post(ADVANCE, json={"seconds": 3 * 86400})
    assert p.extras["ran"] == [1, 2]
    # The offset is persisted: a restarted server keeps platform time.
    with p.db.transaction(write=False) as c:
        ms = c.execute(select(platform_clock.c.offset_ms)).scalar_one()
    assert ms >= (3600 + 3 * 86400) * 1000
    assert load_test_clock(p.db).offset >= timedelta(days=3, hours=1)


def test_advance_validates_seconds(app: FastAPI) -> None:
    client = TestClient(app)
    before = app.state.platform.clock.offset
    for bad in (0, -5, 400 * 86400 + 1, "ten", True, None):
        r = client.post(ADVANCE, json={"seconds": bad})
        assert r.status_code == 400, bad
        assert r.json()["error"]["type"] == "invalid_request_error"
    assert client.post(ADVANCE, json={}).json()["error"]["code"] == "missing_field"
    assert app.state.platform.clock.offset == before
    assert client.post(ADVANCE, json={"seconds": 0.5}).status_code == 200


def test_path_is_404_without_the_setting(db_url: str) -> None:
    application = create_app(Settings(database_url=db_url), start_worker=False)
    try:
        r = TestClient(application).post(ADVANCE, json={"seconds": 60})
        assert r.status_code == 404
        assert r.json()["error"] == {"type": "not_found_error", "code": "not_found",
                                     "message": "no such resource"}
        assert ADVANCE not in application.openapi()["paths"]
    finally:
        application.state.platform.close()


def test_server_lifespan_runs_the_worker(db_url: str) -> None:
    """`trustpay serve` runs the job worker in the same process, for the app's lifetime."""
    application = create_app(Settings(database_url=db_url, worker_interval=0.01))
    p: Platform = application.state.platform
    jobs.registry_of(p).register("test.ran", ran)
    with TestClient(application):
        with p.db.transaction() as c:
            jobs.schedule(c, "test.ran", p.clock.now(), {"n": 7}, now=p.clock.now())
        deadline = time.monotonic() + 10
        while not p.extras.get("ran") and time.monotonic() < deadline:
            time.sleep(0.02)
        assert p.extras.get("ran") == [7]
    assert not [t for t in threading.enumerate() if t.name == "trustpay-worker"]
