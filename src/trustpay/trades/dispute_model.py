"""Pure dispute rules (买家保障): when a trade may be disputed, where its money is
frozen, and how a ruling splits it. No I/O here.

Either side of a paid trade opens one dispute (a ruling is final: never a second).
What is disputed is what the buyer paid less what was already refunded, and it
is wherever the trade left it:

* escrow, not yet finished (``WAIT_SELLER_SEND_GOODS``, ``WAIT_BUYER_CONFIRM_GOODS``):
  in the escrow account. The trade's own transition table refuses ship, confirm
  and both timeouts while the dispute is open, so it stays there.
* finished escrow (``TRADE_FINISHED``) or instant (``TRADE_SUCCESS``): already in
  the merchant's pending-settlement account (less the fee). Such a trade may be
  disputed only within the protection period after the money reached the
  merchant, and not once a settlement batch has taken it; opening holds the
  merchant's share on that account so no payout can take it meanwhile.

A ruling gives ``buyer_amount`` back and ``seller_amount`` to the merchant, less
the fee in proportion to the seller's share (the trade's fee as if the buyer's
part had been refunded: :func:`~trustpay.trades.model.fee_due`, round half up).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum

from trustpay.errors import Conflict, InvalidRequest
from trustpay.trades.model import DisputeStatus, TradeStatus, fee_due

S = TradeStatus

IN_ESCROW = frozenset({S.WAIT_SELLER_SEND_GOODS, S.WAIT_BUYER_CONFIRM_GOODS})
WITH_MERCHANT = frozenset({S.TRADE_FINISHED, S.TRADE_SUCCESS})
DISPUTABLE = IN_ESCROW | WITH_MERCHANT

REASON_MAX = 1000
TEXT_MAX = 4000
URL_MAX = 2000
NOTE_MAX = 1000
EVIDENCE_MAX = 30  # items per dispute, both sides together


class EvidenceKind(StrEnum):
    TEXT = "text"
    URL = "url"
    FILE = "file"


def check_may_open(status: TradeStatus, dispute_status: DisputeStatus, disputed: int, *,
                   with_merchant_since: datetime | None, now: datetime, protection: timedelta) -> None:
    """Raises 409 ``invalid_state`` unless a dispute may be opened on the trade now.

    ``with_merchant_since``: when the money reached the merchant (finished, or paid
    for instant trades); the protection period runs from then, the boundary included."""
    if dispute_status is not DisputeStatus.NONE:
        raise Conflict("this trade already has a dispute; a trade is disputed once", code="invalid_state")
    if status not in DISPUTABLE:
        raise Conflict(f"cannot open a dispute: the trade is {status.value}", code="invalid_state")
    if disputed <= 0:
        raise Conflict("cannot open a dispute: everything paid was refunded already", code="invalid_state")
    if status in WITH_MERCHANT and (with_merchant_since is None or now > with_merchant_since + protection):
        raise Conflict(f"cannot open a dispute: the {protection.days}-day protection period of this "
                       "trade is over", code="invalid_state")


@dataclass(frozen=True, slots=True)
class Ruling:
    """A checked split of the disputed amount."""

    buyer_amount: int
    seller_amount: int
    seller_fee: int  # charged on the seller's share; the merchant receives seller_amount − seller_fee
    fee_charged_before: int  # what the trade's fee was before the ruling (already taken if finished)

    @property
    def fee_given_back(self) -> int:
        return self.fee_charged_before - self.seller_fee

    @property
    def trade_status(self) -> TradeStatus:
        return S.TRADE_FINISHED if self.seller_amount else S.TRADE_CLOSED


def rule(*, disputed: int, amount: int, fee: int, refunded: int, buyer_amount: object,
         seller_amount: object) -> Ruling:
    """Check a split (whole minor units, not negative, summing to ``disputed``: else
    400 ``invalid_split``) and work out the fee on the seller's share."""
    for name, value in (("buyer_amount", buyer_amount), ("seller_amount", seller_amount)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise InvalidRequest(f"{name} must be a whole number of minor units, 0 or more",
                                 code="invalid_split", param=name)
    assert isinstance(buyer_amount, int) and isinstance(seller_amount, int)
    if buyer_amount + seller_amount != disputed:
        raise InvalidRequest(f"buyer_amount + seller_amount must equal the disputed amount {disputed} "
                             f"(got {buyer_amount + seller_amount})", code="invalid_split", param="buyer_amount")
    if refunded + disputed != amount:
        raise ValueError("the disputed amount is what was paid less what was refunded")
    return Ruling(buyer_amount, seller_amount, fee_due(fee, amount, refunded + buyer_amount),
                  fee_due(fee, amount, refunded))


# ------------------------------------------------------------------ evidence files
PNG, JPEG, PDF, TEXT_PLAIN = "image/png", "image/jpeg", "application/pdf", "text/plain"
ALLOWED_TYPES = (PNG, JPEG, PDF, TEXT_PLAIN)
_TEXT_CONTROLS_OK = frozenset("\t\n\r\f")


def sniff(data: bytes) -> str | None:
    """The file's type from its first bytes (never from the name or the header the
    uploader sent); None when it is none of :data:`ALLOWED_TYPES`."""
    if data.startswith(b"\x89PNG\r\n\x1a\n"):
        return PNG
    if data.startswith(b"\xff\xd8\xff"):
        return JPEG
    if data.startswith(b"%PDF-"):
        return PDF
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        return None
    if any(c < " " and c not in _TEXT_CONTROLS_OK for c in text) or "\x7f" in text:
        return None
    return TEXT_PLAIN


def check_file(data: bytes, *, max_bytes: int) -> str:
    """The sniffed type of an acceptable evidence file; 400 with a clear code otherwise."""
    if not data:
        raise InvalidRequest("the file is empty", code="empty_file", param="file")
    if len(data) > max_bytes:
        raise InvalidRequest(f"the file is larger than {max_bytes // (1024 * 1024) or 1} MB "
                             f"({max_bytes} bytes)", code="file_too_large", param="file")
    kind = sniff(data)
    if kind is None:
        raise InvalidRequest("only PNG, JPEG, PDF and plain-text files are accepted", code="unsupported_file_type",
                             param="file")
    return kind
