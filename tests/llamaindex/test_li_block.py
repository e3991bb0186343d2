"""``MemobaseMemoryBlock`` inside a plain LlamaIndex ``Memory`` (the in-memory engine)."""

from __future__ import annotations

import asyncio

import pytest
from llama_index.core.base.llms.types import ChatMessage, MessageRole, ToolCallBlock
from llama_index.core.memory import Memory
from support.spy import SpyBackend

from llamaindex_memobase import MemobaseMemoryBlock
from memobase_integrations.errors import ServiceUnavailableError
from memobase_integrations.facade import Memobase
from memobase_integrations.ids import to_user_uuid

ALICE = to_user_uuid("alice")
BOB = to_user_uuid("bob")


def system_text(messages: list[ChatMessage]) -> str:
    return "\n".join(m.content or "" for m in messages if m.role == MessageRole.SYSTEM)


async def test_block_injects_the_users_context_into_the_system_message(
    mb: Memobase, backend: SpyBackend
) -> None:
    backend.set_profile(ALICE, ["basic_info::name: Alice", "work::title: nurse"])
    memory = Memory.from_defaults(memory_blocks=[MemobaseMemoryBlock(user_id="alice", memobase=mb)])
    await memory.aput(ChatMessage(role="user", content="hi"))

    messages = await memory.aget()

    assert messages[0].role == MessageRole.SYSTEM
    text = system_text(messages)
    assert (
        "<memobase>" in text and "basic_info::name: Alice" in text and "work::title: nurse" in text
    )
    assert messages[-1].content == "hi"
    # the injected memory is not written back into the short-term history
    assert [m.role for m in await memory.aget_all()] == [MessageRole.USER]


async def test_empty_memory_injects_nothing(mb: Memobase) -> None:
    memory = Memory.from_defaults(memory_blocks=[MemobaseMemoryBlock(user_id="alice", memobase=mb)])
    await memory.aput(ChatMessage(role="user", content="hi"))
    assert [m.role for m in await memory.aget()] == [MessageRole.USER]


async def test_reads_are_cached_per_user_until_processing_finishes(
    mb: Memobase, backend: SpyBackend
) -> None:
    backend.set_profile(ALICE, ["basic_info::name: Alice"])
    block = MemobaseMemoryBlock(user_id="alice", memobase=mb)
    assert "Alice" in await block.aget([])
    backend.set_profile(ALICE, ["basic_info::name: Alicia"])
    assert "Alicia" not in await block.aget([])  # cached
    assert backend.calls["acontext"] == 1

    backend.process(BOB)  # another user's processing does not invalidate Alice
    assert "Alicia" not in await block.aget([])
    assert backend.calls["acontext"] == 1

    backend.process(ALICE)  # the facade's refresher thread re-reads Alice's context...
    for _ in range(1200):  # (off the caller's path, so the test waits for it)
        if backend.calls["context"] == 1 and mb._refresher.idle():
            break
        await asyncio.sleep(0.05)
    assert backend.calls["context"] == 1
    assert "Alicia" in await block.aget([])
    assert backend.calls["acontext"] == 1  # ...so the next turn is served from the cache


async def test_recent_chats_are_sent_and_bypass_the_cache(
    mb: Memobase, backend: SpyBackend
) -> None:
    backend.set_profile(ALICE, ["basic_info::name: Alice"])
    block = MemobaseMemoryBlock(user_id="alice", memobase=mb, recent_chats=2)
    history = [
        ChatMessage(role="user", content="one"),
        ChatMessage(role="assistant", content="two"),
        ChatMessage(role="tool", content="ignored"),
        ChatMessage(role="user", content="three"),
    ]
    await block.aget(history)
    await block.aget(history)
    assert backend.calls["acontext"] == 2
    chats = backend.context_requests[-1][1].chats
    assert chats is not None
    assert [(m.role, m.content) for m in chats] == [("assistant", "two"), ("user", "three")]


async def test_options_reach_the_backend(mb: Memobase, backend: SpyBackend) -> None:
    block = MemobaseMemoryBlock(
        user_id="alice",
        memobase=mb,
        max_token_size=321,
        prefer_topics=["work"],
        only_topics=["work", "basic_info"],
        context_options={"profile_event_ratio": 0.8},
    )
    await block.aget([])
    options = backend.context_requests[-1][1]
    assert options.max_token_size == 321
    assert list(options.prefer_topics or []) == ["work"]
    assert list(options.only_topics or []) == ["work", "basic_info"]
    assert options.profile_event_ratio == 0.8
    assert options.chats is None


async def test_two_users_on_one_backend_never_see_each_other(
    mb: Memobase, backend: SpyBackend
) -> None:
    backend.set_profile(ALICE, ["basic_info::name: Alice"])
    backend.set_profile(BOB, ["basic_info::name: Bob"])
    alice = Memory.from_defaults(memory_blocks=[MemobaseMemoryBlock(user_id="alice", memobase=mb)])
    bob = Memory.from_defaults(memory_blocks=[MemobaseMemoryBlock(user_id="bob", memobase=mb)])
    alice_text = system_text(await alice.aget(input="hi"))
    bob_text = system_text(await bob.aget(input="hi"))
    assert "Alice" in alice_text and "Bob" not in alice_text
    assert "Bob" in bob_text and "Alice" not in bob_text


async def test_fail_open_returns_no_memory_and_reports(mb: Memobase, backend: SpyBackend) -> None:
    backend.fail["context"] = ServiceUnavailableError("Memobase is down. Retry later.")
    seen: list[tuple[BaseException, str]] = []
    block = MemobaseMemoryBlock(
        user_id="alice", memobase=mb, on_error=lambda exc, action: seen.append((exc, action))
    )
    memory = Memory.from_defaults(memory_blocks=[block])
    await memory.aput(ChatMessage(role="user", content="hi"))
    messages = await memory.aget()
    assert [m.role for m in messages] == [MessageRole.USER]
    assert len(seen) == 1
    assert isinstance(seen[0][0], ServiceUnavailableError)
    assert "read" in seen[0][1]


async def test_a_broken_on_error_callback_does_not_break_the_turn(
    mb: Memobase, backend: SpyBackend
) -> None:
    backend.fail["context"] = ServiceUnavailableError("down")

    def explode(exc: BaseException, action: str) -> None:
        raise RuntimeError("observer bug")

    block = MemobaseMemoryBlock(user_id="alice", memobase=mb, on_error=explode)
    assert await block.aget([]) == ""


async def test_strict_mode_propagates_the_error(mb: Memobase, backend: SpyBackend) -> None:
    backend.fail["context"] = ServiceUnavailableError("Memobase is down. Retry later.")
    block = MemobaseMemoryBlock(user_id="alice", memobase=mb, strict=True)
    memory = Memory.from_defaults(memory_blocks=[block])
    with pytest.raises(ServiceUnavailableError):
        await memory.aget(input="hi")


async def test_placeholders_are_neutralised_in_a_plain_memory(
    mb: Memobase, backend: SpyBackend
) -> None:
    backend.set_profile(ALICE, ["interest::templates: writes {query_str} in docs"])
    block = MemobaseMemoryBlock(user_id="alice", memobase=mb)
    assert "writes { query_str } in docs" in await block.aget([])
    raw = MemobaseMemoryBlock(user_id="alice", memobase=mb, escape_placeholders=False)
    assert "writes {query_str} in docs" in await raw.aget([])


async def test_memory_truncates_events_before_profile(mb: Memobase, backend: SpyBackend) -> None:
    # 12 events, oldest first: the stand-in keeps "I'm going to <Place> next week" as one
    # (the trips' profile row is dropped each time, so it never needs re-summarising)
    for i in range(12):
        backend.seed(ALICE, f"I'm going to Place{i:02d} next week.")
        backend.set_profile(ALICE, [])
    backend.set_profile(ALICE, ["basic_info::name: Alice", "work::title: nurse"])
    block = MemobaseMemoryBlock(user_id="alice", memobase=mb)
    full = await block.aget([])
    # a limit that leaves room for the profile but not for all events
    memory = Memory.from_defaults(token_limit=200, memory_blocks=[block])
    await memory.aput(ChatMessage(role="user", content="hi"))
    text = system_text(await memory.aget())
    assert "basic_info::name: Alice" in text and "work::title: nurse" in text
    assert "Place11" in text  # newest events survive...
    assert "Place00" in full and "Place00" not in text  # ...oldest go first


async def test_block_records_overflow_batches_user_and_assistant_text_only(
    mb: Memobase, backend: SpyBackend
) -> None:
    block = MemobaseMemoryBlock(user_id="alice", memobase=mb)
    memory = Memory.from_defaults(
        token_limit=60, token_flush_size=20, chat_history_token_ratio=0.5, memory_blocks=[block]
    )
    for i in range(4):
        await memory.aput(ChatMessage(role="user", content=f"question number {i} about pets"))
        await memory.aput(
            ChatMessage(
                role="assistant",
                blocks=[ToolCallBlock(tool_call_id=f"c{i}", tool_name="lookup", tool_kwargs={})],
            )
        )
        await memory.aput(
            ChatMessage(role="tool", content="tool output", additional_kwargs={"tool_call_id": "c"})
        )
        await memory.aput(ChatMessage(role="assistant", content=f"answer number {i} about pets"))
    recorded = backend.recorded(ALICE)
    assert recorded, "overflow should have reached the block"
    flat = [item for turn in recorded for item in turn]
    assert {role for role, _ in flat} <= {"user", "assistant"}
    assert all("tool output" not in content for _, content in flat)
    assert ("user", "question number 0 about pets") in flat
    assert ("assistant", "answer number 0 about pets") in flat


async def test_block_write_failure_is_fail_open(mb: Memobase, backend: SpyBackend) -> None:
    backend.fail["record"] = ServiceUnavailableError("disk full")
    seen: list[str] = []
    block = MemobaseMemoryBlock(user_id="alice", memobase=mb, on_error=lambda e, a: seen.append(a))
    await block.aput([ChatMessage(role="user", content="hello")])
    assert seen == ["record messages"]
    strict = MemobaseMemoryBlock(user_id="alice", memobase=mb, strict=True)
    with pytest.raises(ServiceUnavailableError):
        await strict.aput([ChatMessage(role="user", content="hello")])
