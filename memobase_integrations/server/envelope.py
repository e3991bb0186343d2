"""The answer format: ``{data, errno, errmsg}``, and how errors become one.

Recorded from the real server and kept here: a handler's error is **HTTP 200** with the
errno in the body (``errno 404 "User <id> not found"``), an unexpected exception is HTTP 200
with errno 500 and the "Sorry, we have encountered an unknown error" wording, validation of
the request itself is FastAPI's HTTP 422 ``{"detail": [...]}``, and authentication failures
are HTTP 401 with the envelope. Clients (the SDKs, this project's remote backend) read the
errno, so the codes below are the contract.
"""

from __future__ import annotations

import logging
from typing import Any, Final

from fastapi.responses import JSONResponse
from pydantic import BaseModel

from .. import errors
from ..models import ErrorCode

__all__ = [
    "UNKNOWN_ERROR_PREFIX",
    "ServerAnswer",
    "errno_for",
    "fail",
    "ok",
    "unknown_error",
]

log = logging.getLogger(__name__)

UNKNOWN_ERROR_PREFIX: Final = "Sorry, we have encountered an unknown error: \n"
_REPORT: Final = "\nPlease report this issue with the server's log."


class ServerAnswer(Exception):
    """Raised by a route to answer with an errno (HTTP 200), like the server's controllers."""

    def __init__(self, errno: int, errmsg: str) -> None:
        super().__init__(errmsg)
        self.errno = errno
        self.errmsg = errmsg


def _jsonable(data: Any) -> Any:
    if isinstance(data, BaseModel):
        return data.model_dump(mode="json")
    if isinstance(data, list):
        return [_jsonable(item) for item in data]
    if isinstance(data, dict):
        return {key: _jsonable(value) for key, value in data.items()}
    return data


def ok(data: Any = None) -> JSONResponse:
    """A success envelope (HTTP 200, errno 0)."""
    return JSONResponse({"data": _jsonable(data), "errno": 0, "errmsg": ""})


def fail(errno: int, errmsg: str, *, status_code: int = 200) -> JSONResponse:
    """An error envelope; HTTP 200 unless the error is the transport's (401, 413)."""
    return JSONResponse({"data": None, "errno": errno, "errmsg": errmsg}, status_code=status_code)


def unknown_error(text: str) -> JSONResponse:
    """What the real server answers for an exception no handler expected."""
    return fail(ErrorCode.INTERNAL_SERVER_ERROR, f"{UNKNOWN_ERROR_PREFIX}{text}{_REPORT}")


def errno_for(exc: errors.MemobaseError) -> int:
    """The errno a typed error of the engine stands for (the server's CODE values)."""
    if isinstance(exc, errors.NotFoundError):
        return ErrorCode.NOT_FOUND
    if isinstance(exc, errors.ValidationError | errors.InvalidMessageError):
        return ErrorCode.BAD_REQUEST
    if isinstance(exc, errors.InvalidUserIdError):
        return ErrorCode.BAD_REQUEST
    if isinstance(exc, errors.UnsupportedError):
        return ErrorCode.NOT_IMPLEMENTED
    if isinstance(exc, errors.LLMError | errors.ServiceUnavailableError):
        return ErrorCode.SERVICE_UNAVAILABLE
    if isinstance(exc, errors.ConfigurationError):
        # Inside a request this means processing has no LLM (the server's 503 family).
        return ErrorCode.SERVICE_UNAVAILABLE
    if isinstance(exc, errors.ServerError) and exc.errno == ErrorCode.SERVER_PARSE_ERROR:
        return ErrorCode.SERVER_PARSE_ERROR
    return ErrorCode.INTERNAL_SERVER_ERROR
