"""End to end: LlamaIndex engines and agents on the embedded backend with the stand-in LLM.

The stand-in (``memobase_integrations.testing.StandInLLM``) is a rule-based fake of the
OpenAI API, not a model: it turns "my name is Gus and I work as a plumber" into profile
lines the way a real LLM would. The chat LLM is a recording fake, so the tests can look at
exactly what the app's LLM was sent.

Turn 1 states a name and a job; an explicit flush processes the buffer; on turn 2 the
``<memobase>`` section of the LLM input must carry both. Turn 1's own text is also in the
short-term history on turn 2, so the assertions look inside the memory section only.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator

import pytest
from llama_index.core.agent.workflow import FunctionAgent, ReActAgent
from llama_index.core.base.llms.types import ChatMessage
from llama_index.core.chat_engine import (
    CondensePlusContextChatEngine,
    ContextChatEngine,
    SimpleChatEngine,
)
from llama_index.core.chat_engine.types import BaseChatEngine
from llama_index.core.memory import InsertMethod
from llama_index.core.tools import FunctionTool
from support.engine_runs import MODES, Mode, run_turn
from support.li_models import RecordingFunctionLLM, RecordingLLM, StaticRetriever
from support.spy import SpyBackend

from llamaindex_memobase import MemobaseMemory
from memobase_integrations.facade import Memobase

INTRO = "Hi! My name is Gus and I work as a plumber."
NAME_LINE = "basic_info::name: Gus"
JOB_LINE = "work::title: plumber"

_SECTION = re.compile(r"<memobase>(.*?)</memobase>", re.DOTALL)


def memory_section(messages: list[ChatMessage]) -> str:
    """The text LlamaIndex injected for the Memobase block ("" if none)."""
    return "\n".join(match for m in messages for match in _SECTION.findall(m.content or ""))


@pytest.fixture
def counting() -> Iterator[SpyBackend]:
    # The embedded engine in memory: the explicit flush is the only trigger.
    backend = SpyBackend()
    yield backend
    backend.close(timeout=5)


@pytest.fixture
def memobase(counting: SpyBackend) -> Memobase:
    return Memobase(counting)


EngineFactory = Callable[[RecordingLLM, MemobaseMemory], BaseChatEngine]

ENGINES: dict[str, EngineFactory] = {
    "simple": lambda llm, memory: SimpleChatEngine.from_defaults(
        llm=llm, memory=memory, system_prompt="You are a helpful assistant."
    ),
    "context": lambda llm, memory: ContextChatEngine.from_defaults(
        retriever=StaticRetriever(), llm=llm, memory=memory
    ),
    "condense_plus_context": lambda llm, memory: CondensePlusContextChatEngine.from_defaults(
        retriever=StaticRetriever(), llm=llm, memory=memory
    ),
}


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("engine_name", list(ENGINES))
async def test_chat_engine_learns_from_turn_one_and_uses_it_on_turn_two(
    engine_name: str, mode: Mode, memobase: Memobase, counting: SpyBackend
) -> None:
    llm = RecordingLLM(answer="Good to know!")
    memory = MemobaseMemory.from_defaults("gus", memobase)
    engine = ENGINES[engine_name](llm, memory)

    await run_turn(engine, mode, INTRO)
    assert memory_section(llm.calls[-1]) == ""  # nothing known yet
    assert counting.count("record") == 1

    results = await memory.aflush()
    assert results and results[0].add_profiles  # the stand-in extracted profile rows

    await run_turn(engine, mode, "What do you know about me?")
    assert counting.count("record") == 2
    section = memory_section(llm.calls[-1])
    assert NAME_LINE in section and JOB_LINE in section

    recorded = memobase.user("gus").export()
    assert "Good to know!" in str(recorded)


async def test_function_agent_run_with_a_tool_call(
    memobase: Memobase, counting: SpyBackend
) -> None:
    def lookup_weather(city: str = "Oslo") -> str:
        """Current weather for a city."""
        return f"21C in {city}"

    memory = MemobaseMemory.from_defaults("gus", memobase)
    agent = FunctionAgent(
        tools=[FunctionTool.from_defaults(lookup_weather)],
        llm=RecordingFunctionLLM(),
        system_prompt="Be brief.",
    )
    await agent.run(user_msg=INTRO, memory=memory)
    assert counting.count("record") == 1
    memory.flush()

    llm = RecordingFunctionLLM()
    agent = FunctionAgent(
        tools=[FunctionTool.from_defaults(lookup_weather)], llm=llm, system_prompt="Be brief."
    )
    reads_before = counting.count("context")
    await agent.run(user_msg="How is the weather?", memory=memory)

    assert counting.count("record") == 2  # one record per run, tool traffic included in neither
    assert counting.count("context") - reads_before <= 1  # LlamaIndex read memory 3 times
    assert len(llm.calls) == 2  # tool call, then the answer
    for call in llm.calls:
        section = memory_section(call)
        assert NAME_LINE in section and JOB_LINE in section
    exported = str(memobase.user("gus").export())
    assert "21C in Oslo" not in exported  # no tool results in Memobase
    assert "Tool calls complete." in exported


@pytest.mark.parametrize("setting", ["insert_method_user", "agent_system_prompt"])
async def test_react_agent_sees_the_profile_with_the_documented_settings(
    setting: str, memobase: Memobase, counting: SpyBackend
) -> None:
    insert = InsertMethod.USER if setting == "insert_method_user" else InsertMethod.SYSTEM
    system_prompt = "Be brief." if setting == "agent_system_prompt" else None
    memory = MemobaseMemory.from_defaults("gus", memobase, insert_method=insert)
    first = RecordingLLM(answer="Thought: I can answer.\nAnswer: Nice to meet you, Gus.")
    await ReActAgent(tools=[], llm=first, system_prompt=system_prompt).run(
        user_msg=INTRO, memory=memory
    )
    memory.flush()

    llm = RecordingLLM(answer="Thought: I can answer.\nAnswer: You are Gus, a plumber.")
    await ReActAgent(tools=[], llm=llm, system_prompt=system_prompt).run(
        user_msg="Who am I?", memory=memory
    )
    section = memory_section(llm.calls[-1])
    assert NAME_LINE in section and JOB_LINE in section
    assert counting.count("record") == 2
    exported = str(memobase.user("gus").export())
    assert "You are Gus, a plumber." in exported and "Thought:" not in exported


async def test_react_agent_without_system_prompt_loses_system_memory(
    memobase: Memobase,
) -> None:
    """LlamaIndex's ReActAgent drops the first system message; see the package docs."""
    memory = MemobaseMemory.from_defaults("gus", memobase)
    await memory.aput(ChatMessage(role="user", content=INTRO))
    await memory.aput(ChatMessage(role="assistant", content="Hi Gus."))
    memory.flush()
    assert NAME_LINE in await memory.acontext()  # the memory exists...
    llm = RecordingLLM(answer="Thought: I can answer.\nAnswer: I don't know.")
    await ReActAgent(tools=[], llm=llm).run(user_msg="Who am I?", memory=memory)
    assert memory_section(llm.calls[-1]) == ""  # ...but the agent threw it away


async def test_two_users_sharing_one_backend_are_isolated(memobase: Memobase) -> None:
    alice_llm, bob_llm = RecordingLLM(), RecordingLLM()
    alice_memory = MemobaseMemory.from_defaults("alice", memobase)
    bob_memory = MemobaseMemory.from_defaults("bob", memobase)
    alice = SimpleChatEngine.from_defaults(llm=alice_llm, memory=alice_memory)
    bob = SimpleChatEngine.from_defaults(llm=bob_llm, memory=bob_memory)

    await alice.achat("My name is Alice and I work as a pilot.")
    await bob.achat("My name is Bob and I work as a baker.")
    await alice_memory.aflush()
    await bob_memory.aflush()
    await alice.achat("What do you know about me?")
    await bob.achat("What do you know about me?")

    alice_section = memory_section(alice_llm.calls[-1])
    bob_section = memory_section(bob_llm.calls[-1])
    assert "Alice" in alice_section and "pilot" in alice_section
    assert "Bob" not in alice_section and "baker" not in alice_section
    assert "Bob" in bob_section and "baker" in bob_section
    assert "Alice" not in bob_section and "pilot" not in bob_section


@pytest.mark.parametrize("engine_name", ["context", "condense_plus_context"])
async def test_profile_with_a_template_placeholder_reaches_the_llm_unchanged(
    engine_name: str, memobase: Memobase
) -> None:
    user = memobase.user("gus")
    await user.aadd_profile("writes {query_str} in prompt templates", "work", "habits")
    llm = RecordingLLM()
    engine = ENGINES[engine_name](llm, MemobaseMemory.from_defaults("gus", memobase))
    await engine.achat("QUESTION-TEXT")
    section = memory_section(llm.calls[-1])
    assert "work::habits: writes {query_str} in prompt templates" in section
    assert "QUESTION-TEXT" in llm.last_text  # the engine's own {query_str} was filled in


async def test_forget_removes_the_users_memory(memobase: Memobase) -> None:
    memory = MemobaseMemory.from_defaults("gus", memobase)
    engine = SimpleChatEngine.from_defaults(llm=RecordingLLM(), memory=memory)
    await engine.achat(INTRO)
    await memory.aflush()
    engine.reset()  # short-term only
    assert NAME_LINE in await memory.acontext()
    await memory.aforget()
    assert await memory.acontext() == ""
