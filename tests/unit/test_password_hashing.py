"""Production hashes passwords with argon2id at RFC 9106's low-memory profile; only the
test suite (TRUSTPAY_TEST_FAST_PASSWORD_HASHING=1, set in tests/conftest.py) lowers it."""

from __future__ import annotations

import json
import os
import subprocess
import sys


def hasher_parameters(env: dict[str, str]) -> dict[str, int]:
    code = ("import json; from trustpay.identity import crypto; h = crypto._hasher; "
            "print(json.dumps([h.time_cost, h.memory_cost, h.parallelism, crypto.FAST_HASHING_FOR_TESTS]))")
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True).stdout
    t, m, p, fast = json.loads(out)
    return {"time_cost": t, "memory_cost": m, "parallelism": p, "fast": fast}


def test_without_the_test_switch_passwords_get_the_rfc_9106_profile() -> None:
    env = {k: v for k, v in os.environ.items() if k != "TRUSTPAY_TEST_FAST_PASSWORD_HASHING"}
    assert hasher_parameters(env) == {"time_cost": 3, "memory_cost": 65536, "parallelism": 4, "fast": False}


def test_the_suite_runs_with_the_switch_on() -> None:
    assert os.environ.get("TRUSTPAY_TEST_FAST_PASSWORD_HASHING") == "1"
    assert hasher_parameters(dict(os.environ))["fast"] is True
