"""LlamaIndex's own usage patterns with ``MemobaseMemory``, plain ``Memory`` as the control.

Written for this project after llama-index-core's ``tests/memory/test_memory.py`` behaviours
(put/get order, put_messages, set, reset, token-limited history, the sync wrappers) and its
chat engines and workflow agents: every chat engine in its four modes (``chat``, ``achat``,
``stream_chat``, ``astream_chat``), ``FunctionAgent``, ``ReActAgent`` and ``AgentWorkflow``,
each with a fake LLM. Each scenario runs with ``Memory`` and with ``MemobaseMemory`` (a new
user and a seeded one): the short-term history must be the control's, and Memobase must
record exactly the turns the user had.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from llama_index.core.agent.workflow import AgentWorkflow, FunctionAgent, ReActAgent
from llama_index.core.base.llms.types import ChatMessage, MessageRole
from llama_index.core.chat_engine import (
    CondensePlusContextChatEngine,
    ContextChatEngine,
    SimpleChatEngine,
)
from llama_index.core.chat_engine.types import BaseChatEngine
from llama_index.core.memory import InsertMethod, Memory
from llama_index.core.tools import FunctionTool
from support.engine_runs import MODES, Mode, run_turn
from support.li_models import RecordingFunctionLLM, RecordingLLM, StaticRetriever
from support.spy import SpyBackend

from llamaindex_memobase import MemobaseMemory
from memobase_integrations.facade import Memobase
from memobase_integrations.ids import to_user_uuid

ALICE = to_user_uuid("alice")
PROFILE = "basic_info::name: Alice"
KINDS = ("control", "memobase-new", "memobase-seeded")


def make(kind: str, backend: SpyBackend, **kwargs: Any) -> Memory:
    if kind == "control":
        return Memory.from_defaults(**kwargs)
    if kind == "memobase-seeded":
        backend.set_profile(ALICE, [PROFILE])
    return MemobaseMemory.from_defaults("alice", Memobase(backend), **kwargs)  # type: ignore[arg-type]


def said(messages: list[ChatMessage]) -> list[tuple[str, str]]:
    """The conversation without the memory-block system message (compared with control)."""
    return [
        (m.role.value, m.content or "")
        for m in messages
        if not (m.role == MessageRole.SYSTEM and "<memory>" in (m.content or ""))
    ]


# -- Memory behaviours -------------------------------------------------------------------------
@pytest.mark.parametrize("kind", KINDS)
async def test_put_get_order_set_and_reset(kind: str) -> None:
    backend = SpyBackend()
    memory = make(kind, backend)
    await memory.aput(ChatMessage(role=MessageRole.USER, content="Hi, I'm Alice."))
    await memory.aput_messages(
        [
            ChatMessage(role=MessageRole.ASSISTANT, content="Hello Alice."),
            ChatMessage(role=MessageRole.USER, content="I like tea."),
        ]
    )
    memory.put(ChatMessage(role=MessageRole.ASSISTANT, content="Noted."))
    expected = [
        ("user", "Hi, I'm Alice."),
        ("assistant", "Hello Alice."),
        ("user", "I like tea."),
        ("assistant", "Noted."),
    ]
    assert said(await memory.aget_all()) == expected
    got = await memory.aget()
    assert said(got) == expected
    if kind == "memobase-seeded":
        assert got[0].role == MessageRole.SYSTEM and PROFILE in (got[0].content or "")
    if kind != "control":
        assert len(backend.recorded(ALICE)) == 2

    await memory.aset([ChatMessage(role=MessageRole.USER, content="Fresh start.")])
    assert said(await memory.aget_all()) == [("user", "Fresh start.")]
    memory.reset()
    assert await memory.aget_all() == []
    if kind != "control":
        assert len(backend.recorded(ALICE)) == 2  # set/reset never record nor forget


@pytest.mark.parametrize("kind", KINDS)
async def test_token_limited_history_keeps_the_latest_messages(kind: str) -> None:
    backend = SpyBackend()
    memory = make(kind, backend, token_limit=200, chat_history_token_ratio=0.5)
    for i in range(30):
        role = MessageRole.USER if i % 2 == 0 else MessageRole.ASSISTANT
        await memory.aput(ChatMessage(role=role, content=f"message number {i} " * 3))
    history = said(await memory.aget())
    assert history and history[-1][1].startswith("message number 29")
    assert len(history) < 30
    if kind != "control":
        assert len(backend.recorded(ALICE)) == 15  # every turn, not only the overflow


# -- every chat engine, every mode -------------------------------------------------------------
EngineFactory = Callable[[RecordingLLM, Memory], BaseChatEngine]
ENGINES: dict[str, EngineFactory] = {
    "simple": lambda llm, memory: SimpleChatEngine.from_defaults(
        llm=llm, memory=memory, system_prompt="Be brief."
    ),
    "context": lambda llm, memory: ContextChatEngine.from_defaults(
        retriever=StaticRetriever(), llm=llm, memory=memory
    ),
    "condense_plus_context": lambda llm, memory: CondensePlusContextChatEngine.from_defaults(
        retriever=StaticRetriever(), llm=llm, memory=memory
    ),
}


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("engine", sorted(ENGINES))
async def test_chat_engines_against_the_control(engine: str, mode: Mode) -> None:
    histories = {}
    for kind in ("control", "memobase-seeded"):
        backend = SpyBackend()
        memory = make(kind, backend)
        llm = RecordingLLM(script=["First answer.", "Second answer."])
        chat = ENGINES[engine](llm, memory)
        await run_turn(chat, mode, "I live in Paris.")
        await run_turn(chat, mode, "What about me?")
        histories[kind] = said(await memory.aget_all())
        if kind != "control":
            assert PROFILE in llm.last_text
            assert backend.recorded(ALICE) == [
                [("user", "I live in Paris."), ("assistant", "First answer.")],
                [("user", "What about me?"), ("assistant", "Second answer.")],
            ]
    assert histories["memobase-seeded"] == histories["control"]


# -- workflow agents ---------------------------------------------------------------------------
def lookup_weather(city: str = "Oslo") -> str:
    """Current weather for a city."""
    return f"21C and sunny in {city}"


WEATHER = FunctionTool.from_defaults(lookup_weather)


def _react_llm() -> RecordingLLM:
    return RecordingLLM(
        script=[
            'Thought: I need the weather.\nAction: lookup_weather\nAction Input: {"city": "Oslo"}',
            "Thought: I can answer without using any more tools.\nAnswer: It is 21C.",
        ]
    )


AGENTS: dict[str, Callable[[], Any]] = {
    "function_agent": lambda: FunctionAgent(tools=[WEATHER], llm=RecordingFunctionLLM()),
    "react_agent": lambda: ReActAgent(tools=[WEATHER], llm=_react_llm(), system_prompt="Hi."),
    "agent_workflow": lambda: AgentWorkflow.from_tools_or_functions(
        [WEATHER], llm=RecordingFunctionLLM()
    ),
}


@pytest.mark.parametrize("agent", sorted(AGENTS))
async def test_agents_against_the_control(agent: str) -> None:
    results = {}
    for kind in ("control", "memobase-seeded"):
        backend = SpyBackend()
        memory = make(kind, backend, insert_method=InsertMethod.SYSTEM)
        result = await AGENTS[agent]().run(user_msg="Weather in Oslo?", memory=memory)
        results[kind] = (str(result), said(await memory.aget_all()))
        if kind != "control":
            ((first, *_), *rest) = backend.recorded(ALICE)
            assert first == ("user", "Weather in Oslo?") and not rest
            assert backend.recorded(ALICE)[0][-1] == ("assistant", str(result).strip())
    assert results["memobase-seeded"] == results["control"]
