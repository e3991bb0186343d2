"""``to_memobase_messages``: LlamaIndex ChatMessage -> neutral Message."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from llama_index.core.base.llms.types import (
    AudioBlock,
    ChatMessage,
    DocumentBlock,
    ImageBlock,
    MessageRole,
    TextBlock,
    ThinkingBlock,
    ToolCallBlock,
)

from llamaindex_memobase.messages import (
    is_final_answer,
    message_text,
    to_memobase_message,
    to_memobase_messages,
)
from memobase_integrations.messages import Message, format_timestamp, turn_to_blobs

PNG_1PX = (
    b"iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8BQDwAE"
    b"hQGAhKmMIQAAAABJRU5ErkJggg=="
)


def test_roles_map_and_non_conversational_roles_are_dropped() -> None:
    messages = [
        ChatMessage(role=MessageRole.SYSTEM, content="You are helpful."),
        ChatMessage(role=MessageRole.DEVELOPER, content="Be terse."),
        ChatMessage(role=MessageRole.USER, content="Hi, I am Ann."),
        ChatMessage(role=MessageRole.ASSISTANT, content="Hello Ann."),
        ChatMessage(role=MessageRole.CHATBOT, content="Cohere-style answer."),
        ChatMessage(role=MessageRole.MODEL, content="Gemini-style answer."),
        ChatMessage(role=MessageRole.TOOL, content='{"temp": 21}'),
        ChatMessage(role=MessageRole.FUNCTION, content="legacy function result"),
    ]
    assert to_memobase_messages(messages) == [
        Message("user", "Hi, I am Ann."),
        Message("assistant", "Hello Ann."),
        Message("assistant", "Cohere-style answer."),
        Message("assistant", "Gemini-style answer."),
    ]


def test_only_text_blocks_survive_and_are_joined_with_newlines() -> None:
    message = ChatMessage(
        role=MessageRole.USER,
        blocks=[
            TextBlock(text="Look at this picture"),
            ImageBlock(image=PNG_1PX, image_mimetype="image/png"),
            AudioBlock(audio=b"UklGRg==", format="wav"),
            DocumentBlock(data=b"JVBERi0=", document_mimetype="application/pdf"),
            TextBlock(text="it's my dog Rex."),
        ],
    )
    (converted,) = to_memobase_messages([message])
    assert converted.content == "Look at this picture\nit's my dog Rex."


def test_thinking_is_dropped_and_answer_kept() -> None:
    message = ChatMessage(
        role=MessageRole.ASSISTANT,
        blocks=[ThinkingBlock(content="The user wants a name."), TextBlock(text="Call it Rex.")],
    )
    assert to_memobase_messages([message]) == [Message("assistant", "Call it Rex.")]


def test_tool_call_messages_are_intermediate_steps_and_dropped() -> None:
    new_style = ChatMessage(
        role=MessageRole.ASSISTANT,
        blocks=[
            TextBlock(text="Let me check the weather."),
            ToolCallBlock(tool_call_id="c1", tool_name="weather", tool_kwargs={"city": "Oslo"}),
        ],
    )
    legacy = ChatMessage(
        role=MessageRole.ASSISTANT,
        content="Checking.",
        additional_kwargs={"tool_calls": [{"id": "c2", "function": {"name": "weather"}}]},
    )
    tool_result = ChatMessage(
        role=MessageRole.TOOL, content="21C", additional_kwargs={"tool_call_id": "c1"}
    )
    final = ChatMessage(role=MessageRole.ASSISTANT, content="It is 21C in Oslo.")
    assert to_memobase_messages([new_style, legacy, tool_result, final]) == [
        Message("assistant", "It is 21C in Oslo.")
    ]
    assert not is_final_answer(new_style)
    assert not is_final_answer(legacy)
    assert is_final_answer(final)


def test_empty_and_blank_messages_are_dropped() -> None:
    messages = [
        ChatMessage(role=MessageRole.USER, content="   \n "),
        ChatMessage(role=MessageRole.ASSISTANT, blocks=[]),
        ChatMessage(role=MessageRole.USER, blocks=[ImageBlock(image=PNG_1PX)]),
    ]
    assert to_memobase_messages(messages) == []
    assert message_text(messages[1]) == ""


def test_react_transcript_keeps_only_the_final_answer() -> None:
    transcript = ChatMessage(
        role=MessageRole.ASSISTANT,
        content=(
            "Thought: I need the weather.\nAction: weather\nAction Input: {'city': 'Oslo'}\n"
            "Observation: 21C\nThought: I can answer without using any more tools.\n"
            "Answer: It is 21C in Oslo."
        ),
    )
    step_without_answer = ChatMessage(
        role=MessageRole.ASSISTANT,
        content="Thought: I need a tool.\nAction: weather\nAction Input: {}",
    )
    plain = ChatMessage(role=MessageRole.ASSISTANT, content="Answer: this is not ReAct.")
    assert to_memobase_messages([transcript, step_without_answer, plain]) == [
        Message("assistant", "It is 21C in Oslo."),
        Message("assistant", "Answer: this is not ReAct."),
    ]


def test_name_and_timestamps_come_from_additional_kwargs() -> None:
    when = datetime(2026, 3, 4, 5, 6, tzinfo=UTC)
    messages = [
        ChatMessage(
            role="user", content="a", additional_kwargs={"name": "Ann", "created_at": when}
        ),
        ChatMessage(role="user", content="b", additional_kwargs={"alias": "Bo", "timestamp": 0}),
        ChatMessage(role="user", content="c", additional_kwargs={"created_at": "2026-01-01"}),
        ChatMessage(role="user", content="d", additional_kwargs={"name": "  ", "timestamp": True}),
    ]
    converted = to_memobase_messages(messages)
    assert [(m.name, m.created_at) for m in converted] == [
        ("Ann", when),
        ("Bo", datetime(1970, 1, 1, tzinfo=UTC)),
        (None, "2026-01-01"),
        (None, None),
    ]
    # and they reach the wire format Memobase stores
    (blob,) = turn_to_blobs(converted)
    assert blob.messages[0].alias == "Ann"
    assert blob.messages[0].created_at == format_timestamp(when)
    assert blob.messages[2].created_at == "2026-01-01"


def test_memory_session_kwargs_do_not_leak_into_content() -> None:
    message = ChatMessage(role="user", content="hello", additional_kwargs={"session_id": "s-1"})
    assert to_memobase_message(message) == Message("user", "hello")


@pytest.mark.parametrize("role", ["user", "assistant"])
def test_converted_messages_validate_as_memobase_wire_messages(role: str) -> None:
    (converted,) = to_memobase_messages([ChatMessage(role=role, content=" spaced text ")])
    wire = converted.to_wire()
    assert wire.role == role
    assert wire.content == "spaced text"
