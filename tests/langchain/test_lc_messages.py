"""to_memobase_messages: what of a LangChain transcript reaches Memobase."""

from __future__ import annotations

from datetime import UTC, datetime

from langchain_core.messages import (
    AIMessage,
    ChatMessage,
    FunctionMessage,
    HumanMessage,
    RemoveMessage,
    SystemMessage,
    ToolMessage,
)

from langchain_memobase import to_memobase_messages
from langchain_memobase.messages import last_user_message, message_created_at, message_text
from memobase_integrations.messages import Message, turn_to_blobs
from memobase_integrations.models import ChatBlob

SUMMARY = HumanMessage(
    "Here is a summary of the conversation to date:\n\nAlice likes tea.",
    additional_kwargs={"lc_source": "summarization"},
)


def test_agent_transcript_keeps_only_what_was_said() -> None:
    transcript = [
        SystemMessage("You are helpful."),
        HumanMessage("Hi, I'm Alice and I work as a pilot.", name="alice", id="h1"),
        AIMessage(
            "",
            tool_calls=[{"name": "lookup", "args": {"q": "x"}, "id": "c1", "type": "tool_call"}],
        ),
        ToolMessage("tool output", tool_call_id="c1"),
        AIMessage(
            [
                {"type": "reasoning", "reasoning": "the user is a pilot"},
                {"type": "text", "text": "Nice to meet you, Alice!"},
            ],
            id="a1",
        ),
        HumanMessage(
            [
                {"type": "text", "text": "What is in this photo?"},
                {"type": "image_url", "image_url": {"url": "data:image/png;base64,AAAA"}},
                {"type": "image", "base64": "AAAA", "mime_type": "image/png"},
            ]
        ),
        SUMMARY,
    ]

    result = to_memobase_messages(transcript)

    assert [(m.role, m.content, m.name) for m in result] == [
        ("user", "Hi, I'm Alice and I work as a pilot.", "alice"),
        ("assistant", "Nice to meet you, Alice!", None),
        ("user", "What is in this photo?", None),
    ]
    assert result[0].metadata == {"id": "h1"}
    assert result[1].metadata == {"id": "a1"}
    blob = ChatBlob(messages=[m.to_wire() for m in result])  # Memobase accepts it
    assert blob.messages[0].alias == "alice"


def test_dropped_kinds() -> None:
    dropped = [
        SystemMessage("sys"),
        ToolMessage("result", tool_call_id="c"),
        FunctionMessage(content="result", name="f"),
        ChatMessage(content="note", role="system"),
        ChatMessage(content="tool says", role="tool"),
        RemoveMessage(id="x"),
        SUMMARY,
        HumanMessage("   "),
        AIMessage([{"type": "image", "url": "https://example.com/a.png"}]),
    ]
    assert to_memobase_messages(dropped) == []


def test_chat_message_roles_map() -> None:
    result = to_memobase_messages(
        [ChatMessage(content="q", role="Human"), ChatMessage(content="a", role="assistant")]
    )
    assert [(m.role, m.content) for m in result] == [("user", "q"), ("assistant", "a")]


def test_tool_call_text_is_dropped_unless_asked() -> None:
    step = AIMessage(
        "Let me check the weather.",
        tool_calls=[{"name": "w", "args": {}, "id": "c", "type": "tool_call"}],
    )
    assert to_memobase_messages([step]) == []
    kept = to_memobase_messages([step], keep_tool_call_text=True)
    assert [(m.role, m.content) for m in kept] == [("assistant", "Let me check the weather.")]


def test_text_parts_are_joined_and_stripped() -> None:
    message = HumanMessage(
        ["  first part ", {"type": "text", "text": "second part\n"}, {"type": "image_url"}]
    )
    assert message_text(message) == "first part\nsecond part"
    assert message_text(HumanMessage("  padded  ")) == "padded"


def test_timestamps_from_metadata() -> None:
    iso = HumanMessage("a", additional_kwargs={"created_at": "2025-01-14T10:00:00Z"})
    epoch = AIMessage("b", response_metadata={"timestamp": 1736848800})
    millis = AIMessage("c", response_metadata={"created_at": 1736848800000})
    aware = datetime(2025, 1, 14, 10, tzinfo=UTC)
    as_datetime = HumanMessage("d", additional_kwargs={"timestamp": aware})
    nonsense = HumanMessage("e", additional_kwargs={"created_at": True})

    assert message_created_at(iso) == "2025-01-14T10:00:00Z"
    assert message_created_at(epoch) == datetime(2025, 1, 14, 10, tzinfo=UTC)
    assert message_created_at(millis) == datetime(2025, 1, 14, 10, tzinfo=UTC)
    assert message_created_at(as_datetime) == aware
    assert message_created_at(nonsense) is None

    default = datetime(2030, 1, 1, tzinfo=UTC)
    result = to_memobase_messages([iso, nonsense], default_created_at=default)
    assert [m.created_at for m in result] == ["2025-01-14T10:00:00Z", default]
    wire = turn_to_blobs(result)[0].messages
    assert [w.created_at for w in wire] == ["2025-01-14T10:00:00Z", "2030/01/01 00:00 UTC"]


def test_without_a_default_no_clock_is_read() -> None:
    first = to_memobase_messages([HumanMessage("same")])
    second = to_memobase_messages([HumanMessage("same")])
    assert first == second == [Message(role="user", content="same")]


def test_last_user_message_skips_summaries_and_other_roles() -> None:
    real = HumanMessage("real question", id="h2")
    messages = [HumanMessage("old", id="h1"), real, AIMessage("a"), SUMMARY]
    assert last_user_message(messages) is real
    assert last_user_message([SUMMARY, AIMessage("x")]) is None
