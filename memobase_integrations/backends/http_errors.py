"""Every way a call to a Memobase server can fail, as the package's typed errors.

Why more than ``raise_for_status``: the server answers almost every error as **HTTP 200**
with ``errno != 0`` (even unhandled exceptions), FastAPI's own refusals come as
``{"detail": [...]}`` (422) or ``{"detail": "Not Found"}`` (404/405), and an error text may
carry a whole SQL statement with its parameters. Messages here name the call by its path
*template* (never the user's data, never the key), keep the server's words (trimmed), and
say what to do. Also what a failure tells about the server's state (:func:`send_outcome`),
which refusals are permanent (:func:`refusal_is_permanent`, the outbox parks those), and
which failures are retried or open the circuit breaker.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping
from enum import Enum
from typing import Any

import httpx

from .. import errors
from .wire import Call

__all__ = [
    "SendOutcome",
    "UnsendableRequestError",
    "answered",
    "clean_errmsg",
    "error_from_response",
    "error_from_transport",
    "refusal_is_permanent",
    "retry_predicate",
    "send_outcome",
    "server_down",
]

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


def retry_predicate(call: Call) -> Callable[[BaseException], bool]:
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


def server_down(exc: BaseException) -> bool:
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


def answered(exc: BaseException) -> bool:
    """Did the server (or the framework in front of its handlers) answer at all?"""
    return isinstance(exc, errors.MemobaseError) and (
        exc.errno is not None or exc.status_code is not None
    )
