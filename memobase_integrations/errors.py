"""One exception hierarchy for everything the package raises on purpose.

Every message says what failed and what to do next. No message, ``repr`` or ``str`` ever
contains an API key: the HTTP layer never copies request headers into an error.
"""

from __future__ import annotations

from typing import Any

__all__ = [
    "AuthenticationError",
    "ConfigurationError",
    "ConnectionError",
    "InvalidMessageError",
    "InvalidUserIdError",
    "LLMError",
    "MemobaseError",
    "NotFoundError",
    "ServerError",
    "ServiceUnavailableError",
    "StoreNotFoundError",
    "TimeoutError",
    "UnsupportedError",
    "ValidationError",
]


class MemobaseError(Exception):
    """Base class. ``errno`` is the Memobase envelope code (or the HTTP status) if any."""

    def __init__(
        self,
        message: str,
        *,
        errno: int | None = None,
        status_code: int | None = None,
        detail: Any = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.errno = errno
        self.status_code = status_code
        self.detail = detail

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.message!r}, errno={self.errno!r})"


class ConfigurationError(MemobaseError):
    """The package was set up wrongly (missing URL, bad database URL, bad config file...)."""


class StoreNotFoundError(ConfigurationError):
    """The database holds no memobase store (or not all of its tables), and the caller asked
    not to create one (``EmbeddedBackend(create_store=False)``, every CLI command)."""


class InvalidUserIdError(MemobaseError, ValueError):
    """A user id Memobase cannot accept."""


class InvalidMessageError(MemobaseError, ValueError):
    """A chat message or turn that cannot become a ChatBlob."""


class ValidationError(MemobaseError, ValueError):
    """The server (or the engine) refused the input: errno 400, HTTP 422 and friends."""


class AuthenticationError(MemobaseError):
    """HTTP 401: the API key is missing, malformed or wrong."""


class NotFoundError(MemobaseError, LookupError):
    """errno 404: the user, blob, profile or event does not exist."""


class ServerError(MemobaseError):
    """errno 500/520 or HTTP 5xx: the server failed while handling a valid request."""


class ServiceUnavailableError(ServerError):
    """errno/HTTP 503: the server's LLM or embedding provider failed, or quota ran out."""


class UnsupportedError(MemobaseError):
    """errno 501 or an operation this backend does not offer (e.g. search without embeddings)."""


class ConnectionError(MemobaseError):
    """The server could not be reached (refused, DNS, reset before an answer)."""


class TimeoutError(ConnectionError):
    """The server did not answer in time."""


class LLMError(MemobaseError):
    """The embedded engine's LLM call failed (timeout, HTTP error, unusable answer)."""
