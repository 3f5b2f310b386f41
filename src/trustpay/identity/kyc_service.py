"""KYC use cases: submit an identity (tier 2) and read it back for the owner.

The legal name and ID number are stored only sealed (AES-GCM, bound to the user
id, identity.crypto) next to the masks we show; the plaintext never reaches a
log, an audit row, a response or an idempotency record.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from sqlalchemy import Connection

from trustpay.errors import Conflict, Forbidden, NotFound
from trustpay.identity import audit, crypto, store
from trustpay.identity.audit import Origin
from trustpay.identity.kyc import TIER_IDENTITY_SUBMITTED, IdType, identity_document
from trustpay.identity.model import Outcome, User

if TYPE_CHECKING:
    from trustpay.platform.context import Platform

LEGAL_NAME_PURPOSE = "kyc:legal_name"
ID_NUMBER_PURPOSE = "kyc:id_number"


def submit_identity(p: Platform, conn: Connection, user: User, *, legal_name: str, id_number: str,
                    id_type: IdType = IdType.PRC_RESIDENT, origin: Origin = Origin()) -> User:
    """Tier 2. Needs tier 1 first (403 ``email_unverified``); once submitted it is
    fixed (409): a correction goes through support, so a taken-over account cannot
    quietly swap the owner's identity for another."""
    row = store.user_row(conn, user_id=user.id, for_update=True)
    if row is None:
        raise NotFound(f"no user {user.id}")
    current = store.as_user(row)
    if not current.contact_verified:
        raise Forbidden("verify your e-mail address or phone number before submitting your identity",
                        code="email_unverified")
    if current.identity_submitted_at is not None:
        raise Conflict("your identity is already on file; contact support to correct it")
    now = p.clock.now()
    doc = identity_document(legal_name=legal_name, id_number=id_number, id_type=id_type, today=now.date())
    key = p.settings.secret_key
    store.set_user_fields(
        conn, user.id,
        legal_name_enc=crypto.seal(key, LEGAL_NAME_PURPOSE, doc.legal_name, bound_to=user.id),
        legal_name_masked=doc.legal_name_masked,
        id_type=doc.id_type.value,
        id_number_enc=crypto.seal(key, ID_NUMBER_PURPOSE, doc.id_number, bound_to=user.id),
        id_number_masked=doc.id_number_masked,
        identity_submitted_at=now,
        kyc_tier=TIER_IDENTITY_SUBMITTED,
    )
    audit.record(conn, event="identity.submitted", outcome=Outcome.SUCCESS, user_id=user.id, origin=origin,
                 now=now, resource=doc.id_type.value)
    return store.get_user(conn, user.id)


def reveal_identity(p: Platform, conn: Connection, user_id: str) -> tuple[str, str] | None:
    """(legal name, ID number) in the clear, for operators' checks and tests; None if not submitted."""
    row = store.user_row(conn, user_id=user_id)
    if row is None or row.id_number_enc is None:
        return None
    key = p.settings.secret_key
    return (crypto.unseal(key, LEGAL_NAME_PURPOSE, row.legal_name_enc, bound_to=user_id),
            crypto.unseal(key, ID_NUMBER_PURPOSE, row.id_number_enc, bound_to=user_id))
