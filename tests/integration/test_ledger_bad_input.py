"""Bad input to the ledger, on SQLite and PostgreSQL: every refusal is its own domain
error with its own code, and NOTHING is written — neither when the caller's
transaction rolls back, nor when the caller catches the error and commits.
Also: batches of good and bad entries, and the life of holds."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta, timezone
from typing import Any

import pytest
from sqlalchemy import Connection, func, select

from trustpay.clock import FrozenClock
from trustpay.db.schema import ledger_accounts, ledger_entries, ledger_holds, ledger_postings
from trustpay.errors import TrustPayError
from trustpay.ledger import errors as E
from trustpay.ledger.model import EntryDraft, HoldStatus, Posting, credit, debit
from trustpay.ledger.verify import verify
from trustpay.platform.context import Platform

Action = Callable[[Connection], object]


@dataclass
class World:
    p: Platform
    clock: FrozenClock
    bank: str  # CNY bank clearing, may go negative
    a: str  # CNY wallet, 1000
    b: str  # CNY wallet, 500
    c: str  # CNY wallet, empty
    usd: str  # USD wallet, 300
    closed: str  # CNY wallet, closed

    def run(self, action: Action) -> Any:
        with self.p.db.transaction() as conn:
            return action(conn)

    def post(self, *postings: Posting, memo: str = "") -> Any:
        return self.run(lambda c: self.p.book.post(c, EntryDraft(tuple(postings), memo=memo)))

    def transfer(self, frm: str, to: str, amount: int, ccy: str = "CNY") -> Action:
        return lambda c: self.p.book.post(c, EntryDraft((debit(frm, amount, ccy), credit(to, amount, ccy))))

    def hold(self, frm: str, to: str, amount: int, ttl: float | None = None) -> Any:
        expires = None if ttl is None else self.clock.now() + timedelta(seconds=ttl)
        return self.run(lambda c: self.p.book.hold(c, debit_account_id=frm, credit_account_id=to,
                                                   amount=amount, currency="CNY", expires_at=expires))

    def totals(self, account_id: str) -> tuple[int, int, int]:
        acc = self.run(lambda c: self.p.book.account(c, account_id))
        return acc.balance, acc.pending_out, acc.pending_in


def open_wallet(
    p: Platform, owner: str | None, ccy: str = "CNY", kind: str = "wallet", allow_negative: bool = False
) -> str:
    with p.db.transaction() as c:
        return p.book.open_account(c, currency=ccy, kind=kind, owner_id=owner, allow_negative=allow_negative).id


@pytest.fixture
def w(platform: Platform, clock: FrozenClock) -> World:
    p = platform
    bank = open_wallet(p, None, kind="bank_clearing", allow_negative=True)
    bank_usd = open_wallet(p, None, "USD", kind="bank_clearing", allow_negative=True)
    world = World(p, clock, bank, open_wallet(p, "usr_a"), open_wallet(p, "usr_b"), open_wallet(p, "usr_c"),
                  open_wallet(p, "usr_a", "USD"), open_wallet(p, "usr_x"))
    world.post(debit(bank, 1000, "CNY"), credit(world.a, 1000, "CNY"))
    world.post(debit(bank, 500, "CNY"), credit(world.b, 500, "CNY"))
    world.post(debit(bank_usd, 300, "USD"), credit(world.usd, 300, "USD"))
    world.run(lambda c: p.book.close_account(c, world.closed))
    return world


def snapshot(p: Platform) -> dict[str, Any]:
    """Everything the ledger stores, in a comparable form."""
    with p.db.transaction(write=False) as c:
        return {
            "entries": c.execute(select(func.count()).select_from(ledger_entries)).scalar_one(),
            "postings": c.execute(select(func.count()).select_from(ledger_postings)).scalar_one(),
            "head": p.book.head(c),
            "accounts": [tuple(r) for r in c.execute(
                select(ledger_accounts.c.id, ledger_accounts.c.balance, ledger_accounts.c.pending_out,
                       ledger_accounts.c.pending_in, ledger_accounts.c.closed_at).order_by(ledger_accounts.c.id))],
            "holds": [tuple(r) for r in c.execute(select(ledger_holds).order_by(ledger_holds.c.id))],
        }


def assert_verifies(p: Platform) -> None:
    with p.db.transaction(write=False) as c:
        rep = verify(c)
    assert rep.ok, [str(x) for x in rep.problems]


def assert_refused(w: World, error: type[TrustPayError], code: str, action: Action) -> None:
    """``action`` raises exactly ``error`` with ``code`` and changes nothing, whether the
    caller's transaction then rolls back or the caller catches the error and commits."""
    before = snapshot(w.p)
    with pytest.raises(TrustPayError) as ei, w.p.db.transaction() as conn:
        action(conn)
    assert type(ei.value) is error and ei.value.code == code, (type(ei.value), ei.value.code, ei.value)
    assert snapshot(w.p) == before, "refused (rolled back) but something changed"

    caught: TrustPayError | None = None
    with w.p.db.transaction() as conn:
        try:
            action(conn)
        except TrustPayError as exc:
            caught = exc
    assert caught is not None and type(caught) is error and caught.code == code
    assert snapshot(w.p) == before, "refused (caught, then committed) but something changed"
    assert_verifies(w.p)


# --- entries ------------------------------------------------------------------------------------


def test_unbalanced_entry(w: World) -> None:
    assert_refused(w, E.UnbalancedEntry, "entry_unbalanced", lambda c: w.p.book.post(
        c, EntryDraft((debit(w.a, 101, "CNY"), credit(w.b, 100, "CNY")))))
    assert_refused(w, E.UnbalancedEntry, "entry_unbalanced", lambda c: w.p.book.post(
        c, EntryDraft((debit(w.a, 100, "CNY"), credit(w.usd, 100, "USD")))))


def test_one_posting_only(w: World) -> None:
    assert_refused(w, E.MalformedEntry, "entry_malformed", lambda c: w.p.book.post(
        c, EntryDraft((credit(w.a, 100, "CNY"),))))
    assert_refused(w, E.MalformedEntry, "entry_malformed", lambda c: w.p.book.post(c, EntryDraft(())))


def test_same_account_twice(w: World) -> None:
    assert_refused(w, E.MalformedEntry, "entry_malformed", w.transfer(w.a, w.a, 100))
    assert_refused(w, E.MalformedEntry, "entry_malformed", lambda c: w.p.book.post(
        c, EntryDraft((debit(w.a, 100, "CNY"), credit(w.b, 50, "CNY"), credit(w.a, 50, "CNY")))))


def test_too_many_accounts_in_one_entry(platform: Platform, clock: FrozenClock) -> None:
    """An entry touches at most 16 accounts (the guarded UPDATE is prepared up to that)."""
    p = platform
    bank = open_wallet(p, None, kind="bank_clearing", allow_negative=True)
    payees = [open_wallet(p, f"usr_{i}") for i in range(16)]

    def split(n: int) -> EntryDraft:
        return EntryDraft((debit(bank, n, "CNY"), *(credit(a, 1, "CNY") for a in payees[: n])))

    w = World(p, clock, bank, bank, bank, bank, bank, bank)
    assert_refused(w, E.MalformedEntry, "entry_malformed", lambda c: p.book.post(c, split(16)))
    entry = w.run(lambda c: p.book.post(c, split(15)))
    assert len(entry.lines) == 16
    assert_verifies(p)


GHOST = "acc_zzzzzzzzzzzzzzzzzzzzzzzzzz"


def test_missing_account(w: World) -> None:
    assert_refused(w, E.AccountNotFound, "account_not_found", w.transfer(w.a, GHOST, 100))
    assert_refused(w, E.AccountNotFound, "account_not_found", w.transfer("acc_00000000000000000000000000", w.a, 1))


def test_closed_account(w: World) -> None:
    assert_refused(w, E.AccountClosed, "account_closed", w.transfer(w.a, w.closed, 100))
    assert_refused(w, E.AccountClosed, "account_closed", w.transfer(w.closed, w.a, 1))


def test_currency_mismatch(w: World) -> None:
    assert_refused(w, E.CurrencyMismatch, "currency_mismatch", lambda c: w.p.book.post(
        c, EntryDraft((debit(w.a, 100, "CNY"), credit(w.usd, 100, "CNY")))))
    assert_refused(w, E.CurrencyMismatch, "currency_mismatch", w.transfer(w.a, w.b, 100, "USD"))


def test_overdraft_boundary(w: World) -> None:
    assert_refused(w, E.Overdraft, "insufficient_funds", w.transfer(w.a, w.c, 1001))
    w.run(w.transfer(w.a, w.c, 1000))  # exactly all of it
    assert w.totals(w.a) == (0, 0, 0) and w.totals(w.c) == (1000, 0, 0)
    assert_refused(w, E.Overdraft, "insufficient_funds", w.transfer(w.a, w.c, 1))
    assert_refused(w, E.Overdraft, "insufficient_funds", w.transfer(w.c, w.b, 1001))
    assert_verifies(w.p)


def test_overdraft_counts_held_money(w: World) -> None:
    w.hold(w.a, w.b, 300)  # a: balance 1000, pending_out 300 → available 700
    with w.p.db.transaction(write=False) as c:
        assert w.p.book.account(c, w.a).available == 700
    assert_refused(w, E.Overdraft, "insufficient_funds", w.transfer(w.a, w.c, 701))
    assert_refused(w, E.Overdraft, "insufficient_funds", lambda c: w.p.book.hold(
        c, debit_account_id=w.a, credit_account_id=w.c, amount=701, currency="CNY"))
    w.run(w.transfer(w.a, w.c, 700))
    assert w.totals(w.a) == (300, 300, 0)
    with w.p.db.transaction(write=False) as c:
        assert w.p.book.account(c, w.a).available == 0
    assert_refused(w, E.Overdraft, "insufficient_funds", w.transfer(w.a, w.c, 1))
    assert_verifies(w.p)


def test_overdraft_never_applies_to_accounts_that_may_go_negative(w: World) -> None:
    w.run(w.transfer(w.bank, w.c, w.p.book.max_amount))
    assert w.totals(w.bank)[0] == -1500 - w.p.book.max_amount


BAD_AMOUNTS = [0, -1, -100, 10_000_000_001, 1.5, 100.0, "100", True, False, None]


@pytest.mark.parametrize("amount", BAD_AMOUNTS, ids=repr)
def test_invalid_amount(w: World, amount: Any) -> None:
    assert w.p.book.max_amount == 10_000_000_000
    assert_refused(w, E.InvalidAmount, "invalid_amount", lambda c: w.p.book.post(
        c, EntryDraft((debit(w.a, amount, "CNY"), credit(w.b, amount, "CNY")))))
    assert_refused(w, E.InvalidAmount, "invalid_amount", lambda c: w.p.book.hold(
        c, debit_account_id=w.a, credit_account_id=w.b, amount=amount, currency="CNY"))
    h = w.hold(w.a, w.b, 100)
    if amount is not None:  # None means "all of it" for post_hold
        assert_refused(w, E.InvalidAmount, "invalid_amount", lambda c: w.p.book.post_hold(c, h.id, amount))


def test_max_amount_is_allowed(w: World) -> None:
    w.run(w.transfer(w.bank, w.c, 10_000_000_000))
    assert w.totals(w.c) == (10_000_000_000, 0, 0)


# --- multi-account entries: the book puts back what it changed ---------------------------------


@pytest.mark.parametrize("position", [0, 1, 2])
@pytest.mark.parametrize("why", ["overdraft", "closed", "missing", "currency"])
def test_refused_account_in_a_multi_account_entry_changes_nothing(
    platform: Platform, clock: FrozenClock, why: str, position: int
) -> None:
    """Three accounts; the one at ``position`` (in lock order, i.e. by id) refuses.
    The others were already updated by then; after the caller catches the error and
    goes on to commit other work, none of them has changed."""
    p = platform
    bank = open_wallet(p, None, kind="bank_clearing", allow_negative=True)
    ids: list[str] = []
    for i in range(3):
        clock.advance(0.01)  # ids sort by creation time: fixes the lock order
        bad_currency = why == "currency" and i == position
        ids.append(open_wallet(p, f"usr_{i}", "USD" if bad_currency else "CNY"))
    assert ids == sorted(ids)
    with p.db.transaction() as c:
        for i, acc in enumerate(ids):
            if i != position or why not in ("currency", "closed"):
                p.book.post(c, EntryDraft((debit(bank, 1000, "CNY"), credit(acc, 1000, "CNY"))))
        if why == "closed":
            p.book.close_account(c, ids[position])
    if why == "missing":
        # An id that sorts right where the real account would be.
        ids[position] = (ids[position - 1] + "0") if position else "acc_0"
        assert sorted(ids) == ids

    bad = ids[position]
    others = [a for a in ids if a != bad]
    if why == "overdraft":  # the bad one pays more than it has, the others receive
        draft = EntryDraft((debit(bad, 1200, "CNY"), credit(others[0], 600, "CNY"), credit(others[1], 600, "CNY")))
    else:  # the others pay / receive fine, the bad one cannot receive
        draft = EntryDraft((debit(others[0], 900, "CNY"), credit(others[1], 450, "CNY"), credit(bad, 450, "CNY")))
    expected = {"overdraft": E.Overdraft, "closed": E.AccountClosed, "missing": E.AccountNotFound,
                "currency": E.CurrencyMismatch}[why]

    before = snapshot(p)
    with pytest.raises(expected), p.db.transaction() as c:
        p.book.post(c, draft)
    assert snapshot(p) == before

    with p.db.transaction() as c:
        with pytest.raises(expected):
            p.book.post(c, draft)
        # The caller goes on with its transaction, then commits.
        p.book.post(c, EntryDraft((debit(bank, 7, "CNY"), credit(others[0], 7, "CNY"))))
    after = snapshot(p)
    assert after["entries"] == before["entries"] + 1
    changed = {row[0]: row[1:4] for row in after["accounts"]}
    was = {row[0]: row[1:4] for row in before["accounts"]}
    assert changed[others[0]] == (was[others[0]][0] + 7, 0, 0)
    assert changed[others[1]] == was[others[1]]
    if bad in was:
        assert changed[bad] == was[bad]
    assert changed[bank] == (was[bank][0] - 7, 0, 0)
    assert_verifies(p)


# --- holds -------------------------------------------------------------------------------------


def test_hold_refusals(w: World) -> None:
    def hold(frm: str, to: str, amount: int = 10, ccy: str = "CNY") -> Action:
        return lambda c: w.p.book.hold(c, debit_account_id=frm, credit_account_id=to, amount=amount, currency=ccy)

    assert_refused(w, E.MalformedEntry, "entry_malformed", hold(w.a, w.a))
    assert_refused(w, E.AccountNotFound, "account_not_found", hold(w.a, GHOST))
    assert_refused(w, E.AccountClosed, "account_closed", hold(w.a, w.closed))
    assert_refused(w, E.CurrencyMismatch, "currency_mismatch", hold(w.a, w.usd))
    assert_refused(w, E.Overdraft, "insufficient_funds", hold(w.a, w.b, 1001))
    assert_refused(w, E.HoldNotFound, "hold_not_found", lambda c: w.p.book.post_hold(c, "hold_nope"))
    assert_refused(w, E.HoldNotFound, "hold_not_found", lambda c: w.p.book.void_hold(c, "hold_nope"))


def test_expired_hold_cannot_be_posted_or_voided(w: World) -> None:
    h = w.hold(w.a, w.b, 100, ttl=60)
    w.clock.set(h.expires_at)  # exactly at expiry: expired
    assert_refused(w, E.HoldExpired, "hold_expired", lambda c: w.p.book.post_hold(c, h.id))
    assert_refused(w, E.HoldExpired, "hold_expired", lambda c: w.p.book.post_hold(c, h.id, 10))
    assert_refused(w, E.HoldExpired, "hold_expired", lambda c: w.p.book.void_hold(c, h.id))


def test_hold_can_be_posted_until_just_before_expiry(w: World) -> None:
    h = w.hold(w.a, w.b, 100, ttl=60)
    w.clock.set(h.expires_at - timedelta(microseconds=1))
    w.run(lambda c: w.p.book.post_hold(c, h.id))
    assert w.totals(w.a) == (900, 0, 0) and w.totals(w.b) == (600, 0, 0)


def test_bug_hold_expiry_given_with_a_utc_offset(w: World) -> None:
    """BUG (reported, fails on SQLite): ``Book.hold`` stores ``expires_at`` as given; SQLite's
    DateTime column drops the offset, so a +08:00 expiry is read back as that wall time
    in UTC — the hold lives 8 hours too long. PostgreSQL is right. ``hold`` should store
    ``to_utc(expires_at)``."""
    instant = w.clock.now() + timedelta(hours=1)
    with w.p.db.transaction() as c:
        h = w.p.book.hold(c, debit_account_id=w.a, credit_account_id=w.b, amount=100, currency="CNY",
                          expires_at=instant.astimezone(timezone(timedelta(hours=8))))
    with w.p.db.transaction(write=False) as c:
        assert w.p.book.get_hold(c, h.id).expires_at == instant
    w.clock.set(instant)
    assert_refused(w, E.HoldExpired, "hold_expired", lambda c: w.p.book.post_hold(c, h.id))
    assert w.run(lambda c: w.p.book.expire_due_holds(c)) == 1


@pytest.mark.parametrize("first", ["post", "post_part", "void", "expire"])
def test_resolved_hold_resolves_no_more(w: World, first: str) -> None:
    h = w.hold(w.a, w.b, 100, ttl=60)
    if first == "post":
        w.run(lambda c: w.p.book.post_hold(c, h.id))
    elif first == "post_part":
        w.run(lambda c: w.p.book.post_hold(c, h.id, 1))
    elif first == "void":
        w.run(lambda c: w.p.book.void_hold(c, h.id))
    else:
        w.clock.advance(60)
        assert w.run(lambda c: w.p.book.expire_due_holds(c)) == 1
    assert_refused(w, E.HoldAlreadyResolved, "hold_already_resolved", lambda c: w.p.book.post_hold(c, h.id))
    assert_refused(w, E.HoldAlreadyResolved, "hold_already_resolved", lambda c: w.p.book.post_hold(c, h.id, 1))
    assert_refused(w, E.HoldAlreadyResolved, "hold_already_resolved", lambda c: w.p.book.void_hold(c, h.id))


def test_post_above_the_held_amount(w: World) -> None:
    h = w.hold(w.a, w.b, 100)
    assert_refused(w, E.HoldAmountExceeded, "hold_amount_exceeded", lambda c: w.p.book.post_hold(c, h.id, 101))
    w.run(lambda c: w.p.book.post_hold(c, h.id, 100))
    assert w.totals(w.a) == (900, 0, 0) and w.totals(w.b) == (600, 0, 0)


def test_posting_part_of_a_hold_releases_the_rest(w: World) -> None:
    h = w.hold(w.a, w.b, 300)
    assert w.totals(w.a) == (1000, 300, 0) and w.totals(w.b) == (500, 0, 300)
    entry = w.run(lambda c: w.p.book.post_hold(c, h.id, 120))
    assert w.totals(w.a) == (880, 0, 0) and w.totals(w.b) == (620, 0, 0)
    with w.p.db.transaction(write=False) as c:
        got = w.p.book.get_hold(c, h.id)
        assert w.p.book.account(c, w.a).available == 880
    assert (got.status, got.posted_amount, got.resolved_at) == (HoldStatus.POSTED, 120, w.clock.now())
    assert entry.hold_id == h.id
    assert sorted((ln.account_id, ln.field, ln.delta) for ln in entry.lines) == sorted(
        [(w.a, "balance", -120), (w.a, "pending_out", -300), (w.b, "balance", 120), (w.b, "pending_in", -300)])
    assert_verifies(w.p)


def test_void_releases_all(w: World) -> None:
    h = w.hold(w.a, w.b, 1000)
    assert_refused(w, E.Overdraft, "insufficient_funds", w.transfer(w.a, w.c, 1))
    w.run(lambda c: w.p.book.void_hold(c, h.id))
    assert w.totals(w.a) == (1000, 0, 0) and w.totals(w.b) == (500, 0, 0)
    with w.p.db.transaction(write=False) as c:
        got = w.p.book.get_hold(c, h.id)
    assert (got.status, got.posted_amount) == (HoldStatus.VOIDED, 0)
    w.run(w.transfer(w.a, w.c, 1000))
    assert_verifies(w.p)


def test_expire_due_holds_releases_exactly_the_expired_ones(w: World) -> None:
    h10 = w.hold(w.a, w.b, 10, ttl=10)
    h20 = w.hold(w.a, w.c, 20, ttl=20)
    h30 = w.hold(w.b, w.c, 30, ttl=30)
    forever = w.hold(w.a, w.b, 40)
    w.clock.advance(9)
    assert w.run(lambda c: w.p.book.expire_due_holds(c)) == 0
    w.clock.advance(11)  # t = 20: h10 and h20 are due (expiry is inclusive)
    assert w.run(lambda c: w.p.book.expire_due_holds(c)) == 2
    assert w.run(lambda c: w.p.book.expire_due_holds(c)) == 0
    with w.p.db.transaction(write=False) as c:
        status = {h.id: w.p.book.get_hold(c, h.id).status for h in (h10, h20, h30, forever)}
    assert status == {h10.id: HoldStatus.EXPIRED, h20.id: HoldStatus.EXPIRED,
                      h30.id: HoldStatus.PENDING, forever.id: HoldStatus.PENDING}
    assert w.totals(w.a) == (1000, 40, 0)
    assert w.totals(w.b) == (500, 30, 40)
    assert w.totals(w.c) == (0, 0, 30)
    w.run(lambda c: w.p.book.post_hold(c, h30.id))
    w.clock.advance(10**6)
    assert w.run(lambda c: w.p.book.expire_due_holds(c)) == 0  # no expiry: never expires
    assert w.totals(w.b) == (470, 0, 40) and w.totals(w.c) == (30, 0, 0)
    assert_verifies(w.p)


def test_expire_due_holds_respects_its_limit(w: World) -> None:
    for _ in range(5):
        w.hold(w.a, w.b, 1, ttl=1)
    w.clock.advance(1)
    assert w.run(lambda c: w.p.book.expire_due_holds(c, limit=3)) == 3
    assert w.run(lambda c: w.p.book.expire_due_holds(c, limit=3)) == 2
    assert w.totals(w.a) == (1000, 0, 0)


# --- reversals and closing ----------------------------------------------------------------------


def test_reversal_undoes_a_transfer(w: World) -> None:
    e = w.run(w.transfer(w.a, w.b, 100))
    r = w.run(lambda c: w.p.book.reverse(c, e.id))
    assert r.reference == e.id
    assert w.totals(w.a) == (1000, 0, 0) and w.totals(w.b) == (500, 0, 0)
    assert_refused(w, E.NotReversible, "entry_not_reversible", lambda c: w.p.book.reverse(c, r.id))
    h = w.hold(w.a, w.b, 5)
    with w.p.db.transaction(write=False) as c:
        hold_entry = c.execute(select(ledger_entries.c.id).where(ledger_entries.c.hold_id == h.id)).scalar_one()
    assert_refused(w, E.NotReversible, "entry_not_reversible", lambda c: w.p.book.reverse(c, hold_entry))
    assert_refused(w, E.EntryNotFound, "entry_not_found", lambda c: w.p.book.reverse(c, "txn_nope"))


def test_reversing_twice(w: World) -> None:
    """BUG (reported): the second reversal applies its balance changes before it finds the
    first one (under the chain lock) and does not put them back, so a caller that catches
    ``entry_already_reversed`` and commits moves money with no entry (fails in the
    "caught, then committed" half of ``assert_refused``, on both engines)."""
    e = w.run(w.transfer(w.a, w.b, 100))
    w.run(lambda c: w.p.book.reverse(c, e.id))
    assert_refused(w, E.AlreadyReversed, "entry_already_reversed", lambda c: w.p.book.reverse(c, e.id))


def test_reversing_twice_after_the_money_moved_on(w: World) -> None:
    """BUG (reported): when the money of the first reversal has been spent since, the
    second reversal is refused as ``insufficient_funds`` instead of
    ``entry_already_reversed`` (the overdraft guard runs before the duplicate check)."""
    e = w.run(w.transfer(w.b, w.c, 500))
    w.run(lambda c: w.p.book.reverse(c, e.id))  # c is back at 0, b at 500
    assert_refused(w, E.AlreadyReversed, "entry_already_reversed", lambda c: w.p.book.reverse(c, e.id))


def test_closing_a_non_empty_account(w: World) -> None:
    assert_refused(w, E.AccountNotEmpty, "account_not_empty", lambda c: w.p.book.close_account(c, w.a))
    w.hold(w.a, w.c, 10)  # c: balance 0 but money on its way in
    assert_refused(w, E.AccountNotEmpty, "account_not_empty", lambda c: w.p.book.close_account(c, w.c))
    assert_refused(w, E.AccountClosed, "account_closed", lambda c: w.p.book.close_account(c, w.closed))
    assert_refused(w, E.AccountNotFound, "account_not_found", lambda c: w.p.book.close_account(c, GHOST))


def test_closing_an_empty_account(w: World) -> None:
    e = w.run(w.transfer(w.b, w.a, 500))
    assert w.totals(w.b) == (0, 0, 0)
    closed = w.run(lambda c: w.p.book.close_account(c, w.b))
    assert closed.closed_at == w.clock.now() and not closed.is_open
    assert_refused(w, E.AccountClosed, "account_closed", lambda c: w.p.book.reverse(c, e.id))


# --- batches -----------------------------------------------------------------------------------


def test_batch_mixes_good_and_bad_drafts(w: World) -> None:
    def t(frm: str, to: str, amount: Any, ccy: str = "CNY") -> EntryDraft:
        return EntryDraft((debit(frm, amount, ccy), credit(to, amount, ccy)))

    drafts = [
        t(w.a, w.c, 600),  # ok: a 400, c 600
        t(w.c, w.b, 600),  # ok only because of the first: c 0, b 1100
        t(w.a, w.c, 401),  # a has 400
        t(w.a, w.c, 400),  # exactly all: a 0, c 400
        EntryDraft((debit(w.b, 2, "CNY"), credit(w.c, 1, "CNY"))),
        t(w.b, GHOST, 1),
        t(w.b, w.closed, 1),
        t(w.b, w.usd, 1),
        t(w.b, w.b, 1),
        t(w.b, w.c, 0),
        t(w.b, w.c, True),
        EntryDraft((credit(w.b, 1, "CNY"),)),
        t(w.c, w.a, 1),  # ok: c 399, a 1
    ]
    expected = [None, None, "insufficient_funds", None, "entry_unbalanced", "account_not_found", "account_closed",
                "currency_mismatch", "entry_malformed", "invalid_amount", "invalid_amount", "entry_malformed", None]
    before = snapshot(w.p)
    with w.p.db.transaction() as c:
        results = w.p.book.post_batch(c, drafts)
    got = [None if r.error is None else r.error.code for r in results]
    assert got == expected
    for r in results:
        assert (r.entry is None) == (r.error is not None)
    seqs = [r.entry.seq for r in results if r.entry is not None]
    assert seqs == list(range(before["entries"] + 1, before["entries"] + 5))
    assert w.totals(w.a) == (1, 0, 0)
    assert w.totals(w.b) == (1100, 0, 0)
    assert w.totals(w.c) == (399, 0, 0)
    with w.p.db.transaction(write=False) as c:
        assert w.p.book.head(c) == (seqs[-1], results[-1].entry.hash)  # type: ignore[union-attr]
        stored = w.p.book.entry(c, results[1].entry.id)  # type: ignore[union-attr]
    assert stored == results[1].entry
    assert_verifies(w.p)


def test_batch_of_only_bad_drafts_writes_nothing(w: World) -> None:
    before = snapshot(w.p)
    with w.p.db.transaction() as c:
        results = w.p.book.post_batch(c, [
            EntryDraft((debit(w.c, 1, "CNY"), credit(w.a, 1, "CNY"))),
            EntryDraft((debit(w.a, 1, "CNY"), credit(w.closed, 1, "CNY"))),
        ])
    assert [r.error.code if r.error else None for r in results] == ["insufficient_funds", "account_closed"]
    assert snapshot(w.p) == before
    with w.p.db.transaction() as c:
        assert w.p.book.post_batch(c, []) == []
    assert snapshot(w.p) == before


def test_batch_counts_held_money(w: World) -> None:
    w.hold(w.a, w.b, 300)
    with w.p.db.transaction() as c:
        results = w.p.book.post_batch(c, [
            EntryDraft((debit(w.a, 701, "CNY"), credit(w.c, 701, "CNY"))),
            EntryDraft((debit(w.a, 700, "CNY"), credit(w.c, 700, "CNY"))),
        ])
    assert [r.error.code if r.error else None for r in results] == ["insufficient_funds", None]
    assert w.totals(w.a) == (300, 300, 0)
    assert_verifies(w.p)
