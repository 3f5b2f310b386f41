"""What the dispute pages say, on both engines: the ops queue and the parties' dispute
page name the trade's status in words of the reader's language (the same labels the
checkout and the merchant dashboard use, per reader) and show times formatted the
way the other pages do, never a status code or an RFC 3339 string in the text."""

from __future__ import annotations

import html as html_lib
import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from tests.integration.identity_support import PASSWORD
from tests.integration.test_dispute_pages import browser
from tests.integration.trade_support import AMOUNT, TradeEnv, make_trade_env

from trustpay.clock import to_utc
from trustpay.identity.service import create_ops_user
from trustpay.trades import disputes
from trustpay.trades.disputes import EvidenceIn
from trustpay.web.auth import SESSION_COOKIE
from trustpay.web.i18n import format_timestamp, translations

TAG = re.compile(r"<[^>]+>")
RFC3339 = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d")
CODES = re.compile(r"WAIT_[A-Z_]+|TRADE_[A-Z]+")


@pytest.fixture
def t(db_url: str, tmp_path: Path) -> Iterator[TradeEnv]:
    yield from make_trade_env(db_url, tmp_path)


def text_of(html: str) -> str:
    """What a reader sees: the page without its tags and attributes (and without the head)."""
    body = html.split("<body", 1)[1]
    return html_lib.unescape(re.sub(r"[ \t\r\n]+", " ", TAG.sub(" ", body)))


def said(lang: str, message: str) -> str:
    return str(translations(lang).gettext(message))


def test_queue_and_dispute_page_show_labels_and_formatted_times(t: TradeEnv) -> None:
    shop, buyer = t.merchant(), t.user("buyer@example.com", fund=AMOUNT)
    tid = str(t.create(shop, "order-1")["id"])
    t.pay(buyer, tid)
    t.ship(shop, tid)
    t.clock.advance(300)  # the dispute opens later than the order (sessions idle out after 15 min)
    p = t.platform
    dispute = p.db.run(lambda conn: disputes.open_dispute(
        p, conn, tid, buyer.id, reason="Arrived broken", evidence=[EvidenceIn("text", text="The lid is cracked")]))
    opened = to_utc(dispute["created_at"])
    created = to_utc(t.trade(tid, buyer)["created_at"])
    p.db.run(lambda conn: create_ops_user(p, conn, email="ops@example.com", password=PASSWORD))
    ops = TestClient(t.env.app)
    ops.cookies.set(SESSION_COOKIE, t.env.token("ops@example.com"))
    me, merchant = browser(t, buyer), browser(t, shop)
    zone = p.settings.display_timezone

    for lang in ("en", "zh-Hans", "zh-Hant"):
        queue = ops.get("/ops/disputes", params={"lang": lang})
        assert queue.status_code == 200
        seen = text_of(queue.text)
        assert not CODES.search(seen), CODES.search(seen)
        assert not RFC3339.search(seen), RFC3339.search(seen)
        # Ops reads the trade from outside: the neutral wording, in the page's language.
        assert said(lang, "Shipped, awaiting the buyer") in seen
        assert format_timestamp(created, lang, zone) in seen  # the timeline's first step
        assert format_timestamp(opened, lang, zone) in seen
        assert 'data-status="WAIT_BUYER_CONFIRM_GOODS"' in queue.text  # the code stays for machines

        for client, label in ((me, "Shipped: confirm when it arrives"), (merchant, "Shipped, awaiting the buyer")):
            page = client.get(f"/trades/{tid}/dispute", params={"lang": lang})
            assert page.status_code == 200
            seen = text_of(page.text)
            assert not CODES.search(seen) and not RFC3339.search(seen)
            assert said(lang, label) in seen  # each side in its own dashboard's words
            assert format_timestamp(opened, lang, zone) in seen  # when it opened, and the evidence's time
            # Who opened it, as a sentence ("Buyer opened it", never "by the Buyer").
            assert {"en": "Buyer opened it: “Arrived broken”.", "zh-Hans": "由买家发起：“Arrived broken”。",
                    "zh-Hant": "由買家發起：「Arrived broken」。"}[lang] in seen
    # The labels are translated, not the English shown in every language.
    assert said("zh-Hans", "Shipped, awaiting the buyer") != "Shipped, awaiting the buyer"
