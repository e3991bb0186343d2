"""Fixtures for the LangChain adapter tests: a fake backend and fake chat models."""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import pytest
from langchain_core.language_models.fake_chat_models import GenericFakeChatModel
from langchain_core.messages import AIMessage, BaseMessage, SystemMessage
from langchain_core.outputs import ChatResult
from lc_fakes import FakeBackend
from pydantic import Field

from memobase_integrations.facade import Memobase


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


@pytest.fixture
def fake_backend() -> FakeBackend:
    return FakeBackend()


@pytest.fixture
def memobase(fake_backend: FakeBackend) -> Memobase:
    return Memobase(fake_backend)


@pytest.fixture
def make_model() -> Callable[..., ToolCallingFakeModel]:
    def make(*responses: AIMessage | str, repeat: str | None = None) -> ToolCallingFakeModel:
        script: Iterator[AIMessage | str] = iter(responses)
        if repeat is not None:
            script = itertools.chain(script, itertools.repeat(repeat))
        return ToolCallingFakeModel(messages=script)

    return make


class FacadeSpy:
    """Counts the middleware's calls into the facade (the facade caches contexts, so the
    backend alone cannot tell how often the middleware asked)."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, str]] = []

    def count(self, name: str) -> int:
        return sum(1 for n, _ in self.calls if n == name)


@pytest.fixture
def spy(monkeypatch: pytest.MonkeyPatch) -> FacadeSpy:
    from memobase_integrations.facade import UserMemory

    facade_spy = FacadeSpy()
    for name in ("context", "record", "flush"):
        sync_fn = getattr(UserMemory, name)
        async_fn = getattr(UserMemory, f"a{name}")

        def sync_wrapper(
            self: UserMemory, *a: Any, _f: Any = sync_fn, _n: str = name, **k: Any
        ) -> Any:
            facade_spy.calls.append((_n, self.external_id))
            return _f(self, *a, **k)

        async def async_wrapper(
            self: UserMemory, *a: Any, _f: Any = async_fn, _n: str = name, **k: Any
        ) -> Any:
            facade_spy.calls.append((_n, self.external_id))
            return await _f(self, *a, **k)

        monkeypatch.setattr(UserMemory, name, sync_wrapper)
        monkeypatch.setattr(UserMemory, f"a{name}", async_wrapper)
    return facade_spy
