"""The wallet pages in headless Chromium on a phone, against the real server: two people
sign up through the pages, A binds the test card and tops up ¥500.00, sends ¥12.34
to B and undoes it inside the window, sends again and lets the window pass (test
clock), then finds the transfer on the statement and verifies its receipt; and a
withdrawal shows its fee before it is confirmed."""

from __future__ import annotations

import json
import re
from pathlib import Path

import httpx
import pytest
from playwright.sync_api import Browser, BrowserContext, Page, ViewportSize, expect

from tests.e2e.conftest import Server

pytestmark = pytest.mark.e2e

MOBILE: ViewportSize = {"width": 390, "height": 844}
PASSWORD = "copper kite 48 meadow"
PAY_PW = "135790"
ALICE = "alice.wallet.e2e@example.com"
BOB = "bob.wallet.e2e@example.com"
TEST_CARD = "4111 1111 1111 1111"
SETTLE_TIMEOUT_MS = 20_000


def phone(browser: Browser, opened: list[BrowserContext]) -> Page:
    ctx = browser.new_context(viewport=MOBILE, locale="en-GB", is_mobile=True, has_touch=True,
                              device_scale_factor=2)
    opened.append(ctx)
    return ctx.new_page()


def last_code(server: Server, to: str) -> str:
    lines = server.notify_file.read_text("utf-8").splitlines() if server.notify_file.exists() else []
    codes = [n["code"] for n in map(json.loads, lines) if n.get("to") == to and n.get("code")]
    assert codes, f"no code was mailed to {to}"
    return str(codes[-1])


def sign_up(page: Page, server: Server, name: str, email: str) -> None:
    """Sign-up, e-mail verification and the payment password, all through the pages."""
    page.goto(server.url("/signup"))
    page.fill("input[name=name]", name)
    page.fill("input[name=email]", email)
    page.fill("input[name=password]", PASSWORD)
    page.click("form.form button[type=submit]")
    expect(page).to_have_url(re.compile(r"/verify$"))
    page.fill("input[name=code]", last_code(server, email))
    page.click("form[action='/verify'] button")
    expect(page).to_have_url(re.compile(r"/security"))
    page.fill("input[name=password]", PASSWORD)
    page.fill("input[name=payment_password]", PAY_PW)
    page.fill("input[name=confirm]", PAY_PW)
    page.click("#payment-password button[type=submit]")
    expect(page.get_by_test_id("payment-status")).to_have_text("Set")


def transfer(page: Page, server: Server, to: str, amount: str, memo: str) -> None:
    page.goto(server.url("/wallet/transfer"))
    page.get_by_test_id("to").fill(to)
    page.get_by_test_id("amount").fill(amount)
    page.get_by_test_id("memo").fill(memo)
    page.get_by_test_id("payment-password").fill(PAY_PW)
    page.get_by_test_id("transfer-submit").click()
    expect(page).to_have_url(re.compile(r"/wallet/transfers/tr_"))


def test_top_up_transfer_undo_statement_and_verified_receipt(
    server: Server, browser: Browser, contexts: list[BrowserContext], screenshots_dir: object,
) -> None:
    shots = Path(str(screenshots_dir))
    bob = phone(browser, contexts)
    sign_up(bob, server, "Bob Chen", BOB)
    alice = phone(browser, contexts)
    sign_up(alice, server, "Alice Wang", ALICE)

    # The header links the wallet once signed in.
    alice.get_by_test_id("wallet-link").click()
    expect(alice).to_have_url(re.compile(r"/wallet$"))
    expect(alice.get_by_role("heading", level=1)).to_have_text("Wallet")
    expect(alice.get_by_test_id("available-CNY")).to_contain_text("0.00")

    # Bind the test card on the wallet home; only the last four digits come back.
    alice.get_by_test_id("card-number").fill(TEST_CARD)
    alice.get_by_test_id("holder-name").fill("Alice Wang")
    alice.get_by_test_id("bind").click()
    expect(alice.get_by_test_id("alert-info")).to_contain_text("The card is bound")
    expect(alice.get_by_test_id("card")).to_contain_text("•••• 1111")
    assert "4111 1111" not in alice.content() and "41111111" not in alice.content()

    # Top up ¥500.00; the result page polls the status until the bank has paid.
    alice.get_by_test_id("action-topup").click()
    expect(alice.get_by_role("heading", level=1)).to_have_text("Top up")
    alice.screenshot(path=str(shots / "wallet-topup-mobile.png"), full_page=True)
    alice.get_by_test_id("amount").fill("500.00")
    alice.get_by_test_id("topup-submit").click()
    expect(alice).to_have_url(re.compile(r"/wallet/topups/top_"))
    status = alice.get_by_test_id("op-status")
    expect(status).to_have_attribute("data-status", "succeeded", timeout=SETTLE_TIMEOUT_MS)
    expect(alice.get_by_test_id("op-status-label")).to_have_text("Succeeded")
    expect(alice.get_by_test_id("op-slow-note")).to_have_count(0)  # it went with the pending status
    expect(alice.get_by_test_id("available-CNY")).to_contain_text("500.00")
    alice.screenshot(path=str(shots / "wallet-topup-succeeded-mobile.png"), full_page=True)

    # Send ¥12.34 to Bob and take it back inside the undo window.
    transfer(alice, server, BOB, "12.34", "concert ticket")
    expect(alice.get_by_test_id("undo")).to_be_visible()
    expect(alice.get_by_test_id("available-CNY")).to_contain_text("487.66")
    alice.screenshot(path=str(shots / "wallet-transfer-undo-mobile.png"), full_page=True)
    alice.get_by_test_id("undo").click()
    expect(alice.get_by_test_id("transfer-status")).to_have_attribute("data-status", "reversed")
    expect(alice.get_by_test_id("transfer-status")).to_have_text("Reversed")
    expect(alice.get_by_test_id("alert-info")).to_contain_text("reversed")
    expect(alice.get_by_test_id("available-CNY")).to_contain_text("500.00")
    alice.screenshot(path=str(shots / "wallet-transfer-reversed-mobile.png"), full_page=True)

    # Send again and let the window pass (the server's test clock): undo is now too late.
    transfer(alice, server, BOB, "12.34", "concert ticket")
    expect(alice.get_by_test_id("undo")).to_be_visible()
    moved = httpx.post(server.url("/v1/test_clock/advance"), json={"seconds": 11})
    assert moved.status_code == 200, moved.text
    alice.get_by_test_id("undo").click()
    expect(alice.get_by_test_id("refusal")).to_contain_text("Too late to undo")
    expect(alice.get_by_test_id("transfer-status")).to_have_attribute("data-status", "completed")
    expect(alice.get_by_test_id("final-status")).to_contain_text("can no longer be undone")
    expect(alice.get_by_test_id("available-CNY")).to_contain_text("487.66")
    alice.screenshot(path=str(shots / "wallet-transfer-too-late-mobile.png"), full_page=True)

    # Bob sees the money arrived.
    bob.goto(server.url("/wallet"))
    expect(bob.get_by_test_id("available-CNY")).to_contain_text("12.34")
    expect(bob.get_by_test_id("recent-transfer").first).to_contain_text("concert ticket")

    # Statement → receipt → verify.
    alice.get_by_test_id("to-statement").click()
    expect(alice.get_by_role("heading", level=1)).to_have_text("Statement")
    lines = alice.get_by_test_id("statement-line")
    expect(lines).to_have_count(2)  # the undone transfer never reached the statement
    expect(lines.first).to_contain_text("Transfer sent")
    lines.first.click()
    expect(alice.get_by_role("heading", level=1)).to_have_text("Receipt")
    expect(alice.get_by_test_id("receipt-amount")).to_contain_text("12.34")
    alice.get_by_test_id("verify").click()
    verdict = alice.get_by_test_id("verify-verdict")
    expect(verdict).to_have_attribute("data-ok", "true")
    expect(verdict).to_contain_text("Verified")

    # The wallet home in all three languages.
    for lang, heading in (("en", "Wallet"), ("zh-Hans", "钱包"), ("zh-Hant", "錢包")):
        alice.goto(server.url(f"/wallet?lang={lang}"))
        expect(alice.get_by_role("heading", level=1)).to_have_text(heading)
        expect(alice.get_by_test_id("recent-transfer")).to_have_count(2)
        alice.screenshot(path=str(shots / f"wallet-home-{lang}-mobile.png"), full_page=True)
    alice.goto(server.url("/wallet/transfer?lang=zh-Hans"))
    alice.screenshot(path=str(shots / "wallet-transfer-zh-Hans-mobile.png"), full_page=True)
    alice.goto(server.url("/wallet/preferences?lang=zh-Hant"))
    alice.screenshot(path=str(shots / "wallet-preferences-zh-Hant-mobile.png"), full_page=True)
    alice.goto(server.url("/wallet?lang=en"))

    # A withdrawal shows its fee before it is confirmed; nothing moves until then.
    alice.get_by_test_id("action-withdraw").click()
    expect(alice.get_by_role("heading", level=1)).to_have_text("Withdraw")
    alice.get_by_test_id("amount").fill("100.00")
    alice.get_by_test_id("withdraw-continue").click()
    confirm = alice.get_by_test_id("withdraw-confirm")
    expect(confirm).to_be_visible()
    auth = {"Authorization": "Bearer " + api_token(server, ALICE)}
    quote = httpx.get(server.url("/v1/withdrawals/quote?amount=10000"), headers=auth).json()
    fee_text = alice.get_by_test_id("quote-fee").inner_text()
    assert re.sub(r"[^\d.]", "", fee_text) == f"{quote['fee'] // 100}.{quote['fee'] % 100:02d}"
    assert re.sub(r"[^\d.]", "", alice.get_by_test_id("quote-total").inner_text()) == \
        f"{quote['total'] // 100}.{quote['total'] % 100:02d}"
    alice.screenshot(path=str(shots / "wallet-withdraw-confirm-mobile.png"), full_page=True)
    wallet = httpx.get(server.url("/v1/wallet"), headers=auth).json()
    assert wallet["balances"][0]["available"] == 48_766  # the confirm step moved nothing
    alice.get_by_test_id("payment-password").fill(PAY_PW)
    alice.get_by_test_id("withdraw-submit").click()
    expect(alice).to_have_url(re.compile(r"/wallet/withdrawals/wd_"))
    expect(alice.get_by_test_id("op-fee")).to_have_text(fee_text)
    expect(alice.get_by_test_id("op-status")).to_have_attribute("data-status", "succeeded",
                                                               timeout=SETTLE_TIMEOUT_MS)
    left = 48_766 - quote["total"]
    expect(alice.get_by_test_id("available-CNY")).to_contain_text(f"{left // 100}.{left % 100:02d}")
    alice.screenshot(path=str(shots / "wallet-withdraw-succeeded-mobile.png"), full_page=True)


def api_token(server: Server, email: str) -> str:
    r = httpx.post(server.url("/v1/sessions"), json={"email": email, "password": PASSWORD})
    assert r.status_code == 201, r.text
    return str(r.json()["token"])


CAROL = "carol.wallet.e2e@example.com"


def test_new_card_error_keeps_the_new_card_and_unbinding_asks_first(
    server: Server, browser: Browser, contexts: list[BrowserContext], screenshots_dir: object,
) -> None:
    shots = Path(str(screenshots_dir))
    carol = phone(browser, contexts)
    sign_up(carol, server, "Carol Liu", CAROL)
    carol.goto(server.url("/wallet"))
    carol.get_by_test_id("card-number").fill(TEST_CARD)
    carol.get_by_test_id("holder-name").fill("Carol Liu")
    carol.get_by_test_id("bind").click()
    expect(carol.get_by_test_id("card")).to_have_count(1)

    # "Use a new card" with a bad number: the error keeps the new card open and picks no saved card.
    carol.get_by_test_id("action-topup").click()
    expect(carol.get_by_test_id("card-choice")).to_be_checked()
    carol.get_by_test_id("new-card").locator("summary").click()
    carol.get_by_test_id("card-number").fill("1234567812345678")
    carol.get_by_test_id("amount").fill("20.00")
    carol.get_by_test_id("topup-submit").click()
    expect(carol.get_by_test_id("refusal")).to_have_attribute("data-code", "invalid_card_number")
    expect(carol.get_by_test_id("new-card")).to_have_attribute("open", "")
    expect(carol.get_by_test_id("card-choice")).not_to_be_checked()
    expect(carol.get_by_test_id("card-number")).to_have_value("")
    carol.screenshot(path=str(shots / "wallet-topup-new-card-error-mobile.png"), full_page=True)
    carol.get_by_test_id("topup-submit").click()  # pressed again: nothing is charged to the saved card
    expect(carol.get_by_test_id("refusal")).to_have_attribute("data-code", "choose_card")

    # Unbind asks first; only "Yes, unbind" removes the card.
    carol.goto(server.url("/wallet"))
    carol.get_by_test_id("unbind").click()
    expect(carol.get_by_test_id("unbind-confirm")).to_be_visible()
    expect(carol.get_by_test_id("card")).to_have_count(1)
    carol.screenshot(path=str(shots / "wallet-unbind-confirm-mobile.png"), full_page=True)
    carol.get_by_test_id("unbind-confirm").click()
    expect(carol.get_by_test_id("alert-info")).to_contain_text("The card is unbound")
    expect(carol.get_by_test_id("card")).to_have_count(0)


DAVE = "dave.wallet.e2e@example.com"
NO_ANSWER_CARD = "4000 0000 0000 0028"  # the sandbox bank never answers for it


def test_a_top_up_page_stops_checking_after_three_minutes_and_says_so(
    server: Server, browser: Browser, contexts: list[BrowserContext], screenshots_dir: object,
) -> None:
    shots = Path(str(screenshots_dir))
    dave = phone(browser, contexts)
    sign_up(dave, server, "Dave Wu", DAVE)
    dave.goto(server.url("/wallet/topup"))  # no saved card: the card's fields are on the form
    dave.get_by_test_id("card-number").fill(NO_ANSWER_CARD)
    dave.get_by_test_id("holder-name").fill("Dave Wu")
    dave.get_by_test_id("amount").fill("30.00")
    dave.get_by_test_id("topup-submit").click()
    expect(dave).to_have_url(re.compile(r"/wallet/topups/top_"))
    expect(dave.get_by_test_id("op-status")).to_have_attribute("data-status", "pending")
    expect(dave.get_by_test_id("op-status")).to_contain_text("This page updates by itself")

    polls: list[str] = []
    dave.on("request", lambda r: polls.append(r.url) if r.url.endswith("/status") else None)
    moved = httpx.post(server.url("/v1/test_clock/advance"), json={"seconds": 181})
    assert moved.status_code == 200, moved.text
    # The next poll is answered 286: htmx stops polling and swaps in the panel that says so.
    expect(dave.get_by_test_id("op-stopped-checking")).to_be_visible(timeout=10_000)
    expect(dave.get_by_test_id("op-status")).not_to_contain_text("updates by itself")
    seen = len(polls)
    dave.wait_for_timeout(2_500)  # two and a half poll intervals
    assert len(polls) == seen, "the page went on polling"
    dave.screenshot(path=str(shots / "wallet-topup-stopped-checking-mobile.png"), full_page=True)
