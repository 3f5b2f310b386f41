"""A cap on request bodies, applied before anything parses them.

Without it a multipart upload (dispute evidence) is spooled whole to a
temporary file by the form parser before the route can look at its size, so
one client could fill the disk with a single request. The cap is the largest
body any route accepts (the evidence limit plus room for the form around it).
"""

from __future__ import annotations

import json

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from trustpay.errors import PayloadTooLarge

FORM_OVERHEAD = 1024 * 1024  # multipart boundaries, headers and the other fields


class BodyLimit:
    def __init__(self, app: ASGIApp, *, limit: int) -> None:
        self.app = app
        self.limit = limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = dict(scope.get("headers") or ()).get(b"content-length")
        if declared is not None and (not declared.isdigit() or int(declared) > self.limit):
            await self._refuse(send)
            return
        seen = 0
        refused = started = False

        async def counted() -> Message:
            # A body sent without a length (chunked) is counted as it arrives; past the
            # cap the client gets the 413 and the route sees the client gone.
            nonlocal seen, refused
            if refused:
                return {"type": "http.disconnect"}
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.limit and not started:
                    refused = True
                    await self._refuse(send)
                    return {"type": "http.disconnect"}
            return message

        async def guarded_send(message: Message) -> None:
            nonlocal started
            if refused:
                return  # the 413 has been sent; whatever the route answers now goes nowhere
            started = started or message["type"] == "http.response.start"
            await send(message)

        await self.app(scope, counted, guarded_send)

    def _message(self) -> str:
        return f"the request body is larger than {self.limit} bytes"

    async def _refuse(self, send: Send) -> None:
        body = json.dumps(PayloadTooLarge(self._message()).to_dict()).encode()
        await send({"type": "http.response.start", "status": 413,
                    "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
                                (b"connection", b"close")]})
        await send({"type": "http.response.body", "body": body})
