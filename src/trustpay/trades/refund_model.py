"""Pure refund domain: a refund's statuses, who may move it where, how much may
still go back, and how much of the fee goes back with it. No I/O here.

A refund is an object of its own beside its trade (kept out of
:mod:`trustpay.trades.model` so the trade table stays the trade's):

* merchant-issued: created ``REFUND_SUCCESS`` (the money moves at once), from
  any paid status before ``TRADE_FINISHED``;
* buyer-requested (escrow only): ``WAIT_SELLER_AGREE`` → the merchant approves
  (money moves) or rejects; once the goods were shipped the merchant may
  approve on condition they come back: ``WAIT_BUYER_RETURN_GOODS`` → the buyer
  ships them back → ``WAIT_SELLER_CONFIRM_GOODS`` → the merchant confirms
  receipt (money moves) or refuses it. Every waiting status has a deadline run
  by a job: an unanswered request is approved, an unshipped return closes the
  request, unconfirmed returned goods are refunded (the platform sides with
  whoever did their part in time).

Where the money comes from (one ledger entry per refund):

* escrow trade: escrow → buyer wallet (the fee was never charged: the trade's
  finish charges ``fee_due`` on what is left);
* instant ``TRADE_SUCCESS``: merchant pending settlement (amount − fee share)
  and fee revenue (the fee share) → buyer wallet, see :func:`fee_reversal`.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from trustpay.errors import Conflict, InvalidRequest, NotFound
from trustpay.trades.model import TradeStatus, fee_due


class RefundStatus(StrEnum):
    WAIT_SELLER_AGREE = "WAIT_SELLER_AGREE"  # a buyer asked; the merchant has not answered
    WAIT_BUYER_RETURN_GOODS = "WAIT_BUYER_RETURN_GOODS"  # approved once the goods come back
    WAIT_SELLER_CONFIRM_GOODS = "WAIT_SELLER_CONFIRM_GOODS"  # shipped back; the merchant checks them
    REFUND_SUCCESS = "REFUND_SUCCESS"  # the money is back in the buyer's wallet
    REFUND_CLOSED = "REFUND_CLOSED"  # nothing was refunded (see close_reason)


class RefundAction(StrEnum):
    APPROVE = "approve"
    APPROVE_WITH_RETURN = "approve_with_return"
    REJECT = "reject"
    CANCEL = "cancel"  # the buyer withdraws the request
    RETURN_GOODS = "return_goods"  # the buyer ships the goods back
    CONFIRM_GOODS = "confirm_goods"  # the merchant received them
    REFUSE_GOODS = "refuse_goods"  # the merchant did not get them back as sent (the buyer may dispute)
    # The deadlines, run by jobs on the platform clock.
    AGREE_TIMEOUT = "agree_timeout"
    RETURN_TIMEOUT = "return_timeout"
    CONFIRM_GOODS_TIMEOUT = "confirm_goods_timeout"


class RefundParty(StrEnum):
    BUYER = "buyer"
    MERCHANT = "merchant"
    SYSTEM = "system"


class RefundCloseReason(StrEnum):
    SELLER_REJECTED = "seller_rejected"
    SELLER_REFUSED_GOODS = "seller_refused_goods"
    BUYER_CANCELLED = "buyer_cancelled"
    RETURN_TIMEOUT = "return_timeout"
    TRADE_CLOSED = "trade_closed"  # the trade ended another way (e.g. its ship deadline refunded it all)
    DISPUTED = "disputed"  # a dispute about the trade took the decision over


@dataclass(frozen=True, slots=True)
class RefundEdge:
    party: RefundParty
    next: RefundStatus
    close_reason: RefundCloseReason | None = None


R, RA, RP, CR = RefundStatus, RefundAction, RefundParty, RefundCloseReason

# The whole machine of a buyer's request. Anything not listed is refused: a party
# that never does the action gets 404, one that may but not from here 409 invalid_state.
REFUND_TRANSITIONS: dict[tuple[RefundStatus, RefundAction], RefundEdge] = {
    (R.WAIT_SELLER_AGREE, RA.APPROVE): RefundEdge(RP.MERCHANT, R.REFUND_SUCCESS),
    (R.WAIT_SELLER_AGREE, RA.APPROVE_WITH_RETURN): RefundEdge(RP.MERCHANT, R.WAIT_BUYER_RETURN_GOODS),
    (R.WAIT_SELLER_AGREE, RA.REJECT): RefundEdge(RP.MERCHANT, R.REFUND_CLOSED, CR.SELLER_REJECTED),
    (R.WAIT_SELLER_AGREE, RA.CANCEL): RefundEdge(RP.BUYER, R.REFUND_CLOSED, CR.BUYER_CANCELLED),
    (R.WAIT_SELLER_AGREE, RA.AGREE_TIMEOUT): RefundEdge(RP.SYSTEM, R.REFUND_SUCCESS),
    (R.WAIT_BUYER_RETURN_GOODS, RA.RETURN_GOODS): RefundEdge(RP.BUYER, R.WAIT_SELLER_CONFIRM_GOODS),
    (R.WAIT_BUYER_RETURN_GOODS, RA.CANCEL): RefundEdge(RP.BUYER, R.REFUND_CLOSED, CR.BUYER_CANCELLED),
    (R.WAIT_BUYER_RETURN_GOODS, RA.RETURN_TIMEOUT): RefundEdge(RP.SYSTEM, R.REFUND_CLOSED, CR.RETURN_TIMEOUT),
    (R.WAIT_SELLER_CONFIRM_GOODS, RA.CONFIRM_GOODS): RefundEdge(RP.MERCHANT, R.REFUND_SUCCESS),
    (R.WAIT_SELLER_CONFIRM_GOODS, RA.REFUSE_GOODS): RefundEdge(RP.MERCHANT, R.REFUND_CLOSED,
                                                              CR.SELLER_REFUSED_GOODS),
    (R.WAIT_SELLER_CONFIRM_GOODS, RA.CONFIRM_GOODS_TIMEOUT): RefundEdge(RP.SYSTEM, R.REFUND_SUCCESS),
}

OPEN_STATUSES = frozenset({R.WAIT_SELLER_AGREE, R.WAIT_BUYER_RETURN_GOODS, R.WAIT_SELLER_CONFIRM_GOODS})

# Which deadline runs while a request waits in each status.
TIMEOUT_OF = {R.WAIT_SELLER_AGREE: RA.AGREE_TIMEOUT, R.WAIT_BUYER_RETURN_GOODS: RA.RETURN_TIMEOUT,
              R.WAIT_SELLER_CONFIRM_GOODS: RA.CONFIRM_GOODS_TIMEOUT}

# Trade statuses a merchant may refund from: paid and not yet finished.
MERCHANT_REFUNDABLE = frozenset({TradeStatus.WAIT_SELLER_SEND_GOODS, TradeStatus.WAIT_BUYER_CONFIRM_GOODS,
                                 TradeStatus.TRADE_SUCCESS})
# A buyer may ask while the money is still in escrow.
BUYER_REQUESTABLE = frozenset({TradeStatus.WAIT_SELLER_SEND_GOODS, TradeStatus.WAIT_BUYER_CONFIRM_GOODS})


def refund_parties_for(action: RefundAction) -> frozenset[RefundParty]:
    return frozenset(e.party for (_, a), e in REFUND_TRANSITIONS.items() if a is action)


def refund_not_found(refund_id: str) -> NotFound:
    return NotFound(f"no refund {refund_id[:40]}")


def refund_transition(refund_id: str, status: RefundStatus, action: RefundAction,
                      party: RefundParty) -> RefundEdge:
    """Where ``action`` by ``party`` takes the refund; raises if it is not allowed."""
    if party not in refund_parties_for(action):
        raise refund_not_found(refund_id)
    edge = REFUND_TRANSITIONS.get((status, action))
    if edge is None or edge.party is not party:
        raise Conflict(f"cannot {action.value.replace('_', ' ')}: the refund is {status.value}",
                       code="invalid_state")
    return edge


# ------------------------------------------------------------------ amounts
def refundable_left(amount: int, refunded: int, reserved: int) -> int:
    """What may still be asked back: paid − already refunded − what open requests claim."""
    return max(0, amount - refunded - reserved)


def check_refund_amount(requested: int, left: int) -> None:
    if requested > left:
        raise InvalidRequest(f"only {left} (minor units) of this trade can still be refunded",
                             code="refund_exceeds_paid", param="amount")


def fee_reversal(fee: int, amount: int, refunded_before: int, refund: int) -> int:
    """The part of an instant trade's fee a refund of ``refund`` gives back.

    The fee still charged after each refund is :func:`fee_due` (the fee in
    proportion to what is left, rounded half up), and a refund gives back the
    difference between before and after. So the reversals telescope: their sum
    is ``fee − fee_due(what is left)``, never more than the fee, exactly the
    fee once everything is refunded. The rounding remainder of a partial
    refund (under one minor unit) stays with the platform when it is half a
    unit or more, with the merchant below that — the same rule as the fee itself."""
    return fee_due(fee, amount, refunded_before) - fee_due(fee, amount, refunded_before + refund)
