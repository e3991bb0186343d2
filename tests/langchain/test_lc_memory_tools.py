"""The memory tools in real ``create_agent`` graphs on the embedded backend (stand-in LLM).

One compiled agent serves several users (the user comes from the run, never from the
model); ``manage_memory`` puts a fact through the normal pipeline, promptly, without
duplicates.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypedDict

import pytest
from langchain.agents import create_agent
from langchain_core.messages import HumanMessage, ToolMessage
from support.lc_models import ToolCallingFakeModel, tool_call

from langchain_memobase import MemobaseMiddleware, MissingUserIdError, memobase_tools
from memobase_integrations import FlushPolicy, Memobase
from memobase_integrations.facade import UserMemory
from memobase_integrations.testing import StandInLLM
from memobase_integrations.tools import plain_memo

MakeModel = Callable[..., ToolCallingFakeModel]
TEAL = "My favourite colour is teal"


class AccountContext(TypedDict):
    """The run context the resolver reads the user id from."""

    account: str


@dataclass
class Ctx:
    user_id: str


def _open(directory: Path, *, worker: bool = False) -> Memobase:
    return Memobase.embedded(
        f"sqlite:///{directory / 'memobase.db'}",
        llm=StandInLLM().settings(),
        policy=FlushPolicy(idle_flush_seconds=None),  # only an explicit request processes
        start_worker=worker,
    )


@pytest.fixture
def mb(tmp_path: Path) -> Iterator[Memobase]:
    memobase = _open(tmp_path)
    memobase.user("alice").record(
        [{"role": "user", "content": "My name is Alice and I love chess."}]
    )
    memobase.user("bob").record(
        [{"role": "user", "content": "My name is Bob. I love hiking in Patagonia."}]
    )
    memobase.user("alice").flush()
    memobase.user("bob").flush()
    yield memobase
    memobase.close()


def _tool_results(result: dict[str, Any]) -> list[str]:
    return [str(m.content) for m in result["messages"] if isinstance(m, ToolMessage)]


def _shared_agent(mb: Memobase, model: ToolCallingFakeModel, **options: Any) -> Any:
    return create_agent(model, tools=memobase_tools(mb, **options), context_schema=Ctx)


def test_one_compiled_agent_serves_two_users_each_seeing_only_their_own(
    mb: Memobase, make_model: MakeModel
) -> None:
    script = []
    for n in range(2):
        script += [
            tool_call("read_profile", {}, f"p{n}"),
            tool_call("search_memory", {"query": "hiking"}, f"s{n}"),
            "ok",
        ]
    agent = _shared_agent(mb, make_model(*script))

    alice = _tool_results(
        agent.invoke({"messages": [HumanMessage("Who am I?")]}, context=Ctx("alice"))
    )
    bob = _tool_results(agent.invoke({"messages": [HumanMessage("Who am I?")]}, context=Ctx("bob")))

    assert "basic_info::name: Alice" in alice[0] and "Bob" not in alice[0]
    assert "basic_info::name: Bob" in bob[0] and "Alice" not in bob[0]
    assert alice[1] == "No remembered events match this query."  # Bob's hike is not hers
    assert "Patagonia" in bob[1]


async def test_the_user_may_come_from_config_or_a_resolver(
    mb: Memobase, make_model: MakeModel
) -> None:
    agent = create_agent(
        make_model(tool_call("read_profile", {}, "c1"), "ok"), tools=memobase_tools(mb)
    )
    config: Any = {"configurable": {"user_id": "bob"}}
    out = _tool_results(await agent.ainvoke({"messages": [HumanMessage("hi")]}, config))
    assert "Bob" in out[0]

    resolver_agent = create_agent(
        make_model(tool_call("read_profile", {}, "c1"), "ok"),
        tools=memobase_tools(mb, user_id_from=lambda runtime: runtime.context["account"]),
        context_schema=AccountContext,
    )
    out = _tool_results(
        resolver_agent.invoke({"messages": [HumanMessage("hi")]}, context={"account": "alice"})
    )
    assert "Alice" in out[0] and "Bob" not in out[0]


def test_no_user_id_raises_and_never_falls_back_to_someone(
    mb: Memobase, make_model: MakeModel
) -> None:
    agent = create_agent(
        make_model(tool_call("read_profile", {}, "c1"), "ok"), tools=memobase_tools(mb)
    )
    with pytest.raises(MissingUserIdError, match="user_id"):
        agent.invoke({"messages": [HumanMessage("hi")]})


def test_bound_tools_ignore_the_run_context(mb: Memobase, make_model: MakeModel) -> None:
    agent = _shared_agent(
        mb, make_model(tool_call("read_profile", {}, "c1"), "ok"), user_id="alice"
    )
    out = _tool_results(agent.invoke({"messages": [HumanMessage("hi")]}, context=Ctx("bob")))
    assert "Alice" in out[0] and "Bob" not in out[0]


def test_the_write_tool_is_off_unless_enabled(mb: Memobase) -> None:
    assert [t.name for t in memobase_tools(mb, "alice")] == ["search_memory", "read_profile"]
    names = [t.name for t in memobase_tools(mb, "alice", allow_writes=True)]
    assert names == ["search_memory", "read_profile", "manage_memory"]


def _colour_rows(user: UserMemory) -> list[str]:
    return [
        f"{p.topic}::{p.sub_topic}: {plain_memo(p.content)}"
        for p in user.profile()
        if "teal" in p.content
    ]


def test_manage_memory_goes_through_the_pipeline_without_duplicates(
    mb: Memobase, make_model: MakeModel, monkeypatch: pytest.MonkeyPatch
) -> None:
    requested: list[bool] = []
    real_flush = UserMemory.flush

    def spy_flush(self: UserMemory, *args: Any, **kwargs: Any) -> Any:
        requested.append(kwargs.get("wait", True))
        return real_flush(self, *args, **kwargs)

    monkeypatch.setattr(UserMemory, "flush", spy_flush)
    script = [tool_call("manage_memory", {"content": TEAL}, f"m{n}") for n in range(2)]
    agent = create_agent(
        make_model(script[0], "Noted.", script[1], "Noted again."),
        tools=memobase_tools(mb, allow_writes=True),
        context_schema=Ctx,
    )
    alice = mb.user("alice")
    result = agent.invoke({"messages": [HumanMessage(f"Remember: {TEAL}.")]}, context=Ctx("alice"))
    assert _tool_results(result) == ["Saved. It will be part of the user's memory in a moment."]
    assert requested == [False]  # a background request; the tool never waited for the LLM
    assert alice.status().pending_turns == 1

    real_flush(alice)
    assert _colour_rows(alice) == ["interest::colour: teal"]

    agent.invoke({"messages": [HumanMessage(f"Again: {TEAL}.")]}, context=Ctx("alice"))
    real_flush(alice)
    assert _colour_rows(alice) == ["interest::colour: teal"]  # merged, not duplicated
    assert _colour_rows(mb.user("bob")) == []


def test_manage_memory_is_processed_promptly_by_the_worker(
    tmp_path: Path, make_model: MakeModel
) -> None:
    """With the worker running and far below the buffer threshold, the saved fact reaches
    the profile without any explicit flush (the tool asked for one in the background)."""
    mb = _open(tmp_path, worker=True)
    try:
        agent = create_agent(
            make_model(tool_call("manage_memory", {"content": TEAL}, "m1"), "Noted."),
            tools=memobase_tools(mb, allow_writes=True),
            middleware=[MemobaseMiddleware(mb, record=False)],
            context_schema=Ctx,
        )
        agent.invoke({"messages": [HumanMessage(f"Remember: {TEAL}.")]}, context=Ctx("alice"))
        alice = mb.user("alice")
        deadline = time.monotonic() + 60  # a bound on waiting, not a speed assertion
        while not _colour_rows(alice) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert _colour_rows(alice) == ["interest::colour: teal"]
    finally:
        mb.close()


async def test_async_tools_give_the_same_answers(mb: Memobase) -> None:
    sync_tools = {t.name: t for t in memobase_tools(mb, "bob")}
    for name, args in (("read_profile", {}), ("search_memory", {"query": "Patagonia"})):
        assert await sync_tools[name].ainvoke(args) == await asyncio.to_thread(
            sync_tools[name].invoke, args
        )
