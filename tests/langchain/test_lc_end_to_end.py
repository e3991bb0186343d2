"""End to end on the real embedded backend with the offline stand-in LLM (not a model).

A real ``create_agent`` graph with a tool and a checkpointer: the user states their name and
job on turn 1, the turn is processed (explicit flush), and on turn 2 the model's one system
message carries them, while the checkpointed state never holds the memory text.
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from langchain.agents import create_agent
from langchain_core.messages import AIMessage, HumanMessage, SystemMessage
from langchain_core.retrievers import BaseRetriever
from langchain_core.runnables import RunnableConfig
from langchain_core.tools import tool
from langchain_tests.integration_tests import RetrieversIntegrationTests
from langgraph.checkpoint.memory import InMemorySaver
from support.lc_models import FacadeSpy, ToolCallingFakeModel, tool_call

from langchain_memobase import (
    MemobaseChatMessageHistory,
    MemobaseEventRetriever,
    MemobaseMiddleware,
    MemobaseProfileRetriever,
    MemobaseProfileTool,
)
from memobase_integrations import FlushPolicy, Memobase
from memobase_integrations.testing import StandInLLM

SYSTEM = "You are a helpful assistant."
MEMORY_HEADER = "## User Current Profile:"
SAID_AT = "2025-01-14T10:00:00Z"
MakeModel = Callable[..., ToolCallingFakeModel]


@dataclass
class Ctx:
    user_id: str


@tool
def get_time(city: str) -> str:
    """The local time in a city."""
    return f"It is noon in {city}."


def open_embedded(directory: Path, *, embeddings: bool = False) -> Memobase:
    llm = StandInLLM().settings(enable_embeddings=embeddings)
    return Memobase.embedded(
        f"sqlite:///{directory / 'memobase.db'}",
        llm=llm,
        policy=FlushPolicy(idle_flush_seconds=None),
        start_worker=False,  # processing only when the test flushes: deterministic
    )


@pytest.fixture
def embedded(tmp_path: Path) -> Iterator[Memobase]:
    memobase = open_embedded(tmp_path)
    yield memobase
    memobase.close()


def _agent(memobase: Memobase, model: ToolCallingFakeModel) -> Any:
    return create_agent(
        model,
        tools=[get_time],
        system_prompt=SYSTEM,
        middleware=[MemobaseMiddleware(memobase)],
        context_schema=Ctx,
        checkpointer=InMemorySaver(),
    )


def _assert_no_memory_in_checkpoints(agent: Any, config: RunnableConfig) -> None:
    state = agent.get_state(config)
    assert not any(isinstance(m, SystemMessage) for m in state.values["messages"])
    assert MEMORY_HEADER not in repr(state.values)
    for checkpoint in agent.checkpointer.list(config):
        assert MEMORY_HEADER not in repr(checkpoint.checkpoint)


def test_turn_two_system_message_carries_what_turn_one_said(
    embedded: Memobase, make_model: MakeModel, spy: FacadeSpy
) -> None:
    model = make_model(
        tool_call("get_time", {"city": "Lisbon"}, "c1"),
        "Nice to meet you, Gus!",
        "You are Gus, a data engineer.",
    )
    agent = _agent(embedded, model)
    config: RunnableConfig = {"configurable": {"thread_id": "thread-gus"}}
    gus = Ctx(user_id="gus@example.com")

    agent.invoke(
        {"messages": [HumanMessage("Hi! My name is Gus and I work as a data engineer.")]},
        config,
        context=gus,
    )
    processed = embedded.user(gus.user_id).flush()
    assert processed and len(processed[0].add_profiles) >= 2
    agent.invoke({"messages": [HumanMessage("What do you know about me?")]}, config, context=gus)

    assert len(model.seen) == 3  # turn 1: tool call + answer; turn 2: answer
    turn_two = model.seen[-1]
    systems = [m for m in turn_two if isinstance(m, SystemMessage)]
    assert len(systems) == 1 and turn_two[0] is systems[0]
    system = str(systems[0].content)
    assert system.startswith(SYSTEM + "\n\n")
    assert "basic_info::name: Gus" in system
    assert "work::title: data engineer" in system
    _assert_no_memory_in_checkpoints(agent, config)

    # one context read and one record per invocation, tool loop included
    assert spy.count("context") == 2 and spy.count("record") == 2
    embedded.user(gus.user_id).flush()
    names = [p for p in embedded.user(gus.user_id).profile() if p.sub_topic == "name"]
    assert [p.content for p in names] == ["Gus"]  # turn 1 was not recorded twice


async def test_async_agent_remembers_across_turns(
    embedded: Memobase, make_model: MakeModel
) -> None:
    model = make_model("Hello Ada!", "You live in Lisbon.")
    agent = _agent(embedded, model)
    config: RunnableConfig = {"configurable": {"thread_id": "thread-ada"}}
    ada = Ctx(user_id="ada")

    await agent.ainvoke(
        {"messages": [HumanMessage("My name is Ada and I live in Lisbon.")]}, config, context=ada
    )
    await embedded.user("ada").aflush()
    await agent.ainvoke({"messages": [HumanMessage("Where do I live?")]}, config, context=ada)

    system = str(model.system_messages()[0].content)
    assert len(model.system_messages()) == 1
    assert "basic_info::name: Ada" in system and "Lisbon" in system
    _assert_no_memory_in_checkpoints(agent, config)


def test_alice_and_bob_on_one_thread_id_never_see_each_other(
    embedded: Memobase, make_model: MakeModel
) -> None:
    model = make_model(repeat="ok")
    agent = _agent(embedded, model)
    config: RunnableConfig = {"configurable": {"thread_id": "shared-thread"}}
    alice, bob = Ctx("alice"), Ctx("bob")

    agent.invoke(
        {"messages": [HumanMessage("My name is Alice and I work as a pilot.")]},
        config,
        context=alice,
    )
    agent.invoke(
        {"messages": [HumanMessage("My name is Bob and I work as a chef.")]}, config, context=bob
    )
    embedded.user("alice").flush()
    embedded.user("bob").flush()
    agent.invoke({"messages": [HumanMessage("Who am I?")]}, config, context=alice)
    alice_system = str(model.seen[-1][0].content)
    agent.invoke({"messages": [HumanMessage("Who am I?")]}, config, context=bob)
    bob_system = str(model.seen[-1][0].content)

    assert "Alice" in alice_system and "pilot" in alice_system
    assert "Bob" not in alice_system and "chef" not in alice_system
    assert "Bob" in bob_system and "chef" in bob_system
    assert "Alice" not in bob_system and "pilot" not in bob_system


def test_missing_user_fails_clearly_on_the_real_backend(
    embedded: Memobase, make_model: MakeModel
) -> None:
    from langchain_memobase import MissingUserIdError

    agent = create_agent(make_model("x"), middleware=[MemobaseMiddleware(embedded)])
    with pytest.raises(MissingUserIdError, match="user_id"):
        agent.invoke({"messages": [HumanMessage("My name is Nobody.")]})
    assert embedded.status().pending_turns == 0


def test_history_shares_the_embedded_database_and_feeds_memory(
    embedded: Memobase, tmp_path: Path
) -> None:
    history = MemobaseChatMessageHistory(embedded, "gus", "session-1")  # no URL: the store's
    history.create_tables()
    history.add_messages(
        [HumanMessage("My name is Gus and I love chess."), AIMessage("Chess is great!")]
    )
    engine = sa.create_engine(f"sqlite:///{tmp_path / 'memobase.db'}")
    try:
        assert sa.inspect(engine).has_table("langchain_message_store")
    finally:
        engine.dispose()
    assert [m.content for m in history.messages] == [
        "My name is Gus and I love chess.",
        "Chess is great!",
    ]

    embedded.user("gus").flush()
    assert "basic_info::name: Gus" in history.get_context()
    assert MEMORY_HEADER not in repr(history.messages)
    history.clear()
    assert history.messages == [] and "Gus" in history.get_context()


async def test_profile_retriever_and_tool_read_processed_memory(embedded: Memobase) -> None:
    user = embedded.user("gus")
    await user.arecord([{"role": "user", "content": "I work as a data engineer."}])
    await user.aflush()

    docs = await MemobaseProfileRetriever(memobase=embedded, user_id="gus").ainvoke("job")
    assert [d.page_content.split(" [mention")[0] for d in docs] == ["work::title: data engineer"]
    text = await MemobaseProfileTool(memobase=embedded, user_id="gus").ainvoke({})
    assert text.startswith("- work::title: data engineer")


# -- the standard retriever suite on the real engine (events need embeddings) --------------
_seeded: dict[str, Memobase] = {}


@pytest.fixture(scope="module", autouse=True)
def seeded_embedded() -> Iterator[None]:
    """One embedded store with four processed turns (four events), shared by the suite.

    The messages carry a fixed timestamp so the event texts (and so the stand-in's
    embeddings) are the same on every day the suite runs.
    """
    with tempfile.TemporaryDirectory() as directory:
        memobase = open_embedded(Path(directory), embeddings=True)
        user = memobase.user("eve")
        for statement in (
            "My name is Eve and I love chess.",
            "I work as a nurse at the city hospital.",
            "I live in Porto and I love chess puzzles.",
            "I'm going to Paris next week to play chess.",
        ):
            user.record([{"role": "user", "content": statement, "created_at": SAID_AT}])
            user.flush()
        _seeded["memobase"] = memobase
        yield
        _seeded.clear()
        memobase.close()


class TestEmbeddedEventRetrieverStandard(RetrieversIntegrationTests):
    @property
    def retriever_constructor(self) -> type[BaseRetriever]:
        return MemobaseEventRetriever

    @property
    def retriever_constructor_params(self) -> dict[str, Any]:
        # The stand-in's vectors give small cosines to a query sharing one word with a long
        # event text, so the threshold is lowered; the ranking is still the backend's.
        return {"memobase": _seeded["memobase"], "user_id": "eve", "similarity_threshold": 0.0}

    @property
    def retriever_query_example(self) -> str:
        return "Eve nurse Porto Paris"


class TestEmbeddedProfileRetrieverStandard(RetrieversIntegrationTests):
    @property
    def retriever_constructor(self) -> type[BaseRetriever]:
        return MemobaseProfileRetriever

    @property
    def retriever_constructor_params(self) -> dict[str, Any]:
        return {"memobase": _seeded["memobase"], "user_id": "eve"}

    @property
    def retriever_query_example(self) -> str:
        return "Where does Eve work?"


def test_a_user_with_no_memory_gets_no_memory_scaffold(
    embedded: Memobase, make_model: MakeModel
) -> None:
    """The backend answers an empty "# Memory" template for a new user (as the server
    does); injecting it would only cost tokens, so the system prompt stays as written."""
    assert "## User Current Profile:" in embedded.user("newcomer").context()
    model = make_model("Hello!")
    agent = _agent(embedded, model)
    agent.invoke(
        {"messages": [HumanMessage("Hi there.")]},
        config={"configurable": {"thread_id": "new"}},
        context=Ctx(user_id="newcomer"),
    )
    (system,) = model.system_messages(0)
    assert system.content == SYSTEM
