#!/usr/bin/env bash
# The whole suite: SQLite, then PostgreSQL (a throwaway server on a free port).
set -euo pipefail
cd "$(dirname "$0")/.."
PGDIR=$(mktemp -d /tmp/trustpay-pg.XXXXXX)
chmod 755 "$PGDIR"
cleanup() { .venv/bin/python scripts/throwaway_pg.py stop "$PGDIR/pg" || true; }
trap cleanup EXIT
PG_URL=$(.venv/bin/python scripts/throwaway_pg.py start "$PGDIR/pg" --no-fsync)
echo "throwaway PostgreSQL at $PG_URL"
export TRUSTPAY_TEST_PG_URL="$PG_URL"
export HYPOTHESIS_PROFILE="${HYPOTHESIS_PROFILE:-ci}"
.venv/bin/python -m pytest -q -p no:cacheprovider --durations=20 "$@"
