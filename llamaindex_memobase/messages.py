"""Conversion of LlamaIndex ``ChatMessage`` objects into the core's neutral messages.

Memobase stores only what the user and the assistant *said*. Everything else a LlamaIndex
transcript carries is dropped on purpose, because feeding it to profile extraction would turn
tool payloads, system prompts and hidden reasoning into "facts about the user":

* roles other than user/assistant (system, developer, tool, function) are dropped;
* an assistant message that requests tool calls is an intermediate step, not an answer, and is
  dropped together with its narration ("Let me look that up");
* only ``TextBlock`` text is kept (joined with ``"\\n"``); images, audio, documents, thinking,
  citations and cache points are dropped; a message left without text is dropped;
* a ReAct transcript (``Thought: ...`` / ``Action: ...`` / ``Answer: ...``) keeps only the text
  after the last ``Answer:``; a ReAct step without an answer is dropped;
* ``additional_kwargs["name"]`` (or ``"alias"``) becomes the speaker's name, and
  ``additional_kwargs["created_at"]`` (or ``"timestamp"``) the message time.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any

from llama_index.core.base.llms.types import ChatMessage, MessageRole, TextBlock, ToolCallBlock

from memobase_integrations import (
    Message,
    Said,
    is_answer,
)

__all__ = [
    "is_final_answer",
    "message_text",
    "requests_tools",
    "to_memobase_message",
    "to_memobase_messages",
    "to_said",
]

_USER_ROLES = frozenset({MessageRole.USER})
_ASSISTANT_ROLES = frozenset({MessageRole.ASSISTANT, MessageRole.CHATBOT, MessageRole.MODEL})

# A ReAct transcript starts with "Thought:"; its final answer follows an "Answer:" line.
_REACT_START = re.compile(r"^\s*Thought\s*:", re.IGNORECASE)
_REACT_ANSWER = re.compile(r"^\s*Answer\s*:\s?", re.IGNORECASE | re.MULTILINE)


def message_text(message: ChatMessage) -> str:
    """The message's ``TextBlock`` text joined with newlines, stripped ("" if none)."""
    parts = [block.text for block in message.blocks if isinstance(block, TextBlock)]
    return "\n".join(parts).strip()


def requests_tools(message: ChatMessage) -> bool:
    """True when the message asks for tool calls (new ``ToolCallBlock`` or legacy kwargs)."""
    if any(isinstance(block, ToolCallBlock) for block in message.blocks):
        return True
    return bool(message.additional_kwargs.get("tool_calls"))


def is_final_answer(message: ChatMessage) -> bool:
    """True for an assistant message that ends a turn with an answer (the core policy:
    text, no tool calls, not framework-synthetic text)."""
    return is_answer(to_said(message))


def _assistant_text(text: str) -> str:
    """The words the user was given: ReAct reasoning reduced to its final answer."""
    if not _REACT_START.match(text):
        return text
    answers = list(_REACT_ANSWER.finditer(text))
    if not answers:
        return ""  # a reasoning step without an answer is not something the user was told
    return text[answers[-1].end() :].strip()


def _timestamp(kwargs: dict[str, Any]) -> datetime | str | None:
    value = kwargs.get("created_at", kwargs.get("timestamp"))
    if isinstance(value, datetime | str):
        return value or None
    if isinstance(value, int | float) and not isinstance(value, bool):
        return datetime.fromtimestamp(value, tz=UTC)  # epoch seconds
    return None


def _name(kwargs: dict[str, Any]) -> str | None:
    value = kwargs.get("name", kwargs.get("alias"))
    return value if isinstance(value, str) and value.strip() else None


def to_memobase_message(message: ChatMessage) -> Message | None:
    """One ``ChatMessage`` as a neutral :class:`Message`, or ``None`` if nothing is kept."""
    if message.role in _USER_ROLES:
        role = "user"
        text = message_text(message)
    elif message.role in _ASSISTANT_ROLES:
        if requests_tools(message):
            return None
        role = "assistant"
        text = _assistant_text(message_text(message))
    else:
        return None
    if not text:
        return None
    kwargs = message.additional_kwargs or {}
    return Message.of(role, text, name=_name(kwargs), created_at=_timestamp(kwargs))


def to_memobase_messages(messages: Iterable[ChatMessage]) -> list[Message]:
    """LlamaIndex messages as the neutral messages Memobase records (see module docstring)."""
    out: list[Message] = []
    for message in messages:
        converted = to_memobase_message(message)
        if converted is not None:
            out.append(converted)
    return out


def to_said(message: ChatMessage) -> Said:
    """A LlamaIndex message as the core turn policy sees it (:mod:`memobase_integrations.turns`).

    A ReAct reasoning step without an ``Answer:`` is a step (like a tool call), not an answer.
    """
    if message.role in _USER_ROLES:
        return Said("user", message_text(message))
    if message.role in _ASSISTANT_ROLES:
        raw = message_text(message)
        text = _assistant_text(raw)
        step = requests_tools(message) or (bool(raw) and not text)
        return Said("assistant", text, calls_tools=step)
    if message.role in (MessageRole.TOOL, MessageRole.FUNCTION):
        return Said("tool", message_text(message))
    return Said("other", message_text(message))
