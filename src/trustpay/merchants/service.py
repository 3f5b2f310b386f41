"""Merchant use cases: profile, fee plan, settlement settings, secret API keys.

Merchants read their fee plan; only ops change it (:func:`set_fee_plan`). The
plan's parts ops left unset follow the operator's settings, so a new default
reaches every merchant without a plan of its own.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from sqlalchemy import Connection

from trustpay.errors import Conflict, InvalidRequest, NotFound
from trustpay.identity import audit
from trustpay.identity import store as identity_store
from trustpay.identity.audit import Origin
from trustpay.identity.model import Outcome, User, UserKind
from trustpay.ids import new_id
from trustpay.merchants import model, store
from trustpay.merchants.model import ApiKey, FeeOverrides, KeyMode, MerchantProfile
from trustpay.platform.context import Platform
from trustpay.wallet import cards
from trustpay.wallet.model import FeePlan

_UNSET: Any = object()  # "leave as is", told apart from None ("clear")


# ---------------------------------------------------------------- fee plan
def default_fee_plan(p: Platform) -> FeePlan:
    s = p.settings
    return FeePlan(fixed=s.merchant_fee_fixed, bank_rate=s.merchant_fee_bank_rate,
                   margin=s.merchant_fee_margin, minimum=s.merchant_fee_minimum)


def _overrides(row: Any | None) -> FeeOverrides:
    if row is None:
        return FeeOverrides()
    return FeeOverrides(
        bank_rate=Decimal(row.fee_bank_rate) if row.fee_bank_rate is not None else None,
        margin=Decimal(row.fee_margin) if row.fee_margin is not None else None,
        fixed=int(row.fee_fixed) if row.fee_fixed is not None else None,
        minimum=int(row.fee_minimum) if row.fee_minimum is not None else None,
    )


def fee_plan(p: Platform, conn: Connection, merchant_id: str) -> FeePlan:
    """The plan a trade of this merchant is charged by (settings fill what ops left unset)."""
    return _overrides(store.profile_row(conn, merchant_id)).over(default_fee_plan(p))


def settlement_delay_days(p: Platform, conn: Connection, merchant_id: str) -> int:
    row = store.profile_row(conn, merchant_id)
    if row is None or row.settlement_delay_days is None:
        return p.settings.merchant_settlement_delay_days
    return int(row.settlement_delay_days)


def settlement_card_id(conn: Connection, merchant_id: str) -> str | None:
    """The card settlement pays out to, if the merchant chose one and it is still bound."""
    row = store.profile_row(conn, merchant_id)
    if row is None or row.settlement_card_id is None:
        return None
    try:
        cards.active_card(conn, merchant_id, row.settlement_card_id)
    except (NotFound, Conflict):
        return None  # unbound since it was chosen
    return str(row.settlement_card_id)


# ---------------------------------------------------------------- profile
def merchant_user(conn: Connection, merchant_id: str) -> User:
    """The merchant user, or 404 (a personal or ops user is not a merchant)."""
    row = identity_store.user_row(conn, user_id=merchant_id)
    if row is None or row.kind != UserKind.MERCHANT:
        raise NotFound(f"no merchant {merchant_id[:40]}")
    return identity_store.as_user(row)


def _profile(p: Platform, user: User, row: Any | None) -> MerchantProfile:
    overrides = _overrides(row)
    delay = row.settlement_delay_days if row is not None else None
    return MerchantProfile(
        merchant_id=user.id,
        display_name=(row.display_name if row is not None and row.display_name else user.name) or user.email,
        fee_plan=overrides.over(default_fee_plan(p)),
        fee_plan_is_default=overrides == FeeOverrides(),
        settlement_card_id=row.settlement_card_id if row is not None else None,
        settlement_delay_days=p.settings.merchant_settlement_delay_days if delay is None else int(delay),
        created_at=row.created_at if row is not None else None,
        updated_at=row.updated_at if row is not None else None,
    )


def get_profile(p: Platform, conn: Connection, merchant_id: str) -> MerchantProfile:
    user = merchant_user(conn, merchant_id)
    return _profile(p, user, store.profile_row(conn, merchant_id))


def ensure_profile(p: Platform, conn: Connection, merchant_id: str) -> MerchantProfile:
    """The merchant's profile row, created with the defaults if it is missing (idempotent)."""
    user = merchant_user(conn, merchant_id)
    store.ensure_profile(conn, merchant_id, display_name=user.name, now=p.clock.now())
    return get_profile(p, conn, merchant_id)


def update_profile(p: Platform, conn: Connection, merchant_id: str, *, origin: Origin,
                   display_name: str | None = None, settlement_card_id: str | None = _UNSET,
                   settlement_delay_days: int | None = _UNSET) -> MerchantProfile:
    """What the merchant may change. ``settlement_card_id=None`` clears the card,
    ``settlement_delay_days=None`` goes back to the operator's default."""
    user = merchant_user(conn, merchant_id)
    values: dict[str, Any] = {}
    if display_name is not None:
        values["display_name"] = model.check_display_name(display_name)
    if settlement_card_id is not _UNSET:
        if settlement_card_id is not None:
            # 404 for another user's card, 409 for an unbound one.
            settlement_card_id = str(cards.active_card(conn, merchant_id, settlement_card_id)["id"])
        values["settlement_card_id"] = settlement_card_id
    if settlement_delay_days is not _UNSET:
        values["settlement_delay_days"] = (None if settlement_delay_days is None
                                           else model.check_settlement_delay(settlement_delay_days))
    now = p.clock.now()
    store.ensure_profile(conn, merchant_id, display_name=user.name, now=now)
    if values:
        store.update_profile(conn, merchant_id, now, **values)
        audit.record(conn, event="merchant.profile.updated", outcome=Outcome.SUCCESS, user_id=merchant_id,
                     origin=origin, now=now, resource=",".join(sorted(values)))
    return get_profile(p, conn, merchant_id)


def set_fee_plan(p: Platform, conn: Connection, merchant_id: str, *, actor: User, origin: Origin,
                 overrides: FeeOverrides) -> MerchantProfile:
    """Ops only (anyone else gets the 404 an unknown merchant gets)."""
    if actor.kind is not UserKind.OPS:
        raise NotFound(f"no merchant {merchant_id[:40]}")
    user = merchant_user(conn, merchant_id)
    for name, amount in (("fixed", overrides.fixed), ("minimum", overrides.minimum)):
        if amount is not None and not 0 <= amount <= p.settings.max_amount:
            raise InvalidRequest(f"{name} must be a non-negative amount in minor units", param=name)
    now = p.clock.now()
    store.ensure_profile(conn, merchant_id, display_name=user.name, now=now)
    store.update_profile(
        conn, merchant_id, now,
        fee_bank_rate=None if overrides.bank_rate is None else model.rate_text(overrides.bank_rate),
        fee_margin=None if overrides.margin is None else model.rate_text(overrides.margin),
        fee_fixed=overrides.fixed, fee_minimum=overrides.minimum,
    )
    # Logged on the merchant's trail too: a fee change is something they must be able to see.
    for who in (actor.id, merchant_id):
        audit.record(conn, event="merchant.fee_plan.set", outcome=Outcome.SUCCESS, user_id=who, origin=origin,
                     now=now, resource=merchant_id)
    return get_profile(p, conn, merchant_id)


# ---------------------------------------------------------------- API keys
def key_mode(p: Platform) -> KeyMode:
    # A server whose clock tests may move is no production system: its keys say so.
    return KeyMode.TEST if p.settings.test_clock else KeyMode.LIVE


def create_key(p: Platform, conn: Connection, merchant_id: str, *, label: str = "",
               origin: Origin) -> tuple[ApiKey, str]:
    """A new key and its secret; the secret exists only in this return value."""
    merchant_user(conn, merchant_id)
    label = model.check_label(label)
    if store.count_active_keys(conn, merchant_id) >= model.MAX_ACTIVE_KEYS:
        raise InvalidRequest(f"at most {model.MAX_ACTIVE_KEYS} active keys; revoke one first",
                             code="too_many_keys")
    now = p.clock.now()
    secret = model.new_secret(key_mode(p))
    key = store.insert_key(conn, key_id=new_id("key", now), merchant_id=merchant_id,
                           prefix=model.display_prefix(secret), secret_hash=model.secret_hash(secret),
                           label=label, now=now)
    audit.record(conn, event="merchant.api_key.created", outcome=Outcome.SUCCESS, user_id=merchant_id,
                 origin=origin, now=now, resource=key.id)
    return key, secret


def list_keys(conn: Connection, merchant_id: str, *, limit: int = 20, starting_after: str | None = None,
              include_revoked: bool = False) -> tuple[list[ApiKey], bool]:
    return store.list_keys(conn, merchant_id, limit=limit, starting_after=starting_after,
                           include_revoked=include_revoked)


def get_key(conn: Connection, merchant_id: str, key_id: str) -> ApiKey:
    return store.get_key(conn, merchant_id, key_id)


def revoke_key(p: Platform, conn: Connection, merchant_id: str, key_id: str, *, origin: Origin) -> ApiKey:
    """Stops working at once. Revoking a revoked key changes nothing and returns it as it is."""
    key = store.get_key(conn, merchant_id, key_id, for_update=True)
    if not key.active:
        return key
    now = p.clock.now()
    store.revoke_key(conn, key_id, now)
    audit.record(conn, event="merchant.api_key.revoked", outcome=Outcome.SUCCESS, user_id=merchant_id,
                 origin=origin, now=now, resource=key_id)
    return store.get_key(conn, merchant_id, key_id)
