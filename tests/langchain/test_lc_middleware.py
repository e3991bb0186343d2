"""MemobaseMiddleware inside a real ``create_agent`` graph, against the in-memory backend."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest
from langchain.agents import create_agent
from langchain.agents.middleware import ModelRequest, SummarizationMiddleware
from langchain.agents.middleware.types import ModelResponse
from langchain_core.language_models.fake_chat_models import GenericFakeChatModel
from langchain_core.messages import AIMessage, HumanMessage, SystemMessage, ToolMessage
from langchain_core.runnables import RunnableConfig
from langchain_core.tools import tool
from langgraph.checkpoint.memory import InMemorySaver
from support.lc_models import FacadeSpy, ToolCallingFakeModel, tool_call
from support.spy import SpyBackend

from langchain_memobase import MemobaseMiddleware, MissingUserIdError
from memobase_integrations import errors as mb_errors
from memobase_integrations.facade import Memobase
from memobase_integrations.ids import to_user_uuid
from memobase_integrations.turns import Said, turn_id

MakeModel = Callable[..., ToolCallingFakeModel]
SYSTEM = "You are a helpful assistant."


@dataclass
class Ctx:
    user_id: str


@tool
def get_weather(city: str) -> str:
    """Get the weather for a city."""
    return f"It is sunny in {city}."


def weather_turn(final: str, call_id: str = "call-1") -> list[AIMessage | str]:
    return [tool_call("get_weather", {"city": "Paris"}, call_id), final]


def texts(messages: list[Any]) -> str:
    return "\n".join(str(m.content) for m in messages)


# -- injection ------------------------------------------------------------------------------
def test_context_is_appended_to_the_one_system_message(
    memobase: Memobase, fake_backend: SpyBackend, make_model: MakeModel
) -> None:
    fake_backend.add_fact(to_user_uuid("alice"), "basic_info", "name", "Alice")
    model = make_model(*weather_turn("Sunny."))
    agent = create_agent(
        model,
        tools=[get_weather],
        system_prompt=SYSTEM,
        middleware=[MemobaseMiddleware(memobase, template="<memory>\n{context}\n</memory>")],
        context_schema=Ctx,
    )

    agent.invoke({"messages": [HumanMessage("Weather?")]}, context=Ctx(user_id="alice"))

    assert len(model.seen) == 2  # tool loop: both model calls get the memory
    for call in range(2):
        systems = model.system_messages(call)
        assert len(systems) == 1
        assert model.seen[call][0] is systems[0]  # still first
        content = systems[0].content
        assert isinstance(content, str)
        assert content.startswith(SYSTEM + "\n\n<memory>\n")
        assert "basic_info::name: Alice" in content
        assert content.endswith("</memory>")


def test_no_system_prompt_makes_the_context_the_system_message(
    memobase: Memobase, fake_backend: SpyBackend, make_model: MakeModel
) -> None:
    fake_backend.add_fact(to_user_uuid("alice"), "work", "title", "pilot")
    model = make_model("hi")
    agent = create_agent(model, middleware=[MemobaseMiddleware(memobase, user_id="alice")])

    agent.invoke({"messages": [HumanMessage("hello")]})

    systems = model.system_messages()
    assert len(systems) == 1
    assert "work::title: pilot" in str(systems[0].content)


def test_empty_memory_leaves_the_request_untouched(
    memobase: Memobase, make_model: MakeModel
) -> None:
    model = make_model("hi")
    agent = create_agent(
        model, system_prompt=SYSTEM, middleware=[MemobaseMiddleware(memobase, user_id="new")]
    )
    agent.invoke({"messages": [HumanMessage("hello")]})
    assert [m.content for m in model.system_messages()] == [SYSTEM]


async def test_list_content_system_message_gets_a_text_block_appended(
    memobase: Memobase, fake_backend: SpyBackend
) -> None:
    """Provider-specific blocks (e.g. cache_control) of the static prefix are kept as is."""
    fake_backend.add_fact(to_user_uuid("alice"), "basic_info", "name", "Alice")
    mw = MemobaseMiddleware(memobase, user_id="alice")
    static = {"type": "text", "text": SYSTEM, "cache_control": {"type": "ephemeral"}}
    request = ModelRequest(
        model=GenericFakeChatModel(messages=iter(["x"])),
        messages=[HumanMessage("hi", id="h1")],
        system_message=SystemMessage(content=[static]),
        state={"messages": [HumanMessage("hi", id="h1")]},
        runtime=None,
    )
    seen: list[ModelRequest[Any]] = []

    async def handler(req: ModelRequest[Any]) -> ModelResponse[Any]:
        seen.append(req)
        return ModelResponse(result=[AIMessage("ok")])

    await mw.awrap_model_call(request, handler)

    assert seen[0].system_message is not None
    content = seen[0].system_message.content
    assert isinstance(content, list)
    assert content[0] == static
    assert content[1]["type"] == "text"  # type: ignore[index]
    assert "basic_info::name: Alice" in content[1]["text"]  # type: ignore[index]
    assert request.system_message is not None and request.system_message.content == [static]


def test_memory_never_enters_the_graph_state(
    memobase: Memobase, fake_backend: SpyBackend, make_model: MakeModel
) -> None:
    fake_backend.add_fact(to_user_uuid("alice"), "basic_info", "name", "Alice-Secret-Name")
    model = make_model(*weather_turn("Sunny."), "Second answer.")
    saver = InMemorySaver()
    agent = create_agent(
        model,
        tools=[get_weather],
        system_prompt=SYSTEM,
        middleware=[MemobaseMiddleware(memobase, user_id="alice")],
        checkpointer=saver,
    )
    config: RunnableConfig = {"configurable": {"thread_id": "t1"}}
    agent.invoke({"messages": [HumanMessage("Weather?")]}, config)
    agent.invoke({"messages": [HumanMessage("And now?")]}, config)

    assert "Alice-Secret-Name" in str(model.seen[-1][0].content)  # the model did get it
    state = agent.get_state(config)
    assert "Alice-Secret-Name" not in repr(state.values)
    assert not any(isinstance(m, SystemMessage) for m in state.values["messages"])
    assert set(state.values) == {"messages"}
    for checkpoint in saver.list(config):
        assert "Alice-Secret-Name" not in repr(checkpoint.checkpoint)


# -- one read and one record per invocation -------------------------------------------------
def test_tool_loop_reads_once_and_records_the_turn_once(
    memobase: Memobase, fake_backend: SpyBackend, make_model: MakeModel
) -> None:
    model = make_model(*weather_turn("It is sunny in Paris."))
    agent = create_agent(
        model,
        tools=[get_weather],
        system_prompt=SYSTEM,
        middleware=[MemobaseMiddleware(memobase, user_id="alice")],
    )
    result = agent.invoke({"messages": [HumanMessage("What's the weather in Paris?")]})

    assert len(model.seen) == 2
    assert any(isinstance(m, ToolMessage) for m in result["messages"])
    assert fake_backend.count("context") == 1
    assert fake_backend.count("record") == 1
    (turn,) = fake_backend.turns
    assert turn.user_id == to_user_uuid("alice")
    assert turn.lines == [
        ("user", "What's the weather in Paris?"),
        ("assistant", "It is sunny in Paris."),
    ]
    human = result["messages"][0]
    # The core rule (memobase_integrations.turns.turn_id): the user message's id and text.
    assert turn.turn_id == turn_id("langchain", [Said("user", human.text, key=human.id)])


async def test_async_tool_loop_reads_once_and_records_once(
    memobase: Memobase, fake_backend: SpyBackend, make_model: MakeModel
) -> None:
    model = make_model(*weather_turn("Sunny."))
    agent = create_agent(
        model,
        tools=[get_weather],
        middleware=[MemobaseMiddleware(memobase, user_id="alice")],
    )
    await agent.ainvoke({"messages": [HumanMessage("Weather?")]})

    assert fake_backend.count("context") == 1
    assert [t.lines for t in fake_backend.turns] == [
        [("user", "Weather?"), ("assistant", "Sunny.")]
    ]
    assert fake_backend.sync_on_loop == []


def _three_turns() -> list[str]:
    return ["I live in Paris.", "I work as a nurse.", "I love chess."]


def test_checkpointer_three_turns_three_records_no_repeats(
    memobase: Memobase, fake_backend: SpyBackend, make_model: MakeModel, spy: FacadeSpy
) -> None:
    model = make_model(*weather_turn("a1"), "a2", "a3")
    agent = create_agent(
        model,
        tools=[get_weather],
        middleware=[MemobaseMiddleware(memobase, user_id="alice")],
        checkpointer=InMemorySaver(),
    )
    config: RunnableConfig = {"configurable": {"thread_id": "thread-1"}}
    for text in _three_turns():
        agent.invoke({"messages": [HumanMessage(text)]}, config)

    assert spy.count("context") == 3
    assert spy.count("record") == 3
    assert [t.lines for t in fake_backend.turns] == [
        [("user", "I live in Paris."), ("assistant", "a1")],
        [("user", "I work as a nurse."), ("assistant", "a2")],
        [("user", "I love chess."), ("assistant", "a3")],
    ]
    assert len({t.turn_id for t in fake_backend.turns}) == 3


def test_without_checkpointer_resent_history_is_not_recorded_again(
    memobase: Memobase, fake_backend: SpyBackend, make_model: MakeModel
) -> None:
    model = make_model("a1", "a2", "a3")
    agent = create_agent(model, middleware=[MemobaseMiddleware(memobase, user_id="alice")])
    history: list[Any] = []
    for text in _three_turns():
        result = agent.invoke({"messages": [*history, HumanMessage(text)]})
        history = result["messages"]

    assert len(history) == 6
    assert [t.lines for t in fake_backend.turns] == [
        [("user", "I live in Paris."), ("assistant", "a1")],
        [("user", "I work as a nurse."), ("assistant", "a2")],
        [("user", "I love chess."), ("assistant", "a3")],
    ]


def test_replaying_the_same_user_message_is_not_recorded_twice(
    memobase: Memobase, fake_backend: SpyBackend, make_model: MakeModel
) -> None:
    model = make_model("a1", "a1 again")
    agent = create_agent(model, middleware=[MemobaseMiddleware(memobase, user_id="alice")])
    question = HumanMessage("I work as a nurse.", id="client-msg-7")
    agent.invoke({"messages": [question]})
    agent.invoke({"messages": [question]})  # a client retry with the same message id

    assert fake_backend.count("record") == 2
    assert len(fake_backend.turns) == 1
    assert fake_backend.turns[0].turn_id == turn_id(
        "langchain", [Said("user", "I work as a nurse.", key="client-msg-7")]
    )


def test_summarization_middleware_summaries_are_never_recorded(
    memobase: Memobase, fake_backend: SpyBackend, make_model: MakeModel, spy: FacadeSpy
) -> None:
    model = make_model("a1", "a2", "a3", "a4", "a5")
    summarizer = GenericFakeChatModel(messages=iter(["SUMMARY-TEXT"] * 10))
    agent = create_agent(
        model,
        middleware=[
            SummarizationMiddleware(summarizer, trigger=("messages", 5), keep=("messages", 2)),
            MemobaseMiddleware(memobase, user_id="alice"),
        ],
        checkpointer=InMemorySaver(),
    )
    config: RunnableConfig = {"configurable": {"thread_id": "s1"}}
    questions = ["q1 I live in Paris", "q2", "q3", "q4 I love chess", "q5"]
    for text in questions:
        agent.invoke({"messages": [HumanMessage(text)]}, config)

    summaries = [
        m for m in agent.get_state(config).values["messages"] if "SUMMARY-TEXT" in str(m.content)
    ]
    assert summaries, "the scenario must actually summarise"
    assert spy.count("context") == 5
    assert spy.count("record") == 5
    assert [t.lines for t in fake_backend.turns] == [
        [("user", q), ("assistant", f"a{i}")] for i, q in enumerate(questions, start=1)
    ]
    assert "SUMMARY-TEXT" not in repr([t.lines for t in fake_backend.turns])


def test_summarization_inside_a_tool_loop_keeps_the_turn(
    memobase: Memobase, fake_backend: SpyBackend, make_model: MakeModel, spy: FacadeSpy
) -> None:
    """The user message may be summarised away mid-turn; the turn is still recorded whole."""
    model = make_model(
        tool_call("get_weather", {"city": "Paris"}, "c1"),
        tool_call("get_weather", {"city": "Rome"}, "c2"),
        tool_call("get_weather", {"city": "Oslo"}, "c3"),
        "All sunny.",
    )
    summarizer = GenericFakeChatModel(messages=iter(["SUMMARY-TEXT"] * 10))
    fake_backend.add_fact(to_user_uuid("alice"), "basic_info", "name", "Alice")
    agent = create_agent(
        model,
        tools=[get_weather],
        middleware=[
            SummarizationMiddleware(summarizer, trigger=("messages", 4), keep=("messages", 2)),
            MemobaseMiddleware(memobase, user_id="alice"),
        ],
        checkpointer=InMemorySaver(),
    )
    config: RunnableConfig = {"configurable": {"thread_id": "loop"}}
    agent.invoke({"messages": [HumanMessage("Weather in three cities?")]}, config)

    messages = agent.get_state(config).values["messages"]
    assert not any(m.content == "Weather in three cities?" for m in messages)  # summarised away
    assert spy.count("context") == 1
    assert all("basic_info::name: Alice" in str(seen[0].content) for seen in model.seen)
    assert [t.lines for t in fake_backend.turns] == [
        [("user", "Weather in three cities?"), ("assistant", "All sunny.")]
    ]


# -- users ----------------------------------------------------------------------------------
def test_alice_and_bob_on_the_same_thread_id_never_share_memory(
    memobase: Memobase, fake_backend: SpyBackend, make_model: MakeModel
) -> None:
    fake_backend.add_fact(to_user_uuid("alice"), "basic_info", "name", "ALICE-FACT")
    fake_backend.add_fact(to_user_uuid("bob"), "basic_info", "name", "BOB-FACT")
    model = make_model(repeat="ok")
    agent = create_agent(
        model,
        system_prompt=SYSTEM,
        middleware=[MemobaseMiddleware(memobase)],
        context_schema=Ctx,
        checkpointer=InMemorySaver(),
    )
    config: RunnableConfig = {"configurable": {"thread_id": "same-thread"}}

    agent.invoke({"messages": [HumanMessage("alice speaks")]}, config, context=Ctx("alice"))
    alice_system = str(model.seen[-1][0].content)
    agent.invoke({"messages": [HumanMessage("bob speaks")]}, config, context=Ctx("bob"))
    bob_system = str(model.seen[-1][0].content)

    assert "ALICE-FACT" in alice_system and "BOB-FACT" not in alice_system
    assert "BOB-FACT" in bob_system and "ALICE-FACT" not in bob_system
    alice_turns = fake_backend.turns_of(to_user_uuid("alice"))
    bob_turns = fake_backend.turns_of(to_user_uuid("bob"))
    assert [t.lines[0] for t in alice_turns] == [("user", "alice speaks")]
    assert [t.lines[0] for t in bob_turns] == [("user", "bob speaks")]


def test_user_id_from_config_configurable(
    memobase: Memobase, fake_backend: SpyBackend, make_model: MakeModel
) -> None:
    fake_backend.add_fact(to_user_uuid("carol"), "basic_info", "name", "CAROL")
    model = make_model("ok")
    agent = create_agent(model, middleware=[MemobaseMiddleware(memobase)])
    agent.invoke({"messages": [HumanMessage("hi")]}, {"configurable": {"user_id": "carol"}})
    assert "CAROL" in str(model.seen[0][0].content)
    assert fake_backend.turns_of(to_user_uuid("carol"))


def test_custom_resolver(
    memobase: Memobase, fake_backend: SpyBackend, make_model: MakeModel
) -> None:
    model = make_model("ok")
    mw = MemobaseMiddleware(memobase, user_id_from=lambda rt: f"tenant-1:{rt.context.user_id}")
    agent = create_agent(model, middleware=[mw], context_schema=Ctx)
    agent.invoke({"messages": [HumanMessage("hi")]}, context=Ctx("dave"))
    assert fake_backend.turns_of(to_user_uuid("tenant-1:dave"))
    assert not fake_backend.turns_of(to_user_uuid("dave"))


def test_missing_user_id_fails_clearly(
    memobase: Memobase, fake_backend: SpyBackend, make_model: MakeModel
) -> None:
    agent = create_agent(make_model("ok"), middleware=[MemobaseMiddleware(memobase)])
    with pytest.raises(MissingUserIdError, match=r"context=Ctx\(user_id=") as info:
        agent.invoke({"messages": [HumanMessage("hi")]})
    assert isinstance(info.value, mb_errors.MemobaseError)
    assert "configurable" in str(info.value)
    assert fake_backend.count("context") == 0 and fake_backend.turns == []


async def test_missing_user_id_fails_clearly_async(
    memobase: Memobase, fake_backend: SpyBackend, make_model: MakeModel
) -> None:
    agent = create_agent(
        make_model("ok"), middleware=[MemobaseMiddleware(memobase)], context_schema=Ctx
    )
    with pytest.raises(MissingUserIdError):
        await agent.ainvoke({"messages": [HumanMessage("hi")]}, context=Ctx(user_id=""))
    assert fake_backend.turns == []


def test_constructor_rejects_ambiguous_or_broken_options(memobase: Memobase) -> None:
    with pytest.raises(mb_errors.ConfigurationError, match="not both"):
        MemobaseMiddleware(memobase, user_id="a", user_id_from=lambda rt: "b")
    with pytest.raises(mb_errors.ConfigurationError, match=r"\{context\}"):
        MemobaseMiddleware(memobase, template="Memory: {memory}")
    with pytest.raises(mb_errors.ConfigurationError, match="Memobase instance"):
        MemobaseMiddleware(object())  # type: ignore[arg-type]


def test_two_middlewares_can_be_stacked_with_names(
    memobase: Memobase, make_model: MakeModel
) -> None:
    a = MemobaseMiddleware(memobase, user_id="alice", name="memory_a")
    b = MemobaseMiddleware(memobase, user_id="alice", name="memory_b", record=False)
    create_agent(make_model("ok"), middleware=[a, b])  # duplicate names would raise


# -- options --------------------------------------------------------------------------------
def test_options_reach_the_context_call(
    memobase: Memobase, fake_backend: SpyBackend, make_model: MakeModel
) -> None:
    fake_backend.add_fact(to_user_uuid("alice"), "basic_info", "name", "Alice")
    fake_backend.add_fact(to_user_uuid("alice"), "work", "title", "nurse")
    mw = MemobaseMiddleware(
        memobase,
        user_id="alice",
        max_token_size=123,
        only_topics=["work"],
        prefer_topics=["work"],
        context_options={"profile_event_ratio": 0.9},
        recent_chats=2,
    )
    model = make_model("ok")
    agent = create_agent(model, middleware=[mw])
    agent.invoke({"messages": [HumanMessage("Hi there")]})

    (_, options) = fake_backend.context_requests[0]
    assert options.max_token_size == 123
    assert list(options.only_topics or []) == ["work"]
    assert list(options.prefer_topics or []) == ["work"]
    assert options.profile_event_ratio == 0.9
    assert [(m.role, m.content) for m in options.chats or []] == [("user", "Hi there")]
    system = str(model.seen[0][0].content)
    assert "work::title: nurse" in system and "Alice" not in system


def test_record_false_reads_but_never_records(
    memobase: Memobase, fake_backend: SpyBackend, make_model: MakeModel
) -> None:
    agent = create_agent(
        make_model("ok"), middleware=[MemobaseMiddleware(memobase, user_id="a", record=False)]
    )
    agent.invoke({"messages": [HumanMessage("hi")]})
    assert fake_backend.count("context") == 1
    assert fake_backend.count("record") == 0


def test_flush_after_turn(
    memobase: Memobase, fake_backend: SpyBackend, make_model: MakeModel
) -> None:
    agent = create_agent(
        make_model("ok"),
        middleware=[MemobaseMiddleware(memobase, user_id="a", flush_after_turn=True)],
    )
    agent.invoke({"messages": [HumanMessage("hi")]})
    assert fake_backend.count("flush") == 1
    default = create_agent(make_model("ok"), middleware=[MemobaseMiddleware(memobase, user_id="a")])
    default.invoke({"messages": [HumanMessage("hi")]})
    assert fake_backend.count("flush") == 1


def test_interrupted_turn_is_recorded_when_resumed(
    memobase: Memobase, fake_backend: SpyBackend, make_model: MakeModel, spy: FacadeSpy
) -> None:
    """A human-in-the-loop pause: before_agent ran in the first call, after_agent in the
    resume; the turn is recorded once, and the resumed model call still gets the memory."""
    from langchain.agents.middleware import HumanInTheLoopMiddleware
    from langgraph.types import Command

    fake_backend.add_fact(to_user_uuid("alice"), "basic_info", "name", "Alice")
    model = make_model(*weather_turn("Sunny in Paris."))
    agent = create_agent(
        model,
        tools=[get_weather],
        middleware=[
            MemobaseMiddleware(memobase, user_id="alice"),
            HumanInTheLoopMiddleware(interrupt_on={"get_weather": True}),
        ],
        checkpointer=InMemorySaver(),
    )
    config: RunnableConfig = {"configurable": {"thread_id": "hitl"}}
    agent.invoke({"messages": [HumanMessage("Weather?")]}, config)
    assert fake_backend.turns == []  # paused before the tool ran
    agent.invoke(Command(resume={"decisions": [{"type": "approve"}]}), config)

    assert spy.count("context") == 1
    assert "basic_info::name: Alice" in str(model.seen[-1][0].content)
    assert [t.lines for t in fake_backend.turns] == [
        [("user", "Weather?"), ("assistant", "Sunny in Paris.")]
    ]


# -- faults ---------------------------------------------------------------------------------
@pytest.mark.parametrize("method", ["context", "record"])
def test_fail_open_answers_and_logs_when_the_backend_errors(
    memobase: Memobase,
    fake_backend: SpyBackend,
    make_model: MakeModel,
    caplog: pytest.LogCaptureFixture,
    method: str,
) -> None:
    fake_backend.fail[method] = mb_errors.ServerError("Memobase answered errno 500", errno=500)
    agent = create_agent(
        make_model("Still here."),
        system_prompt=SYSTEM,
        middleware=[MemobaseMiddleware(memobase, user_id="alice")],
    )
    with caplog.at_level(logging.WARNING, logger="langchain_memobase"):
        result = agent.invoke({"messages": [HumanMessage("hi")]})

    assert result["messages"][-1].content == "Still here."
    assert "errno 500" in caplog.text


@pytest.mark.parametrize("method", ["context", "record"])
async def test_fail_open_async_answers_when_the_backend_times_out(
    memobase: Memobase,
    fake_backend: SpyBackend,
    make_model: MakeModel,
    caplog: pytest.LogCaptureFixture,
    method: str,
) -> None:
    fake_backend.fail[method] = mb_errors.ServerError("only reached after the delay")
    fake_backend.delay = 1.0
    agent = create_agent(
        make_model("Still here."),
        middleware=[MemobaseMiddleware(memobase, user_id="alice", timeout=0.05)],
    )
    with caplog.at_level(logging.WARNING, logger="langchain_memobase"):
        result = await agent.ainvoke({"messages": [HumanMessage("hi")]})

    assert result["messages"][-1].content == "Still here."
    assert "did not finish within 0.05s" in caplog.text
    assert "only reached after the delay" not in caplog.text


def test_fail_open_sync_answers_when_the_backend_times_out(
    memobase: Memobase, fake_backend: SpyBackend, make_model: MakeModel
) -> None:
    fake_backend.delay = 0.5
    agent = create_agent(
        make_model("Still here."),
        middleware=[MemobaseMiddleware(memobase, user_id="alice", timeout=0.05)],
    )
    result = agent.invoke({"messages": [HumanMessage("hi")]})
    assert result["messages"][-1].content == "Still here."


def test_strict_raises_the_backend_error(
    memobase: Memobase, fake_backend: SpyBackend, make_model: MakeModel
) -> None:
    fake_backend.fail["context"] = mb_errors.ServiceUnavailableError("LLM quota exhausted")
    agent = create_agent(
        make_model("never"),
        middleware=[MemobaseMiddleware(memobase, user_id="alice", strict=True)],
    )
    with pytest.raises(mb_errors.ServiceUnavailableError, match="quota"):
        agent.invoke({"messages": [HumanMessage("hi")]})


async def test_strict_async_raises_a_timeout(
    memobase: Memobase, fake_backend: SpyBackend, make_model: MakeModel
) -> None:
    fake_backend.delay = 1.0
    agent = create_agent(
        make_model("never"),
        middleware=[MemobaseMiddleware(memobase, user_id="alice", strict=True, timeout=0.05)],
    )
    with pytest.raises(mb_errors.MemobaseTimeoutError, match="strict=True"):
        await agent.ainvoke({"messages": [HumanMessage("hi")]})


def test_strict_sync_raises_a_timeout(
    memobase: Memobase, fake_backend: SpyBackend, make_model: MakeModel
) -> None:
    fake_backend.delay = 0.5
    agent = create_agent(
        make_model("never"),
        middleware=[MemobaseMiddleware(memobase, user_id="alice", strict=True, timeout=0.05)],
    )
    with pytest.raises(mb_errors.MemobaseTimeoutError):
        agent.invoke({"messages": [HumanMessage("hi")]})


def test_strict_wraps_unexpected_exceptions_in_memobase_error(
    memobase: Memobase, fake_backend: SpyBackend, make_model: MakeModel
) -> None:
    fake_backend.fail["record"] = KeyError("boom")
    agent = create_agent(
        make_model("answer"),
        middleware=[MemobaseMiddleware(memobase, user_id="alice", strict=True)],
    )
    with pytest.raises(mb_errors.MemobaseError, match="KeyError") as info:
        agent.invoke({"messages": [HumanMessage("hi")]})
    assert isinstance(info.value.__cause__, KeyError)


def test_very_long_message_ids_give_a_short_stable_turn_id(
    memobase: Memobase, fake_backend: SpyBackend, make_model: MakeModel
) -> None:
    agent = create_agent(
        make_model("a", "b"), middleware=[MemobaseMiddleware(memobase, user_id="alice")]
    )
    long_id = "client-" + "x" * 400
    agent.invoke({"messages": [HumanMessage("hi", id=long_id)]})
    agent.invoke({"messages": [HumanMessage("hi", id=long_id)]})
    (turn,) = fake_backend.turns
    assert turn.turn_id.startswith("langchain:") and len(turn.turn_id) <= 255
