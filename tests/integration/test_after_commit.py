"""Work handed to ``after_commit`` (db/after_commit.py) runs once its transaction
has committed, in the caller's thread, with no connection checked out, and
never for a transaction (or a savepoint, or a retried attempt) that rolled
back. Both engines; then what it is for: a slow mail server no longer holds
the writer, and a retried transaction sends one code, not one per attempt."""

from __future__ import annotations

import logging
import sqlite3
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from sqlalchemy import Connection, func, select
from tests.integration.wallet_support import WalletEnv, another_write_during, make_wallet_env

from trustpay.db.after_commit import after_commit
from trustpay.db.raw import Raw
from trustpay.db.schema import outbox as outbox_t
from trustpay.events import notify
from trustpay.identity import recovery
from trustpay.platform import outbox
from trustpay.platform.context import Platform


def events(p: Platform) -> int:
    with p.db.transaction(write=False) as c:
        return int(c.execute(select(func.count()).select_from(outbox_t)).scalar_one())


def checked_out(p: Platform) -> int:
    return int(p.db.engine.pool.checkedout())  # type: ignore[attr-defined]


def test_an_action_runs_after_the_commit_with_no_connection_held(platform: Platform) -> None:
    seen: list[tuple[int, int]] = []

    def work(conn: Connection) -> str:
        event_id = outbox.emit(conn, "after.commit", {}, now=platform.clock.now())
        after_commit(lambda: seen.append((events(platform), checked_out(platform))))
        assert seen == []  # not yet: the transaction is still open
        return event_id

    platform.db.run(work)
    assert seen == [(1, 0)]  # the row was visible to another transaction, nothing was checked out
    with platform.db.transaction() as conn:
        outbox.emit(conn, "after.commit", {}, now=platform.clock.now())
        after_commit(lambda: seen.append((events(platform), checked_out(platform))))
    assert seen[-1] == (2, 0)


def test_no_action_for_a_transaction_that_rolls_back(platform: Platform) -> None:
    ran: list[str] = []

    def refuses(conn: Connection) -> None:
        outbox.emit(conn, "after.commit", {}, now=platform.clock.now())
        after_commit(lambda: ran.append("sent"))
        raise ValueError("refused after the action was handed over")

    with pytest.raises(ValueError):
        platform.db.run(refuses)
    with pytest.raises(ValueError):
        platform.db.run_grouped(refuses)
    assert ran == [] and events(platform) == 0


def test_a_retried_transaction_runs_only_the_last_attempts_actions(platform: Platform) -> None:
    ran: list[int] = []
    attempts = 0

    def flaky(conn: Connection) -> None:
        nonlocal attempts
        attempts += 1
        n = attempts
        after_commit(lambda: ran.append(n))
        if n == 1:
            raise sqlite3.OperationalError("database is locked")  # retryable on either engine's path

    platform.db.run(flaky)
    assert attempts == 2 and ran == [2]
    attempts = 0
    ran.clear()
    platform.db.run_grouped(flaky)
    assert attempts == 2 and ran == [2]


def test_group_members_run_their_own_actions_in_their_own_threads(platform: Platform) -> None:
    """One shared commit: each member's actions run in the thread that asked, a failed
    member's not at all, whoever led the group."""
    gate = threading.Barrier(8)
    ran: dict[int, int] = {}
    lock = threading.Lock()

    def one(i: int) -> None:
        def work(conn: Connection) -> None:
            if i == 0:
                time.sleep(0.2)  # the first group is slow: the others queue up behind it
            outbox.emit(conn, "after.commit", {"i": i}, now=platform.clock.now())
            after_commit(lambda: _note(i))
            if i == 5:
                raise ValueError("member 5 refuses")

        def _note(i: int) -> None:
            with lock:
                ran[i] = threading.get_ident()

        gate.wait()
        if i:
            time.sleep(0.05)
        try:
            platform.db.run_grouped(work)
        except ValueError:
            assert i == 5
        if i != 5:
            assert ran[i] == threading.get_ident()  # already ran, here, before run_grouped returned

    with ThreadPoolExecutor(8) as pool:
        for f in [pool.submit(one, i) for i in range(8)]:
            f.result()
    assert sorted(ran) == [0, 1, 2, 3, 4, 6, 7] and events(platform) == 7


def test_a_savepoint_rolled_back_drops_the_actions_taken_inside_it(platform: Platform) -> None:
    ran: list[str] = []

    def work(conn: Connection) -> None:
        raw = Raw.of(conn)
        after_commit(lambda: ran.append("before"))
        raw.savepoint("tp_test")
        after_commit(lambda: ran.append("undone"))
        raw.rollback_to("tp_test")
        raw.release("tp_test")
        raw.savepoint("tp_test")
        after_commit(lambda: ran.append("kept"))
        raw.release("tp_test")

    platform.db.run_grouped(work)
    assert ran == ["before", "kept"]


def test_a_failing_action_is_logged_and_the_rest_still_run(platform: Platform,
                                                          caplog: pytest.LogCaptureFixture) -> None:
    ran: list[str] = []

    def boom() -> None:
        raise ConnectionError("mail server went away")

    def work(conn: Connection) -> str:
        after_commit(boom)
        after_commit(lambda: ran.append("second"))
        return "committed"

    with caplog.at_level(logging.ERROR, logger="trustpay.db"):
        assert platform.db.run(work) == "committed"
    assert ran == ["second"]
    assert any("mail server went away" in (r.exc_text or "") for r in caplog.records)


def test_outside_any_transaction_an_action_runs_at_once() -> None:
    ran: list[str] = []
    after_commit(lambda: ran.append("now"))
    assert ran == ["now"]


# ------------------------------------------------------------------ what it is for
@pytest.fixture
def w(db_url: str, tmp_path: Path) -> Iterator[WalletEnv]:
    yield from make_wallet_env(db_url, tmp_path)


def test_a_slow_mail_server_holds_up_no_other_write(w: WalletEnv, monkeypatch: pytest.MonkeyPatch) -> None:
    """A reset code sent while its transaction held the writer kept every payment
    waiting for the mail server (up to its 10 s timeout)."""
    w.user("alice@example.com")
    real_send = notify.send
    sending = threading.Event()

    def slow_send(sink: str, note: notify.Notification) -> None:
        sending.set()
        time.sleep(0.6)
        real_send(sink, note)

    monkeypatch.setattr(notify, "send", slow_send)
    took, r = another_write_during(w, sending, lambda: w.client.post("/v1/password-resets",
                                                                      json={"email": "alice@example.com"}))
    assert took < 0.3, f"another write waited {took:.2f} s behind a mail server"
    assert r.status_code == 202
    assert w.env.last_code("alice@example.com")


def test_a_retried_reset_request_mails_one_code_and_it_works(w: WalletEnv) -> None:
    w.user("alice@example.com")
    before = len([n for n in w.env.notes() if n["to"] == "alice@example.com" and "code" in n])
    p, attempts = w.platform, 0

    def request(conn: Connection) -> None:
        nonlocal attempts
        attempts += 1
        recovery.request_reset(p, conn, "alice@example.com")
        if attempts == 1:
            raise sqlite3.OperationalError("database is locked")

    p.db.run(request)
    codes = [n["code"] for n in w.env.notes() if n["to"] == "alice@example.com" and "code" in n]
    assert attempts == 2 and len(codes) == before + 1  # before: one code per attempt, the first never stored
    r = w.client.post("/v1/password-resets/confirm", json={
        "email": "alice@example.com", "code": codes[-1], "new_password": "a brand new pass phrase 7"})
    assert r.status_code == 204, r.text
