"""Per-user FunctionTools: recall memory, search events."""

from __future__ import annotations

from datetime import UTC, datetime

from li_fakes import FakeBackend, RecordingFunctionLLM, make_event, pack
from llama_index.core.agent.workflow import FunctionAgent

from llamaindex_memobase import MemobaseMemory, memobase_tools
from memobase_integrations.errors import ServiceUnavailableError
from memobase_integrations.facade import Memobase
from memobase_integrations.ids import to_user_uuid

ALICE = to_user_uuid("alice")
BOB = to_user_uuid("bob")


def by_name(tools: list) -> dict:  # type: ignore[type-arg]
    return {tool.metadata.name: tool for tool in tools}


async def test_recall_is_bound_to_one_user(mb: Memobase, backend: FakeBackend) -> None:
    backend.set_context(ALICE, pack(["basic_info::name: Alice"]))
    backend.set_context(BOB, pack(["basic_info::name: Bob"]))
    alice = by_name(memobase_tools(mb.user("alice")))
    bob = by_name(memobase_tools(mb.user("bob")))
    alice_out = (await alice["recall_user_memory"].acall()).content
    bob_out = bob["recall_user_memory"].call().content
    assert "Alice" in alice_out and "Bob" not in alice_out
    assert "Bob" in bob_out and "Alice" not in bob_out
    # the schema gives the LLM no way to name a user
    schema = alice["recall_user_memory"].metadata.get_parameters_dict()
    assert set(schema["properties"]) == {"query"}


async def test_recall_with_a_query_sends_it_as_chat(mb: Memobase, backend: FakeBackend) -> None:
    tools = by_name(memobase_tools(mb.user("alice")))
    out = (await tools["recall_user_memory"].acall(query="my trip")).content
    assert out == "Nothing is remembered about this user yet."
    chats = backend.context_options[-1].chats
    assert chats is not None and [m.content for m in chats] == ["my trip"]


async def test_search_events_formats_dated_hits(mb: Memobase, backend: FakeBackend) -> None:
    backend.events_by_user[ALICE] = [
        make_event("Went hiking in the Alps", datetime(2026, 5, 1, tzinfo=UTC)),
        make_event("Started a pottery class", datetime(2026, 5, 3, tzinfo=UTC)),
    ]
    tools = by_name(memobase_tools(mb.user("alice")))
    out = (await tools["search_user_events"].acall(query="hiking")).content
    assert out == "- [2026-05-01] Went hiking in the Alps"
    sync_out = tools["search_user_events"].call(query="nothing-matches").content
    assert sync_out == "No matching events."


async def test_search_falls_back_to_recent_events_without_embeddings(
    mb: Memobase, backend: FakeBackend
) -> None:
    backend.search_supported = False
    backend.events_by_user[ALICE] = [make_event("Moved to Lisbon")]
    tools = by_name(memobase_tools(mb.user("alice")))
    assert "Moved to Lisbon" in (await tools["search_user_events"].acall(query="x")).content
    assert "Moved to Lisbon" in tools["search_user_events"].call(query="x").content


async def test_backend_errors_become_a_tool_answer(mb: Memobase, backend: FakeBackend) -> None:
    backend.read_error = ServiceUnavailableError("Memobase is down; retry later.")
    tools = by_name(memobase_tools(mb.user("alice")))
    out = (await tools["recall_user_memory"].acall()).content
    assert "unavailable" in out and "Memobase is down" in out


async def test_agent_can_use_the_memory_tools(mb: Memobase, backend: FakeBackend) -> None:
    backend.set_context(ALICE, pack(["interest::food: loves ramen"]))
    memory = MemobaseMemory.from_defaults("alice", mb)
    llm = RecordingFunctionLLM()
    agent = FunctionAgent(tools=memory.tools(), llm=llm)
    await agent.run(user_msg="What food do I like?", memory=memory)
    tool_results = [m for m in llm.calls[-1] if m.role.value == "tool"]
    assert any("loves ramen" in (m.content or "") for m in tool_results)
    assert len(backend.recorded(ALICE)) == 1
