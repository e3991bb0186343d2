"""Bearer-token authentication, before routing (as the real server does it).

Every ``/api/...`` path except ``/api/v1/healthcheck`` needs ``Authorization: Bearer
<token>`` - exactly that scheme, case-sensitive, one space. Because this runs before routing,
an unknown ``/api/...`` path without a token is a 401, not a 404: the API's shape is not
revealed to a client that cannot authenticate. Paths outside ``/api`` (the OpenAPI document
and ``/docs``) are public, as on the real server.

The token is compared in constant time: both sides are hashed with SHA-256 and the digests
compared with :func:`hmac.compare_digest`, so neither the content nor the length of the
expected token leaks through timing. The token never reaches a log line, and the 401 body
never echoes what the client sent.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
from typing import Final

from pydantic import SecretStr
from starlette.types import ASGIApp, Receive, Scope, Send

from ..models import ErrorCode
from .envelope import fail

__all__ = ["HEALTHCHECK_PATH", "BearerAuth"]

log = logging.getLogger(__name__)

HEALTHCHECK_PATH: Final = "/api/v1/healthcheck"
_SCHEME: Final = b"Bearer "


def _digest(token: bytes) -> bytes:
    return hashlib.sha256(token).digest()


class BearerAuth:
    """ASGI middleware: refuse ``/api`` requests without the right bearer token (HTTP 401).

    ``token=None`` (allowed on loopback only, see :meth:`ServerConfig.check`) accepts any
    non-empty bearer token, like the real server without ``ACCESS_TOKEN``.
    """

    def __init__(self, app: ASGIApp, token: SecretStr | None) -> None:
        self.app = app
        self._expected = None if token is None else _digest(token.get_secret_value().encode())

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path: str = scope["path"]
        if not path.startswith("/api") or path == HEALTHCHECK_PATH:
            await self.app(scope, receive, send)
            return
        problem = self._problem(scope)
        if problem is None:
            await self.app(scope, receive, send)
            return
        log.info("memobase serve: refused %s %s: %s", scope["method"], path, problem)
        response = fail(
            ErrorCode.UNAUTHORIZED,
            f"Unauthorized access to {path}. {problem}",
            status_code=401,
        )
        await response(scope, receive, send)

    def _problem(self, scope: Scope) -> str | None:
        """Why the request is refused, or None when it may pass."""
        header = b""
        for name, value in scope["headers"]:
            if name == b"authorization":
                header = value
                break
        if not header.startswith(_SCHEME) or len(header) == len(_SCHEME):
            return "You have to provide a valid Bearer token."
        if self._expected is None:
            return None
        if hmac.compare_digest(_digest(header[len(_SCHEME) :]), self._expected):
            return None
        return "CODE 401; ERROR Wrong access token: use the server's MEMOBASE_ACCESS_TOKEN."
