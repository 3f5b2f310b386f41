"""The outbox on SQLite and PostgreSQL: events commit with the caller's change."""

from __future__ import annotations

import pytest

from trustpay.clock import FrozenClock, rfc3339
from trustpay.errors import NotFound
from trustpay.ids import is_valid_id
from trustpay.platform import outbox
from trustpay.platform.context import Platform


def test_emit_writes_the_public_event_shape(platform: Platform, clock: FrozenClock) -> None:
    now = clock.now()
    with platform.db.transaction() as conn:
        event_id = outbox.emit(conn, "trade.paid", {"id": "trd_1", "amount": 100},
                               owner_id="usr_m", now=now)
    assert is_valid_id(event_id, "evt")
    with platform.db.transaction(write=False) as conn:
        e = outbox.get(conn, event_id)
    assert e.payload == {
        "id": event_id, "type": "trade.paid", "created_at": rfc3339(now),
        "data": {"object": {"id": "trd_1", "amount": 100}},
    }
    assert (e.type, e.owner_id, e.created_at, e.published_at) == ("trade.paid", "usr_m", now, None)
    assert e.object == {"id": "trd_1", "amount": 100}


def test_event_rolls_back_with_the_change(platform: Platform, clock: FrozenClock) -> None:
    with pytest.raises(RuntimeError), platform.db.transaction() as conn:
        outbox.emit(conn, "trade.paid", {"id": "trd_1"}, now=clock.now())
        raise RuntimeError("the business change failed")
    with platform.db.transaction(write=False) as conn:
        assert outbox.unpublished(conn) == []
        assert outbox.count_unpublished(conn) == 0


def test_unpublished_in_order_then_marked_published(platform: Platform, clock: FrozenClock) -> None:
    ids = []
    for i in range(5):
        with platform.db.transaction() as conn:
            ids.append(outbox.emit(conn, "transfer.completed", {"n": i}, now=clock.now()))
        clock.advance(1)
    with platform.db.transaction() as conn:
        batch = outbox.unpublished(conn, limit=3, lock=True)
        assert [e.id for e in batch] == ids[:3]
        assert [e.object["n"] for e in batch] == [0, 1, 2]
        assert outbox.mark_published(conn, [e.id for e in batch], now=clock.now()) == 3
    first_published = clock.now()
    clock.advance(10)
    with platform.db.transaction() as conn:
        # Marking again changes nothing: the first publication time stays.
        assert outbox.mark_published(conn, ids[:1], now=clock.now()) == 0
        rest = outbox.unpublished(conn)
        assert [e.id for e in rest] == ids[3:]
        assert outbox.get(conn, ids[0]).published_at == first_published
        assert outbox.count_unpublished(conn) == 2
        assert outbox.mark_published(conn, [], now=clock.now()) == 0


def test_bad_event_type_and_unknown_event(platform: Platform, clock: FrozenClock) -> None:
    with platform.db.transaction() as conn:
        with pytest.raises(ValueError):
            outbox.emit(conn, "Paid!", {}, now=clock.now())
        with pytest.raises(NotFound):
            outbox.get(conn, "evt_nope")
