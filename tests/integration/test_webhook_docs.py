"""docs/webhooks.md's verification snippet, executed as written against real deliveries
(a local receiver, both databases)."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from tests.integration.webhook_support import Receiver, emit, endpoint, merchant, receiver

from trustpay.clock import FrozenClock
from trustpay.jobs.runner import run_until_idle
from trustpay.platform.context import Platform
from trustpay.settings import Settings

DOC = Path(__file__).resolve().parents[2] / "docs" / "webhooks.md"
MARKER = "<!-- verify-snippet:"


def snippet() -> str:
    text = DOC.read_text("utf-8")
    after = text[text.index(MARKER):]
    match = re.search(r"```python\n(.*?)```", after, re.S)
    assert match, "docs/webhooks.md: no python block after the verify-snippet marker"
    return match.group(1)


@pytest.fixture
def verify() -> Callable[..., bool]:
    namespace: dict[str, Any] = {}
    exec(compile(snippet(), str(DOC), "exec"), namespace)
    fn: Callable[..., bool] = namespace["verify_trustpay_signature"]
    return fn


@pytest.fixture
def hooks(db_url: str, clock: FrozenClock) -> Iterator[Platform]:
    p = Platform.build(Settings(database_url=db_url, webhook_allow_private=True, secret_key="docs-test"),
                       clock=clock)
    yield p
    p.close()


@pytest.fixture
def rx() -> Iterator[Receiver]:
    yield from receiver()


def test_the_documented_check_accepts_a_real_delivery_and_nothing_else(
        hooks: Platform, clock: FrozenClock, rx: Receiver, verify: Callable[..., bool]) -> None:
    owner = merchant(hooks)
    _, secret = endpoint(hooks, owner, rx.url)
    emit(hooks, owner, "trade.paid", amount=19_900)
    run_until_idle(hooks)
    (got,) = rx.received
    header, body, now = got.headers["trustpay-signature"], got.body, clock.now().timestamp()

    assert verify(header, body, secret, now=now)
    assert verify(header, body, secret, now=now + 299)
    assert not verify(header, body, secret, now=now + 301)  # a replay, five minutes on
    assert not verify(header, body.replace(b"19900", b"19999"), secret, now=now)  # tampered
    assert not verify(header, body, "whsec_someone_else", now=now)
    assert not verify("v1=" + header.split("v1=")[1], body, secret, now=now)  # no timestamp
    assert not verify(header.split(",")[0], body, secret, now=now)  # no signature
    # Without `now` it checks against real time: the frozen platform clock is far from it.
    assert not verify(header, body, secret)
