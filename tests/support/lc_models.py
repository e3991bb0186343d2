"""Framework-side test doubles for the LangChain adapter tests (the backend is real: the
in-memory engine, see ``support.spy.SpyBackend``): a tool-calling fake chat model that
remembers what it was sent, a tool-call message builder, and a spy on the facade.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from langchain_core.language_models.fake_chat_models import GenericFakeChatModel
from langchain_core.messages import AIMessage, BaseMessage, SystemMessage
from langchain_core.outputs import ChatResult
from pydantic import Field


class ToolCallingFakeModel(GenericFakeChatModel):
    """GenericFakeChatModel that accepts tools (a no-op) and remembers what it was sent."""

    seen: list[list[BaseMessage]] = Field(default_factory=list)

    def bind_tools(self, tools: Sequence[Any], **kwargs: Any) -> ToolCallingFakeModel:
        return self

    def _generate(self, messages: list[BaseMessage], *args: Any, **kwargs: Any) -> ChatResult:
        self.seen.append(list(messages))
        return super()._generate(messages, *args, **kwargs)

    def system_messages(self, call: int = -1) -> list[SystemMessage]:
        return [m for m in self.seen[call] if isinstance(m, SystemMessage)]


def tool_call(name: str, args: dict[str, Any], call_id: str) -> AIMessage:
    return AIMessage(
        content="", tool_calls=[{"name": name, "args": args, "id": call_id, "type": "tool_call"}]
    )


class FacadeSpy:
    """Counts the middleware's calls into the facade (the facade caches contexts, so the
    backend alone cannot tell how often the middleware asked)."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, str]] = []

    def count(self, name: str) -> int:
        return sum(1 for n, _ in self.calls if n == name)
