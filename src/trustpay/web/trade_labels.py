"""How the pages name a trade's status, by who reads it: its buyer (checkout, my
purchases, the dispute page), its merchant (the dashboard, the dispute page), or
ops, who reads the trade from outside (the dispute queue).

One module, so every page words a status the same way and the catalogs hold one
translation of each wording.
"""

from __future__ import annotations

from trustpay.trades.model import DisputeStatus, Party, TradeStatus
from trustpay.web.account import _

BUYER_STATUS_LABELS = {
    TradeStatus.WAIT_BUYER_PAY: _("Awaiting payment"),
    TradeStatus.WAIT_SELLER_SEND_GOODS: _("Paid, waiting for the merchant to ship"),
    TradeStatus.WAIT_BUYER_CONFIRM_GOODS: _("Shipped: confirm when it arrives"),
    TradeStatus.TRADE_SUCCESS: _("Paid to the merchant"),
    TradeStatus.TRADE_FINISHED: _("Finished"),
    TradeStatus.TRADE_CLOSED: _("Closed"),
}
MERCHANT_STATUS_LABELS = {
    TradeStatus.WAIT_BUYER_PAY: _("Awaiting payment"),
    TradeStatus.WAIT_SELLER_SEND_GOODS: _("Paid: ship it"),
    TradeStatus.WAIT_BUYER_CONFIRM_GOODS: _("Shipped, awaiting the buyer"),
    TradeStatus.TRADE_SUCCESS: _("Paid to you (instant)"),
    TradeStatus.TRADE_FINISHED: _("Finished"),
    TradeStatus.TRADE_CLOSED: _("Closed"),
}
# While a dispute is open nothing ships (the money is frozen until the ruling), so "ship it"
# would send the merchant to a form the service refuses.
MERCHANT_ON_HOLD_LABEL = _("Paid: on hold for the dispute")
# Ops is neither side: for each status, whichever side's wording does not say "you".
OPS_STATUS_LABELS = {
    TradeStatus.WAIT_BUYER_PAY: BUYER_STATUS_LABELS[TradeStatus.WAIT_BUYER_PAY],
    TradeStatus.WAIT_SELLER_SEND_GOODS: BUYER_STATUS_LABELS[TradeStatus.WAIT_SELLER_SEND_GOODS],
    TradeStatus.WAIT_BUYER_CONFIRM_GOODS: MERCHANT_STATUS_LABELS[TradeStatus.WAIT_BUYER_CONFIRM_GOODS],
    TradeStatus.TRADE_SUCCESS: BUYER_STATUS_LABELS[TradeStatus.TRADE_SUCCESS],
    TradeStatus.TRADE_FINISHED: BUYER_STATUS_LABELS[TradeStatus.TRADE_FINISHED],
    TradeStatus.TRADE_CLOSED: BUYER_STATUS_LABELS[TradeStatus.TRADE_CLOSED],
}


def status_label(status: str, reader: Party | None) -> str:
    """The (untranslated) label of ``status`` for the trade's buyer, its merchant, or ops (``None``)."""
    if reader is Party.BUYER:
        return BUYER_STATUS_LABELS[TradeStatus(status)]
    if reader is Party.MERCHANT:
        return MERCHANT_STATUS_LABELS[TradeStatus(status)]
    return OPS_STATUS_LABELS[TradeStatus(status)]


def merchant_status_label(status: str, dispute_status: str) -> str:
    """The (untranslated) label of a trade for its merchant, minding an open dispute."""
    if status == TradeStatus.WAIT_SELLER_SEND_GOODS and dispute_status == DisputeStatus.OPEN:
        return MERCHANT_ON_HOLD_LABEL
    return MERCHANT_STATUS_LABELS[TradeStatus(status)]
