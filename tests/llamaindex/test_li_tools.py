"""Per-user FunctionTools: recall memory, search events."""

from __future__ import annotations

from li_models import RecordingFunctionLLM
from llama_index.core.agent.workflow import FunctionAgent
from support.spy import SpyBackend

from llamaindex_memobase import MemobaseMemory, memobase_tools
from memobase_integrations.errors import ServiceUnavailableError, UnsupportedError
from memobase_integrations.facade import Memobase
from memobase_integrations.ids import to_user_uuid

ALICE = to_user_uuid("alice")
BOB = to_user_uuid("bob")


def by_name(tools: list) -> dict:  # type: ignore[type-arg]
    return {tool.metadata.name: tool for tool in tools}


async def test_recall_is_bound_to_one_user(mb: Memobase, backend: SpyBackend) -> None:
    backend.set_profile(ALICE, ["basic_info::name: Alice"])
    backend.set_profile(BOB, ["basic_info::name: Bob"])
    alice = by_name(memobase_tools(mb.user("alice")))
    bob = by_name(memobase_tools(mb.user("bob")))
    alice_out = (await alice["recall_user_memory"].acall()).content
    bob_out = bob["recall_user_memory"].call().content
    assert "Alice" in alice_out and "Bob" not in alice_out
    assert "Bob" in bob_out and "Alice" not in bob_out
    # the schema gives the LLM no way to name a user
    schema = alice["recall_user_memory"].metadata.get_parameters_dict()
    assert set(schema["properties"]) == {"query"}


async def test_recall_with_a_query_sends_it_as_chat(mb: Memobase, backend: SpyBackend) -> None:
    tools = by_name(memobase_tools(mb.user("alice")))
    out = (await tools["recall_user_memory"].acall(query="my trip")).content
    assert out == "Nothing is remembered about this user yet."
    chats = backend.context_requests[-1][1].chats
    assert chats is not None and [m.content for m in chats] == ["my trip"]


async def test_search_events_formats_dated_hits(mb: Memobase, backend: SpyBackend) -> None:
    backend.seed(ALICE, "I'm going to Paris next week.", "I moved to Berlin last month.")
    paris = next(e for e in mb.user("alice").events() if "Paris" in (e.event_data.event_tip or ""))
    assert paris.created_at is not None
    tools = by_name(memobase_tools(mb.user("alice")))
    out = (await tools["search_user_events"].acall(query="Paris")).content
    assert out.startswith(f"- [{paris.created_at.date().isoformat()}] ")
    assert "Paris" in out and "Berlin" not in out
    sync_out = tools["search_user_events"].call(query="nothing-matches").content
    assert sync_out == "No matching events."


async def test_search_falls_back_to_recent_events_without_embeddings(
    mb: Memobase, backend: SpyBackend
) -> None:
    backend.fail["search_events"] = UnsupportedError("Event search needs embeddings.")
    backend.seed(ALICE, "I moved to Lisbon last month.")
    tools = by_name(memobase_tools(mb.user("alice")))
    assert "moved to Lisbon" in (await tools["search_user_events"].acall(query="x")).content
    assert "moved to Lisbon" in tools["search_user_events"].call(query="x").content


async def test_backend_errors_become_a_tool_answer(mb: Memobase, backend: SpyBackend) -> None:
    backend.fail["context"] = ServiceUnavailableError("Memobase is down; retry later.")
    tools = by_name(memobase_tools(mb.user("alice")))
    out = (await tools["recall_user_memory"].acall()).content
    assert "unavailable" in out and "Memobase is down" in out


async def test_agent_can_use_the_memory_tools(mb: Memobase, backend: SpyBackend) -> None:
    backend.set_profile(ALICE, ["interest::food: loves ramen"])
    memory = MemobaseMemory.from_defaults("alice", mb)
    llm = RecordingFunctionLLM()
    agent = FunctionAgent(tools=memory.tools(), llm=llm)
    await agent.run(user_msg="What food do I like?", memory=memory)
    tool_results = [m for m in llm.calls[-1] if m.role.value == "tool"]
    assert any("loves ramen" in (m.content or "") for m in tool_results)
    assert len(backend.recorded(ALICE)) == 1
