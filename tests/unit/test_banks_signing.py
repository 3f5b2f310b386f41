"""Bank-Signature: t=<unix>,v1=<hex HMAC-SHA256(secret, "<t>.<body>")>."""

from __future__ import annotations

import hashlib
import hmac

import pytest

from trustpay.banks.errors import BadBankSignature
from trustpay.banks.signing import sign, verify

SECRET = "whsec_test"
BODY = b'{"reference":"top_1","status":"succeeded"}'
T = 1_790_000_000


def test_signature_is_hmac_sha256_over_timestamp_dot_body() -> None:
    expected = hmac.new(SECRET.encode(), f"{T}.".encode() + BODY, hashlib.sha256).hexdigest()
    assert sign(SECRET, BODY, T) == f"t={T},v1={expected}"


def test_a_fresh_good_signature_verifies() -> None:
    assert verify(SECRET, sign(SECRET, BODY, T), BODY, now=T + 10) == T


@pytest.mark.parametrize(
    ("header", "body", "why"),
    [
        (sign("other-secret", BODY, T), BODY, "does not match"),
        (sign(SECRET, BODY, T), BODY + b" ", "does not match"),  # body altered after signing
        (sign(SECRET, BODY, T).replace(f"t={T}", f"t={T + 1}"), BODY, "does not match"),  # time altered
        (None, BODY, "missing"),
        ("", BODY, "missing"),
        ("v1=abc", BODY, "malformed"),
        (f"t={T}", BODY, "malformed"),
        ("garbage", BODY, "malformed"),
    ],
)
def test_bad_signatures_are_refused(header: str | None, body: bytes, why: str) -> None:
    with pytest.raises(BadBankSignature, match=why) as info:
        verify(SECRET, header, body, now=T)
    assert info.value.code == "invalid_signature" and info.value.status == 400


@pytest.mark.parametrize("skew", [301, -301, 86_400])
def test_stale_or_future_timestamps_are_refused(skew: int) -> None:
    with pytest.raises(BadBankSignature, match="tolerance"):
        verify(SECRET, sign(SECRET, BODY, T), BODY, now=T + skew)


def test_edge_of_tolerance_is_accepted() -> None:
    assert verify(SECRET, sign(SECRET, BODY, T), BODY, now=T + 300) == T
    assert verify(SECRET, sign(SECRET, BODY, T), BODY, now=T - 300) == T


def test_rotation_any_of_several_v1_values_may_match() -> None:
    good = sign(SECRET, BODY, T).split("v1=")[1]
    header = f"t={T},v1={'0' * 64},v1={good}"
    assert verify(SECRET, header, BODY, now=T) == T
