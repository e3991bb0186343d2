"""LangChain messages -> the core's neutral :class:`~memobase_integrations.messages.Message`.

Memobase keeps only what the user and the assistant *said*: a ``ChatBlob`` accepts the roles
``user`` and ``assistant`` with plain-text content. Everything else in a LangChain transcript
is machinery (system prompts, tool calls and their results, summaries written by
``SummarizationMiddleware``, reasoning blocks, images) and recording it would teach the profile
things the user never said. This module is the one place that decides what survives, so the
middleware and the chat history record exactly the same thing for the same turn.

The conversion is pure and deterministic: no clock is read unless the caller passes a default
timestamp, so the same messages always give the same result.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from langchain_core.messages import (
    AIMessage,
    BaseMessage,
    ChatMessage,
    HumanMessage,
    ToolMessage,
)

from memobase_integrations import (
    Message,
    Said,
)

__all__ = [
    "SUMMARY_SOURCE",
    "is_summary_message",
    "last_user_message",
    "message_created_at",
    "message_text",
    "to_memobase_message",
    "to_memobase_messages",
    "to_said",
]

#: ``additional_kwargs["lc_source"]`` of the HumanMessage that ``SummarizationMiddleware`` writes.
#: It looks like a user turn but is the framework talking; recording it would make every later
#: summary a "user statement".
SUMMARY_SOURCE = "summarization"

_TIMESTAMP_KEYS = ("created_at", "timestamp")
_USER_ROLES = frozenset({"user", "human"})
_ASSISTANT_ROLES = frozenset({"assistant", "ai"})
# Epoch values above this are milliseconds (year 33658 in seconds is not a chat timestamp).
_MILLIS_THRESHOLD = 1e12


def is_summary_message(message: BaseMessage) -> bool:
    """True for the synthetic summary message that ``SummarizationMiddleware`` inserts."""
    source = message.additional_kwargs.get("lc_source")
    return source == SUMMARY_SOURCE


def message_text(message: BaseMessage) -> str:
    """The text parts of a message, stripped.

    String content is used as is. For content-block lists only ``text`` blocks count (images,
    audio, files, reasoning and tool-call blocks are dropped); separate text parts are joined
    with a newline so "look at this" + <image> + "and this" stays readable.
    """
    content = message.content
    if isinstance(content, str):
        return content.strip()
    parts: list[str] = []
    for block in content:
        if isinstance(block, str):
            text = block
        elif isinstance(block, Mapping) and block.get("type") == "text":
            value = block.get("text")
            text = value if isinstance(value, str) else ""
        else:
            continue
        if text.strip():
            parts.append(text.strip())
    return "\n".join(parts)


def message_created_at(message: BaseMessage) -> datetime | str | None:
    """The time a message was said, if the app or the provider recorded it.

    Looks for ``created_at`` or ``timestamp`` in ``additional_kwargs`` then
    ``response_metadata``. Datetimes and strings pass through (strings verbatim, as Memobase
    shows them to its LLM verbatim); numbers are Unix epochs in seconds or milliseconds.
    """
    for source in (message.additional_kwargs, message.response_metadata):
        for key in _TIMESTAMP_KEYS:
            value = source.get(key)
            converted = _coerce_timestamp(value)
            if converted is not None:
                return converted
    return None


def _coerce_timestamp(value: Any) -> datetime | str | None:
    if isinstance(value, datetime):
        return value
    if isinstance(value, str):
        return value.strip() or None
    if isinstance(value, bool):  # bool is an int; never a timestamp
        return None
    if isinstance(value, int | float):
        seconds = value / 1000 if value > _MILLIS_THRESHOLD else value
        try:
            return datetime.fromtimestamp(seconds, UTC)
        except (OverflowError, OSError, ValueError):
            return None
    return None


def _role_of(message: BaseMessage, *, keep_tool_call_text: bool) -> str | None:
    if isinstance(message, HumanMessage):
        return None if is_summary_message(message) else "user"
    if isinstance(message, AIMessage):
        if message.tool_calls and not keep_tool_call_text:
            return None  # an intermediate step of a tool loop, not the answer
        return "assistant"
    if isinstance(message, ChatMessage):
        role = message.role.strip().lower()
        if role in _USER_ROLES:
            return "user"
        if role in _ASSISTANT_ROLES:
            return "assistant"
    # SystemMessage, ToolMessage, FunctionMessage, RemoveMessage, other ChatMessage roles.
    return None


def to_memobase_message(
    message: BaseMessage,
    *,
    default_created_at: datetime | str | None = None,
    keep_tool_call_text: bool = False,
) -> Message | None:
    """Convert one message, or ``None`` when Memobase should not see it.

    See :func:`to_memobase_messages` for the rules.
    """
    role = _role_of(message, keep_tool_call_text=keep_tool_call_text)
    if role is None:
        return None
    text = message_text(message)
    if not text:
        return None
    created_at = message_created_at(message) or default_created_at
    metadata: dict[str, Any] = {"id": message.id} if message.id else {}
    return Message(
        role="user" if role == "user" else "assistant",
        content=text,
        name=message.name or None,
        created_at=created_at,
        metadata=metadata,
    )


def to_memobase_messages(
    messages: Iterable[BaseMessage],
    *,
    default_created_at: datetime | str | None = None,
    keep_tool_call_text: bool = False,
) -> list[Message]:
    """Keep what the user and the assistant said, as neutral messages, in order.

    * ``HumanMessage`` -> ``user``; ``AIMessage`` -> ``assistant``; a ``ChatMessage`` whose
      role is user/human or assistant/ai likewise.
    * Dropped: system, tool and function messages; the summary message of
      ``SummarizationMiddleware`` (``lc_source == "summarization"``); AI messages that request
      tool calls (intermediate steps; pass ``keep_tool_call_text=True`` to keep their text);
      anything whose text is blank once images, reasoning and other non-text blocks are gone.
    * ``name`` becomes Memobase's alias; ``id`` is kept in ``Message.metadata["id"]``.
    * ``created_at`` comes from ``additional_kwargs`` / ``response_metadata``
      (``created_at`` or ``timestamp``), else ``default_created_at``.
    """
    converted = (
        to_memobase_message(
            m, default_created_at=default_created_at, keep_tool_call_text=keep_tool_call_text
        )
        for m in messages
    )
    return [m for m in converted if m is not None]


def last_user_message(messages: Sequence[BaseMessage]) -> HumanMessage | None:
    """The newest real user message (summaries excluded): the start of the current turn."""
    for message in reversed(messages):
        if isinstance(message, HumanMessage) and not is_summary_message(message):
            return message
    return None


def to_said(message: BaseMessage) -> Said:
    """A LangChain message as the core turn policy sees it (:mod:`memobase_integrations.turns`).

    Summaries written by ``SummarizationMiddleware`` are ``other``: the framework talking.
    """
    key = message.id or None
    if isinstance(message, HumanMessage):
        kind = "other" if is_summary_message(message) else "user"
        return Said(kind, message_text(message), key=key)  # type: ignore[arg-type]
    if isinstance(message, AIMessage):
        return Said("assistant", message_text(message), bool(message.tool_calls), key)
    if isinstance(message, ToolMessage):
        return Said("tool", message_text(message), key=key)
    if isinstance(message, ChatMessage):
        role = message.role.strip().lower()
        if role in _USER_ROLES:
            return Said("user", message_text(message), key=key)
        if role in _ASSISTANT_ROLES:
            return Said("assistant", message_text(message), key=key)
    return Said("other", message_text(message), key=key)
