"""What a request to a Memobase server *is*, independent of how it is sent.

:class:`Request` describes one call completely (route, path values, query, body, the parser
of the answer's ``data``), so the sync and async senders of :mod:`.http` send byte-identical
requests and read answers the same way, as httpx shares request building between its two
clients. Also the query encoding and the project URL rule.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from enum import Enum
from typing import Any, Generic, Literal, TypeVar
from urllib.parse import quote, urlsplit, urlunsplit

from .. import errors

__all__ = [
    "API_PREFIX",
    "NO_BODY",
    "Call",
    "JsonParam",
    "Request",
    "encode_query",
    "normalise_project_url",
    "server_credentials",
]

T = TypeVar("T")

#: Every Memobase route lives under this prefix of the project URL.
API_PREFIX = "/api/v1"

#: ``Request.json`` when the request has no body.
NO_BODY: Any = object()


@dataclass(frozen=True, slots=True)
class Call:
    """One route: method and path template (``/users/{user_id}``), used in messages.

    ``request_path``: a read apps make while answering a user (context, profile, events,
    searches). While the :class:`CircuitBreaker` is open these fail at once instead of
    waiting for a server that just failed.
    """

    method: Literal["GET", "POST", "PUT", "DELETE"]
    template: str
    request_path: bool = False

    @property
    def idempotent_read(self) -> bool:
        return self.method == "GET"

    def __str__(self) -> str:
        return f"{self.method} {self.template}"


@dataclass(frozen=True, slots=True)
class JsonParam:
    """A query parameter whose value is JSON text (``chats_str``, ``topic_limits_json``)."""

    value: Any


@dataclass(frozen=True, slots=True)
class Request(Generic[T]):
    """A fully described request: the route, its path values, query, body and parser.

    ``parse`` receives the envelope's ``data`` and builds the typed result; keeping it here
    lets the sync and async paths share one description per endpoint.
    """

    call: Call
    parse: Callable[[Any], T]
    path: Mapping[str, str] = field(default_factory=dict)
    params: Sequence[tuple[str, str]] = ()
    json: Any = NO_BODY

    def url_path(self) -> str:
        values = {k: quote(v, safe="") for k, v in self.path.items()}
        return self.call.template.format(**values)


def encode_query(items: Iterable[tuple[str, object]]) -> list[tuple[str, str]]:
    """Turn Python values into Memobase query pairs.

    ``None`` is left out (the server's default applies); booleans are ``true``/``false``;
    lists and tuples become **repeated keys** (``?only_topics=a&only_topics=b``, the only form
    FastAPI reads as a list); :class:`JsonParam` values are JSON text. Percent-encoding is
    left to httpx, which encodes ``&``, ``#``, ``+`` and non-ASCII text correctly.
    """
    pairs: list[tuple[str, str]] = []
    for key, value in items:
        if value is None:
            continue
        if isinstance(value, JsonParam):
            pairs.append((key, json.dumps(value.value)))
        elif isinstance(value, bool):
            pairs.append((key, "true" if value else "false"))
        elif isinstance(value, list | tuple):
            pairs.extend((key, _scalar(v)) for v in value)
        else:
            pairs.append((key, _scalar(value)))
    return pairs


def _scalar(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, Enum):
        return str(value.value)
    return str(value)


def normalise_project_url(project_url: str) -> str:
    """``https://host[/prefix]`` -> ``https://host[/prefix]/api/v1``.

    Accepts a trailing slash and a URL that already ends in ``/api/v1`` (a common paste), keeps
    a path prefix (a server behind ``https://example.com/memobase``), and refuses anything
    that is not an absolute http(s) URL with a message saying what to set.
    """
    text = project_url.strip()
    parts = urlsplit(text)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise errors.ConfigurationError(
            f"The Memobase project URL {text!r} is not an absolute http(s) URL. Set "
            "project_url / MEMOBASE_PROJECT_URL to e.g. https://api.memobase.dev (Memobase "
            "Cloud) or http://localhost:8019 (a self-hosted server)."
        )
    if parts.query or parts.fragment:
        raise errors.ConfigurationError(
            f"The Memobase project URL {text!r} has a query or fragment; set project_url / "
            "MEMOBASE_PROJECT_URL to the server's address only, e.g. https://api.memobase.dev."
        )
    path = parts.path.rstrip("/")
    if path.endswith(API_PREFIX):
        path = path[: -len(API_PREFIX)]
    return urlunsplit((parts.scheme, parts.netloc, path + API_PREFIX, "", ""))


def server_credentials(project_url: str | None, api_key: str | None) -> tuple[str, str]:
    """The normalised project URL and the API key, from the arguments or
    ``MEMOBASE_PROJECT_URL`` / ``MEMOBASE_API_KEY``; a missing or malformed one is a
    :class:`~memobase_integrations.errors.ConfigurationError` saying what to set."""
    url = project_url or os.environ.get("MEMOBASE_PROJECT_URL")
    if not url:
        raise errors.ConfigurationError(
            "No Memobase server given. Pass project_url=... or set MEMOBASE_PROJECT_URL "
            "(https://api.memobase.dev for Memobase Cloud, or your server, e.g. "
            "http://localhost:8019)."
        )
    key = (api_key if api_key is not None else os.environ.get("MEMOBASE_API_KEY", "")).strip()
    if not key:
        raise errors.ConfigurationError(
            "No Memobase API key given. Pass api_key=... or set MEMOBASE_API_KEY (the "
            "project token sk-proj-... on Memobase Cloud; the server's ACCESS_TOKEN when "
            "self-hosted)."
        )
    if any(c.isspace() for c in key) or not key.isprintable():
        raise errors.ConfigurationError(
            "The Memobase API key contains spaces or control characters; copy the token "
            "again (it is one word, e.g. sk-proj-...)."
        )
    return normalise_project_url(url), key
