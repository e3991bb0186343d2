"""Under ``ainvoke`` the adapters never block the event loop.

The real assertion is the overlap count: four concurrent runs against a slow backend must
have four memory calls in flight at once. A blocking call on the loop would serialise them
(one in flight at a time). The wall-clock bound is a deliberately generous sanity check.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import pytest
from langchain.agents import create_agent
from langchain_core.messages import HumanMessage
from langchain_core.tools import tool
from support.lc_models import ToolCallingFakeModel, tool_call
from support.spy import SpyBackend

from langchain_memobase import (
    MemobaseChatMessageHistory,
    MemobaseEventRetriever,
    MemobaseMiddleware,
    MemobaseProfileRetriever,
    memobase_tools,
)
from memobase_integrations.facade import Memobase, UserMemory

DELAY = 0.4
MakeModel = Callable[..., ToolCallingFakeModel]


@tool
def lookup(topic: str) -> str:
    """Look something up."""
    return f"facts about {topic}"


@pytest.fixture
def no_sync_memory_on_loop(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Fail any sync facade call made from a thread that runs an event loop."""
    offenders: list[str] = []
    for name in ("context", "record", "flush", "profile", "search_events", "add_profile"):
        original = getattr(UserMemory, name)

        def guarded(self: UserMemory, *a: Any, _f: Any = original, _n: str = name, **k: Any) -> Any:
            try:
                asyncio.get_running_loop()
            except RuntimeError:
                return _f(self, *a, **k)
            offenders.append(_n)
            raise AssertionError(f"sync UserMemory.{_n} called on the event loop")

        monkeypatch.setattr(UserMemory, name, guarded)
    return offenders


async def _four_concurrent_runs(backend: SpyBackend, model: ToolCallingFakeModel) -> None:
    memobase = Memobase(backend)
    agent = create_agent(
        model,
        middleware=[MemobaseMiddleware(memobase, user_id_from=lambda rt: rt.context["user_id"])],
    )

    async def run(i: int) -> Any:
        return await agent.ainvoke(
            {"messages": [HumanMessage(f"hello {i}")]}, context={"user_id": f"user-{i}"}
        )

    results = await asyncio.gather(*(run(i) for i in range(4)))
    assert [r["messages"][-1].content for r in results] == ["ok"] * 4


async def test_four_concurrent_ainvoke_overlap(
    make_model: MakeModel, no_sync_memory_on_loop: list[str]
) -> None:
    """Four runs against a slow backend cost about one delay, not four.

    Proven structurally rather than with a stopwatch (timed assertions are flaky on a loaded
    machine; the benchmarks measure time): every memory call sleeps ``DELAY`` on the event loop,
    and all four were in flight at the same moment, so the waits overlapped. A middleware that
    blocked the loop (a sync call inside ``ainvoke``) would show ``max_in_flight == 1``.
    """
    backend = SpyBackend(delay=DELAY)
    await _four_concurrent_runs(backend, make_model(repeat="ok"))

    assert backend.count("context") == 4 and backend.count("record") == 4
    assert backend.max_in_flight == 4  # all four memory calls were waiting at the same time
    assert backend.sync_on_loop == [] and no_sync_memory_on_loop == []


async def test_ainvoke_with_tool_loop_never_calls_sync_memory(
    make_model: MakeModel, no_sync_memory_on_loop: list[str]
) -> None:
    backend = SpyBackend()
    memobase = Memobase(backend)
    model = make_model(tool_call("lookup", {"topic": "x"}, "c1"), "done")
    agent = create_agent(
        model,
        tools=[lookup],
        middleware=[MemobaseMiddleware(memobase, user_id="alice", flush_after_turn=True)],
    )
    await agent.ainvoke({"messages": [HumanMessage("go")]})

    # one read, one record, one flush, all through the async twins (after the flush the
    # facade's refresher re-reads the cached context on its own thread: a sync call, off
    # the loop)
    assert backend.calls["acontext"] == 1 and backend.calls["arecord"] == 1
    assert backend.calls["aflush"] == 1 and backend.calls["flush"] == 0
    assert backend.sync_on_loop == [] and no_sync_memory_on_loop == []


async def test_async_history_retrievers_and_tools_never_call_sync_memory(
    tmp_path: Any, no_sync_memory_on_loop: list[str]
) -> None:
    backend = SpyBackend()
    memobase = Memobase(backend)
    history = MemobaseChatMessageHistory(
        memobase, "alice", "s1", database_url=f"sqlite:///{tmp_path / 'chat.db'}"
    )
    await history.acreate_tables()
    await history.aadd_messages([HumanMessage("I love chess.")])
    await history.aget_messages()
    await history.aget_context()
    await history.aclear()
    await MemobaseProfileRetriever(memobase=memobase, user_id="alice").ainvoke("q")
    await MemobaseEventRetriever(memobase=memobase, user_id="alice").ainvoke("q")
    for t in memobase_tools(memobase, "alice", allow_writes=True, allow_profile_writes=True):
        args = {"query": "chess"} if "search" in t.name else {}
        if "add" in t.name:
            args = {"topic": "interest", "sub_topic": "games", "content": "chess"}
        if t.name == "manage_memory":
            args = {"content": "I love chess."}
        await t.ainvoke(args)

    assert backend.count("record") == 2  # the history turn and manage_memory\'s
    assert backend.count("profile") == 2 and backend.count("search_events") == 2
    assert backend.count("add_profile") == 1
    assert backend.sync_on_loop == [] and no_sync_memory_on_loop == []
