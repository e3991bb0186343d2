"""Issue 18, cases 1-7: what ``MemobaseMiddleware`` records when LangChain's own middleware,
structured output, ``return_direct`` tools, several user messages or an edited message are
in play. Each case failed on main before the core turn policy (``memobase_integrations.turns``).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest
from langchain.agents import create_agent
from langchain.agents.middleware import (
    AgentMiddleware,
    ModelCallLimitMiddleware,
    ModelRequest,
    ModelRetryMiddleware,
    PIIMiddleware,
    dynamic_prompt,
)
from langchain.agents.structured_output import ToolStrategy
from langchain_core.messages import AIMessage, BaseMessage, HumanMessage, RemoveMessage
from langchain_core.outputs import ChatResult
from langchain_core.runnables import RunnableConfig
from langchain_core.tools import tool
from langgraph.checkpoint.memory import InMemorySaver
from pydantic import BaseModel
from support.lc_models import ToolCallingFakeModel, tool_call
from support.spy import SpyBackend

from langchain_memobase import MemobaseMiddleware
from memobase_integrations.facade import Memobase
from memobase_integrations.ids import to_user_uuid

MakeModel = Callable[..., ToolCallingFakeModel]
EMAIL = "alice.smith@example.com"


def _lines(backend: SpyBackend) -> list[list[tuple[str, str]]]:
    return [t.lines for t in backend.turns]


def _ordered(ours: AgentMiddleware[Any, Any], other: Any, ours_first: bool) -> list[Any]:
    return [ours, other] if ours_first else [other, ours]


# -- case 1: what is recorded is what the model was allowed to see ------------------------
@pytest.mark.parametrize("ours_first", [True, False], ids=["memobase-first", "pii-first"])
def test_pii_redacted_input_is_what_gets_recorded(
    memobase: Memobase, fake_backend: SpyBackend, make_model: MakeModel, ours_first: bool
) -> None:
    model = make_model("Noted.")
    pii = PIIMiddleware("email", strategy="redact", apply_to_input=True)
    agent = create_agent(
        model,
        middleware=_ordered(MemobaseMiddleware(memobase, user_id="alice"), pii, ours_first),
    )
    agent.invoke({"messages": [HumanMessage(f"My email is {EMAIL}, remember it.")]})

    seen_user = [m for m in model.seen[0] if isinstance(m, HumanMessage)][-1]
    assert EMAIL not in seen_user.text  # the model got the redacted text
    ((role, recorded), answer) = _lines(fake_backend)[0]
    assert role == "user"
    assert recorded == seen_user.text
    assert EMAIL not in repr(_lines(fake_backend))
    assert answer == ("assistant", "Noted.")


@pytest.mark.parametrize("ours_first", [True, False], ids=["memobase-first", "pii-first"])
async def test_pii_redaction_holds_under_ainvoke(
    memobase: Memobase, fake_backend: SpyBackend, make_model: MakeModel, ours_first: bool
) -> None:
    pii = PIIMiddleware("email", strategy="redact", apply_to_input=True)
    agent = create_agent(
        make_model("Noted."),
        middleware=_ordered(MemobaseMiddleware(memobase, user_id="alice"), pii, ours_first),
    )
    await agent.ainvoke({"messages": [HumanMessage(f"Mail me at {EMAIL}")]})
    assert fake_backend.turns and EMAIL not in repr(_lines(fake_backend))


# -- case 2: memory survives a dynamic prompt in any order ------------------------------
@pytest.mark.parametrize("ours_first", [True, False], ids=["memobase-first", "prompt-first"])
async def test_memory_survives_a_dynamic_prompt(
    memobase: Memobase, fake_backend: SpyBackend, make_model: MakeModel, ours_first: bool
) -> None:
    fake_backend.add_fact(to_user_uuid("alice"), "basic_info", "name", "Alice")

    @dynamic_prompt
    def pirate(request: ModelRequest[Any]) -> str:
        return "You are a pirate."

    model = make_model("Arr.", "Arr again.")
    agent = create_agent(
        model,
        middleware=_ordered(MemobaseMiddleware(memobase, user_id="alice"), pirate, ours_first),
    )
    agent.invoke({"messages": [HumanMessage("Who am I?")]})
    await agent.ainvoke({"messages": [HumanMessage("Who am I, again?")]})

    for call in range(2):
        (system,) = model.system_messages(call)
        assert system.text.startswith("You are a pirate.")
        assert system.text.count("basic_info::name: Alice") == 1


def test_a_prompt_built_on_ours_does_not_get_the_memory_twice(
    memobase: Memobase, fake_backend: SpyBackend, make_model: MakeModel
) -> None:
    fake_backend.add_fact(to_user_uuid("alice"), "basic_info", "name", "Alice")

    @dynamic_prompt
    def dated(request: ModelRequest[Any]) -> str:
        return f"{request.system_prompt}\nToday is Monday."

    model = make_model("Hi.")
    agent = create_agent(
        model,
        system_prompt="Be brief.",
        middleware=[MemobaseMiddleware(memobase, user_id="alice"), dated],
    )
    agent.invoke({"messages": [HumanMessage("Hi")]})
    (system,) = model.system_messages()
    assert system.text.count("basic_info::name: Alice") == 1
    assert "Today is Monday." in system.text


# -- case 3: framework-synthetic messages are never recorded -----------------------------
class FailingModel(ToolCallingFakeModel):
    def _generate(self, messages: list[BaseMessage], *args: Any, **kwargs: Any) -> ChatResult:
        self.seen.append(list(messages))
        raise RuntimeError("provider is down")


@pytest.mark.parametrize("ours_first", [True, False], ids=["memobase-first", "retry-first"])
def test_model_retry_give_up_text_is_not_recorded(
    memobase: Memobase, fake_backend: SpyBackend, ours_first: bool
) -> None:
    retry = ModelRetryMiddleware(
        max_retries=1, retry_on=(RuntimeError,), initial_delay=0.0, jitter=False
    )
    agent = create_agent(
        FailingModel(messages=iter([])),
        middleware=_ordered(MemobaseMiddleware(memobase, user_id="alice"), retry, ours_first),
    )
    result = agent.invoke({"messages": [HumanMessage("I moved to Lisbon.")]})

    assert result["messages"][-1].text.startswith("Model call failed after 2 attempts")
    assert _lines(fake_backend) == [[("user", "I moved to Lisbon.")]]


@pytest.mark.parametrize("ours_first", [True, False], ids=["memobase-first", "limit-first"])
def test_model_call_limit_text_is_not_recorded_nor_the_user_twice(
    memobase: Memobase, fake_backend: SpyBackend, make_model: MakeModel, ours_first: bool
) -> None:
    @tool
    def lookup(city: str) -> str:
        """Look a city up."""
        return f"{city} is nice."

    limit = ModelCallLimitMiddleware(run_limit=1, exit_behavior="end")
    model = make_model(tool_call("lookup", {"city": "Lisbon"}, "c1"), "Second answer.")
    agent = create_agent(
        model,
        tools=[lookup],
        middleware=_ordered(MemobaseMiddleware(memobase, user_id="alice"), limit, ours_first),
        checkpointer=InMemorySaver(),
    )
    config: RunnableConfig = {"configurable": {"thread_id": "t"}}
    first = agent.invoke({"messages": [HumanMessage("Tell me about Lisbon.")]}, config)
    assert first["messages"][-1].text.startswith("Model call limits exceeded")
    agent.invoke({"messages": [HumanMessage("Thanks!")]}, config)

    assert _lines(fake_backend) == [
        [("user", "Tell me about Lisbon.")],
        [("user", "Thanks!"), ("assistant", "Second answer.")],
    ]


# -- case 4: a ToolStrategy structured answer is recorded --------------------------------
class Weather(BaseModel):
    city: str
    forecast: str


def test_tool_strategy_structured_answer_is_recorded(
    memobase: Memobase, fake_backend: SpyBackend, make_model: MakeModel
) -> None:
    model = make_model(tool_call("Weather", {"city": "Paris", "forecast": "sunny"}, "s1"))
    agent = create_agent(
        model,
        response_format=ToolStrategy(Weather),
        middleware=[MemobaseMiddleware(memobase, user_id="alice")],
    )
    result = agent.invoke({"messages": [HumanMessage("Weather in Paris?")]})

    assert result["structured_response"] == Weather(city="Paris", forecast="sunny")
    ((user, answer),) = _lines(fake_backend)
    assert user == ("user", "Weather in Paris?")
    assert answer[0] == "assistant"
    assert json.loads(answer[1]) == {"city": "Paris", "forecast": "sunny"}


# -- case 5: a return_direct tool's result is the answer ---------------------------------
def test_return_direct_tool_answer_is_recorded_and_not_repeated(
    memobase: Memobase, fake_backend: SpyBackend, make_model: MakeModel
) -> None:
    @tool(return_direct=True)
    def balance(account: str) -> str:
        """Read an account balance."""
        return f"Account {account} holds 120 EUR."

    model = make_model(tool_call("balance", {"account": "A1"}, "b1"), "You're welcome.")
    agent = create_agent(
        model,
        tools=[balance],
        middleware=[MemobaseMiddleware(memobase, user_id="alice")],
        checkpointer=InMemorySaver(),
    )
    config: RunnableConfig = {"configurable": {"thread_id": "t"}}
    agent.invoke({"messages": [HumanMessage("My balance?")]}, config)
    agent.invoke({"messages": [HumanMessage("Thanks.")]}, config)

    assert _lines(fake_backend) == [
        [("user", "My balance?"), ("assistant", "Account A1 holds 120 EUR.")],
        [("user", "Thanks."), ("assistant", "You're welcome.")],
    ]


# -- case 6: several user messages in one invocation are all recorded ----------------------
async def test_every_user_message_of_an_invocation_is_recorded(
    memobase: Memobase, fake_backend: SpyBackend, make_model: MakeModel
) -> None:
    agent = create_agent(
        make_model("Welcome to Lisbon!", "Good night."),
        middleware=[MemobaseMiddleware(memobase, user_id="alice")],
        checkpointer=InMemorySaver(),
    )
    config: RunnableConfig = {"configurable": {"thread_id": "t"}}
    await agent.ainvoke(
        {"messages": [HumanMessage("I moved to Lisbon."), HumanMessage("I work as a nurse.")]},
        config,
    )
    await agent.ainvoke({"messages": [HumanMessage("Bye.")]}, config)

    assert _lines(fake_backend) == [
        [
            ("user", "I moved to Lisbon."),
            ("user", "I work as a nurse."),
            ("assistant", "Welcome to Lisbon!"),
        ],
        [("user", "Bye."), ("assistant", "Good night.")],
    ]


# -- case 7: edit-and-regenerate records the edited text as a new turn --------------------
def test_edited_user_message_is_a_new_turn(
    memobase: Memobase, fake_backend: SpyBackend, make_model: MakeModel
) -> None:
    agent = create_agent(
        make_model("Paris is lovely.", "Rome is lovely."),
        middleware=[MemobaseMiddleware(memobase, user_id="alice")],
        checkpointer=InMemorySaver(),
    )
    config: RunnableConfig = {"configurable": {"thread_id": "t"}}
    first = agent.invoke({"messages": [HumanMessage("I live in Paris.", id="m1")]}, config)
    old_answer = first["messages"][-1]
    assert isinstance(old_answer, AIMessage) and old_answer.id
    # RemoveMessage is add_messages' delete marker; the state's AnyMessage type omits it.
    agent.invoke(  # type: ignore[call-overload]
        {
            "messages": [
                RemoveMessage(id=old_answer.id),
                HumanMessage("I live in Rome.", id="m1"),  # LangGraph replaces by id
            ]
        },
        config,
    )

    assert _lines(fake_backend) == [
        [("user", "I live in Paris."), ("assistant", "Paris is lovely.")],
        [("user", "I live in Rome."), ("assistant", "Rome is lovely.")],
    ]
    assert len({t.turn_id for t in fake_backend.turns}) == 2


def test_a_replay_of_the_edited_message_is_still_a_no_op(
    memobase: Memobase, fake_backend: SpyBackend, make_model: MakeModel
) -> None:
    agent = create_agent(
        make_model("a1", "a2", "a3"), middleware=[MemobaseMiddleware(memobase, user_id="alice")]
    )
    agent.invoke({"messages": [HumanMessage("I live in Paris.", id="m1")]})
    agent.invoke({"messages": [HumanMessage("I live in Rome.", id="m1")]})
    agent.invoke({"messages": [HumanMessage("I live in Rome.", id="m1")]})  # client retry

    assert [t.lines[0] for t in fake_backend.turns] == [
        ("user", "I live in Paris."),
        ("user", "I live in Rome."),
    ]
