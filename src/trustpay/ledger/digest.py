"""The published digest: ``{height, root}`` of the journal's Merkle tree.

Kept per process as a Merkle frontier that is extended with the entries
appended since the last call, so publishing costs O(new entries), not O(n).
"""

from __future__ import annotations

import threading
from dataclasses import dataclass

from sqlalchemy import Connection, select

from trustpay.db.schema import ledger_entries
from trustpay.ledger.chain import MerkleFrontier, inclusion_proof, leaf_hash


@dataclass(frozen=True, slots=True)
class Digest:
    height: int
    root: str


class DigestCache:
    def __init__(self) -> None:
        self._frontier = MerkleFrontier()
        self._lock = threading.Lock()

    def current(self, conn: Connection) -> Digest:
        with self._lock:
            while True:
                rows = conn.execute(
                    select(ledger_entries.c.seq, ledger_entries.c.hash)
                    .where(ledger_entries.c.seq > self._frontier.size)
                    .order_by(ledger_entries.c.seq)
                    .limit(10_000)
                ).all()
                if not rows:
                    break
                for seq, h in rows:
                    if seq != self._frontier.size + 1:
                        # A gap: an appender has not committed yet; publish up to here.
                        return Digest(self._frontier.size, self._frontier.root().hex())
                    self._frontier.append(leaf_hash(h))
            return Digest(self._frontier.size, self._frontier.root().hex())


def proof_for(conn: Connection, seq: int, height: int) -> list[str]:
    """Audit path of entry ``seq`` (1-based) in the tree of the first ``height`` entries."""
    hashes = conn.execute(
        select(ledger_entries.c.hash).where(ledger_entries.c.seq <= height).order_by(ledger_entries.c.seq)
    ).scalars().all()
    leaves = [leaf_hash(h) for h in hashes]
    return [p.hex() for p in inclusion_proof(seq - 1, leaves)]
