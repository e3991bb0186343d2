"""Request-body size limit, enforced before and while the body is read.

A body over the limit is answered with HTTP 413 and the envelope (errno 413) naming the
limit; it is never read into memory in full. A declared ``Content-Length`` over the limit is
refused at once; a chunked body is counted as it streams and refused when it crosses it.
"""

from __future__ import annotations

from typing import Final

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from .envelope import fail

__all__ = ["BodyLimit"]

_TOO_LARGE: Final = 413


class _TooLarge(Exception):
    pass


class BodyLimit:
    """ASGI middleware refusing request bodies over ``max_bytes`` (HTTP 413)."""

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = _content_length(scope)
        if declared is not None and declared > self.max_bytes:
            await self._refuse(scope, receive, send, declared)
            return
        seen = 0
        too_large = False

        async def counting_receive() -> Message:
            nonlocal seen, too_large
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.max_bytes:
                    too_large = True
                    raise _TooLarge
            return message

        async def guarded_send(message: Message) -> None:
            # FastAPI turns a failed body read into its own 400; once over the limit, the
            # app's answer to the aborted read is dropped and the 413 below goes instead.
            if not too_large:
                await send(message)

        try:
            await self.app(scope, counting_receive, guarded_send)
        except Exception:
            if not too_large:
                raise
        if too_large:
            await self._refuse(scope, receive, send, None)

    async def _refuse(self, scope: Scope, receive: Receive, send: Send, size: int | None) -> None:
        got = f"{size} bytes" if size is not None else f"more than {self.max_bytes} bytes"
        response = fail(
            _TOO_LARGE,
            f"Request body too large: {got}; this server accepts at most {self.max_bytes} "
            "bytes (serve --max-body-bytes). Split long conversations into several blobs.",
            status_code=_TOO_LARGE,
        )
        await response(scope, receive, send)


def _content_length(scope: Scope) -> int | None:
    for name, value in scope["headers"]:
        if name == b"content-length":
            try:
                return int(value)
            except ValueError:
                return None
    return None
