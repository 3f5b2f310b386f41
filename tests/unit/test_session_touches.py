"""identity/touch.py: notes of sessions' last uses, kept until a transaction stores them."""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime, timedelta

import pytest

from trustpay.identity import touch
from trustpay.identity.model import Session
from trustpay.identity.touch import SessionTouches

T0 = datetime(2026, 1, 1, tzinfo=UTC)


def session(last_seen: datetime) -> Session:
    return Session(id="ses_1", user_id="usr_1", created_at=T0, last_seen_at=last_seen,
                   expires_at=T0 + timedelta(hours=12), revoked_at=None, ip="", user_agent="")


class Stored:
    """A stand-in for the connection: what the rider wrote."""

    def __init__(self) -> None:
        self.batches: list[dict[str, datetime]] = []


@pytest.fixture
def writes(monkeypatch: pytest.MonkeyPatch) -> Stored:
    stored = Stored()
    monkeypatch.setattr(touch.store, "touch_sessions", lambda _conn, batch: stored.batches.append(dict(batch)))
    return stored


def test_the_latest_note_wins_and_shows_over_an_older_stored_use() -> None:
    t = SessionTouches()
    t.note("ses_1", T0 + timedelta(minutes=5))
    t.note("ses_1", T0 + timedelta(minutes=4))  # out of order: never backwards
    assert t.seen(session(T0)).last_seen_at == T0 + timedelta(minutes=5)
    later = session(T0 + timedelta(minutes=6))  # stored by another process meanwhile
    assert t.seen(later) is later


def test_a_note_is_forgotten_only_once_stored_and_a_later_one_stays(writes: Stored) -> None:
    t = SessionTouches()
    assert not t.waiting() and t.board(object()) is None  # type: ignore[arg-type]
    t.note("ses_1", T0 + timedelta(minutes=1))
    t.note("ses_2", T0 + timedelta(minutes=1))
    stored = t.board(object())  # type: ignore[arg-type]
    assert writes.batches == [{"ses_1": T0 + timedelta(minutes=1), "ses_2": T0 + timedelta(minutes=1)}]
    assert stored is not None and t.waiting()  # not committed yet: still noted
    t.note("ses_1", T0 + timedelta(minutes=2))  # while that transaction runs
    stored()
    assert t.waiting() and t.seen(session(T0)).last_seen_at == T0 + timedelta(minutes=2)
    t.board(object())()  # type: ignore[arg-type, misc]
    assert not t.waiting()


def test_waiting_notes_are_carried_by_a_timer_once_a_while(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(touch, "CARRY_WITHIN", 0.05)
    carried = threading.Event()
    calls: list[int] = []
    t = SessionTouches(carry=lambda: (calls.append(1), carried.set()))
    t.note("ses_1", T0)
    t.note("ses_2", T0)  # the timer is already set: no second one
    assert carried.wait(5)
    time.sleep(0.2)
    assert calls == [1]


def test_a_timer_finding_the_notes_stored_meanwhile_carries_nothing(
        monkeypatch: pytest.MonkeyPatch, writes: Stored) -> None:
    monkeypatch.setattr(touch, "CARRY_WITHIN", 0.1)
    calls: list[int] = []
    t = SessionTouches(carry=lambda: calls.append(1))
    t.note("ses_1", T0)
    stored = t.board(object())  # type: ignore[arg-type]  # a group commit came first
    assert stored is not None
    stored()
    time.sleep(0.4)
    assert calls == []
