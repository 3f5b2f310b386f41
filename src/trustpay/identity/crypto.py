"""Hashes for secrets: argon2id for passwords, sha256 for random tokens, HMAC for
short codes and phone numbers."""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import secrets
from functools import lru_cache

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

# argon2-cffi's defaults are RFC 9106's low-memory profile, argon2id (~0.3 s a hash
# on this 2-core machine). The test suite alone sets TRUSTPAY_TEST_FAST_PASSWORD_HASHING=1
# for the smallest parameters, because its thousands of sign-ups, log-ins and payment
# passwords would otherwise spend most of the run hashing; the code path is the same.
FAST_HASHING_FOR_TESTS = os.environ.get("TRUSTPAY_TEST_FAST_PASSWORD_HASHING") == "1"
_hasher = (PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1) if FAST_HASHING_FOR_TESTS
           else PasswordHasher())


def hash_password(password: str) -> str:
    return _hasher.hash(password)


def verify_password(stored_hash: str | None, password: str) -> bool:
    """Constant work whether or not there is a hash: with none we still verify against
    a dummy, so response time does not tell which e-mails have accounts."""
    try:
        return _hasher.verify(stored_hash or _dummy_hash(), password) and stored_hash is not None
    except (VerificationError, InvalidHashError):
        return False


@lru_cache(maxsize=1)
def _dummy_hash() -> str:
    return _hasher.hash(secrets.token_hex(16))


def new_session_token() -> str:
    return secrets.token_urlsafe(32)  # 256 bits


def token_hash(token: str) -> str:
    # A plain hash suffices: the token has 256 bits of entropy, nothing to brute-force.
    return hashlib.sha256(token.encode()).hexdigest()


def new_code() -> str:
    return f"{secrets.randbelow(10**6):06d}"


def keyed_hash(key: str, purpose: str, value: str) -> str:
    """HMAC-SHA256 under the operator's secret key: a six-digit code or a phone number
    has too little entropy for a plain hash to hide it."""
    return hmac.new(key.encode(), f"{purpose}\x00{value}".encode(), hashlib.sha256).hexdigest()


def same(a: str, b: str) -> bool:
    return hmac.compare_digest(a.encode(), b.encode())


@lru_cache(maxsize=16)
def _aead_key(secret_key: str, purpose: str) -> bytes:
    """A 256-bit AES key per purpose, derived (HKDF-SHA256) from the operator's secret key."""
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=None,
                info=f"trustpay:{purpose}".encode()).derive(secret_key.encode())


def seal(secret_key: str, purpose: str, plaintext: str, *, bound_to: str) -> str:
    """AES-256-GCM with a random 96-bit nonce; ``bound_to`` (e.g. the user id) is the
    associated data, so a sealed value copied onto another row does not open."""
    nonce = secrets.token_bytes(12)
    ct = AESGCM(_aead_key(secret_key, purpose)).encrypt(nonce, plaintext.encode(), bound_to.encode())
    return base64.urlsafe_b64encode(nonce + ct).decode()


def unseal(secret_key: str, purpose: str, sealed: str, *, bound_to: str) -> str:
    """Raises ``cryptography.exceptions.InvalidTag`` if the value or key does not match."""
    raw = base64.urlsafe_b64decode(sealed.encode())
    return AESGCM(_aead_key(secret_key, purpose)).decrypt(raw[:12], raw[12:], bound_to.encode()).decode()
