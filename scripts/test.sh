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
# Some machines (this one, CI) set PYTHONDONTWRITEBYTECODE and uv installs no .pyc files, so every
# Python process the suite starts (pytest, each `trustpay serve` and its restarts after a SIGKILL,
# each CLI run) would compile the app and its libraries from source again: about 3x the start-up
# time. The cache lives under the venv, out of the source tree; Python checks it against each
# source file's mtime and size, so an edit is never served stale.
unset PYTHONDONTWRITEBYTECODE
export PYTHONPYCACHEPREFIX="$PWD/.venv/pycache"
.venv/bin/python -m pytest -q -p no:cacheprovider --durations=20 "$@"
