"""Recompute everything the ledger stores and report the first thing that is off.

Checked, streaming the journal in order:
* seq runs 1, 2, 3 … with no gap; each entry's ``prev_hash`` is the hash of
  the entry before it; each ``hash`` recomputes from the stored row and lines;
* each entry has ≥ 2 lines; per currency its balance deltas sum to zero and
  its pending-out deltas equal its pending-in deltas;
* each line's ``balance_after`` is the running sum of that account's field;
* at the end: every account row equals the sums of its lines, no line lacks
  its entry, every pending hold is covered by pending totals.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field

from sqlalchemy import Connection, func, select

from trustpay.db.schema import ledger_accounts, ledger_entries, ledger_holds, ledger_postings
from trustpay.ledger.chain import GENESIS, MerkleFrontier, canonical_entry, chain_hash, leaf_hash
from trustpay.ledger.model import Field, HoldStatus, Line

# How checks report: problem(seq, entry_id, what).
Report_ = Callable[[int | None, str | None, str], None]


@dataclass
class Problem:
    seq: int | None
    entry_id: str | None
    what: str

    def __str__(self) -> str:
        where = f"entry #{self.seq} ({self.entry_id})" if self.seq is not None else "ledger"
        return f"{where}: {self.what}"


@dataclass
class Report:
    height: int = 0
    root: str = ""
    entries_checked: int = 0
    accounts_checked: int = 0
    problems: list[Problem] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems

    @property
    def first_bad(self) -> Problem | None:
        with_seq = [p for p in self.problems if p.seq is not None]
        if with_seq:
            return min(with_seq, key=lambda p: p.seq or 0)
        return self.problems[0] if self.problems else None


def verify(conn: Connection, *, chunk: int = 5000, max_problems: int = 50) -> Report:
    rep = Report()
    running: dict[tuple[str, str], int] = defaultdict(int)
    last_line: dict[str, int] = {}  # account -> seq of its last line
    frontier = MerkleFrontier()
    expected_seq, prev_hash = 1, GENESIS

    def problem(seq: int | None, entry_id: str | None, what: str) -> None:
        if len(rep.problems) < max_problems:
            rep.problems.append(Problem(seq, entry_id, what))

    last_seq = 0
    while True:
        entries = conn.execute(
            select(ledger_entries).where(ledger_entries.c.seq > last_seq)
            .order_by(ledger_entries.c.seq).limit(chunk)
        ).mappings().all()
        if not entries:
            break
        lo, hi = entries[0]["seq"], entries[-1]["seq"]
        lines_by_seq: dict[int, list[Line]] = defaultdict(list)
        p = ledger_postings.c
        for seq_, acc, fld, ccy, delta, after in conn.execute(
            select(p.entry_seq, p.account_id, p.field, p.currency, p.delta, p.balance_after)
            .where(p.entry_seq.between(lo, hi)).order_by(p.entry_seq, p.account_id, p.field)
        ):
            lines_by_seq[int(seq_)].append(Line(acc, fld, ccy, int(delta), int(after)))
        for e in entries:
            seq, eid = int(e["seq"]), e["id"]
            if seq != expected_seq:
                problem(expected_seq, None, f"missing from the journal (next stored entry is #{seq} {eid})")
            if e["prev_hash"] != prev_hash:
                problem(seq, eid, "prev_hash does not match the hash of the entry before it")
            lines = lines_by_seq.get(seq, [])
            recomputed = chain_hash(
                str(e["prev_hash"]),
                canonical_entry(
                    seq=seq, id=eid, kind=e["kind"], reference=e["reference"], hold_id=e["hold_id"],
                    memo=e["memo"], created_at=e["created_at"],
                    lines=((ln.account_id, ln.field, ln.currency, ln.delta) for ln in lines),
                ),
            )
            if recomputed != e["hash"]:
                problem(seq, eid, "stored hash does not match its contents (entry or lines altered)")
            _check_balanced(seq, eid, lines, problem)
            for ln in lines:
                key = (ln.account_id, ln.field)
                running[key] += ln.delta
                last_line[ln.account_id] = seq
                if running[key] != ln.balance_after:
                    problem(seq, eid, f"balance_after of {key[0]}.{key[1]} is {ln.balance_after}, "
                                      f"running sum is {running[key]}")
            frontier.append(leaf_hash(str(e["hash"])))
            prev_hash, expected_seq = str(e["hash"]), seq + 1
            rep.entries_checked += 1
        last_seq = hi

    rep.height = rep.entries_checked
    rep.root = frontier.root().hex()
    # Lines whose entry row is gone (a deleted entry, the last one included).
    orphans = conn.execute(
        select(ledger_postings.c.entry_seq).distinct()
        .where(~ledger_postings.c.entry_seq.in_(select(ledger_entries.c.seq)))
        .order_by(ledger_postings.c.entry_seq).limit(max_problems)
    ).scalars().all()
    for seq in orphans:
        problem(int(seq), None, "has lines but its entry row is missing (entry deleted)")

    height = expected_seq - 1
    for acc in conn.execute(select(ledger_accounts).order_by(ledger_accounts.c.id)).mappings():
        rep.accounts_checked += 1
        last_seq = int(acc["last_seq"])
        if last_seq > height:
            problem(height + 1, None, f"missing: account {acc['id']} was last changed by entry #{last_seq}, "
                                      f"but the journal ends at #{height} (entries deleted from its end)")
        elif last_seq != last_line.get(acc["id"], 0):
            problem(None, None, f"account {acc['id']} says entry #{last_seq} changed it last, its lines say "
                                f"#{last_line.get(acc['id'], 0)}")
        for fld in Field:
            if acc[fld.value] != running.get((acc["id"], fld.value), 0):
                problem(None, None, f"account {acc['id']} {fld.value} is {acc[fld.value]}, "
                                    f"its lines sum to {running.get((acc['id'], fld.value), 0)}")
        if not acc["allow_negative"] and acc["balance"] - acc["pending_out"] < 0:
            problem(None, None, f"account {acc['id']} has a negative available balance")

    _check_holds(conn, problem)
    return rep


def _check_balanced(seq: int, eid: str, lines: list[Line], problem: Report_) -> None:
    if len(lines) < 2:
        problem(seq, eid, f"has {len(lines)} line(s); an entry needs at least two")
    sums: dict[tuple[str, str], int] = defaultdict(int)
    for ln in lines:
        sums[(ln.currency, ln.field)] += ln.delta
    for (ccy, fld), total in sums.items():
        if fld == Field.BALANCE and total != 0:
            problem(seq, eid, f"{ccy} postings sum to {total}, not zero")
    for ccy in {c for c, _ in sums}:
        if sums.get((ccy, Field.PENDING_OUT), 0) != sums.get((ccy, Field.PENDING_IN), 0):
            problem(seq, eid, f"{ccy} pending out and pending in differ")


def _check_holds(conn: Connection, problem: Report_) -> None:
    pending = HoldStatus.PENDING.value
    for side, fld in (("debit_account_id", "pending_out"), ("credit_account_id", "pending_in")):
        col = ledger_holds.c[side]
        rows = conn.execute(
            select(ledger_accounts.c.id, ledger_accounts.c[fld], func.coalesce(func.sum(ledger_holds.c.amount), 0))
            .select_from(ledger_accounts.outerjoin(
                ledger_holds, (col == ledger_accounts.c.id) & (ledger_holds.c.status == pending)))
            .group_by(ledger_accounts.c.id, ledger_accounts.c[fld])
        ).all()
        for acc_id, stored, held in rows:
            if int(stored) != int(held):
                problem(None, None, f"account {acc_id} {fld} is {stored} but its pending holds total {held}")
