"""Collection codes (收款码) and donation pages (网上募捐) over HTTP on both engines:
create/list/get/disable, paying (an instant trade through the checkout's money path),
amount bounds, fixed amounts, disabled codes, exact donation totals after a refund."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from tests.integration.identity_support import bearer
from tests.integration.refund_support import RefundEnv, make_refund_env
from tests.integration.wallet_support import PAY_PW

from trustpay.ledger.model import AccountKind
from trustpay.wallet.common import PLATFORM_OWNER


@pytest.fixture
def t(db_url: str, tmp_path: Path) -> Iterator[RefundEnv]:
    yield from make_refund_env(db_url, tmp_path)


def post(t: RefundEnv, path: str, who: dict[str, str], body: Any = None, key: str | None = None) -> httpx.Response:
    headers = dict(who)
    if key:
        headers["Idempotency-Key"] = key
    r: httpx.Response = t.client.post(path, json=body, headers=headers)
    return r


def error(r: httpx.Response) -> tuple[int, str, str | None]:
    return r.status_code, r.json()["error"]["code"], r.json()["error"].get("param")


def test_code_lifecycle_and_payment_goes_through_the_checkout_money_path(t: RefundEnv) -> None:
    shop, payer = t.merchant(), t.user("payer@example.com", fund=50_000)
    r = post(t, "/v1/merchant/collection-codes", shop.auth, {"label": "Noodle stall", "currency": "cny"})
    assert r.status_code == 201, r.text
    code = r.json()
    assert code["id"].startswith("qrc_")
    assert {k: code[k] for k in ("object", "label", "currency", "amount", "status", "url", "qr_code_url")} == {
        "object": "collection_code", "label": "Noodle stall", "currency": "CNY", "amount": None,
        "status": "active", "url": f"/pay/{code['id']}", "qr_code_url": f"/pay/{code['id']}/qr.svg"}
    listed = t.client.get("/v1/merchant/collection-codes", headers=shop.auth).json()["data"]
    assert [c["id"] for c in listed] == [code["id"]]

    paid = post(t, f"/v1/collection-codes/{code['id']}/pay", payer.auth,
                {"amount": 10_000, "payment_password": PAY_PW, "note": "Table 4"}, key="pay-1")
    assert paid.status_code == 201, paid.text
    body = paid.json()
    trade = body["trade"]
    assert (body["source"], body["note"]) == (code["id"], "Table 4")
    assert (trade["mode"], trade["status"], trade["amount"], trade["fee"], trade["subject"], trade["buyer"]) == (
        "instant", "TRADE_SUCCESS", 10_000, 60, "Noodle stall", payer.id)
    assert trade["out_trade_no"].startswith(code["id"] + ".")
    again = post(t, f"/v1/collection-codes/{code['id']}/pay", payer.auth,
                 {"amount": 10_000, "payment_password": PAY_PW, "note": "Table 4"}, key="pay-1")
    assert again.content == paid.content  # the Idempotency-Key replays; nothing is paid twice
    assert t.money(payer, shop) == {"buyer": 40_000, "merchant_pending": 9_940, "fee_revenue": 60, "escrow": 0}
    assert [e[0] for e in t.events(trade["id"])] == ["trade.paid"]
    assert t.account(PLATFORM_OWNER, AccountKind.ESCROW) == 0

    r = post(t, f"/v1/merchant/collection-codes/{code['id']}/disable", shop.auth)
    assert (r.status_code, r.json()["status"]) == (200, "disabled")
    refused = post(t, f"/v1/collection-codes/{code['id']}/pay", payer.auth,
                   {"amount": 100, "payment_password": PAY_PW})
    assert error(refused)[:2] == (409, "invalid_state")
    assert "disabled" in refused.json()["error"]["message"]
    assert t.money(payer, shop)["buyer"] == 40_000


def test_amount_bounds_fixed_amounts_and_bad_notes(t: RefundEnv) -> None:
    shop, payer = t.merchant(), t.user("payer@example.com", fund=50_000)
    free = post(t, "/v1/merchant/collection-codes", shop.auth, {"label": "Tips"}).json()["id"]
    fixed = post(t, "/v1/merchant/collection-codes", shop.auth, {"label": "Ticket", "amount": 2_500}).json()["id"]
    for amount in (0, -1, "12", 1.5, None, t.platform.settings.max_amount + 1):
        r = post(t, f"/v1/collection-codes/{free}/pay", payer.auth, {"amount": amount, "payment_password": PAY_PW})
        assert error(r)[0] == 400 and error(r)[2] == "amount", (amount, r.text)
    wrong = post(t, f"/v1/collection-codes/{fixed}/pay", payer.auth, {"amount": 2_000, "payment_password": PAY_PW})
    assert error(wrong) == (400, "invalid_request", "amount")
    long_note = post(t, f"/v1/collection-codes/{free}/pay", payer.auth,
                     {"amount": 100, "payment_password": PAY_PW, "note": "x" * 201})
    assert error(long_note)[0] == 400 and error(long_note)[2] == "note"
    assert t.money(payer, shop)["buyer"] == 50_000  # nothing was paid by any refused attempt
    ok = post(t, f"/v1/collection-codes/{fixed}/pay", payer.auth, {"payment_password": PAY_PW})
    assert ok.status_code == 201 and ok.json()["trade"]["amount"] == 2_500
    bad_pw = post(t, f"/v1/collection-codes/{free}/pay", payer.auth, {"amount": 100, "payment_password": "000000"})
    assert bad_pw.status_code == 402
    own = post(t, f"/v1/collection-codes/{free}/pay", shop.auth, {"amount": 100, "payment_password": PAY_PW})
    assert error(own)[0] == 400
    bad = post(t, "/v1/merchant/collection-codes", shop.auth, {"label": "a\nb"})
    assert error(bad) == (400, "invalid_request", "label")
    assert error(post(t, "/v1/merchant/collection-codes", shop.auth, {"label": "x", "amount": 0}))[2] == "amount"


def test_merchant_routes_are_for_the_owner_and_merchants_only(t: RefundEnv) -> None:
    shop, other = t.merchant(), t.merchant("other@example.com")
    payer = t.user("payer@example.com")
    code = post(t, "/v1/merchant/collection-codes", shop.auth, {"label": "Shop"}).json()["id"]
    assert t.client.get(f"/v1/merchant/collection-codes/{code}", headers=other.auth).status_code == 404
    assert post(t, f"/v1/merchant/collection-codes/{code}/disable", other.auth).status_code == 404
    assert t.client.get("/v1/merchant/collection-codes", headers=other.auth).json()["data"] == []
    assert post(t, "/v1/merchant/collection-codes", payer.auth, {"label": "x"}).status_code == 403
    r = post(t, "/v1/merchant/api-keys", shop.auth, {"label": "backend"})
    key = bearer(r.json()["secret"])
    assert t.client.get(f"/v1/merchant/collection-codes/{code}", headers=key).status_code == 200
    assert post(t, f"/v1/collection-codes/{code}/pay", key, {"amount": 1, "payment_password": PAY_PW}
                ).status_code == 401  # a secret key never spends
    missing = post(t, "/v1/collection-codes/qrc_00000000000000000000000000/pay", payer.auth,
                   {"amount": 1, "payment_password": PAY_PW})
    assert error(missing)[:2] == (404, "not_found")


def test_donation_total_is_exact_after_a_refund_and_messages_are_kept(t: RefundEnv) -> None:
    charity = t.merchant("charity@example.com")
    alice, bob = t.user("alice@example.com", fund=50_000), t.user("bob@example.com", fund=50_000)
    r = post(t, "/v1/merchant/donation-pages", charity.auth, {
        "title": "Clean water for Yunnan", "story": "Wells for three villages.\nEvery yuan counts.",
        "goal": 1_000_000, "suggested_amounts": [5_000, 1_000, 1_000, 10_000]})
    assert r.status_code == 201, r.text
    page = r.json()
    assert page["id"].startswith("don_")
    assert (page["suggested_amounts"], page["raised"], page["donations"], page["public"]) == (
        [1_000, 5_000, 10_000], 0, 0, True)
    d1 = post(t, f"/v1/donation-pages/{page['id']}/donate", alice.auth,
              {"amount": 5_000, "payment_password": PAY_PW, "note": "<script>alert(1)</script>"})
    d2 = post(t, f"/v1/donation-pages/{page['id']}/donate", bob.auth,
              {"amount": 3_000, "payment_password": PAY_PW, "anonymous": True})
    assert d1.status_code == d2.status_code == 201, (d1.text, d2.text)
    got = t.client.get(f"/v1/merchant/donation-pages/{page['id']}", headers=charity.auth).json()
    assert (got["raised"], got["donations"]) == (8_000, 2)

    t.refund(charity, d1.json()["trade"]["id"], 2_000)
    got = t.client.get(f"/v1/merchant/donation-pages/{page['id']}", headers=charity.auth).json()
    assert (got["raised"], got["donations"]) == (6_000, 2)
    t.refund(charity, d2.json()["trade"]["id"], 3_000, out_refund_no="rf-2")  # wholly refunded: not counted
    got = t.client.get(f"/v1/merchant/donation-pages/{page['id']}", headers=charity.auth).json()
    assert (got["raised"], got["donations"]) == (3_000, 1)

    assert post(t, f"/v1/merchant/donation-pages/{page['id']}/disable", charity.auth).json()["status"] == "disabled"
    late = post(t, f"/v1/donation-pages/{page['id']}/donate", bob.auth, {"amount": 100, "payment_password": PAY_PW})
    assert error(late)[:2] == (409, "invalid_state")
    bad = post(t, "/v1/merchant/donation-pages", charity.auth,
               {"title": "x", "story": "y", "suggested_amounts": [1, 2, 3, 4, 5, 6, 7]})
    assert bad.status_code == 400
