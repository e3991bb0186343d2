"""The LlamaIndex memory tools: bound or resolved from the run's Context, same words as the
LangChain ones (see tests/core/test_tools_parity.py for the side-by-side check)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from llama_index.core.agent.workflow import FunctionAgent
from llama_index.core.workflow import Context
from support.li_models import RecordingFunctionLLM
from support.spy import SpyBackend

from llamaindex_memobase import MemobaseMemory, memobase_tools
from memobase_integrations.errors import (
    ConfigurationError,
    ServiceUnavailableError,
    UnsupportedError,
)
from memobase_integrations.facade import Memobase
from memobase_integrations.ids import to_user_uuid
from memobase_integrations.testing import StandInLLM

ALICE = to_user_uuid("alice")
BOB = to_user_uuid("bob")


def by_name(tools: list[Any]) -> dict[str, Any]:
    return {tool.metadata.name: tool for tool in tools}


async def test_search_is_bound_to_one_user_and_dated(mb: Memobase, backend: SpyBackend) -> None:
    hiking = backend.add_event(ALICE, "Went hiking in the Alps")
    backend.add_event(ALICE, "Started a pottery class")
    backend.add_event(BOB, "BOB-SECRET hiking trip")
    assert hiking.created_at is not None
    alice = by_name(memobase_tools(mb, "alice"))
    out = (await alice["search_memory"].acall(query="hiking")).content
    assert out == f"- {hiking.created_at.date().isoformat()}: Went hiking in the Alps"
    sync_out = alice["search_memory"].call(query="nothing-matches").content
    assert sync_out == "No remembered events match this query."
    # the schema gives the LLM no way to name a user
    schema = alice["search_memory"].metadata.get_parameters_dict()
    assert set(schema["properties"]) == {"query", "limit"}


async def test_a_user_memory_binds_too(mb: Memobase, backend: SpyBackend) -> None:
    backend.add_event(BOB, "Moved to Lisbon")
    tools = by_name(memobase_tools(mb.user("bob")))
    assert "Moved to Lisbon" in (await tools["search_memory"].acall(query="Lisbon")).content
    with pytest.raises(ConfigurationError, match="not both"):
        memobase_tools(mb.user("bob"), "alice")


async def test_search_without_embeddings_says_so_instead_of_answering_something_else(
    mb: Memobase, backend: SpyBackend
) -> None:
    backend.fail["search_events"] = UnsupportedError("Event search needs embeddings.")
    backend.add_event(ALICE, "Moved to Lisbon")
    tools = by_name(memobase_tools(mb, "alice"))
    out = (await tools["search_memory"].acall(query="x")).content
    assert out.startswith("Memory is unavailable right now:") and "embeddings" in out
    assert "Lisbon" not in out
    strict = by_name(memobase_tools(mb, "alice", strict=True))
    with pytest.raises(UnsupportedError):
        await strict["search_memory"].acall(query="x")


async def test_failures_are_an_answer_reported_to_on_error(
    mb: Memobase, backend: SpyBackend
) -> None:
    backend.fail["search_events"] = ServiceUnavailableError("Memobase is down; retry later.")
    seen: list[str] = []
    tools = by_name(memobase_tools(mb, "alice", on_error=lambda exc, action: seen.append(action)))
    out = (await tools["search_memory"].acall(query="x")).content
    assert out == "Memory is unavailable right now: Memobase is down; retry later."
    assert seen == ["search memory"]


@pytest.fixture
def embedded(tmp_path: Path) -> Iterator[Memobase]:
    memobase = Memobase.embedded(
        f"sqlite:///{tmp_path / 'memobase.db'}", llm=StandInLLM().settings(), start_worker=False
    )
    yield memobase
    memobase.close()


async def test_write_tools_only_when_enabled_and_they_merge(embedded: Memobase) -> None:
    mb = embedded
    assert list(by_name(memobase_tools(mb, "alice"))) == ["search_memory", "read_profile"]
    tools = by_name(memobase_tools(mb, "alice", allow_writes=True))
    assert list(tools) == ["search_memory", "read_profile", "manage_memory"]
    for _ in range(2):
        out = (await tools["manage_memory"].acall(content="My favourite colour is teal")).content
        assert out == "Saved. It will be part of the user's memory in a moment."
        assert mb.user("alice").status().pending_turns == 1  # recorded, not yet processed
        await mb.user("alice").aflush()
    profile = (await tools["read_profile"].acall()).content
    assert profile.count("teal") == 1 and profile.startswith("- interest::colour: teal (")
    assert mb.user("bob").profile() == []


async def test_the_user_comes_from_the_workflow_context(embedded: Memobase) -> None:
    mb = embedded
    await mb.user("alice").aadd_profile("Alice", "basic_info", "name")
    await mb.user("bob").aadd_profile("Bob", "basic_info", "name")
    (read_profile,) = [t for t in memobase_tools(mb) if t.metadata.name == "read_profile"]
    llm = RecordingFunctionLLM()
    agent = FunctionAgent(tools=[read_profile], llm=llm)
    for name, other in (("alice", "Bob"), ("bob", "Alice")):
        ctx = Context(agent)
        await ctx.store.set("user_id", name)
        await agent.run(user_msg="Who am I?", ctx=ctx)
        (result,) = [m for m in llm.calls[-1] if m.role.value == "tool"]
        assert name.title() in (result.content or "") and other not in (result.content or "")


async def test_no_user_in_the_context_is_an_error_not_a_default(mb: Memobase) -> None:
    (read_profile,) = [t for t in memobase_tools(mb) if t.metadata.name == "read_profile"]
    agent = FunctionAgent(tools=[read_profile], llm=RecordingFunctionLLM())
    with pytest.raises(ConfigurationError, match="user id"):
        await read_profile.acall(ctx=Context(agent))


async def test_a_resolver_may_pick_the_user(mb: Memobase, backend: SpyBackend) -> None:
    backend.add_event(BOB, "Moved to Lisbon")

    async def account(ctx: Context) -> str:
        return str(await ctx.store.get("account"))

    (search,) = [
        t for t in memobase_tools(mb, user_id_from=account) if "search" in (t.metadata.name or "")
    ]
    ctx = Context(FunctionAgent(tools=[search], llm=RecordingFunctionLLM()))
    await ctx.store.set("account", "bob")
    assert "Lisbon" in (await search.acall(ctx=ctx, query="Lisbon")).content


async def test_memory_tools_are_bound_to_the_memory_user(embedded: Memobase) -> None:
    mb = embedded
    await mb.user("alice").aadd_profile("loves ramen", "interest", "foods")
    await mb.user("bob").aadd_profile("BOB-SECRET", "interest", "foods")
    memory = MemobaseMemory.from_defaults("alice", mb)
    llm = RecordingFunctionLLM()
    tools = [t for t in memory.tools() if t.metadata.name == "read_profile"]
    agent = FunctionAgent(tools=tools, llm=llm)
    await agent.run(user_msg="What food do I like?", memory=memory)
    tool_results = [m for m in llm.calls[-1] if m.role.value == "tool"]
    assert any("loves ramen" in (m.content or "") for m in tool_results)
    assert not any("BOB-SECRET" in (m.content or "") for m in tool_results)
    assert mb.user("alice").status().pending_turns == 1  # the turn itself was recorded
