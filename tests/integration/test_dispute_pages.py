"""The dispute pages over the app (cookie sessions, CSRF), on both engines: the buyer
opens a dispute with words and a file, the merchant adds evidence, ops rules from
the queue; files refused by type and size; who may see which page."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from tests.integration.identity_support import PASSWORD
from tests.integration.trade_support import AMOUNT, TradeEnv, Wallet, make_trade_env

from trustpay.identity.service import create_ops_user
from trustpay.trades import disputes
from trustpay.web.auth import SESSION_COOKIE

CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')
PNG = b"\x89PNG\r\n\x1a\n" + b"\0" * 200


@pytest.fixture
def t(db_url: str, tmp_path: Path) -> Iterator[TradeEnv]:
    yield from make_trade_env(db_url, tmp_path, dispute_evidence_max_bytes=1024)


def browser(t: TradeEnv, who: Wallet) -> TestClient:
    client = TestClient(t.env.app)
    client.cookies.set(SESSION_COOKIE, who.token)
    return client


def csrf(client: TestClient, url: str) -> str:
    r = client.get(url)
    assert r.status_code == 200, r.text
    return str(CSRF.findall(r.text)[0])


def test_buyer_opens_merchant_answers_ops_splits(t: TradeEnv) -> None:
    shop, buyer = t.merchant(), t.user("buyer@example.com", fund=AMOUNT)
    tid = str(t.create(shop, "order-1")["id"])
    t.pay(buyer, tid)
    t.ship(shop, tid)
    me, merchant = browser(t, buyer), browser(t, shop)
    url = f"/trades/{tid}/dispute"
    assert f'href="{url}"' in me.get("/purchases").text
    assert f'href="{url}"' in merchant.get(f"/merchant/trades/{tid}").text
    assert 'data-testid="dispute-form"' in me.get(url, params={"lang": "en"}).text
    token = csrf(me, url)
    bad = me.post(url, data={"csrf_token": token, "reason": "Broken"},
                  files={"file": ("x.exe", b"MZ\x90\x00" + b"\0" * 50, "image/png")})
    assert bad.status_code == 400 and "Only PNG, JPEG, PDF" in bad.text
    assert t.trade(tid, buyer)["dispute_status"] == "none"  # refused before anything opened
    big = me.post(url, data={"csrf_token": token, "reason": "Broken"}, files={"file": ("x.png", PNG * 6, "image/png")})
    assert big.status_code == 400 and "too large" in big.text
    r = me.post(url, data={"csrf_token": token, "reason": "Arrived broken", "text": "The lid is cracked"},
                files={"file": ("lid.png", PNG, "image/png")}, follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"] == f"{url}?notice=opened"
    page = me.get(url, params={"lang": "en"})
    assert 'data-testid="dispute" data-status="open"' in page.text and "lid.png" in page.text
    evidence = re.findall(r'href="(/disputes/[^"]+/evidence/[^"]+)"', page.text)[0]
    assert merchant.get(evidence).content == PNG

    r = merchant.post(f"{url}/evidence", data={"csrf_token": csrf(merchant, url), "text": "Packed with care"},
                      follow_redirects=False)
    assert r.headers["location"] == f"{url}?notice=added"
    stranger = browser(t, t.user("nosy@example.com"))
    assert stranger.get(url).status_code == 404
    assert stranger.get(evidence).status_code == 404
    assert stranger.get("/ops/disputes").status_code == 404

    t.platform.db.run(lambda conn: create_ops_user(t.platform, conn, email="ops@example.com", password=PASSWORD))
    ops = TestClient(t.env.app)
    ops.cookies.set(SESSION_COOKIE, t.env.token("ops@example.com"))
    queue = ops.get("/ops/disputes", params={"lang": "en"})
    assert 'data-testid="dispute"' in queue.text and "Packed with care" in queue.text
    did = re.findall(r'data-testid="dispute" data-id="([^"]+)"', queue.text)[0]
    token = CSRF.findall(queue.text)[0]
    wrong = ops.post(f"/ops/disputes/{did}/resolve",
                     data={"csrf_token": token, "buyer_amount": "30.00", "seller_amount": "60.00", "note": "Half"})
    assert wrong.status_code == 400 and "add up to the disputed amount" in wrong.text
    r = ops.post(f"/ops/disputes/{did}/resolve", data={"csrf_token": token, "buyer_amount": "40.00",
                                                        "seller_amount": "60.00", "note": "Lid only"},
                 follow_redirects=False)
    assert r.status_code == 303, r.text
    assert t.money(buyer, shop) == {"buyer": 4_000, "merchant_pending": 5_964, "fee_revenue": 36, "escrow": 0}
    done = me.get(url, params={"lang": "en"})
    assert 'data-testid="dispute" data-status="resolved"' in done.text and "Lid only" in done.text
    t.ledger_ok()


def ops_browser(t: TradeEnv) -> TestClient:
    t.platform.db.run(lambda conn: create_ops_user(t.platform, conn, email="ops@example.com", password=PASSWORD))
    ops = TestClient(t.env.app)
    ops.cookies.set(SESSION_COOKIE, t.env.token("ops@example.com"))
    return ops


def card(html: str, dispute_id: str) -> str:
    """One dispute's card of the ops queue: from its <li> to the next dispute's."""
    start = html.index(f'data-testid="dispute" data-id="{dispute_id}"')
    end = html.find('data-testid="dispute" data-id=', start + 1)
    return html[start:end if end != -1 else len(html)]


def test_ops_rules_all_to_one_side_and_a_refused_ruling_stays_in_its_card(t: TradeEnv) -> None:
    shop, buyer = t.merchant(), t.user("buyer@example.com", fund=8_850 + 5_000)
    p, tids = t.platform, []
    for number, amount in (("order-1", 8_850), ("order-2", 5_000)):
        tid = str(t.create(shop, number, amount=amount)["id"])
        t.pay(buyer, tid)
        t.ship(shop, tid)
        p.db.run(lambda conn, tid=tid: disputes.open_dispute(p, conn, tid, buyer.id, reason="Never arrived"))
        tids.append(tid)
    ops = ops_browser(t)
    queue = ops.get("/ops/disputes", params={"lang": "en"})
    did = {tid: re.findall(rf'data-id="([^"]+)"[^>]*>\s*<h2>Tea set · CN¥{money}', queue.text)[0]
           for tid, money in zip(tids, ("88.50", "50.00"), strict=True)}
    token = CSRF.findall(queue.text)[0]
    first, second = did[tids[0]], did[tids[1]]

    bad = ops.post(f"/ops/disputes/{first}/resolve", params={"lang": "en"}, data={
        "csrf_token": token, "buyer_amount": "88.50", "seller_amount": "-1", "note": "Never delivered"})
    assert bad.status_code == 400
    mine, other = card(bad.text, first), card(bad.text, second)
    assert 'data-testid="alert-error"' in mine and "or 0 when that side gets nothing" in mine
    assert 'data-testid="alert-error"' not in other and 'data-testid="alert-error"' not in bad.text[
        :bad.text.index('data-testid="disputes"')]  # not on top of the page
    # What was typed is still there, in that card only, ready to correct.
    assert 'value="88.50"' in mine and 'value="-1"' in mine and 'value="Never delivered"' in mine
    assert 'value="88.50"' not in other
    for amount in ("1e3", "12.345", "abc"):
        refused = ops.post(f"/ops/disputes/{first}/resolve", data={
            "csrf_token": token, "buyer_amount": amount, "seller_amount": "0", "note": "x"})
        assert refused.status_code == 400, amount

    # All to the buyer (0 to the merchant), and all to the merchant (0 to the buyer).
    r = ops.post(f"/ops/disputes/{first}/resolve", data={
        "csrf_token": token, "buyer_amount": "88.50", "seller_amount": "0", "note": "Never delivered"},
        follow_redirects=False)
    assert r.status_code == 303, r.text
    r = ops.post(f"/ops/disputes/{second}/resolve", data={
        "csrf_token": token, "buyer_amount": "0.00", "seller_amount": "50", "note": "Tracking shows delivery"},
        follow_redirects=False)
    assert r.status_code == 303, r.text
    assert t.trade(tids[0], buyer)["status"] == "TRADE_CLOSED"
    assert t.trade(tids[1], buyer)["status"] == "TRADE_FINISHED"
    assert t.money(buyer, shop) == {"buyer": 8_850, "merchant_pending": 5_000 - 30, "fee_revenue": 30, "escrow": 0}
    t.ledger_ok()


def test_an_empty_evidence_form_and_a_blank_note_name_their_own_fields(t: TradeEnv) -> None:
    shop, buyer = t.merchant(), t.user("buyer@example.com", fund=AMOUNT)
    tid = str(t.create(shop, "order-1")["id"])
    t.pay(buyer, tid)
    p = t.platform
    p.db.run(lambda conn: disputes.open_dispute(p, conn, tid, buyer.id, reason="Never shipped"))
    me, url = browser(t, buyer), f"/trades/{tid}/dispute"
    empty = me.post(f"{url}/evidence", params={"lang": "en"}, data={"csrf_token": csrf(me, url), "text": "  "})
    assert empty.status_code == 400 and "Write what happened or choose a file" in empty.text
    assert "reason" not in empty.text.split('data-testid="alert-error"', 1)[1].split("</p>", 1)[0]

    ops = ops_browser(t)
    queue = ops.get("/ops/disputes")
    did = re.findall(r'data-testid="dispute" data-id="([^"]+)"', queue.text)[0]
    blank = ops.post(f"/ops/disputes/{did}/resolve", params={"lang": "en"}, data={
        "csrf_token": CSRF.findall(queue.text)[0], "buyer_amount": "100.00", "seller_amount": "0", "note": " "})
    assert blank.status_code == 400
    assert "Write the note: it is sent to the buyer and the merchant" in card(blank.text, did)
    assert "one line for the reason" not in blank.text
    assert t.trade(tid, buyer)["dispute_status"] == "open"


def test_a_refused_file_keeps_what_was_typed(t: TradeEnv) -> None:
    shop, buyer = t.merchant(), t.user("buyer@example.com", fund=AMOUNT)
    tid = str(t.create(shop, "order-1")["id"])
    t.pay(buyer, tid)
    me, url = browser(t, buyer), f"/trades/{tid}/dispute"
    exe = ("setup.exe", b"MZ\x90\x00" + b"\0" * 50, "image/png")
    bad = me.post(url, data={"csrf_token": csrf(me, url), "reason": 'Not the "tea set" I ordered',
                             "text": "Box held a toaster\nPhoto to follow"}, files={"file": exe})
    assert bad.status_code == 400 and 'data-testid="dispute-form"' in bad.text
    assert 'value="Not the &#34;tea set&#34; I ordered"' in bad.text  # escaped, as typed
    assert ">Box held a toaster\nPhoto to follow</textarea>" in bad.text
    assert t.trade(tid, buyer)["dispute_status"] == "none"

    p = t.platform
    p.db.run(lambda conn: disputes.open_dispute(p, conn, tid, buyer.id, reason="Not what I ordered"))
    again = me.post(f"{url}/evidence", data={"csrf_token": csrf(me, url), "text": "Here is the toaster"},
                    files={"file": exe})
    assert again.status_code == 400 and 'data-testid="evidence-form"' in again.text
    assert ">Here is the toaster</textarea>" in again.text
    assert "Here is the toaster" not in me.get(url).text  # nothing was added
