"""One exception hierarchy for everything the package raises on purpose.

Every message says what failed and what to do next. No message, ``repr`` or ``str`` ever
contains an API key: the HTTP layer never copies request headers into an error.
"""

from __future__ import annotations

import warnings
from typing import Any

__all__ = [
    "AuthenticationError",
    "ConfigurationError",
    "InvalidMessageError",
    "InvalidUserIdError",
    "LLMError",
    "MemobaseConnectionError",
    "MemobaseError",
    "MemobaseTimeoutError",
    "NotFoundError",
    "ServerError",
    "ServiceUnavailableError",
    "StoreError",
    "StoreNotFoundError",
    "UnsupportedError",
    "ValidationError",
]

#: Names this module had in 0.1.0 that shadowed builtins; kept one release as deprecated
#: aliases (``errors.MemobaseConnectionError`` -> ``MemobaseConnectionError``, ...).
DEPRECATED_ALIASES = {
    "ConnectionError": "MemobaseConnectionError",
    "TimeoutError": "MemobaseTimeoutError",
}


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


class MemobaseConnectionError(MemobaseError):
    """The server (or the embedded store's database) could not be reached: refused, DNS,
    reset before an answer, a database that is down or locked.

    Named so it does not shadow the builtin ``ConnectionError`` (the old name still works,
    with a ``DeprecationWarning``, for one release).
    """


class MemobaseTimeoutError(MemobaseConnectionError):
    """The server did not answer in time. (Formerly ``errors.MemobaseTimeoutError``.)"""


class StoreError(MemobaseError):
    """The embedded engine's local database failed while handling a valid request (a failed
    statement, a constraint, a driver error). Not a server's fault, so not a ``ServerError``;
    an unreachable or locked database is a :class:`MemobaseConnectionError` instead."""


class LLMError(MemobaseError):
    """The embedded engine's LLM call failed (timeout, HTTP error, unusable answer)."""


def deprecated_alias(module: str, name: str) -> type[MemobaseError]:
    """The class a deprecated name stands for, with a ``DeprecationWarning`` that names the
    new one (used by this module's and the package root's ``__getattr__``)."""
    new = DEPRECATED_ALIASES[name]
    warnings.warn(
        f"{module}.{name} is deprecated and will be removed in the next release; "
        f"use {module}.{new} (it does not shadow the builtin {name}).",
        DeprecationWarning,
        stacklevel=3,
    )
    cls: type[MemobaseError] = globals()[new]
    return cls


def __getattr__(name: str) -> Any:
    if name in DEPRECATED_ALIASES:
        return deprecated_alias(__name__, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
