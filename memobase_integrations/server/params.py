"""Request types shared by the routes, written so FastAPI validates as the real server does.

Ids in paths and bodies are ``UUID4 | UUID5`` (pydantic): any other version, or a non-UUID,
is an HTTP 422 with two ``detail`` entries, one per member of the union, exactly as
recorded. Upper-case and hyphen-less spellings are accepted, as there. Query values that
carry structure arrive as JSON text (``chats_str``, ``topic_limits_json``) and are parsed by
:func:`parse_chats` and :func:`parse_topic_limits`, whose errors are the server's errno 400.
"""

from __future__ import annotations

import json
from typing import Annotated, Any, Literal

from fastapi import Depends, Path, Request
from pydantic import UUID4, UUID5, TypeAdapter
from pydantic import ValidationError as PydanticValidationError

from ..facade import Memobase
from ..messages import Message
from ..models import ErrorCode, OpenAICompatibleMessage
from .envelope import ServerAnswer

__all__ = [
    "AnyUuid",
    "BlobIdPath",
    "BufferStatusQuery",
    "EventIdPath",
    "Mb",
    "ProfileIdPath",
    "UserIdPath",
    "memobase",
    "parse_chats",
    "parse_topic_limits",
]

AnyUuid = UUID4 | UUID5
UserIdPath = Annotated[AnyUuid, Path(description="The user's id (UUID v4 or v5).")]
BlobIdPath = Annotated[AnyUuid, Path(description="The blob's id.")]
ProfileIdPath = Annotated[AnyUuid, Path(description="The profile row's id.")]
EventIdPath = Annotated[AnyUuid, Path(description="The event's id.")]
BufferStatusQuery = Literal["idle", "processing", "failed", "done"]

_MESSAGES = TypeAdapter(list[OpenAICompatibleMessage])
_LIMITS = TypeAdapter(dict[str, int])


def memobase(request: Request) -> Memobase:
    """The facade the app serves (``app.state.memobase``)."""
    mb: Memobase = request.app.state.memobase
    return mb


Mb = Annotated[Memobase, Depends(memobase)]


def parse_chats(text: str | None, prefix: str) -> list[Message] | None:
    """``chats_str``: a JSON list of ``{role: user|assistant, content, ...}`` messages."""
    if text is None:
        return None
    try:
        raw: Any = json.loads(text)
        checked = _MESSAGES.validate_python(raw)
    except (ValueError, PydanticValidationError) as exc:
        raise ServerAnswer(ErrorCode.BAD_REQUEST, f"{prefix}: {exc}") from None
    return [Message.of(m.role, m.content, name=m.alias, created_at=m.created_at) for m in checked]


def parse_topic_limits(text: str | None, prefix: str) -> dict[str, int] | None:
    """``topic_limits_json``: a JSON object of topic -> maximum sub-topics."""
    if text is None:
        return None
    try:
        return _LIMITS.validate_python(json.loads(text))
    except (ValueError, PydanticValidationError) as exc:
        raise ServerAnswer(ErrorCode.BAD_REQUEST, f"{prefix}: {exc}") from None
