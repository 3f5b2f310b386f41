#!/usr/bin/env bash
# Benchmarks print figures and ratios measured in one run; they are not tests.
set -euo pipefail
cd "$(dirname "$0")/.."
PGDIR=$(mktemp -d /tmp/trustpay-bench-pg.XXXXXX)
chmod 755 "$PGDIR"
cleanup() { .venv/bin/python scripts/throwaway_pg.py stop "$PGDIR/pg" || true; }
trap cleanup EXIT
PG_URL=$(.venv/bin/python scripts/throwaway_pg.py start "$PGDIR/pg")
for b in bench/*.py; do
  echo "== $b"
  .venv/bin/python "$b" --pg-url "$PG_URL"
done
