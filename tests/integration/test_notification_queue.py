"""Messages about money are queued with the change and sent by the sweeper after
commit: in order, each once per successful sweep, on both engines."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from sqlalchemy import func, select

from trustpay.clock import FrozenClock
from trustpay.db.schema import notification_queue
from trustpay.events.notify import Notification
from trustpay.events.queue import enqueue, send_queued
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

    assert platform.db.run(lambda conn: send_queued(platform, conn)) == 3
    lines = sent_lines(sink)
    assert [(n["to"], n["subject"], n["body"]) for n in lines] == [
        (f"u{i}@example.com", f"subject {i}", "多行\nbody") for i in range(3)]
    with platform.db.transaction(write=False) as conn:
        unsent = conn.execute(select(func.count()).select_from(notification_queue)
                              .where(notification_queue.c.sent_at.is_(None))).scalar_one()
    assert unsent == 0
    assert platform.db.run(lambda conn: send_queued(platform, conn)) == 0  # nothing twice
    assert len(sent_lines(sink)) == 3
