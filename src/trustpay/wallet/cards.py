"""Bank cards: bind (the bank tokenises; we keep the token and the last four
digits), list, unbind; and the freeze hook that unbinds them all.

The card number exists only in the request body and in the call to the bank's
tokeniser: no row, log line or error message here ever holds it."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from sqlalchemy import Connection

from trustpay.banks.cards import normalize_card_number
from trustpay.banks.registry import connector_for
from trustpay.clock import rfc3339
from trustpay.errors import Conflict, InvalidRequest, PaymentFailed
from trustpay.identity import freeze
from trustpay.identity import store as identity_store
from trustpay.identity.model import User
from trustpay.ids import new_id
from trustpay.wallet import store
from trustpay.wallet.model import CardStatus, invalid_state

if TYPE_CHECKING:
    from trustpay.platform.context import Platform

log = logging.getLogger(__name__)


class AlreadyBound(Conflict):
    """409 ``already_exists``; ``card_id`` is the user's bound card it is, so a page can
    offer that card instead (the API's answer is the same as any conflict's)."""

    code = "already_exists"

    def __init__(self, card_id: str) -> None:
        super().__init__("this card is already bound to your account")
        self.card_id = card_id


def mask_holder(name: str) -> str:
    name = " ".join(name.split())[:64]
    return name[:1] + "*" * min(len(name) - 1, 8) if name else ""


def bind(p: Platform, user_id: str, *, bank: str, card_number: str, holder_name: str) -> Any:
    """Tokenise at the bank (network, no transaction open), then record the card."""
    connector = connector_for(p, bank)
    if not holder_name.strip():
        # Refused here, not sent on: the bank's own "missing field" would come back as
        # bank_rejected, which reads as if the card itself had been refused. A wrong
        # number is still named first, as the bank's client would.
        normalize_card_number(card_number)
        raise InvalidRequest("holder_name is required: the name as printed on the card",
                             code="missing_field", param="holder_name")
    p.db.run(lambda conn: _ensure_not_frozen(conn, user_id), write=False)
    token = connector.tokenize_card(card_number, holder_name)
    del card_number  # nothing below needs it

    def record(conn: Connection) -> Any:
        _ensure_not_frozen(conn, user_id)
        bound = store.active_card_by_token(conn, user_id, bank, token.token)
        if bound is not None:
            raise AlreadyBound(bound["id"])
        now = p.clock.now()
        card_id = new_id("card", now)
        store.insert(conn, store.bank_cards, {
            "id": card_id, "user_id": user_id, "bank": bank, "token": token.token, "last4": token.last4,
            "brand": token.brand, "holder_masked": mask_holder(holder_name), "status": CardStatus.ACTIVE.value,
            "created_at": now, "unbound_at": None,
        })
        return store.get_row(conn, store.bank_cards, card_id)

    return p.db.run(record)


def _ensure_not_frozen(conn: Connection, user_id: str) -> None:
    user = identity_store.get_user(conn, user_id)
    if user.frozen:
        raise PaymentFailed("the account is frozen; unfreeze it before binding a card", code="account_frozen")


def active_card(conn: Connection, user_id: str, card_id: str) -> Any:
    """The user's card for a money movement: 404 if not theirs, 409 if unbound."""
    row = store.get_row(conn, store.bank_cards, card_id, owner_col="user_id", owner_id=user_id)
    if row["status"] != CardStatus.ACTIVE:
        raise invalid_state("card", row["status"], "use it")
    return row


def unbind(p: Platform, conn: Connection, user_id: str, card_id: str) -> Any:
    row = store.get_row(conn, store.bank_cards, card_id, owner_col="user_id", owner_id=user_id, for_update=True)
    if row["status"] != CardStatus.ACTIVE:
        raise invalid_state("card", row["status"], "unbind it")
    store.set_status(conn, store.bank_cards, card_id, from_status=CardStatus.ACTIVE.value,
                     status=CardStatus.UNBOUND.value, unbound_at=p.clock.now())
    return row


def revoke_at_bank(p: Platform, card: Any) -> None:
    """Best effort, after commit: the token is dead on our side either way."""
    try:
        connector_for(p, card["bank"]).revoke_card(card["token"])
    except Exception:  # the bank being down must not undo an unbind the user asked for
        log.warning("could not revoke card %s at %s", card["id"], card["bank"])


def unbind_all_on_freeze(p: Platform, conn: Connection, user: User) -> None:
    """Lost-phone freeze: every card of the user stops working at once."""
    now = p.clock.now()
    for card in store.active_cards(conn, user.id):
        store.set_status(conn, store.bank_cards, card["id"], from_status=CardStatus.ACTIVE.value,
                         status=CardStatus.UNBOUND.value, unbound_at=now)


if unbind_all_on_freeze not in freeze.CARD_UNBIND_HOOKS:
    freeze.CARD_UNBIND_HOOKS.append(unbind_all_on_freeze)


def shape(row: Any) -> dict[str, Any]:
    return {"id": row["id"], "object": "bank_card", "bank": row["bank"], "last4": row["last4"],
            "brand": row["brand"], "holder_name": row["holder_masked"], "status": row["status"],
            "created_at": rfc3339(row["created_at"])}
