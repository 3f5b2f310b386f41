"""Messages about money are queued with the change and sent by the sweeper after
commit: in order, each once per successful sweep, with no transaction open
while they go out, on both engines."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select

from trustpay.clock import FrozenClock
from trustpay.db.schema import notification_queue
from trustpay.events import notify, queue
from trustpay.events.notify import Notification
from trustpay.events.queue import CLAIM, enqueue, send_queued
from trustpay.platform.context import Platform


def sent_lines(sink: Path) -> list[dict[str, str]]:
    return [json.loads(line) for line in sink.read_text().splitlines()] if sink.exists() else []


def test_the_sweeper_sends_queued_messages_in_order_and_marks_them(platform: Platform, clock: FrozenClock,
                                                                  tmp_path: Path) -> None:
    sink = tmp_path / "out.jsonl"
    platform.settings = platform.settings.model_copy(update={"notify_sink": f"file:{sink}"})
    with platform.db.transaction() as conn:
        for i in range(3):
            enqueue(conn, Notification("email", f"u{i}@example.com", f"subject {i}", "多行\nbody"), now=clock.now())
    with pytest.raises(RuntimeError), platform.db.transaction() as conn:  # rolled back: never sent
        enqueue(conn, Notification("email", "ghost@example.com", "never", "x"), now=clock.now())
        raise RuntimeError

    assert send_queued(platform) == 3
    lines = sent_lines(sink)
    assert [(n["to"], n["subject"], n["body"]) for n in lines] == [
        (f"u{i}@example.com", f"subject {i}", "多行\nbody") for i in range(3)]
    with platform.db.transaction(write=False) as conn:
        unsent = conn.execute(select(func.count()).select_from(notification_queue)
                              .where(notification_queue.c.sent_at.is_(None))).scalar_one()
    assert unsent == 0
    assert send_queued(platform) == 0  # nothing twice
    assert len(sent_lines(sink)) == 3


def queue_three(platform: Platform, clock: FrozenClock) -> None:
    with platform.db.transaction() as conn:
        for i in range(3):
            enqueue(conn, Notification("email", f"u{i}@example.com", f"subject {i}", "body"), now=clock.now())


def test_no_transaction_is_open_while_messages_go_out(platform: Platform, clock: FrozenClock,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    """A slow mail server must not hold the database's writer (and every payment
    queued behind it): the batch is claimed, sent with no connection checked out,
    then marked."""
    queue_three(platform, clock)
    held: list[int] = []

    def sending(sink: str, notes: list[Notification], *, sent: list[Notification],
                stop: Any) -> None:
        held.append(platform.db.engine.pool.checkedout())  # type: ignore[attr-defined]
        sent.extend(notes)

    monkeypatch.setattr(queue, "send_all", sending)
    platform.settings = platform.settings.model_copy(update={"notify_sink": "file:/nonexistent/ignored"})
    assert send_queued(platform) == 3
    assert held == [0]
    assert send_queued(platform) == 0


def test_a_send_failing_part_way_marks_what_went_out_and_retries_the_rest_after_the_claim(
    platform: Platform, clock: FrozenClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    queue_three(platform, clock)
    sent: list[str] = []

    def flaky(sink: str, note: Notification) -> None:
        if note.to == "u1@example.com" and "failed-once" not in sent:
            sent.append("failed-once")
            raise ConnectionError("mail server went away")
        sent.append(note.to)

    monkeypatch.setattr(notify, "send", flaky)
    platform.settings = platform.settings.model_copy(update={"notify_sink": "smtp://127.0.0.1:9"})
    with pytest.raises(ConnectionError):
        send_queued(platform)
    assert sent == ["u0@example.com", "failed-once"]
    assert unsent(platform) == 2
    assert send_queued(platform) == 0, "the rest stay claimed: the failed sender's lease has not run out"
    clock.advance(CLAIM.total_seconds())
    assert send_queued(platform) == 2
    assert sent == ["u0@example.com", "failed-once", "u1@example.com", "u2@example.com"]
    assert unsent(platform) == 0


def test_a_sender_out_of_time_gives_the_rest_back_before_its_claim_runs_out(
    platform: Platform, clock: FrozenClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A mail server that takes its timeout on every message would outlast the claim,
    and another runner would send the rest of the batch a second time: the sender
    stops when its budget is spent and hands back what it has not sent."""
    queue_three(platform, clock)
    sent: list[str] = []

    def slow(sink: str, note: Notification) -> None:
        sent.append(note.to)
        monotonic[0] += 0.6 * queue.SEND_BUDGET  # each message takes most of the budget

    monotonic = [1000.0]
    monkeypatch.setattr(notify, "send", slow)
    monkeypatch.setattr(queue, "_clock", lambda: monotonic[0])
    platform.settings = platform.settings.model_copy(update={"notify_sink": "smtp://127.0.0.1:9"})
    assert send_queued(platform) == 3
    assert sent == ["u0@example.com", "u1@example.com"]  # the third would start past the budget
    assert unsent(platform) == 1
    assert send_queued(platform) == 1, "given back at once, not left claimed until the lease runs out"
    assert sent == ["u0@example.com", "u1@example.com", "u2@example.com"] and unsent(platform) == 0


def unsent(platform: Platform) -> Any:
    with platform.db.transaction(write=False) as conn:
        return conn.execute(select(func.count()).select_from(notification_queue)
                            .where(notification_queue.c.sent_at.is_(None))).scalar_one()
