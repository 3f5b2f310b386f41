"""A real webhook receiver for tests: a small threaded HTTP server on 127.0.0.1.

It records every request (path, headers, raw body) and answers from a script
(one status per request, then ``default``); ``stop()`` takes it off the network
(connections are refused) and ``start()`` brings it back on the same port.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from trustpay.identity import service as identity
from trustpay.identity.model import UserKind
from trustpay.merchants import webhooks as endpoints
from trustpay.platform import outbox
from trustpay.platform.context import Platform


@dataclass(frozen=True)
class Received:
    path: str
    headers: dict[str, str]
    body: bytes


class Receiver:
    def __init__(self) -> None:
        self.received: list[Received] = []
        self.script: list[int | tuple[int, dict[str, str]]] = []
        self.default: int = 200
        self._lock = threading.Lock()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self.port = 0
        self.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hooks/trustpay"

    def start(self) -> None:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("content-length", "0"))
                body = self.rfile.read(length)
                with receiver._lock:
                    receiver.received.append(Received(self.path, {k.lower(): v for k, v in self.headers.items()},
                                                      body))
                    answer = receiver.script.pop(0) if receiver.script else receiver.default
                status, headers = answer if isinstance(answer, tuple) else (answer, {})
                self.send_response(status)
                for k, v in headers.items():
                    self.send_header(k, v)
                self.send_header("content-length", "2")
                self.end_headers()
                self.wfile.write(b"ok")

            do_GET = do_POST  # a followed redirect would arrive as a GET: record it too

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self.port = self._server.server_address[1]
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def bodies(self) -> list[bytes]:
        with self._lock:
            return [r.body for r in self.received]


def receiver() -> Iterator[Receiver]:
    r = Receiver()
    try:
        yield r
    finally:
        r.stop()


# ------------------------------------------------ service-level set-up
def merchant(p: Platform, email: str = "shop@example.com") -> str:
    user = p.db.run(lambda conn: identity.sign_up(p, conn, email=email, password="correct horse 42 battery",
                                                  kind=UserKind.MERCHANT))
    return user.id


def endpoint(p: Platform, owner: str, url: str, events: Any = "*") -> tuple[str, str]:
    row, secret = p.db.run(lambda conn: endpoints.create(p, conn, owner, url=endpoints.check_url(p, url),
                                                         events=events))
    return str(row["id"]), secret


def emit(p: Platform, owner: str | None, type: str = "transfer.completed", **obj: Any) -> str:
    return p.db.run(lambda conn: outbox.emit(conn, type, {"id": "tr_x", **obj}, owner, now=p.clock.now()))
