"""The ``create_agent`` middleware composition matrix: ``MemobaseMiddleware`` listed before and
after each of LangChain's built-in middleware that touches the prompt, the input or the
answer (PII, ``@dynamic_prompt``, ModelRetry, ModelCallLimit, Summarization, HITL).

Written for this project from the middleware contract in ``langchain.agents.middleware``
(hook order: ``before_agent`` -> ``before_model`` -> ``wrap_model_call`` (first listed is
outermost) -> ``after_model`` -> ``after_agent``). For every cell it checks the two promises
the README's composition table states: the model sees the user's memory on every model call,
and what is recorded is what the model was allowed to see, never framework text.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest
from langchain.agents import create_agent
from langchain.agents.middleware import (
    HumanInTheLoopMiddleware,
    ModelCallLimitMiddleware,
    ModelRequest,
    ModelRetryMiddleware,
    PIIMiddleware,
    SummarizationMiddleware,
    dynamic_prompt,
)
from langchain_core.language_models.fake_chat_models import GenericFakeChatModel
from langchain_core.messages import AIMessage, BaseMessage, HumanMessage
from langchain_core.outputs import ChatResult
from langchain_core.runnables import RunnableConfig
from langchain_core.tools import tool
from langgraph.checkpoint.memory import InMemorySaver
from langgraph.types import Command
from support.lc_models import ToolCallingFakeModel, tool_call
from support.spy import SpyBackend

from langchain_memobase import MemobaseMiddleware
from memobase_integrations.facade import Memobase
from memobase_integrations.ids import to_user_uuid

FACT = "basic_info::name: Alice"
EMAIL = "alice.smith@example.com"


@tool
def get_weather(city: str) -> str:
    """Get the weather for a city."""
    return f"It is sunny in {city}."


class FailingModel(ToolCallingFakeModel):
    def _generate(self, messages: list[BaseMessage], *args: Any, **kwargs: Any) -> ChatResult:
        self.seen.append(list(messages))
        raise RuntimeError("provider is down")


@dynamic_prompt
def pirate_prompt(request: ModelRequest[Any]) -> str:
    return "You are a pirate."


@dataclass
class Cell:
    """One built-in middleware: how to build it, drive the agent, and what must be recorded."""

    build: Callable[[], Any]
    model: Callable[[], ToolCallingFakeModel]
    inputs: list[Any]
    recorded: list[list[tuple[str, str]]]
    checkpointer: bool = False


def _model(*script: AIMessage | str) -> Callable[[], ToolCallingFakeModel]:
    return lambda: ToolCallingFakeModel(messages=iter(script))


def _summarizer() -> GenericFakeChatModel:
    return GenericFakeChatModel(messages=iter(["SUMMARY-TEXT"] * 20))


CELLS: dict[str, Cell] = {
    "pii-redact": Cell(
        build=lambda: PIIMiddleware("email", strategy="redact", apply_to_input=True),
        model=_model("Noted."),
        inputs=[{"messages": [HumanMessage(f"My email is {EMAIL}")]}],
        recorded=[[("user", "My email is [REDACTED_EMAIL]"), ("assistant", "Noted.")]],
    ),
    "dynamic-prompt": Cell(
        build=lambda: pirate_prompt,
        model=_model("Arr."),
        inputs=[{"messages": [HumanMessage("Who am I?")]}],
        recorded=[[("user", "Who am I?"), ("assistant", "Arr.")]],
    ),
    "model-retry-gives-up": Cell(
        build=lambda: ModelRetryMiddleware(
            max_retries=1, retry_on=(RuntimeError,), initial_delay=0.0, jitter=False
        ),
        model=lambda: FailingModel(messages=iter([])),
        inputs=[{"messages": [HumanMessage("I moved to Lisbon.")]}],
        recorded=[[("user", "I moved to Lisbon.")]],
    ),
    "model-call-limit-end": Cell(
        build=lambda: ModelCallLimitMiddleware(run_limit=1, exit_behavior="end"),
        model=_model(tool_call("get_weather", {"city": "Paris"}, "c1"), "unused"),
        inputs=[{"messages": [HumanMessage("Weather in Paris?")]}],
        recorded=[[("user", "Weather in Paris?")]],
    ),
    "summarization": Cell(
        build=lambda: SummarizationMiddleware(
            _summarizer(), trigger=("messages", 4), keep=("messages", 2)
        ),
        model=_model("a1", "a2", "a3"),
        inputs=[{"messages": [HumanMessage(q)]} for q in ("q1", "q2", "q3")],
        recorded=[[("user", f"q{i}"), ("assistant", f"a{i}")] for i in (1, 2, 3)],
        checkpointer=True,
    ),
    "hitl-approve": Cell(
        build=lambda: HumanInTheLoopMiddleware(interrupt_on={"get_weather": True}),
        model=_model(tool_call("get_weather", {"city": "Paris"}, "c1"), "Sunny in Paris."),
        inputs=[
            {"messages": [HumanMessage("Weather in Paris?")]},
            Command(resume={"decisions": [{"type": "approve"}]}),
        ],
        recorded=[[("user", "Weather in Paris?"), ("assistant", "Sunny in Paris.")]],
        checkpointer=True,
    ),
}


@pytest.mark.parametrize("ours_first", [True, False], ids=["memobase-first", "memobase-last"])
@pytest.mark.parametrize("name", sorted(CELLS))
async def test_composition_matrix(name: str, ours_first: bool) -> None:
    cell = CELLS[name]
    backend = SpyBackend()
    backend.add_fact(to_user_uuid("alice"), "basic_info", "name", "Alice")
    memobase = Memobase(backend)
    ours = MemobaseMiddleware(memobase, user_id="alice")
    other = cell.build()
    model = cell.model()
    agent = create_agent(
        model,
        tools=[get_weather],
        system_prompt="Be brief.",
        middleware=[ours, other] if ours_first else [other, ours],
        checkpointer=InMemorySaver() if cell.checkpointer else None,
    )
    config: RunnableConfig = {"configurable": {"thread_id": f"{name}-{ours_first}"}}
    for step in cell.inputs:
        await agent.ainvoke(step, config)

    assert [t.lines for t in backend.turns] == cell.recorded
    assert model.seen, "the scenario must reach the model"
    for call in model.seen:
        (system,) = [m for m in call if m.type == "system"]
        assert system.text.count(FACT) == 1, f"{name}: memory missing or doubled"
    assert backend.sync_on_loop == []
