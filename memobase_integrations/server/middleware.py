"""Two small ASGI middlewares every answer passes through.

* :class:`ProcessTime` adds ``X-Process-Time`` (seconds, as text), as the real server does
  on every answer but the 401s (authentication runs outside it).
* :class:`UnknownErrors` turns an exception no route expected into the real server's answer
  for it - HTTP 200, errno 500, "Sorry, we have encountered an unknown error" - and logs the
  traceback, instead of a bare HTTP 500 the SDKs would not parse.
"""

from __future__ import annotations

import logging
import time

from starlette.datastructures import MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from .envelope import unknown_error

__all__ = ["ProcessTime", "UnknownErrors"]

log = logging.getLogger(__name__)


class ProcessTime:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()

        async def timed_send(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                headers["X-Process-Time"] = f"{time.perf_counter() - started:.9f}"
            await send(message)

        await self.app(scope, receive, timed_send)


class UnknownErrors:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = False

        async def tracking_send(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, receive, tracking_send)
        except Exception as exc:
            log.exception(
                "memobase serve: unexpected error in %s %s", scope["method"], scope["path"]
            )
            if started:
                raise
            await unknown_error(f"{type(exc).__name__}: {exc}")(scope, receive, send)
