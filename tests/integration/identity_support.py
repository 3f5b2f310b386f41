"""Shared set-up for the identity tests: the real app on a frozen platform clock,
with notifications going to a file the tests read codes from."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
from fastapi import FastAPI
from fastapi.testclient import TestClient

from trustpay.app import create_app
from trustpay.clock import FrozenClock
from trustpay.platform.context import Platform
from trustpay.settings import Settings

PASSWORD = "correct horse 42 battery"
UA = "pytest-agent/1.0"


@dataclass
class Env:
    app: FastAPI
    client: TestClient
    platform: Platform
    clock: FrozenClock
    sink: Path

    def notes(self) -> list[dict[str, Any]]:
        if not self.sink.exists():
            return []
        return [json.loads(line) for line in self.sink.read_text("utf-8").splitlines()]

    def last_code(self, to: str) -> str:
        codes = [n["code"] for n in self.notes() if n["to"] == to and "code" in n]
        assert codes, f"no code was sent to {to}"
        return str(codes[-1])

    def sign_up(self, email: str, password: str = PASSWORD, **extra: Any) -> dict[str, Any]:
        r = self.client.post("/v1/users", json={"email": email, "password": password, "name": "T", **extra},
                             headers={"user-agent": UA})
        assert r.status_code == 201, r.text
        body: dict[str, Any] = r.json()
        return body

    def login(self, email: str, password: str = PASSWORD, **headers: str) -> httpx.Response:
        r: httpx.Response = self.client.post("/v1/sessions", json={"email": email, "password": password},
                                             headers={"user-agent": UA, **headers})
        return r

    def token(self, email: str, password: str = PASSWORD) -> str:
        r = self.login(email, password)
        assert r.status_code == 201, r.text
        return str(r.json()["token"])

    def me(self, token: str) -> httpx.Response:
        r: httpx.Response = self.client.get("/v1/users/me", headers=bearer(token))
        return r

    def advance(self, minutes: float = 0, seconds: float = 0) -> None:
        self.clock.advance(minutes * 60 + seconds)


def bearer(token: str, **extra: str) -> dict[str, str]:
    return {"authorization": f"Bearer {token}", **extra}


def make_env(db_url: str, tmp_path: Path, **settings: Any) -> Iterator[Env]:
    sink = tmp_path / "notify.jsonl"
    clock = FrozenClock()
    platform = Platform.build(
        Settings(database_url=db_url, notify_sink=f"file:{sink}", **settings), clock=clock)
    app = create_app(platform=platform, start_worker=False)
    try:
        # No `with`: the lifespan would close the platform, which this generator owns.
        yield Env(app, TestClient(app), platform, clock, sink)
    finally:
        platform.close()
