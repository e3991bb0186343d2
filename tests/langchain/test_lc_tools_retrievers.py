"""Retrievers and tools: bound users, ranking, k, formatting, error handling."""

from __future__ import annotations

import re

import pytest
from langchain_core.messages import ToolMessage
from langchain_core.utils.function_calling import convert_to_openai_tool
from pydantic import BaseModel
from support.spy import SpyBackend

from langchain_memobase import (
    MemobaseAddProfileTool,
    MemobaseEventRetriever,
    MemobaseProfileRetriever,
    MemobaseProfileTool,
    MemobaseSearchEventsTool,
    memobase_tools,
)
from memobase_integrations import errors as mb_errors
from memobase_integrations.facade import Memobase
from memobase_integrations.ids import to_user_uuid

ALICE = to_user_uuid("alice")
BOB = to_user_uuid("bob")


@pytest.fixture
def seeded(fake_backend: SpyBackend) -> SpyBackend:
    fake_backend.add_fact(ALICE, "basic_info", "name", "Alice")
    fake_backend.add_fact(ALICE, "work", "title", "airline pilot")
    fake_backend.add_fact(ALICE, "interest", "games", "plays chess")
    fake_backend.add_fact(BOB, "work", "title", "BOB-SECRET-JOB")
    fake_backend.add_event(ALICE, "Alice won a chess tournament", {"emotion": "proud"})
    fake_backend.add_event(BOB, "Bob chess BOB-SECRET-EVENT")
    return fake_backend


def test_profile_retriever_ranks_by_query_words_and_binds_the_user(
    memobase: Memobase, seeded: SpyBackend
) -> None:
    retriever = MemobaseProfileRetriever(memobase=memobase, user_id="alice", k=2)
    docs = retriever.invoke("what is her work title")
    assert [d.page_content for d in docs] == [
        "work::title: airline pilot",
        "interest::games: plays chess",  # no overlap: Memobase order (newest first) breaks the tie
    ]
    assert docs[0].metadata["topic"] == "work"
    assert docs[0].metadata["user_id"] == str(ALICE)
    assert docs[0].metadata["score"] == 2
    assert "BOB-SECRET-JOB" not in repr(retriever.invoke("BOB-SECRET-JOB work title", k=5))


async def test_profile_retriever_async_with_topic_filter(
    memobase: Memobase, seeded: SpyBackend
) -> None:
    retriever = MemobaseProfileRetriever(memobase=memobase, user_id="alice", only_topics=["work"])
    docs = await retriever.ainvoke("anything")
    assert [d.page_content for d in docs] == ["work::title: airline pilot"]


def test_event_retriever_documents(memobase: Memobase, seeded: SpyBackend) -> None:
    docs = MemobaseEventRetriever(memobase=memobase, user_id="alice").invoke("chess")
    assert [d.page_content for d in docs] == ["Alice won a chess tournament"]
    assert docs[0].metadata["tags"] == {"emotion": "proud"}
    assert docs[0].metadata["similarity"] == 1.0  # by words: a share of the best match's score
    assert docs[0].metadata["user_id"] == str(ALICE)


def test_k_must_be_positive(memobase: Memobase, seeded: SpyBackend) -> None:
    retriever = MemobaseProfileRetriever(memobase=memobase, user_id="alice")
    with pytest.raises(mb_errors.ConfigurationError, match="k must be a positive integer"):
        retriever.invoke("q", k=0)
    with pytest.raises(ValueError):
        MemobaseEventRetriever(memobase=memobase, user_id="alice", k=0)


def test_unusable_user_id_is_rejected_at_construction(memobase: Memobase) -> None:
    with pytest.raises(mb_errors.InvalidUserIdError):
        MemobaseProfileTool(memobase=memobase, user_id="")
    with pytest.raises(mb_errors.InvalidUserIdError):
        MemobaseProfileRetriever(memobase=memobase, user_id="")


def test_the_model_cannot_choose_the_user(memobase: Memobase) -> None:
    for tool in memobase_tools(memobase, "alice", allow_profile_writes=True):
        schema = tool.get_input_schema()
        assert issubclass(schema, BaseModel)
        properties = schema.model_json_schema().get("properties", {})
        assert not {"user_id", "user", "memobase"} & set(properties), tool.name
        model_visible = convert_to_openai_tool(tool)["function"]["parameters"]["properties"]
        assert set(model_visible) == set(properties)


def test_write_tools_are_off_by_default(memobase: Memobase) -> None:
    names = [t.name for t in memobase_tools(memobase, "alice")]
    assert names == ["search_memory", "read_profile"]
    with_writes = memobase_tools(memobase, "alice", allow_profile_writes=True)
    assert [t.name for t in with_writes][-1] == "add_profile_entry"


def test_profile_tool_output(memobase: Memobase, seeded: SpyBackend) -> None:
    tool = MemobaseProfileTool(memobase=memobase, user_id="alice")
    dated = re.compile(r" \(updated \d{4}-\d{2}-\d{2}\)$")
    lines = tool.invoke({}).splitlines()
    assert all(dated.search(line) for line in lines)
    assert [dated.sub("", line) for line in lines] == [  # newest first, as Memobase
        "- interest::games: plays chess",
        "- work::title: airline pilot",
        "- basic_info::name: Alice",
    ]
    assert dated.sub("", tool.invoke({"topics": ["work"]})) == "- work::title: airline pilot"
    empty = MemobaseProfileTool(memobase=memobase, user_id="nobody")
    assert empty.invoke({}) == "Nothing is remembered about this user yet."


async def test_search_events_tool_output(memobase: Memobase, seeded: SpyBackend) -> None:
    tool = MemobaseSearchEventsTool(memobase=memobase, user_id="alice")
    text = await tool.ainvoke({"query": "chess"})
    assert text.endswith(": Alice won a chess tournament (tags: emotion=proud)")
    assert text.startswith("- ") and "[" not in text  # a date in front, no id
    assert "BOB-SECRET-EVENT" not in text
    assert await tool.ainvoke({"query": "zebra"}) == "No remembered events match this query."


def test_add_profile_tool_writes_for_the_bound_user(
    memobase: Memobase, fake_backend: SpyBackend
) -> None:
    tool = MemobaseAddProfileTool(memobase=memobase, user_id="alice")
    out = tool.invoke({"topic": "interest", "sub_topic": "food", "content": "loves tea"})
    assert out == "Saved interest::food."
    alice = memobase.user("alice").profile()
    assert [p.describe() for p in alice] == ["interest::food: loves tea"]
    assert memobase.user("bob").profile() == []


def test_memory_errors_reach_the_model_as_the_tool_result(
    memobase: Memobase, fake_backend: SpyBackend
) -> None:
    fake_backend.fail["profile"] = mb_errors.ServiceUnavailableError("LLM quota exhausted")
    tool = MemobaseProfileTool(memobase=memobase, user_id="alice")
    result = tool.invoke({"name": tool.name, "args": {}, "id": "c1", "type": "tool_call"})
    assert isinstance(result, ToolMessage)
    assert result.content == "Memory is unavailable right now: LLM quota exhausted"
    strict = MemobaseProfileTool(memobase=memobase, user_id="alice", strict=True)
    with pytest.raises(mb_errors.ServiceUnavailableError, match="quota"):
        strict.invoke({})
    with pytest.raises(mb_errors.ServiceUnavailableError):
        MemobaseProfileRetriever(memobase=memobase, user_id="alice").invoke("q")
