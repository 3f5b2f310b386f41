"""A synchronous httpx transport that serves requests from an ASGI app in the
same process (no socket). httpx's own ``ASGITransport`` is async only; the
platform's services are synchronous, so this bridge runs the app on a private
event loop thread and waits for each answer, honouring the client's read timeout
(so a bank told to slow down times out in-process exactly as over the network)."""

from __future__ import annotations

import asyncio
import concurrent.futures
import threading
from typing import Any

import httpx


class AsgiBridgeTransport(httpx.BaseTransport):
    def __init__(self, app: Any) -> None:
        self._asgi = httpx.ASGITransport(app=app)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()

    def _running_loop(self) -> asyncio.AbstractEventLoop:
        with self._lock:
            if self._loop is None:
                loop = asyncio.new_event_loop()
                thread = threading.Thread(target=loop.run_forever, name="asgi-bridge", daemon=True)
                thread.start()
                self._loop, self._thread = loop, thread
            return self._loop

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        loop = self._running_loop()
        if threading.current_thread() is self._thread:
            raise RuntimeError("an ASGI bridge cannot be called from the app it serves (it would deadlock)")
        body = request.read()
        timeout = request.extensions.get("timeout", {}).get("read")

        async def call() -> tuple[int, list[tuple[bytes, bytes]], bytes]:
            inner = httpx.Request(request.method, request.url, headers=request.headers, content=body)
            response = await self._asgi.handle_async_request(inner)
            content = await response.aread()
            return response.status_code, response.headers.raw, content

        future = asyncio.run_coroutine_threadsafe(call(), loop)
        try:
            status, headers, content = future.result(timeout=timeout)
        except concurrent.futures.TimeoutError:
            future.cancel()
            raise httpx.ReadTimeout("the in-process app did not answer in time", request=request) from None
        return httpx.Response(status, headers=headers, content=content, request=request)

    def close(self) -> None:
        with self._lock:
            loop, thread = self._loop, self._thread
            self._loop = self._thread = None
        if loop is not None and thread is not None:
            loop.call_soon_threadsafe(loop.stop)
            thread.join(timeout=5)
            loop.close()
