"""Speaking HTTP to a Memobase server: URLs, query encoding, retries and error mapping.

Everything here is about the wire, not about memory: :class:`HttpCore` sends one described
request (:class:`Request`) with the sync or the async httpx client, retries it only when that
is safe, unwraps the ``{data, errno, errmsg}`` envelope and turns every failure into one of
the :mod:`memobase_integrations.errors` types.

Why the error mapping is more than ``raise_for_status``: the server answers almost every
error as **HTTP 200** with ``errno != 0`` (even unhandled exceptions), FastAPI's own refusals
come as ``{"detail": [...]}`` (422) or ``{"detail": "Not Found"}`` (404/405), and an error text
may carry a whole SQL statement with its parameters. Messages here name the call by its path
*template* (never the user's data, never the key), keep the server's words (trimmed), and
say what to do.

Retries (tenacity, exponential backoff with jitter) are deliberately narrow:

* reads (``GET``) are retried on connection errors, timeouts and HTTP 502/503/504;
* writes are retried only when the request certainly never left this machine
  (:class:`httpx.ConnectError`, :class:`httpx.ConnectTimeout`, :class:`httpx.PoolTimeout`).
  A write whose answer was lost (read timeout, dropped connection) may have been applied, so
  re-sending it is the caller's decision (the outbox resolves it by asking the server).

Reads are bounded as a whole: ``read_deadline`` covers every attempt *and* the backoff
between them (each attempt's httpx timeout is cut to what is left; the async path also runs
under ``asyncio.timeout``). A :class:`CircuitBreaker` remembers that the server just failed:
for ``breaker_cooldown`` seconds the reads an app makes on its request path (context,
profile, events, searches: ``Call.request_path``) fail at once without a connection attempt,
then one probe goes out. Any answer from the server closes the breaker again.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
import socket
import threading
import time
import weakref
from collections.abc import AsyncGenerator, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from enum import Enum
from typing import Any, Generic, Literal, TypeVar
from urllib.parse import quote, urlsplit, urlunsplit

import httpx
import tenacity

from .. import errors

__all__ = [
    "API_PREFIX",
    "Call",
    "CircuitBreaker",
    "HttpCore",
    "JsonParam",
    "Request",
    "SendOutcome",
    "UnsendableRequestError",
    "clean_errmsg",
    "encode_query",
    "normalise_project_url",
    "refusal_is_permanent",
    "send_outcome",
]

T = TypeVar("T")

#: Every Memobase route lives under this prefix of the project URL.
API_PREFIX = "/api/v1"

#: HTTP statuses a gateway answers while the server restarts or is overloaded.
_RETRYABLE_READ_STATUSES = frozenset({502, 503, 504})

#: Exceptions httpx raises when no byte of the request reached the server.
_NOT_SENT_EXCEPTIONS: tuple[type[BaseException], ...] = (
    httpx.ConnectError,
    httpx.ConnectTimeout,
    httpx.PoolTimeout,
    httpx.UnsupportedProtocol,
)

_NO_BODY: Any = object()


class SendOutcome(Enum):
    """What a failed request tells about the server's state."""

    NOT_SENT = "not_sent"  # nothing reached the server: safe to send again
    ANSWERED = "answered"  # the server (or FastAPI in front of it) answered and refused
    UNKNOWN = "unknown"  # the request may have been applied: the answer was lost


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
    json: Any = _NO_BODY

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


# -- error texts ------------------------------------------------------------------------------

_UNKNOWN_PREFIX = re.compile(r"^\s*Sorry, we have encountered an unknown error:\s*", re.S)
_REPORT_SUFFIX = re.compile(r"\s*Please report this issue to \S+\s*$", re.S)
_CODE_PREFIX = re.compile(r"^(?:CODE \d+; ERROR\s*)+")
_SQL_BLOCK = re.compile(r"\[(?:SQL|parameters):.*?\](?=\s*(?:\[|\(Background|$))", re.S)
_BACKGROUND = re.compile(r"\(Background on this error at: [^)]*\)")
# pydantic's per-error tail echoes the refused input (user text) and a docs link.
_PYDANTIC_TAIL = re.compile(r"\[type=[^\]]*?input_value=.*?input_type=[^\]]*\]", re.S)
_PYDANTIC_LINK = re.compile(r"For further information visit \S+")
_WHITESPACE = re.compile(r"\s+")
_MAX_ERRMSG = 400


def clean_errmsg(errmsg: str, limit: int = _MAX_ERRMSG) -> str:
    """The server's error text without its boilerplate, SQL statement or parameters.

    The parameters of a failed SQL statement can hold the user's data, and the statement is
    noise to an app developer; the exception class and the database's own sentence stay.
    """
    text = _UNKNOWN_PREFIX.sub("", errmsg)
    text = _REPORT_SUFFIX.sub("", text)
    text = _SQL_BLOCK.sub("", text)
    text = _BACKGROUND.sub("", text)
    text = _PYDANTIC_TAIL.sub("", text)
    text = _PYDANTIC_LINK.sub("", text)
    text = _CODE_PREFIX.sub("", text.strip())
    text = _WHITESPACE.sub(" ", text).strip().rstrip(".")
    if len(text) > limit:
        text = text[: limit - 3].rstrip() + "..."
    return text


def _sentence(text: str) -> str:
    """``text`` ending in one sentence mark, so "What to do" starts a new sentence."""
    return text if text.endswith((".", "!", "?")) else text + "."


def _searches_by_embedding(call: Call) -> bool:
    """Event and gist search: what a server without embeddings refuses with errno 501."""
    return "/event/search/" in call.template or "/event_gist/search/" in call.template


def _hint_for(errno: int, message: str, call: Call) -> str:
    """What to do about an error, from what the server said."""
    lowered = message.lower()
    if "foreignkeyviolation" in lowered and "user" in lowered:
        return (
            "The user does not exist on the server. Create it first (ensure_user), or leave "
            "auto_create_users on so the client does it for you."
        )
    if "uniqueviolation" in lowered:
        return "The object already exists; fetch it instead of creating it again."
    if "no blobs to process after truncating" in lowered:
        return (
            "A single blob is larger than the server's processing cap "
            "(max_chat_blob_buffer_process_token_size, 16384 tokens); split long turns "
            "(turn_to_blobs does this) and insert again."
        )
    if "llm_complete" in lowered or "get_embedding" in lowered:
        return (
            "The server's LLM or embedding provider failed. The data is kept; retry later and "
            "check the server's llm_api_key / llm_base_url / embedding settings."
        )
    if "token limit" in lowered:
        return "The project's token quota is used up; wait for the refill or raise the limit."
    if "not supported" in lowered or "not implemented" in lowered:
        return "Memobase processes only chat and summary blobs; send one of those instead."
    if errno == 400 or errno == 422:
        return "Fix the input the server named above and send it again."
    if errno == 404 and lowered.startswith("user ") and "not found" in lowered:
        return (
            "The user does not exist (or was deleted): create it (ensure_user), and check "
            "that your user ids are mapped the same way everywhere (ids.to_user_uuid)."
        )
    if errno == 404 and lowered.startswith("blob"):
        return (
            "Chat blobs are deleted once processed; list the user's blobs (list_blobs) for "
            "the ids that still exist."
        )
    if errno == 404:
        return (
            "Check the id: processing and deletes replace profiles and events, so read the "
            "current ones for valid ids."
        )
    if errno == 501 and _searches_by_embedding(call):
        return (
            "This server searches events and gists by embeddings only, and they are off "
            "there. Set enable_event_embedding: true with an embedding provider "
            "(embedding_provider, embedding_model, embedding_api_key) in the server's "
            "config.yaml and restart it; events processed before that have no vectors and "
            "are not found. Meanwhile events() lists the newest events without searching "
            "(the embedded engine searches by words when embeddings are off)."
        )
    if errno == 501:
        return "Enable enable_event_embedding (and an embedding provider) on the server."
    if errno == 503:
        return "The server or its LLM provider is unavailable; retry later."
    return "Retry later; if it persists, check the server's logs for this call."


def _describe_detail(detail: Any) -> str:
    """FastAPI's ``detail`` (a string, or pydantic's list of errors) as one short line.

    The ``input`` of each error is left out: it echoes the request, which can be large and
    can contain the user's text.
    """
    if isinstance(detail, str):
        return detail
    if isinstance(detail, list):
        seen: dict[str, list[str]] = {}
        for item in detail:
            if not isinstance(item, Mapping):
                continue
            loc = ".".join(str(p) for p in item.get("loc", ()) if p not in ("uuid",))
            msg = str(item.get("msg", "invalid"))
            msgs = seen.setdefault(loc or "request", [])
            if msg not in msgs:
                msgs.append(msg)
        if seen:
            return "; ".join(f"{loc}: {' or '.join(msgs)}" for loc, msgs in seen.items())
    return clean_errmsg(json.dumps(detail, default=str))


_ERRNO_CLASSES: dict[int, type[errors.MemobaseError]] = {
    400: errors.ValidationError,
    401: errors.AuthenticationError,
    403: errors.AuthenticationError,
    404: errors.NotFoundError,
    405: errors.UnsupportedError,
    409: errors.ValidationError,
    422: errors.ValidationError,
    500: errors.ServerError,
    501: errors.UnsupportedError,
    502: errors.ServerError,
    503: errors.ServiceUnavailableError,
    504: errors.ServerError,
    520: errors.ServerError,
}


def _class_for(code: int) -> type[errors.MemobaseError]:
    if code in _ERRNO_CLASSES:
        return _ERRNO_CLASSES[code]
    if code == 429:
        return errors.ServiceUnavailableError
    if 400 <= code < 500:
        return errors.ValidationError
    return errors.ServerError


def _auth_error(call: Call, status: int, text: str) -> errors.AuthenticationError:
    return errors.AuthenticationError(
        f"{call} was refused (HTTP {status}): {_sentence(text)} What to do: check api_key / "
        "MEMOBASE_API_KEY. Memobase Cloud wants the project's token (sk-proj-...); a "
        "self-hosted server wants its ACCESS_TOKEN.",
        errno=status,
        status_code=status,
    )


def error_from_response(call: Call, response: httpx.Response) -> errors.MemobaseError | None:
    """The typed error an answer stands for, or ``None`` when it is a success envelope."""
    status = response.status_code
    try:
        body = response.json()
    except (json.JSONDecodeError, UnicodeDecodeError):
        snippet = clean_errmsg(response.text, 120) if response.content else "an empty body"
        cls = _class_for(status) if status >= 400 else errors.ServerError
        return cls(
            f"{call} failed: the answer (HTTP {status}) was not JSON ({snippet!r}). "
            "What to do: check that the project URL points at a Memobase server and not at a "
            "proxy or web page; retry later if a gateway in front of it is restarting.",
            status_code=status,
        )
    if status == 401 or status == 403:
        text = (body.get("errmsg") or body.get("detail")) if isinstance(body, dict) else None
        return _auth_error(call, status, clean_errmsg(str(text or "unauthorized")))
    if isinstance(body, dict) and "detail" in body and "errno" not in body:
        described = _describe_detail(body["detail"])
        if status == 404:
            return errors.NotFoundError(
                f"{call} failed: the server has no such route (HTTP 404: {described}). What to "
                "do: set project_url to the server's root (e.g. http://localhost:8019, without "
                "/api/v1 twice) and check that its Memobase version offers this call.",
                status_code=status,
                detail=body["detail"],
            )
        if status == 405:
            return errors.UnsupportedError(
                f"{call} failed: the server does not allow this method here (HTTP 405: "
                f"{described}). What to do: check that the server runs a Memobase version "
                "compatible with this client (0.0.40+).",
                status_code=status,
                detail=body["detail"],
            )
        cls = _class_for(status) if status >= 400 else errors.ServerError
        if status != 422:
            what = "retry later; if it persists, check the server's logs"
        elif "uuid" in described.lower():
            what = (
                "ids must be UUID v4 or v5; map other ids with "
                "memobase_integrations.ids.to_user_uuid"
            )
        else:
            what = "fix the fields named above and send again"
        return cls(
            f"{call} was refused (HTTP {status}): {described}. What to do: {what}.",
            status_code=status,
            detail=body["detail"],
        )
    if not isinstance(body, dict) or "errno" not in body:
        if status >= 400:
            return _class_for(status)(
                f"{call} failed with HTTP {status}. What to do: retry later; if it persists, "
                "check that the project URL points at a Memobase server.",
                status_code=status,
            )
        return errors.ServerError(
            f"{call} failed: the answer is JSON but not a Memobase envelope "
            "({data, errno, errmsg}). What to do: check that the project URL points at a "
            "Memobase server.",
            status_code=status,
        )
    errno = body.get("errno")
    if not isinstance(errno, int):
        return errors.ServerError(
            f"{call} failed: the answer's errno is {errno!r}, not a number. What to do: check "
            "that the project URL points at a Memobase server.",
            status_code=status,
        )
    if errno == 0 and status < 400:
        return None
    code = errno or status
    message = clean_errmsg(str(body.get("errmsg") or ""))
    if code in (401, 403):
        return _auth_error(call, code, message)
    hint = _hint_for(code, str(body.get("errmsg") or ""), call)
    return _class_for(code)(
        f"{call} failed (errno {code}): {_sentence(message or 'no message')} What to do: {hint}",
        errno=errno or None,
        status_code=status,
        detail=message,
    )


def error_from_transport(
    call: Call, exc: httpx.HTTPError, base_url: str, timeout: float
) -> errors.MemobaseError:
    """A typed error for a failure below HTTP (refused, reset, timed out)."""
    if isinstance(exc, httpx.TimeoutException):
        phase = {
            httpx.ConnectTimeout: "connecting",
            httpx.PoolTimeout: "waiting for a free connection",
            httpx.WriteTimeout: "sending the request",
        }.get(type(exc), "waiting for the answer")
        return errors.MemobaseTimeoutError(
            f"{call} timed out while {phase} (timeout {timeout:g}s, server {base_url}). What to "
            "do: check that the server is up and reachable; raise timeout= for slow calls such "
            "as a flush that processes a large buffer.",
        )
    if isinstance(exc, httpx.ConnectError):
        return errors.MemobaseConnectionError(
            f"{call} could not connect to {base_url} ({_short(exc)}). What to do: check that "
            "the server is running and that project_url / MEMOBASE_PROJECT_URL is right.",
        )
    if isinstance(exc, httpx.UnsupportedProtocol | httpx.InvalidURL):
        return errors.ConfigurationError(
            f"{call} cannot be sent to {base_url} ({_short(exc)}). What to do: set project_url "
            "to an http(s) URL.",
        )
    return errors.MemobaseConnectionError(
        f"{call} lost the connection to {base_url} before an answer arrived ({_short(exc)}). "
        "What to do: retry; the server may have applied the request.",
    )


def _short(exc: BaseException) -> str:
    text = str(exc) or type(exc).__name__
    return clean_errmsg(text, 160)


def send_outcome(exc: BaseException) -> SendOutcome:
    """Whether a failed request could have been applied by the server.

    The outbox uses this to decide between sending again (nothing arrived, or the server
    answered with a refusal) and first asking the server what it has (the answer was lost).
    """
    if isinstance(exc, UnsendableRequestError):
        return SendOutcome.NOT_SENT
    cause: BaseException | None = exc
    while cause is not None:
        if isinstance(cause, _NOT_SENT_EXCEPTIONS):
            return SendOutcome.NOT_SENT
        if isinstance(cause, httpx.HTTPError):
            return SendOutcome.UNKNOWN
        cause = cause.__cause__
    if isinstance(exc, errors.MemobaseError):
        if exc.errno is not None:
            return SendOutcome.ANSWERED  # a Memobase envelope: the handler ran and refused
        if exc.status_code in (401, 403, 404, 405, 413, 422) and not isinstance(
            exc, errors.ServerError
        ):
            return SendOutcome.ANSWERED  # refused by the framework before the handler
    return SendOutcome.UNKNOWN


# PostgreSQL refuses these for what the row contains (SQLSTATE class 22 "data exception" and
# the integrity checks on values), so the same blob fails the same way on every attempt.
# psycopg2/psycopg name the exception class in the server's errmsg.
_DATA_REFUSALS = re.compile(
    r"UntranslatableCharacter|CharacterNotInRepertoire|InvalidTextRepresentation|"
    r"StringDataRightTruncation|NumericValueOutOfRange|InvalidParameterValue|"
    r"NotNullViolation|CheckViolation|\bDataError\b|invalid byte sequence|"
    r"cannot contain NUL|\\u0000 cannot be converted|not implemented yet|"
    r"object has no attribute",
)


class UnsendableRequestError(errors.ValidationError):
    """The request cannot even be encoded (e.g. text with a lone surrogate is not UTF-8):
    nothing was sent, and sending it again can only fail the same way."""


def refusal_is_permanent(exc: BaseException) -> bool:
    """Whether the server refused a write for what it *contains*, so sending the same
    request again can only fail the same way (the outbox parks such a turn at once).

    From the recorded error shapes (``05_bad_inputs.json``, ``14_llm_unavailable.json``,
    ``memobase-server-observed.md``):

    * **permanent**: FastAPI's HTTP 422 ``{"detail": [...]}``; ``errno 400`` (``Unable to
      parse blob``); HTTP/errno 413 (too large); ``errno 520`` (the server's own "invalid"
      code); ``errno 500`` whose text names a data error of the database
      (``UntranslatableCharacter`` for U+0000 on PostgreSQL, ``CharacterNotInRepertoire``,
      ``StringDataRightTruncation``...) or an unsupported blob (``... not implemented
      yet``, ``'NoneType' object has no attribute 'type'``);
    * **transient**, everything else: nothing reached the server or the answer was lost,
      HTTP 5xx from a gateway, HTTP 429, ``errno 503`` (the server's LLM or embedding
      provider), ``errno 500`` for a missing or duplicate user (``ForeignKeyViolation``,
      ``UniqueViolation``: the user can be created) or for anything not known to be about
      the data (a lost database connection, an unknown error), and 401/403/404/405 (a wrong
      key or URL fails every turn alike: it is fixed in the configuration, not by dropping
      this turn).
    """
    if isinstance(exc, UnsendableRequestError):
        return True
    if not isinstance(exc, errors.MemobaseError):
        return False
    if send_outcome(exc) is not SendOutcome.ANSWERED:
        return False
    code = exc.errno or exc.status_code
    if code in (400, 413, 422, 520):
        return True
    if code == 500 and exc.errno == 500:
        return bool(_DATA_REFUSALS.search(f"{exc.detail or ''} {exc.message}"))
    return False


def _retry_predicate(call: Call) -> Callable[[BaseException], bool]:
    if call.idempotent_read:

        def read(exc: BaseException) -> bool:
            if isinstance(exc, errors.MemobaseConnectionError):  # includes TimeoutError
                return True
            return (
                isinstance(exc, errors.MemobaseError)
                and exc.errno is None
                and exc.status_code in _RETRYABLE_READ_STATUSES
            )

        return read

    def write(exc: BaseException) -> bool:
        return send_outcome(exc) is SendOutcome.NOT_SENT

    return write


class CircuitBreaker:
    """Remembers that the server just failed, so request-path reads stop waiting for it.

    Closed: everything goes out. A failure that says the server is down or stuck (no
    connection could be made, a timeout, a gateway's 502/503/504) opens it for
    ``cooldown`` seconds, during which :meth:`admit` refuses request-path reads at once
    (no connection is attempted). After the cool-down one read is let through as a probe
    (half-open); the others keep failing fast until it ends. Any answer from the server,
    to any request (the outbox's deliveries too), closes it.

    Hand-written rather than ``pybreaker``: that library holds its lock for the whole
    guarded call (concurrent reads would queue behind one another) and supports async only
    through tornado.
    """

    def __init__(self, cooldown: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.cooldown = cooldown
        self._clock = clock
        self._lock = threading.Lock()
        self._open_until: float | None = None
        self._probing = False
        self.last_error: str | None = None

    @property
    def is_open(self) -> bool:
        with self._lock:
            return self._open_until is not None

    def admit(self) -> bool:
        """May a request-path read go out now? (``True`` once per cool-down as the probe.)"""
        if self.cooldown <= 0:
            return True
        with self._lock:
            if self._open_until is None:
                return True
            if self._clock() < self._open_until or self._probing:
                return False
            self._probing = True
            return True

    def retry_in(self) -> float:
        with self._lock:
            if self._open_until is None:
                return 0.0
            return max(0.0, self._open_until - self._clock())

    def succeeded(self) -> None:
        with self._lock:
            self._open_until = None
            self._probing = False
            self.last_error = None

    def failed(self, error: str) -> None:
        with self._lock:
            self._open_until = self._clock() + self.cooldown
            self._probing = False
            self.last_error = error

    def release_probe(self) -> None:
        """The probe ended without telling anything about the server (e.g. cancelled)."""
        with self._lock:
            self._probing = False


def _server_down(exc: BaseException) -> bool:
    """Does this failure say the server is unreachable or stuck? (Not: it refused, nor a
    single dropped connection, which a proxy or a keep-alive race causes as well.)"""
    if isinstance(exc, errors.MemobaseTimeoutError):
        return True
    if isinstance(exc, errors.MemobaseConnectionError):
        return send_outcome(exc) is SendOutcome.NOT_SENT  # refused, DNS, connect timeout
    return (
        isinstance(exc, errors.MemobaseError)
        and exc.errno is None
        and exc.status_code in _RETRYABLE_READ_STATUSES
    )


def _answered(exc: BaseException) -> bool:
    """Did the server (or the framework in front of its handlers) answer at all?"""
    return isinstance(exc, errors.MemobaseError) and (
        exc.errno is not None or exc.status_code is not None
    )


class HttpCore:
    """Sends :class:`Request` objects over one sync client and one async client per loop.

    An :class:`httpx.AsyncClient` is bound to the event loop it first ran on; using it from
    another loop fails with "Event loop is closed". Apps (and test suites) do use several
    loops, so one async client is created lazily per running loop.

    The sockets the sync client opens are remembered (httpx's ``trace`` extension reports
    each new connection), so :meth:`abort` can interrupt a request that is blocked waiting
    for an answer: ``close(timeout)`` uses it to stop the outbox thread on time.
    """

    def __init__(
        self,
        base_url: str,
        api_key: str,
        *,
        timeout: float,
        max_retries: int,
        backoff: float,
        backoff_max: float,
        transport: httpx.BaseTransport | None = None,
        async_transport: httpx.AsyncBaseTransport | None = None,
        user_agent: str = "memobase-integrations",
        read_deadline: float | None = None,
        breaker_cooldown: float = 0.0,
    ) -> None:
        self.base_url = base_url
        self.timeout = timeout
        self.max_retries = max_retries
        self.backoff = backoff
        self.backoff_max = backoff_max
        #: Total seconds a read may take, every attempt and backoff included.
        self.read_deadline = timeout * (max_retries + 1) if read_deadline is None else read_deadline
        self.breaker = CircuitBreaker(breaker_cooldown)
        self._sockets: weakref.WeakSet[socket.socket] = weakref.WeakSet()
        self._headers = {
            "Authorization": f"Bearer {api_key}",
            "User-Agent": user_agent,
            "Accept": "application/json",
        }
        self._transport = transport
        self._async_transport = async_transport
        self._sync: httpx.Client | None = None
        self._lock = threading.Lock()
        # Keyed by the loop itself (not weakly: uvloop's loops take no weak references);
        # clients of closed loops are dropped on the next lookup.
        self._async: dict[asyncio.AbstractEventLoop, httpx.AsyncClient] = {}
        self._closers: dict[asyncio.AbstractEventLoop, AsyncGenerator[None, None]] = {}
        self._closed = False

    def __repr__(self) -> str:
        return f"HttpCore(base_url={self.base_url!r})"

    # -- clients ----------------------------------------------------------------------------
    def _client(self) -> httpx.Client:
        with self._lock:
            if self._closed:
                raise errors.MemobaseError(
                    "This Memobase client is closed. Create a new one (or do not call close() "
                    "before you are done with it)."
                )
            if self._sync is None:
                self._sync = httpx.Client(
                    base_url=self.base_url,
                    headers=self._headers,
                    timeout=self.timeout,
                    transport=self._transport,
                )
            return self._sync

    async def _aclient(self) -> httpx.AsyncClient:
        loop = asyncio.get_running_loop()
        with self._lock:
            if self._closed:
                raise errors.MemobaseError(
                    "This Memobase client is closed. Create a new one (or do not call close() "
                    "before you are done with it)."
                )
            for old in [other for other in self._async if other.is_closed()]:
                del self._async[old]  # its connections died with the loop
            client = self._async.get(loop)
            if client is not None:
                return client
            client = httpx.AsyncClient(
                base_url=self.base_url,
                headers=self._headers,
                timeout=self.timeout,
                transport=self._async_transport,
            )
            self._async[loop] = client
        # Close the client (and its sockets) while its loop still runs: asyncio.run() and
        # well-behaved loop owners close every live async generator before closing the loop
        # (``shutdown_asyncgens``), so this one's ``finally`` runs on that loop, in time.
        closer = self._close_with_loop(loop, client)
        await closer.asend(None)
        with self._lock:
            self._closers[loop] = closer
        return client

    async def _close_with_loop(
        self, loop: asyncio.AbstractEventLoop, client: httpx.AsyncClient
    ) -> AsyncGenerator[None, None]:
        try:
            yield
        finally:
            with self._lock:
                if self._async.get(loop) is client:
                    del self._async[loop]
                self._closers.pop(loop, None)
            await client.aclose()

    # -- sending ----------------------------------------------------------------------------
    def _retrying_kwargs(self, call: Call) -> dict[str, Any]:
        stop: tenacity.stop.stop_base = tenacity.stop_after_attempt(self.max_retries + 1)
        if call.idempotent_read:
            # Never start an attempt (or a backoff sleep) that would end past the deadline.
            stop = stop | tenacity.stop_before_delay(self.read_deadline)
        return {
            "retry": tenacity.retry_if_exception(_retry_predicate(call)),
            "stop": stop,
            "wait": tenacity.wait_exponential_jitter(
                multiplier=self.backoff, max=self.backoff_max, jitter=self.backoff
            ),
            "reraise": True,
        }

    def _build(self, req: Request[Any]) -> dict[str, Any]:
        """httpx arguments; the JSON body is encoded here, so a body that cannot be sent
        (a lone surrogate has no UTF-8 form) is a typed, permanent refusal, not a crash."""
        kwargs: dict[str, Any] = {"params": list(req.params)}
        if req.json is not _NO_BODY:
            try:
                content = json.dumps(
                    req.json, ensure_ascii=False, separators=(",", ":"), allow_nan=False
                ).encode("utf-8")
            except (TypeError, ValueError) as exc:  # UnicodeEncodeError is a ValueError
                raise UnsendableRequestError(
                    f"{req.call} cannot be sent: its body is not valid JSON text "
                    f"({type(exc).__name__}: {clean_errmsg(str(exc), 120)}). What to do: "
                    "remove the offending characters (e.g. unpaired surrogates) from the "
                    "text and record it again."
                ) from exc
            kwargs["content"] = content
            kwargs["headers"] = {"Content-Type": "application/json"}
        return kwargs

    def _attempt_timeout(self, call: Call, deadline: float | None) -> float:
        """This attempt's httpx timeout: the per-attempt timeout, cut to the deadline."""
        if deadline is None:
            return self.timeout
        left = deadline - time.monotonic()
        if left <= 0:
            raise self._deadline_error(call)
        return min(self.timeout, left)

    def _deadline_error(self, call: Call) -> errors.MemobaseTimeoutError:
        return errors.MemobaseTimeoutError(
            f"{call} did not finish within its {self.read_deadline:g}s deadline (retries "
            f"included; server {self.base_url}). What to do: check that the server is up "
            "and reachable; raise read_deadline= if your server is slow.",
        )

    def _gate(self, call: Call) -> bool:
        """Admit a request; ``True`` when it is the breaker's probe. Refuses request-path
        reads while the breaker is open."""
        if not call.request_path:
            return False
        if self.breaker.admit():
            return self.breaker.is_open
        raise errors.MemobaseConnectionError(
            f"{call} was not sent: the Memobase server at {self.base_url} failed moments ago "
            f"({self.breaker.last_error or 'no answer'}), so request-path reads answer at "
            f"once for {self.breaker.cooldown:g}s before trying it again (next try in "
            f"{self.breaker.retry_in():.1f}s). What to do: nothing; memory comes back when "
            "the server does (check its health if this persists).",
        )

    def _record(self, exc: BaseException | None, probe: bool) -> None:
        if exc is None:
            self.breaker.succeeded()
        elif _server_down(exc):
            message = exc.message if isinstance(exc, errors.MemobaseError) else str(exc)
            self.breaker.failed(clean_errmsg(message, 160))
        elif _answered(exc):
            self.breaker.succeeded()  # the server answered (with a refusal): it is up
        elif probe:
            self.breaker.release_probe()

    def _trace(self, event: str, info: dict[str, Any]) -> None:
        """httpx ``trace`` hook: remember every socket the sync client connects."""
        if event in ("connection.connect_tcp.complete", "connection.start_tls.complete"):
            stream = info.get("return_value")
            get = getattr(stream, "get_extra_info", None)
            sock = get("socket") if get is not None else None
            if isinstance(sock, socket.socket):
                self._sockets.add(sock)

    def _finish(self, req: Request[T], response: httpx.Response) -> T:
        error = error_from_response(req.call, response)
        if error is not None:
            raise error
        data = response.json().get("data")
        try:
            return req.parse(data)
        except (ValueError, TypeError, KeyError) as exc:  # pydantic.ValidationError is a ValueError
            raise errors.ServerError(
                f"{req.call} answered data this client cannot read "
                f"({clean_errmsg(str(exc), 200)}). "
                "What to do: check that the server runs a Memobase version compatible with "
                "this client (0.0.40+).",
                status_code=response.status_code,
            ) from exc

    def send(self, req: Request[T]) -> T:
        """Send with the sync client (retrying where safe) and return the parsed ``data``.

        A read gives up after ``read_deadline`` seconds in total; a request-path read fails
        at once while the breaker is open.
        """
        client = self._client()
        probe = self._gate(req.call)
        path = req.url_path()
        kwargs = self._build(req)
        kwargs["extensions"] = {"trace": self._trace}
        deadline = time.monotonic() + self.read_deadline if req.call.idempotent_read else None
        try:
            for attempt in tenacity.Retrying(**self._retrying_kwargs(req.call)):
                with attempt:
                    timeout = self._attempt_timeout(req.call, deadline)
                    try:
                        response = client.request(req.call.method, path, timeout=timeout, **kwargs)
                    except httpx.HTTPError as exc:
                        raise error_from_transport(req.call, exc, self.base_url, timeout) from exc
                    result = self._finish(req, response)
                    self._record(None, probe)
                    return result
        except BaseException as exc:
            self._record(exc, probe)
            raise
        raise AssertionError("unreachable: tenacity reraises the last error")  # pragma: no cover

    async def asend(self, req: Request[T]) -> T:
        """The async twin of :meth:`send` (native httpx.AsyncClient, asyncio sleeps); the
        read deadline is also enforced by ``asyncio.timeout``."""
        client = await self._aclient()
        probe = self._gate(req.call)
        path = req.url_path()
        kwargs = self._build(req)
        read = req.call.idempotent_read
        deadline = time.monotonic() + self.read_deadline if read else None
        try:
            async with asyncio.timeout(self.read_deadline if read else None):
                async for attempt in tenacity.AsyncRetrying(**self._retrying_kwargs(req.call)):
                    with attempt:
                        timeout = self._attempt_timeout(req.call, deadline)
                        try:
                            response = await client.request(
                                req.call.method, path, timeout=timeout, **kwargs
                            )
                        except httpx.HTTPError as exc:
                            raise error_from_transport(
                                req.call, exc, self.base_url, timeout
                            ) from exc
                        result = self._finish(req, response)
                        self._record(None, probe)
                        return result
        except TimeoutError as exc:  # asyncio.timeout: the deadline passed mid-attempt
            error = self._deadline_error(req.call)
            self._record(error, probe)
            raise error from exc
        except BaseException as exc:
            self._record(exc, probe)
            raise
        raise AssertionError("unreachable: tenacity reraises the last error")  # pragma: no cover

    # -- closing ----------------------------------------------------------------------------
    def abort(self) -> None:
        """Interrupt every request of the sync client that is waiting on the network.

        Shutting a socket down wakes a thread blocked reading from it at once (closing it
        would not); the request then fails as a lost connection, which the outbox records
        as "answer lost" (it asks the server before sending again).
        """
        for sock in list(self._sockets):
            with contextlib.suppress(OSError):  # already closed
                sock.shutdown(socket.SHUT_RDWR)

    def close(self) -> None:
        """Close the sync client; async clients are dropped (their loops may be gone)."""
        with self._lock:
            self._closed = True
            sync, self._sync = self._sync, None
            self._async = {}
        if sync is not None:
            sync.close()

    async def aclose(self) -> None:
        """Close the client of the running loop properly, then the rest like :meth:`close`."""
        try:
            loop: asyncio.AbstractEventLoop | None = asyncio.get_running_loop()
        except RuntimeError:  # pragma: no cover - always called from a coroutine
            loop = None
        with self._lock:
            closer = self._closers.pop(loop, None) if loop is not None else None
            mine = self._async.pop(loop) if loop is not None and loop in self._async else None
        if closer is not None:
            await closer.aclose()  # its ``finally`` closes the client
        if mine is not None:
            await mine.aclose()
        self.close()
