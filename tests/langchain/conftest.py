"""Fixtures for the LangChain adapter tests: the in-memory engine behind a spy, and fake chat
models."""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from langchain_core.messages import AIMessage
from support.lc_models import FacadeSpy, ToolCallingFakeModel
from support.spy import SpyBackend

from memobase_integrations.facade import Memobase


@pytest.fixture
def fake_backend() -> Iterator[SpyBackend]:
    """The in-memory engine behind a spy (the name is historical: nothing here is fake
    but the chat models)."""
    spy = SpyBackend()
    yield spy
    spy.close(0)


@pytest.fixture
def memobase(fake_backend: SpyBackend) -> Iterator[Memobase]:
    facade = Memobase(fake_backend)
    yield facade
    facade.close(0)  # ends its context refresher thread (and closes the backend)


@pytest.fixture
def make_model() -> Callable[..., ToolCallingFakeModel]:
    def make(*responses: AIMessage | str, repeat: str | None = None) -> ToolCallingFakeModel:
        script: Iterator[AIMessage | str] = iter(responses)
        if repeat is not None:
            script = itertools.chain(script, itertools.repeat(repeat))
        return ToolCallingFakeModel(messages=script)

    return make


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

    peek = UserMemory.cached_context

    def peek_wrapper(self: UserMemory, *a: Any, **k: Any) -> str | None:
        value = peek(self, *a, **k)
        if value is not None:  # a cache hit is the invocation's context read
            facade_spy.calls.append(("context", self.external_id))
        return value

    monkeypatch.setattr(UserMemory, "cached_context", peek_wrapper)
    return facade_spy
