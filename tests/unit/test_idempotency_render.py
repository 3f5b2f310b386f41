"""The stored (and replayed) response bytes: JSON's own types are encoded directly,
anything else through FastAPI's encoder, and both give FastAPI's exact bytes."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from enum import IntEnum, StrEnum
from typing import Any

import pytest
from fastapi.encoders import jsonable_encoder
from pydantic import BaseModel

from trustpay.platform.idempotency import render


class Status(StrEnum):
    DONE = "done"


class Level(IntEnum):
    HIGH = 3


class Shape(BaseModel):
    id: str
    at: datetime


@dataclass
class Point:
    x: int


def fastapi_bytes(body: Any) -> bytes:
    return json.dumps(jsonable_encoder(body), ensure_ascii=False, allow_nan=False, indent=None,
                      separators=(",", ":")).encode("utf-8")


BODIES = [
    {"id": "tr_1", "object": "transfer", "amount": 1, "settled": False, "memo": "午饭 🍜", "undo_until": None},
    {"data": [{"a": 1}, {"b": [1.5, -2, True]}], "has_more": False},
    [1, "x", None],
    {"status": Status.DONE, "level": Level.HIGH},
    {"pair": (1, 2)},
    {1: "int key"},
    {"at": datetime(2026, 12, 1, 4, 0, tzinfo=UTC)},
    {"fee": Decimal("1.50")},
    Shape(id="x", at=datetime(2026, 1, 1, tzinfo=UTC)),
    {"nested": [Point(3)]},
    {"error": {"code": "insufficient_funds", "message": "余额不足", "param": None}},
]


@pytest.mark.parametrize("body", BODIES, ids=[str(i) for i in range(len(BODIES))])
def test_render_gives_fastapis_bytes(body: Any) -> None:
    stored = render(201, body)
    assert stored.status == 201
    assert stored.body == fastapi_bytes(body)
    assert stored.headers == {"content-type": "application/json"}


def test_a_nan_is_refused_as_fastapi_would() -> None:
    with pytest.raises(ValueError):
        render(200, {"x": float("nan")})
    with pytest.raises(ValueError):
        fastapi_bytes({"x": float("nan")})


def test_no_body_and_raw_bytes() -> None:
    assert render(204, None).body == b""
    assert render(200, b'{"a":1}').body == b'{"a":1}'
