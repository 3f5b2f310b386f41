"""docs/merchant-quickstart.md, executed: every ```python block, in the order written,
against a real ``trustpay serve`` with the base URL, a secret key and the receiver's URL
injected through the environment the snippets read. Between the blocks a buyer does
what the doc says a buyer does (pays on checkout, confirms receipt) over the API.

The server is this module's own: the snippets verify signatures against real time (as a
shop's server would), so the platform's test clock must not have been moved by other
tests, which the session's shared server cannot promise.
"""

from __future__ import annotations

import contextlib
import io
import re
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.e2e.conftest import Server, _free_port, running_server
from tests.e2e.test_escrow_flow_http import PAY_PW, ok, ready_buyer, sign_up, wait_for

pytestmark = pytest.mark.e2e

DOC = Path(__file__).resolve().parents[2] / "docs" / "merchant-quickstart.md"
SNIPPET = re.compile(r"<!-- snippet: ([a-z-]+) -->\n```python\n(.*?)```", re.S)
ORDER = ["setup", "verify", "receiver", "register", "create", "checkout", "lookup", "ship", "errors", "refund",
         "finished"]


def snippets() -> dict[str, str]:
    text = DOC.read_text("utf-8")
    found = SNIPPET.findall(text)
    # Every python block is named and so executed below: none can go stale unnoticed.
    assert len(found) == text.count("```python"), "a ```python block in the quickstart has no snippet marker"
    assert [name for name, _ in found] == ORDER, "the quickstart's snippets changed: update this test with them"
    return dict(found)


@pytest.fixture(scope="module")
def own_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    with running_server(tmp_path_factory.mktemp("quickstart-server")) as started:
        yield started


class Doc:
    """The snippets' shared namespace, as if they were one file of the shop's backend."""

    def __init__(self) -> None:
        self.blocks = snippets()
        self.ns: dict[str, Any] = {"__name__": "shop_backend"}

    def run(self, name: str) -> str:
        out = io.StringIO()
        with contextlib.redirect_stdout(out):
            exec(compile(self.blocks[name], f"{DOC}:{name}", "exec"), self.ns)
        return out.getvalue()


def test_every_quickstart_snippet_runs_against_the_real_server(own_server: Server,
                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    server = own_server
    http = httpx.Client(base_url=server.base_url, timeout=30.0)
    owner = sign_up(http, "quickstart-shop", "merchant")
    secret_key = ok(http.post("/v1/merchant/api-keys", json={"label": "quickstart"}, headers=owner.auth), 201)
    buyer = ready_buyer(server, http, 30_000)

    doc = Doc()
    port = _free_port()
    monkeypatch.setenv("TRUSTPAY_URL", server.base_url)
    monkeypatch.setenv("TRUSTPAY_SECRET_KEY", secret_key["secret"])
    monkeypatch.setenv("SHOP_WEBHOOK_URL", f"http://127.0.0.1:{port}/trustpay/webhooks")
    doc.run("setup")
    doc.run("verify")
    doc.run("receiver")
    webhook_server: Callable[[str, int], Any] = doc.ns["webhook_server"]
    httpd = webhook_server("127.0.0.1", port)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        doc.run("register")
        assert doc.ns["WEBHOOK_SECRET"].startswith("whsec_")

        assert "WAIT_BUYER_PAY fee: 77" in doc.run("create")
        trade = doc.ns["trade"]
        assert doc.run("checkout").strip() == server.base_url + trade["checkout_url"]
        assert "<svg" in doc.ns["qr_svg"]
        page = http.get(doc.ns["checkout_url"], headers=buyer.auth)
        assert page.status_code == 200 and trade["id"] in page.text

        # The buyer pays on checkout (here through the API the page uses).
        ok(http.post(f"/v1/trades/{trade['id']}/pay", json={"payment_password": PAY_PW}, headers=buyer.auth))
        wait_for(lambda: doc.ns["orders"].get("ORDER-1001") == "WAIT_SELLER_SEND_GOODS", "trade.paid at the receiver")
        assert doc.run("lookup").strip() == "WAIT_SELLER_SEND_GOODS"

        assert doc.run("ship").startswith("WAIT_BUYER_CONFIRM_GOODS ")
        wait_for(lambda: doc.ns["orders"]["ORDER-1001"] == "WAIT_BUYER_CONFIRM_GOODS", "trade.shipped")
        assert doc.run("errors").strip() == "409 conflict_error invalid_state"

        printed = doc.run("refund").split()
        assert printed[0].startswith("rf_") and printed[1:] == ["REFUND_SUCCESS", "2800"]
        wait_for(lambda: doc.ns["refunded"].get("ORDER-1001") == 2_800, "refund.succeeded")
        assert buyer.available() == 30_000 - 12_800 + 2_800

        # The buyer confirms receipt.
        done = ok(http.post(f"/v1/trades/{trade['id']}/confirm", json={"payment_password": PAY_PW},
                            headers=buyer.auth))
        assert (done["status"], done["refunded_amount"]) == ("TRADE_FINISHED", 2_800)
        wait_for(lambda: doc.ns["orders"]["ORDER-1001"] == "TRADE_FINISHED", "trade.finished")
        assert doc.run("finished").strip() == "TRADE_FINISHED 2800"
        assert len(doc.ns["handled_events"]) == 4  # paid, shipped, refund.succeeded, finished: each once

        # The documented receiver turns away what TrustPay did not sign.
        forged = httpx.post(doc.ns["WEBHOOK_URL"], content=b'{"id":"evt_x","type":"trade.finished"}',
                            headers={"TrustPay-Signature": "t=1767225600,v1=" + "0" * 64}, timeout=10)
        assert forged.status_code == 400
        assert len(doc.ns["handled_events"]) == 4
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join(timeout=5)
