"""``MemobaseMemory`` with LlamaIndex chat engines (the in-memory engine, recording LLM)."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest
from llama_index.core.base.llms.types import ChatMessage, MessageRole, ToolCallBlock
from llama_index.core.chat_engine import (
    CondensePlusContextChatEngine,
    ContextChatEngine,
    SimpleChatEngine,
)
from llama_index.core.memory import InsertMethod
from support.engine_runs import MODES, Mode, run_turn
from support.li_models import RecordingLLM, StaticRetriever
from support.spy import SpyBackend

from llamaindex_memobase import LiteralTextBlock, MemobaseMemory, MemobaseMemoryBlock
from memobase_integrations.errors import ServiceUnavailableError
from memobase_integrations.facade import Memobase
from memobase_integrations.ids import to_user_uuid

ALICE = to_user_uuid("alice")
BOB = to_user_uuid("bob")


def make_memory(mb: Memobase, user: str = "alice", **kwargs: object) -> MemobaseMemory:
    return MemobaseMemory.from_defaults(user, mb, **kwargs)  # type: ignore[arg-type]


def test_the_memobase_block_comes_first_and_does_not_take_overflow(mb: Memobase) -> None:
    other = MemobaseMemoryBlock(user_id="x", memobase=mb, name="other")
    memory = make_memory(mb, memory_blocks=[other])
    assert memory.memory_blocks[0] is memory.block
    assert memory.memory_blocks[1] is other
    assert memory.block.accept_short_term_memory is False
    assert memory.user.id == ALICE


@pytest.mark.parametrize("mode", MODES)
async def test_simple_chat_engine_records_each_turn_once(
    mode: Mode, mb: Memobase, backend: SpyBackend, llm: RecordingLLM
) -> None:
    memory = make_memory(mb)
    engine = SimpleChatEngine.from_defaults(llm=llm, memory=memory, system_prompt="Be kind.")
    for i in range(3):
        await run_turn(engine, mode, f"message {i}")
        assert len(backend.recorded(ALICE)) == i + 1
    assert backend.recorded(ALICE) == [
        [("user", f"message {i}"), ("assistant", "Nice to meet you.")] for i in range(3)
    ]
    # the short-term history is LlamaIndex's usual one
    history = await memory.aget_all()
    assert [m.role for m in history] == [MessageRole.USER, MessageRole.ASSISTANT] * 3


@pytest.mark.parametrize("mode", MODES)
async def test_memory_reaches_the_llm_in_every_engine_and_mode(
    mode: Mode, mb: Memobase, backend: SpyBackend, llm: RecordingLLM
) -> None:
    backend.set_profile(ALICE, ["basic_info::name: Alice"])
    engines = [
        SimpleChatEngine.from_defaults(llm=llm, memory=make_memory(mb)),
        ContextChatEngine.from_defaults(
            retriever=StaticRetriever(), llm=llm, memory=make_memory(mb)
        ),
        CondensePlusContextChatEngine.from_defaults(
            retriever=StaticRetriever(), llm=llm, memory=make_memory(mb)
        ),
    ]
    for engine in engines:
        await run_turn(engine, mode, "what's my name?")
        assert "basic_info::name: Alice" in llm.last_text, type(engine).__name__
    assert len(backend.recorded(ALICE)) == 3


@pytest.mark.parametrize(
    "engine_cls", [ContextChatEngine, CondensePlusContextChatEngine, SimpleChatEngine]
)
@pytest.mark.parametrize("mode", ["achat", "stream_chat"])
async def test_placeholder_in_profile_reaches_the_llm_unchanged(
    engine_cls: type[ContextChatEngine | CondensePlusContextChatEngine | SimpleChatEngine],
    mode: Mode,
    mb: Memobase,
    backend: SpyBackend,
    llm: RecordingLLM,
) -> None:
    profile_line = "interest::templating: writes {query_str} and {context_str} in docs"
    backend.set_profile(ALICE, [profile_line])
    kwargs: dict[str, Any] = (
        {} if engine_cls is SimpleChatEngine else {"retriever": StaticRetriever()}
    )
    engine = engine_cls.from_defaults(llm=llm, memory=make_memory(mb), **kwargs)
    await run_turn(engine, mode, "QUESTION-TEXT")
    sent = llm.last_text
    assert profile_line in sent
    # the engine's own template was still filled in (so formatting did run)
    assert "QUESTION-TEXT" in sent
    if engine_cls is not SimpleChatEngine:
        assert "Opening hours are 9 to 5." in sent


async def test_placeholder_protection_also_covers_user_insertion(
    mb: Memobase, backend: SpyBackend, llm: RecordingLLM
) -> None:
    backend.set_profile(ALICE, ["interest::x: {query_str}"])
    memory = make_memory(mb, insert_method=InsertMethod.USER)
    await memory.aput(ChatMessage(role="user", content="hi"))
    (message,) = await memory.aget()
    assert message.role == MessageRole.USER
    assert any(isinstance(b, LiteralTextBlock) for b in message.blocks)
    assert "interest::x: {query_str}" in (message.content or "")


async def test_unanswered_user_message_is_carried_into_the_next_turn(
    mb: Memobase, backend: SpyBackend
) -> None:
    memory = make_memory(mb)
    await memory.aput(ChatMessage(role="user", content="first, unanswered"))
    assert [m.content for m in memory.pending_turn] == ["first, unanswered"]
    await memory.aput(ChatMessage(role="user", content="second"))
    await memory.aput(ChatMessage(role="assistant", content="answer"))
    assert backend.recorded(ALICE) == [
        [("user", "first, unanswered"), ("user", "second"), ("assistant", "answer")]
    ]
    assert memory.pending_turn == ()
    # an assistant message with no open turn (e.g. a greeting) records nothing
    await memory.aput(ChatMessage(role="assistant", content="Anything else?"))
    assert len(backend.recorded(ALICE)) == 1


async def test_tool_steps_inside_one_turn_are_not_recorded(
    mb: Memobase, backend: SpyBackend
) -> None:
    memory = make_memory(mb)
    await memory.aput(ChatMessage(role="user", content="weather in Oslo?"))
    await memory.aput_messages(
        [
            ChatMessage(
                role="assistant",
                blocks=[ToolCallBlock(tool_call_id="1", tool_name="weather", tool_kwargs={})],
            ),
            ChatMessage(role="tool", content="21C", additional_kwargs={"tool_call_id": "1"}),
            ChatMessage(role="assistant", content="It is 21C."),
        ]
    )
    assert backend.recorded(ALICE) == [[("user", "weather in Oslo?"), ("assistant", "It is 21C.")]]


async def test_set_replaces_history_without_recording(mb: Memobase, backend: SpyBackend) -> None:
    memory = make_memory(mb)
    await memory.aput(ChatMessage(role="user", content="pending"))
    await memory.aset(
        [ChatMessage(role="user", content="old q"), ChatMessage(role="assistant", content="old a")]
    )
    assert backend.recorded(ALICE) == []
    assert memory.pending_turn == ()
    seeded = make_memory(
        mb, chat_history=[ChatMessage(role="user", content="seed")], session_id="seeded"
    )
    assert [m.content for m in await seeded.aget_all()] == ["seed"]
    assert backend.recorded(ALICE) == []


async def test_reset_clears_short_term_history_only_and_forget_is_explicit(
    mb: Memobase, backend: SpyBackend, llm: RecordingLLM
) -> None:
    memory = make_memory(mb)
    engine = SimpleChatEngine.from_defaults(llm=llm, memory=memory)
    await engine.achat("I love tea")
    engine.reset()
    assert await memory.aget_all() == []
    assert backend.deleted == []
    assert len(backend.recorded(ALICE)) == 1

    await engine.achat("I love coffee")
    await memory.aforget()
    assert backend.deleted == [ALICE]
    assert backend.status(ALICE).pending_turns == 0  # the recorded turns are forgotten too
    assert await memory.aget_all() == []


def test_sync_forget_can_keep_history(mb: Memobase, backend: SpyBackend, llm: RecordingLLM) -> None:
    memory = make_memory(mb)
    SimpleChatEngine.from_defaults(llm=llm, memory=memory).chat("hello")
    memory.forget(keep_history=True)
    assert backend.deleted == [ALICE]
    assert len(memory.get_all()) == 2


async def test_record_failure_is_fail_open_by_default(
    mb: Memobase, backend: SpyBackend, llm: RecordingLLM
) -> None:
    backend.fail["record"] = ServiceUnavailableError("outbox unavailable")
    backend.fail["context"] = ServiceUnavailableError("server unavailable")
    seen: list[str] = []
    memory = make_memory(mb, on_error=lambda exc, action: seen.append(action))
    engine = SimpleChatEngine.from_defaults(llm=llm, memory=memory)
    response = await engine.achat("hello")
    assert str(response) == "Nice to meet you."
    assert "<memobase>" not in llm.last_text
    assert seen == ["read the user's memory", "record the turn"]
    # short-term history is intact
    assert len(await memory.aget_all()) == 2


async def test_strict_mode_fails_the_turn(
    mb: Memobase, backend: SpyBackend, llm: RecordingLLM
) -> None:
    engine = SimpleChatEngine.from_defaults(llm=llm, memory=make_memory(mb, strict=True))
    backend.fail["context"] = ServiceUnavailableError("server unavailable")
    with pytest.raises(ServiceUnavailableError):
        await engine.achat("hello")
    del backend.fail["context"]
    backend.fail["record"] = ServiceUnavailableError("outbox unavailable")
    with pytest.raises(ServiceUnavailableError):
        await engine.achat("hello again")


async def test_two_users_sharing_a_backend_are_isolated(mb: Memobase, backend: SpyBackend) -> None:
    backend.set_profile(ALICE, ["basic_info::name: Alice"])
    backend.set_profile(BOB, ["basic_info::name: Bob"])
    alice_llm, bob_llm = RecordingLLM(answer="Hi Alice"), RecordingLLM(answer="Hi Bob")
    alice = SimpleChatEngine.from_defaults(llm=alice_llm, memory=make_memory(mb, "alice"))
    bob = SimpleChatEngine.from_defaults(llm=bob_llm, memory=make_memory(mb, "bob"))
    await alice.achat("I am Alice")
    await bob.achat("I am Bob")
    assert "Alice" in alice_llm.last_text and "Bob" not in alice_llm.last_text
    assert "Bob" in bob_llm.last_text and "Alice" not in bob_llm.last_text
    assert backend.recorded(ALICE) == [[("user", "I am Alice"), ("assistant", "Hi Alice")]]
    assert backend.recorded(BOB) == [[("user", "I am Bob"), ("assistant", "Hi Bob")]]


def test_short_term_history_persists_in_a_file_store(
    tmp_path: Path, mb: Memobase, backend: SpyBackend
) -> None:
    uri = f"sqlite+aiosqlite:///{tmp_path / 'chat.db'}"
    first_llm = RecordingLLM(answer="Noted, you like tea.")
    first = make_memory(mb, session_id="s-42", async_database_uri=uri)
    SimpleChatEngine.from_defaults(llm=first_llm, memory=first).chat("I like tea")

    # a new process would build a new memory with the same session and store
    second_llm = RecordingLLM(answer="Tea, as you said.")
    second = make_memory(mb, session_id="s-42", async_database_uri=uri)
    assert [m.content for m in second.get_all()] == ["I like tea", "Noted, you like tea."]
    SimpleChatEngine.from_defaults(llm=second_llm, memory=second).chat("what do I like?")
    assert "user: I like tea" in second_llm.last_text
    assert "assistant: Noted, you like tea." in second_llm.last_text
    # another session in the same file does not see it
    other = make_memory(mb, session_id="s-43", async_database_uri=uri)
    assert other.get_all() == []
    # and every turn was recorded exactly once
    assert len(backend.recorded(ALICE)) == 2


def test_successive_event_loops_work(mb: Memobase, backend: SpyBackend, llm: RecordingLLM) -> None:
    """Apps often call ``asyncio.run`` per request; nothing may stay bound to a dead loop."""
    backend.set_profile(ALICE, ["basic_info::name: Alice"])
    memory = make_memory(mb)
    engine = SimpleChatEngine.from_defaults(llm=llm, memory=memory)
    asyncio.run(engine.achat("one"))
    backend.process(ALICE)  # force a fresh context read on the next loop
    asyncio.run(engine.achat("two"))
    assert "basic_info::name: Alice" in llm.last_text
    assert len(backend.recorded(ALICE)) == 2
    assert len(backend.loops) >= 2


async def test_sync_chat_inside_a_running_loop(
    mb: Memobase, backend: SpyBackend, llm: RecordingLLM
) -> None:
    """Sync ``chat()`` from async code runs memory I/O on a fresh loop in a worker thread."""
    backend.set_profile(ALICE, ["basic_info::name: Alice"])
    engine = SimpleChatEngine.from_defaults(llm=llm, memory=make_memory(mb))
    for i in range(3):
        engine.chat(f"turn {i}")
        backend.process(ALICE)
    assert "basic_info::name: Alice" in llm.last_text
    assert len(backend.recorded(ALICE)) == 3


async def test_extra_operations_go_through_the_facade(mb: Memobase, backend: SpyBackend) -> None:
    backend.set_profile(ALICE, ["basic_info::name: Alice"])
    memory = make_memory(mb)
    assert "basic_info::name: Alice" in await memory.acontext()
    assert "basic_info::name: Alice" in memory.context()
    receipt = await memory.arecord(
        [ChatMessage(role="user", content="imported"), ChatMessage(role="tool", content="x")]
    )
    assert receipt.turn_id.startswith("llamaindex:")
    assert backend.recorded(ALICE) == [[("user", "imported")]]
    again = await memory.arecord([ChatMessage(role="user", content="imported")])
    assert again.turn_id == receipt.turn_id and again.duplicate  # derived from the messages


async def test_long_session_ids_give_turn_ids_within_the_backend_cap(
    mb: Memobase, backend: SpyBackend
) -> None:
    memory = make_memory(mb, session_id="s" * 400)
    await memory.aput(ChatMessage(role="user", content="hi"))
    await memory.aput(ChatMessage(role="assistant", content="hello"))
    (turn,) = backend.turns_of(ALICE)
    turn_id = turn.turn_id
    assert turn_id.startswith("llamaindex:") and len(turn_id) <= 255


def test_without_a_memobase_one_env_instance_is_shared(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in ("MEMOBASE_PROJECT_URL", "MEMOBASE_API_KEY", "OPENAI_API_KEY"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("MEMOBASE_DATABASE_URL", f"sqlite:///{tmp_path / 'env.db'}")
    first = MemobaseMemory.from_defaults("alice")
    second = MemobaseMemory.from_defaults("bob")
    block = MemobaseMemoryBlock(user_id="carol")
    shared = first.user.memobase
    try:
        assert shared.backend.kind == "embedded"
        assert second.user.memobase is shared and block.user.memobase is shared
        monkeypatch.setenv("MEMOBASE_DATABASE_URL", f"sqlite:///{tmp_path / 'other.db'}")
        other = MemobaseMemory.from_defaults("alice").user.memobase
        assert other is not shared  # a different configuration gets its own instance
        other.close(timeout=5)
    finally:
        shared.close(timeout=5)


def test_memory_serialises_without_the_backend(mb: Memobase) -> None:
    memory = make_memory(mb, session_id="s-1", strict=True, on_error=lambda e, a: None)
    dumped = memory.model_dump()
    assert dumped["user_id"] == "alice" and dumped["session_id"] == "s-1"
    assert dumped["strict"] is True and "on_error" not in dumped
    assert dumped["memory_blocks"][0]["name"] == "memobase"
    assert "sk-" not in repr(memory)
