"""Issue 18 cases 8-9 and issue 12 item 8 for ``MemobaseMemory`` / ``MemobaseMemoryBlock``.

Each test failed on main: a crash truncating a block that gave nothing, ``from_defaults``
lacking ``Memory.from_defaults``' media estimates, ``from_dict`` opening the environment's
store before failing, and random turn ids recording a replayed ``put`` twice.
"""

from __future__ import annotations

import os
import uuid
from pathlib import Path

import pytest
from llama_index.core.base.llms.types import ChatMessage, MessageRole
from llama_index.core.chat_engine import SimpleChatEngine
from llama_index.core.memory import Memory, StaticMemoryBlock
from support.li_models import RecordingLLM, pack
from support.spy import SpyBackend

from llamaindex_memobase import MemobaseMemory, MemobaseMemoryBlock
from memobase_integrations.errors import ConfigurationError, MemobaseError
from memobase_integrations.facade import Memobase
from memobase_integrations.ids import to_user_uuid

NEWCOMER = to_user_uuid("newcomer")
LONG = " ".join(f"word{i % 97}" for i in range(2500))


# -- case 8: token pressure with a block that has nothing to say ------------------------------
@pytest.mark.parametrize("kind", ["memobase", "plain-memory-control"])
def test_long_message_under_a_small_token_limit_does_not_crash(
    mb: Memobase, backend: SpyBackend, kind: str
) -> None:
    llm = RecordingLLM(answer="Got it.")
    memory: Memory
    if kind == "memobase":
        memory = MemobaseMemory.from_defaults("newcomer", mb, token_limit=2000)
    else:
        memory = Memory.from_defaults(token_limit=2000)
    engine = SimpleChatEngine.from_defaults(llm=llm, memory=memory)

    engine.chat(LONG)
    answer = engine.chat("And a second message.")

    assert str(answer) == "Got it."
    if kind == "memobase":
        turns = backend.recorded(NEWCOMER)
        assert ["".join(text for role, text in turn if role == "user") for turn in turns] == [
            LONG,
            "And a second message.",
        ]


async def test_an_extra_block_under_token_pressure_does_not_crash(
    mb: Memobase, backend: SpyBackend
) -> None:
    static = StaticMemoryBlock(name="rules", static_content="Be brief. " * 50, priority=2)
    memory = MemobaseMemory.from_defaults("newcomer", mb, token_limit=2000, memory_blocks=[static])
    await memory.aput(ChatMessage(role=MessageRole.USER, content=LONG))
    messages = await memory.aget()
    assert messages[-1].content == LONG


async def test_truncating_an_absent_or_empty_block_gives_none(mb: Memobase) -> None:
    block = MemobaseMemoryBlock(user_id="newcomer", memobase=mb)
    assert await block.atruncate([], 100) is None  # what Memory passes for "no content"
    assert await block.atruncate("", 100) is None
    kept = await block.atruncate(pack(["a::b: c"] * 40, ["e"] * 40), 50)
    assert kept is not None and "a::b: c" in kept


async def test_a_failing_truncation_fails_open_unless_strict(
    mb: Memobase, monkeypatch: pytest.MonkeyPatch
) -> None:
    import llamaindex_memobase.block as block_module

    def broken(*args: object, **kwargs: object) -> str:
        raise ValueError("tokenizer broke")

    monkeypatch.setattr(block_module, "truncate_context", broken)
    seen: list[str] = []
    lenient = MemobaseMemoryBlock(
        user_id="a", memobase=mb, on_error=lambda exc, action: seen.append(action)
    )
    assert await lenient.atruncate(pack(["a::b: c"]), 10) is None
    assert seen == ["shrink the user's memory"]
    strict = MemobaseMemoryBlock(user_id="a", memobase=mb, strict=True)
    with pytest.raises(MemobaseError, match=r"shrink the user's memory.*tokenizer broke") as info:
        await strict.atruncate(pack(["a::b: c"]), 10)
    assert isinstance(info.value.__cause__, ValueError)  # the core policy: one error family


# -- case 9: from_defaults and from_dict --------------------------------------------------------
def test_from_defaults_takes_the_media_estimates_of_memory(mb: Memobase) -> None:
    memory = MemobaseMemory.from_defaults(
        "alice",
        mb,
        image_token_size_estimate=11,
        audio_token_size_estimate=22,
        video_token_size_estimate=33,
    )
    assert (
        memory.image_token_size_estimate,
        memory.audio_token_size_estimate,
        memory.video_token_size_estimate,
    ) == (11, 22, 33)


def _isolated_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.chdir(tmp_path)
    for key in list(os.environ):
        if key.startswith(("MEMOBASE_", "OPENAI_")):
            monkeypatch.delenv(key)


@pytest.mark.parametrize(
    "data",
    [
        {},
        {"user_id": "alice", "memory_blocks": [{"name": "memobase"}, {"name": "rules"}]},
    ],
    ids=["no-user", "unrebuildable-block"],
)
def test_from_dict_fails_before_opening_any_store(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, data: dict[str, object]
) -> None:
    _isolated_env(monkeypatch, tmp_path)
    with pytest.raises(ConfigurationError):
        MemobaseMemory.from_dict(data)
    assert list(tmp_path.iterdir()) == []


def test_to_dict_round_trips_with_an_explicit_memobase(mb: Memobase) -> None:
    memory = MemobaseMemory.from_defaults(
        "alice", mb, token_limit=5000, block_name="mb", block_priority=3
    )
    again = MemobaseMemory.from_dict(memory.to_dict(), memobase=mb, max_token_size=321)
    assert again.user_id == "alice" and again.token_limit == 5000
    assert (again.block.name, again.block.priority) == ("mb", 3)
    assert again.block.max_token_size == 321
    assert [b.name for b in again.memory_blocks] == ["mb"]
    assert again.user.id == memory.user.id


# -- issue 12 item 8: turn ids derived from the messages ----------------------------------------
def _turn(user: str, answer: str) -> list[ChatMessage]:
    return [
        ChatMessage(role=MessageRole.USER, content=user),
        ChatMessage(role=MessageRole.ASSISTANT, content=answer),
    ]


async def test_a_replayed_put_records_the_turn_once(mb: Memobase, backend: SpyBackend) -> None:
    memory = MemobaseMemory.from_defaults("newcomer", mb, session_id="s1")
    await memory.aput_messages(_turn("I live in Paris.", "Lovely."))
    await memory.aput_messages(_turn("I live in Paris.", "Lovely."))  # replayed
    for message in _turn("I live in Paris.", "Lovely."):
        memory.put(message)  # and again, message by message, through the sync wrapper

    assert backend.recorded(NEWCOMER) == [[("user", "I live in Paris."), ("assistant", "Lovely.")]]


async def test_turn_ids_are_the_same_in_a_fresh_process_and_differ_by_session(
    mb: Memobase, backend: SpyBackend
) -> None:
    first = MemobaseMemory.from_defaults("newcomer", mb, session_id="s1")
    await first.aput_messages(_turn("Hi", "Hello"))
    restarted = MemobaseMemory.from_defaults("newcomer", mb, session_id="s1")
    await restarted.aput_messages(_turn("Hi", "Hello"))
    other = MemobaseMemory.from_defaults("newcomer", mb, session_id=str(uuid.uuid4()))
    await other.aput_messages(_turn("Hi", "Hello"))
    await first.aput_messages(_turn("Hi", "Hello again!"))

    ids = [t.turn_id for t in backend.turns_of(NEWCOMER)]
    assert len(ids) == 3 and len(set(ids)) == 3
    assert backend.recorded(NEWCOMER) == [
        [("user", "Hi"), ("assistant", "Hello")],
        [("user", "Hi"), ("assistant", "Hello")],
        [("user", "Hi"), ("assistant", "Hello again!")],
    ]


async def test_framework_text_does_not_answer_a_turn(mb: Memobase, backend: SpyBackend) -> None:
    memory = MemobaseMemory.from_defaults("newcomer", mb)
    await memory.aput_messages(
        [
            ChatMessage(role=MessageRole.USER, content="Hello?"),
            ChatMessage(
                role=MessageRole.ASSISTANT,
                content="Model call failed after 3 attempts with TimeoutError: slow",
            ),
        ]
    )
    assert backend.recorded(NEWCOMER) == [[("user", "Hello?")]]
