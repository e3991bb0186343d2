"""``MemobaseMemory`` with LlamaIndex workflow agents (fake backend, mock LLMs)."""

from __future__ import annotations

import pytest
from llama_index.core.agent.workflow import FunctionAgent, ReActAgent
from llama_index.core.memory import InsertMethod
from llama_index.core.tools import FunctionTool
from support.li_models import RecordingFunctionLLM, RecordingLLM
from support.spy import SpyBackend

from llamaindex_memobase import MemobaseMemory
from memobase_integrations.facade import Memobase
from memobase_integrations.ids import to_user_uuid

ALICE = to_user_uuid("alice")
PROFILE = "basic_info::name: Alice"


def lookup_weather(city: str = "Oslo") -> str:
    """Current weather for a city."""
    return f"21C and sunny in {city}"


WEATHER = FunctionTool.from_defaults(lookup_weather)


@pytest.mark.parametrize("streaming", [True, False])
async def test_function_agent_run_with_a_tool_call(
    streaming: bool, mb: Memobase, backend: SpyBackend
) -> None:
    backend.set_profile(ALICE, [PROFILE])
    llm = RecordingFunctionLLM()
    agent = FunctionAgent(tools=[WEATHER], llm=llm, system_prompt="Be brief.", streaming=streaming)
    memory = MemobaseMemory.from_defaults("alice", mb)

    result = await agent.run(user_msg="How is the weather?", memory=memory)

    assert str(result) == "Tool calls complete."
    # the LLM was called twice (tool call, then answer) and saw the profile both times
    assert len(llm.calls) == 2
    assert all(PROFILE in text for text in llm.all_text)
    # one record for the whole run: the user text and the final answer, no tool traffic
    assert backend.recorded(ALICE) == [
        [("user", "How is the weather?"), ("assistant", "Tool calls complete.")]
    ]
    # LlamaIndex read the memory 3 times in this run; the backend was asked once
    assert backend.calls["acontext"] == 1
    # the tool traffic is still in LlamaIndex's short-term history, as usual
    roles = [m.role.value for m in await memory.aget_all()]
    assert roles == ["user", "assistant", "tool", "assistant"]


async def test_function_agent_second_run_records_only_the_new_turn(
    mb: Memobase, backend: SpyBackend
) -> None:
    agent = FunctionAgent(tools=[WEATHER], llm=RecordingFunctionLLM())
    memory = MemobaseMemory.from_defaults("alice", mb)
    await agent.run(user_msg="weather?", memory=memory)
    await agent.run(user_msg="and tomorrow?", memory=memory)
    assert [turn[0] for turn in backend.recorded(ALICE)] == [
        ("user", "weather?"),
        ("user", "and tomorrow?"),
    ]
    assert all(len(turn) == 2 for turn in backend.recorded(ALICE))


async def test_memory_passed_to_the_agent_constructor_is_ignored_by_llamaindex(
    mb: Memobase, backend: SpyBackend
) -> None:
    """A LlamaIndex trap worth a test: only ``run(..., memory=...)`` is honoured."""
    backend.set_profile(ALICE, [PROFILE])
    llm = RecordingFunctionLLM()
    memory = MemobaseMemory.from_defaults("alice", mb)
    agent = FunctionAgent(tools=[WEATHER], llm=llm, memory=memory)  # type: ignore[call-arg]
    await agent.run(user_msg="weather?")
    assert all(PROFILE not in text for text in llm.all_text)
    assert backend.recorded(ALICE) == []


def react_llm() -> RecordingLLM:
    return RecordingLLM(
        script=[
            'Thought: I need the weather.\nAction: lookup_weather\nAction Input: {"city": "Oslo"}',
            "Thought: I can answer without using any more tools.\nAnswer: It is 21C, Alice.",
        ]
    )


async def test_react_agent_sees_the_profile_with_user_insertion(
    mb: Memobase, backend: SpyBackend
) -> None:
    backend.set_profile(ALICE, [PROFILE])
    llm = react_llm()
    memory = MemobaseMemory.from_defaults("alice", mb, insert_method=InsertMethod.USER)
    result = await ReActAgent(tools=[WEATHER], llm=llm).run(user_msg="Weather?", memory=memory)
    assert "It is 21C, Alice." in str(result)
    assert all(PROFILE in _text(call) for call in llm.calls)
    # the reasoning transcript is reduced to what the user was told
    assert backend.recorded(ALICE) == [[("user", "Weather?"), ("assistant", "It is 21C, Alice.")]]
    assert backend.calls["acontext"] == 1


async def test_react_agent_sees_the_profile_when_it_has_a_system_prompt(
    mb: Memobase, backend: SpyBackend
) -> None:
    backend.set_profile(ALICE, [PROFILE])
    llm = react_llm()
    memory = MemobaseMemory.from_defaults("alice", mb)
    agent = ReActAgent(tools=[WEATHER], llm=llm, system_prompt="Be brief.")
    await agent.run(user_msg="Weather?", memory=memory)
    assert all(PROFILE in _text(call) for call in llm.calls)


async def test_react_agent_drops_system_memory_without_a_system_prompt(
    mb: Memobase, backend: SpyBackend
) -> None:
    """Documented LlamaIndex behaviour: ReActAgent discards the first system message (it
    replaces it with its own header). With the default SYSTEM insertion and no agent
    ``system_prompt``, that first system message *is* the memory, so the profile is lost.
    If this test starts failing, LlamaIndex fixed it and the docs can be simplified."""
    backend.set_profile(ALICE, [PROFILE])
    llm = react_llm()
    memory = MemobaseMemory.from_defaults("alice", mb)
    await ReActAgent(tools=[WEATHER], llm=llm).run(user_msg="Weather?", memory=memory)
    assert all(PROFILE not in _text(call) for call in llm.calls)
    assert backend.calls["acontext"] >= 1  # it was read, then thrown away by the agent
    assert len(backend.recorded(ALICE)) == 1  # recording is unaffected


def _text(messages: list) -> str:  # type: ignore[type-arg]
    return "\n".join(m.content or "" for m in messages)
