"""User notifications (codes, security alerts) to the sink in ``TRUSTPAY_NOTIFY_SINK``.

``console`` prints; ``file:PATH`` appends one JSON object per line
(``{"channel", "to", "subject", "body", "code"}``, ``code`` only when the
message carries a one-time code) — what outside tests read codes from;
``smtp://[user:pass@]host[:port]`` (or ``smtps://``) sends e-mail.
"""

from __future__ import annotations

import json
import smtplib
import threading
from collections.abc import Callable
from dataclasses import dataclass
from email.message import EmailMessage
from pathlib import Path
from urllib.parse import unquote, urlsplit

from trustpay.db.after_commit import after_commit

_file_lock = threading.Lock()


@dataclass(frozen=True)
class Notification:
    channel: str  # email | phone
    to: str
    subject: str
    body: str
    code: str | None = None

    def as_dict(self) -> dict[str, str]:
        d = {"channel": self.channel, "to": self.to, "subject": self.subject, "body": self.body}
        if self.code is not None:
            d["code"] = self.code
        return d


def send(sink: str, note: Notification) -> None:
    if sink == "console":
        print(json.dumps(note.as_dict(), ensure_ascii=False), flush=True)
    elif sink.startswith("file:"):
        _append(Path(sink.removeprefix("file:")), note)
    elif sink.startswith(("smtp://", "smtps://")):
        _smtp(sink, note)
    else:
        raise ValueError(f"unknown notify sink {sink!r}: use console, file:PATH or smtp://host")


def send_after_commit(sink: str, note: Notification) -> None:
    """:func:`send`, once the transaction this runs in has committed, with nothing
    held (``db/after_commit.py``): for a message about what that transaction
    records, a code or an alert, which a slow mail server must not make every
    payment wait for, and which must not go out if the transaction does not."""
    after_commit(lambda: send(sink, note))


def send_all(sink: str, notes: list[Notification], *, sent: list[Notification] | None = None,
             stop: Callable[[], bool] | None = None) -> None:
    """Each of ``notes``, in order; a file sink takes them in one append. ``sent``
    (if given) gets each note once it has gone out, so a caller can tell how far
    a send that failed part-way got. ``stop``: asked before each message; once it
    says so, no more are started (the caller sees from ``sent`` what is left)."""
    if sink.startswith("file:"):
        _append(Path(sink.removeprefix("file:")), *notes)
        if sent is not None:
            sent.extend(notes)
        return
    for note in notes:
        if stop is not None and stop():
            return
        send(sink, note)
        if sent is not None:
            sent.append(note)


def _append(path: Path, *notes: Notification) -> None:
    # json.dumps escapes newlines, so one message is always exactly one line.
    lines = "".join(json.dumps(note.as_dict(), ensure_ascii=False) + "\n" for note in notes)
    with _file_lock:
        try:
            f = path.open("a", encoding="utf-8")
        except FileNotFoundError:  # its folder, made on first use (not checked at every append)
            path.parent.mkdir(parents=True, exist_ok=True)
            f = path.open("a", encoding="utf-8")
        with f:
            f.write(lines)


def _smtp(url: str, note: Notification) -> None:
    if note.channel != "email":
        return  # no SMS gateway behind an SMTP sink
    u = urlsplit(url)
    msg = EmailMessage()
    msg["From"] = f"TrustPay <no-reply@{u.hostname}>"
    msg["To"] = note.to
    msg["Subject"] = note.subject
    msg.set_content(note.body)
    cls = smtplib.SMTP_SSL if u.scheme == "smtps" else smtplib.SMTP
    with cls(u.hostname or "localhost", u.port or (465 if u.scheme == "smtps" else 25), timeout=10) as s:
        if u.username:
            s.login(unquote(u.username), unquote(u.password or ""))
        s.send_message(msg)
