"""A serving process leaves its startup objects out of later garbage collections
(``app.freeze_startup_heap``): the app, models and metadata are ~150k long-lived
objects that a full collection would otherwise walk while requests wait. Run in a
child process, so this test process's own collector is left alone."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

PROBE = """
import gc
from trustpay.app import create_serving_app
assert gc.get_freeze_count() == 0
create_serving_app()
print(gc.get_freeze_count())
"""


def test_a_serving_app_freezes_what_it_built_at_startup(tmp_path: Path) -> None:
    env = {**os.environ, "TRUSTPAY_DATABASE_URL": f"sqlite:///{tmp_path}/x.db", "TRUSTPAY_SERVE_JOB_LOCK": ""}
    done = subprocess.run([sys.executable, "-c", PROBE], env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert int(done.stdout.strip()) > 50_000
