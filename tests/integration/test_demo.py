"""`trustpay demo` (run by `make run` on every start) must be idempotent and usable."""

from __future__ import annotations

import io

from rich.console import Console
from sqlalchemy import func, select

from trustpay.db.schema import ledger_entries, users
from trustpay.demo import DEMO_PASSWORD, DEMO_USERS, seed
from trustpay.identity.audit import Origin
from trustpay.identity.service import log_in
from trustpay.ledger.verify import verify
from trustpay.platform.context import Platform


def _counts(p: Platform) -> tuple[int, int]:
    with p.db.transaction(write=False) as c:
        n_users = c.execute(select(func.count()).select_from(users)).scalar_one()
        n_entries = c.execute(select(func.count()).select_from(ledger_entries)).scalar_one()
    return int(n_users), int(n_entries)


def test_demo_seed_twice_changes_nothing_and_users_can_log_in(platform: Platform) -> None:
    out = io.StringIO()
    seed(Console(file=out, width=200), platform)
    first = _counts(platform)
    seed(Console(file=io.StringIO()), platform)
    assert _counts(platform) == first == (len(DEMO_USERS), sum(1 for d in DEMO_USERS if d.opening))
    printed = out.getvalue()
    assert DEMO_PASSWORD in printed and all(d.email in printed for d in DEMO_USERS)
    with platform.db.transaction() as c:
        session = log_in(platform, c, email=DEMO_USERS[0].email, password=DEMO_PASSWORD, origin=Origin())
        assert session.token
        assert verify(c).ok
