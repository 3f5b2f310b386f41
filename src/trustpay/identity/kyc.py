"""KYC rules with no I/O: what an identity document must look like, how it is
masked for display, and which tier a user has reached.

Tiers: 0 unverified; 1 e-mail or phone verified; 2 identity submitted (legal
name and ID number, which needs tier 1 first).
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from datetime import date
from enum import StrEnum

from trustpay.errors import InvalidRequest

TIER_UNVERIFIED = 0
TIER_CONTACT_VERIFIED = 1
TIER_IDENTITY_SUBMITTED = 2

LEGAL_NAME_MAX = 60
_PRC_ID = re.compile(r"[0-9]{17}[0-9X]")
# ICAO 9303 document numbers: up to 9 letters/digits; real passports have 7–9.
_PASSPORT = re.compile(r"[A-Z0-9]{6,9}")
# GB 11643-1999: weight of position i is 2^(17-i) mod 11; the check digit maps sum mod 11.
_WEIGHTS = tuple(pow(2, 17 - i, 11) for i in range(17))
_CHECK = "10X98765432"


class IdType(StrEnum):
    PRC_RESIDENT = "prc_resident"
    PASSPORT = "passport"


@dataclass(frozen=True)
class IdentityDocument:
    """A validated, normalised legal name and document number (still plaintext: seal before storing)."""

    legal_name: str
    id_type: IdType
    id_number: str

    @property
    def legal_name_masked(self) -> str:
        return mask_name(self.legal_name)

    @property
    def id_number_masked(self) -> str:
        return mask_id_number(self.id_number)


def kyc_tier(*, email_verified: bool, phone_verified: bool, identity_submitted: bool) -> int:
    """Tier 2 needs a verified contact as well: an identity on an unreachable account proves little."""
    if not (email_verified or phone_verified):
        return TIER_UNVERIFIED
    return TIER_IDENTITY_SUBMITTED if identity_submitted else TIER_CONTACT_VERIFIED


def prc_check_digit(first17: str) -> str:
    """ISO 7064 MOD 11-2 check character of a resident ID number's first 17 digits."""
    return _CHECK[sum(int(d) * w for d, w in zip(first17, _WEIGHTS, strict=True)) % 11]


def check_prc_id(number: str, *, today: date) -> str:
    """The 18-character PRC resident identity number, upper-cased, or 400 ``invalid_id_number``."""
    n = re.sub(r"\s", "", number).upper()
    bad = InvalidRequest("id_number is not a valid resident identity number: 18 characters, "
                         "a real birth date and a matching last check character",
                         code="invalid_id_number", param="id_number")
    if not _PRC_ID.fullmatch(n) or n[0] == "0":
        raise bad
    try:
        born = date(int(n[6:10]), int(n[10:12]), int(n[12:14]))
    except ValueError:
        raise bad from None
    if not (date(1900, 1, 1) <= born <= today) or prc_check_digit(n[:17]) != n[17]:
        raise bad
    return n


def check_passport(number: str) -> str:
    n = re.sub(r"\s", "", number).upper()
    if not _PASSPORT.fullmatch(n) or not any(c.isdigit() for c in n):
        raise InvalidRequest("id_number is not a valid passport number: 6 to 9 letters and digits",
                             code="invalid_id_number", param="id_number")
    return n


def check_legal_name(name: str) -> str:
    """Letters, spaces and the joiners names use (· . ' -); no digits, no control characters."""
    n = " ".join(unicodedata.normalize("NFC", name).split())
    ok = 1 <= len(n) <= LEGAL_NAME_MAX and any(c.isalpha() for c in n) and all(
        c.isalpha() or unicodedata.category(c) == "Mn" or c in " ·.'-" for c in n)
    if not ok:
        raise InvalidRequest(f"legal_name must be 1 to {LEGAL_NAME_MAX} letters as on your identity document",
                             code="invalid_legal_name", param="legal_name")
    return n


def identity_document(*, legal_name: str, id_number: str, id_type: IdType, today: date) -> IdentityDocument:
    number = check_prc_id(id_number, today=today) if id_type is IdType.PRC_RESIDENT else check_passport(id_number)
    return IdentityDocument(check_legal_name(legal_name), id_type, number)


def mask_name(name: str) -> str:
    """The first character only: ``张*``, ``张**``, ``J*********``."""
    return name[0] + "*" * max(len(name) - 1, 1)


def mask_id_number(number: str) -> str:
    """First four and last four of an 18-character ID (``1101**********1234``);
    first and last two of anything shorter."""
    keep = 4 if len(number) >= 12 else 2
    return number[:keep] + "*" * (len(number) - 2 * keep) + number[-keep:]
