"""The file sink: one JSON object per line, its folder made on first use."""

from __future__ import annotations

import json
from pathlib import Path

from trustpay.events.notify import Notification, send, send_all


def test_the_file_sink_makes_its_folder_then_appends_one_line_per_message(tmp_path: Path) -> None:
    sink = tmp_path / "not" / "yet" / "there.jsonl"
    send(f"file:{sink}", Notification("email", "a@example.com", "Hi", "line one\nline two", code="123456"))
    send_all(f"file:{sink}", [Notification("phone", "+8613800000000", "S", "b"),
                              Notification("email", "c@example.com", "T", "c")])
    lines = sink.read_text(encoding="utf-8").splitlines()
    assert [json.loads(line) for line in lines] == [
        {"channel": "email", "to": "a@example.com", "subject": "Hi", "body": "line one\nline two", "code": "123456"},
        {"channel": "phone", "to": "+8613800000000", "subject": "S", "body": "b"},
        {"channel": "email", "to": "c@example.com", "subject": "T", "body": "c"},
    ]
