"""Turn -> ChatBlob conversion: arbitrary unicode, empty and huge turns, the token cap."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from memobase_integrations.errors import InvalidMessageError
from memobase_integrations.messages import Message, format_timestamp, render_blob, turn_to_blobs
from memobase_integrations.models import ChatBlob
from memobase_integrations.tokens import count_tokens

WHEN = datetime(2026, 11, 24, tzinfo=UTC)  # any date renders with the same token count

# Text that stresses the tokenizer: any UTF-8 character, plus multi-character clusters
# (ZWJ emoji, skin-tone modifiers, combining marks), CJK, whitespace runs, zero-width space.
SAMPLES = ["😀", "👩‍👩‍👧", "👍🏽", "é", "e\u0301", "日本", "\u200b", "\n", "\t", "  ", "ß", "ﷺ"]
fragments = st.one_of(
    st.text(st.characters(codec="utf-8"), min_size=1, max_size=12), st.sampled_from(SAMPLES)
)
texts = st.lists(fragments, max_size=40).map("".join)
huge_texts = st.lists(
    st.one_of(
        st.text(st.characters(codec="utf-8"), min_size=20, max_size=80), st.sampled_from(SAMPLES)
    ),
    min_size=60,
    max_size=150,
).map("".join)
alphabet = st.characters(codec="utf-8")
roles = st.sampled_from(["user", "assistant", "human", "ai", "USER", " Assistant "])


@st.composite
def turns(draw: st.DrawFn) -> list[Message]:
    n = draw(st.integers(min_value=0, max_value=6))
    out = []
    for i in range(n):
        name = draw(st.one_of(st.none(), st.text(alphabet, max_size=8)))
        # created_at also tags each message so the test can regroup its pieces
        out.append(Message.of(draw(roles), draw(texts), name=name, created_at=f"2025-01-0{i + 1}"))
    return out


def _rendered_tokens(blob: ChatBlob) -> int:
    return count_tokens(render_blob(blob, WHEN))


def _pieces_by_message(blobs: list[ChatBlob]) -> dict[str | None, str]:
    joined: dict[str | None, str] = {}
    for blob in blobs:
        for m in blob.messages:
            joined[m.created_at] = joined.get(m.created_at, "") + m.content
    return joined


@settings(max_examples=150, deadline=None)
@given(turn=turns(), max_tokens=st.integers(min_value=64, max_value=600))
def test_no_blob_over_the_cap_and_content_preserved(turn: list[Message], max_tokens: int) -> None:
    blobs = turn_to_blobs(turn, max_blob_tokens=max_tokens, fields={"turn_id": "t"})
    for blob in blobs:
        assert blob.messages, "no empty blobs"
        assert _rendered_tokens(blob) <= max_tokens
        assert blob.fields == {"turn_id": "t"}
    kept = [m for m in turn if m.content.strip()]
    assert _pieces_by_message(blobs) == {m.created_at: m.content for m in kept}
    assert [m.role for b in blobs for m in b.messages if m.content] != [] or not kept
    assert turn_to_blobs(turn, max_blob_tokens=max_tokens, fields={"turn_id": "t"}) == blobs


@settings(max_examples=25, deadline=None)
@given(
    text=huge_texts,
    max_tokens=st.integers(min_value=32, max_value=300),
)
def test_huge_messages_split_on_character_boundaries(text: str, max_tokens: int) -> None:
    blobs = turn_to_blobs([Message.of("user", text)], max_blob_tokens=max_tokens)
    if not text.strip():
        assert blobs == []
        return
    pieces = [m.content for b in blobs for m in b.messages]
    assert "".join(pieces) == text.replace("\x00", "\ufffd")  # the text policy's one change
    if "\ufffd" not in text and "\x00" not in text:
        assert all("\ufffd" not in p for p in pieces)  # no character cut in half
    assert all(_rendered_tokens(b) <= max_tokens for b in blobs)


def test_multibyte_characters_are_never_cut() -> None:
    text = "日本語のテキスト😀👩‍👩‍👧" * 400
    blobs = turn_to_blobs([Message.of("user", text)], max_blob_tokens=64)
    assert len(blobs) > 10
    assert "".join(m.content for b in blobs for m in b.messages) == text
    assert all("\ufffd" not in m.content for b in blobs for m in b.messages)


def test_a_very_large_turn_fits_the_server_cap() -> None:
    text = "lorem ipsum dolor sit amet " * 8000  # like the recorded 200k-character message
    blobs = turn_to_blobs([Message.of("user", text)])  # default cap: 4096 tokens
    assert len(blobs) >= 10
    assert max(_rendered_tokens(b) for b in blobs) <= 4096


def test_empty_and_blank_turns_give_no_blobs() -> None:
    assert turn_to_blobs([]) == []
    assert turn_to_blobs([Message.of("user", "   \n\t"), {"role": "ai", "content": ""}]) == []


def test_small_turns_share_one_blob_in_order() -> None:
    turn: list[Message | dict[str, Any]] = [
        {"role": "human", "content": "Hi, I'm Ann.", "name": "Ann"},
        Message.of("ai", "Hello Ann!"),
        Message.of("user", " "),
        Message.of("assistant", "How can I help?", created_at=datetime(2025, 1, 14, 9, 30)),
    ]
    [blob] = turn_to_blobs(turn)
    assert [(m.role, m.content, m.alias) for m in blob.messages] == [
        ("user", "Hi, I'm Ann.", "Ann"),
        ("assistant", "Hello Ann!", None),
        ("assistant", "How can I help?", None),
    ]
    assert blob.messages[2].created_at == "2025/01/14 09:30 UTC"  # naive -> UTC
    assert blob.to_request()["blob_data"]["messages"][0] == {
        "role": "user",
        "content": "Hi, I'm Ann.",
        "alias": "Ann",
        "created_at": None,
    }


def test_timestamps() -> None:
    aware = datetime(2025, 1, 14, 10, 0, tzinfo=timezone(timedelta(hours=2)))
    assert format_timestamp(aware) == "2025/01/14 10:00 UTC+02:00"
    west = datetime(2025, 1, 14, 22, 5, 59, 999, tzinfo=timezone(timedelta(hours=-5, minutes=-30)))
    assert format_timestamp(west) == "2025/01/14 22:05 UTC-05:30"
    assert format_timestamp(datetime(2025, 1, 14, 8, 1)) == "2025/01/14 08:01 UTC"  # naive: UTC
    assert format_timestamp("Year 32637") == "Year 32637"
    assert format_timestamp("") is None and format_timestamp(None) is None


@pytest.mark.parametrize("role", ["system", "tool", "function", ""])
def test_roles_memobase_cannot_store_are_refused(role: str) -> None:
    with pytest.raises(InvalidMessageError, match="'user' and 'assistant'"):
        turn_to_blobs([{"role": role, "content": "x"}])


def test_bad_shapes_are_refused_with_a_fix() -> None:
    with pytest.raises(InvalidMessageError, match="Flatten multimodal content"):
        Message.of("user", [{"type": "text", "text": "hi"}])  # type: ignore[arg-type]
    with pytest.raises(InvalidMessageError, match="'role' and 'content'"):
        turn_to_blobs([{"content": "no role"}])
    with pytest.raises(InvalidMessageError, match="at least 16"):
        turn_to_blobs([Message.of("user", "x")], max_blob_tokens=8)


def test_a_name_too_long_for_the_cap_is_explained() -> None:
    with pytest.raises(InvalidMessageError, match="Shorten the name"):
        turn_to_blobs([Message.of("user", "text " * 50, name="N" * 200)], max_blob_tokens=32)


def test_fields_are_copied_per_blob() -> None:
    fields = {"turn_id": "t"}
    blobs = turn_to_blobs([Message.of("user", "word " * 400)], max_blob_tokens=64, fields=fields)
    assert len(blobs) > 1
    blobs[0].fields["x"] = 1  # type: ignore[index]
    assert blobs[1].fields == {"turn_id": "t"} and fields == {"turn_id": "t"}


# -- issue 12: types checked on construction, the text policy, the size limit ------------------
@pytest.mark.parametrize(
    ("kwargs", "needle"),
    [
        ({"role": "user", "content": None}, "content must be text"),
        ({"role": "user", "content": "x", "name": 5}, "name (alias) must be a str"),
        ({"role": "user", "content": "x", "created_at": [1]}, "created_at must be"),
        ({"role": 3, "content": "x"}, "cannot be stored"),
        ({"role": "user", "content": "x", "metadata": []}, "metadata must be a dict"),
    ],
)
def test_every_way_of_building_a_message_checks_it(kwargs: dict[str, Any], needle: str) -> None:
    with pytest.raises(InvalidMessageError) as info:
        Message(**kwargs)
    assert needle in str(info.value)


def test_the_constructor_normalises_like_of() -> None:
    assert Message(role=" Human ", content="hi") == Message.of("user", "hi")  # type: ignore[arg-type]


def test_unstorable_characters_become_replacement_characters_in_text_only() -> None:
    message = Message.of("user", "a\x00b\ud800c", name="N\udfff", created_at="2025/01/14\x00 10:00")
    assert message.content == "a\ufffdb\ufffdc"
    assert message.name == "N\ufffd"
    assert message.created_at == "2025/01/14\ufffd 10:00"
    [blob] = turn_to_blobs([message])
    assert blob.model_dump_json()  # serialisable: every string is valid UTF-8 now


@settings(max_examples=100, deadline=None)
@given(text=st.text(st.characters(codec="utf-8", exclude_characters="\x00")))
def test_storable_text_is_kept_exactly(text: str) -> None:
    assert Message.of("user", text, name=text or None).content == text


def test_a_turn_over_the_limit_is_refused_with_its_size() -> None:
    turn = [Message.of("user", "x" * 90), Message.of("assistant", "y" * 5, name="Bot")]
    with pytest.raises(InvalidMessageError, match="98 characters of text; the limit is 97"):
        turn_to_blobs(turn, max_turn_chars=97)
    assert len(turn_to_blobs(turn, max_turn_chars=98)) == 1
    assert len(turn_to_blobs(turn, max_turn_chars=None)) == 1


# A plain dict takes a shortcut to its wire form on ``record``'s path: it must give exactly what
# the general path (a Message, then its wire form) gives, and refuse exactly what it refuses.
dict_roles: st.SearchStrategy[object] = st.one_of(
    roles,
    st.sampled_from(["system", "tool", "", "User\x00"]),
    st.none(),
    st.integers(),
    st.just([]),
)
dict_texts = st.one_of(
    st.text(alphabet, max_size=20),
    st.sampled_from(["", "  ", "a\x00b", "\ud800x", "N\udfff"]),
    st.none(),
    st.integers(),
)
plain_dicts = st.fixed_dictionaries(
    {"role": dict_roles, "content": dict_texts},
    optional={
        "name": dict_texts,
        "alias": dict_texts,
        "created_at": st.one_of(st.none(), st.just("2025/01/14 10:00"), st.just(WHEN)),
        "metadata": st.just({"k": 1}),
    },
)


def _converted(turn: Any) -> list[ChatBlob] | str:
    try:
        return turn_to_blobs(turn, fields={"turn_id": "t"})
    except InvalidMessageError as exc:
        return f"refused: {exc}"


@settings(max_examples=300, deadline=None)
@given(messages=st.lists(plain_dicts, max_size=3))
def test_a_plain_dict_converts_exactly_like_the_message_it_stands_for(
    messages: list[dict[str, Any]],
) -> None:
    general: list[Any] = []
    for value in messages:
        try:
            general.append(Message.coerce(value))
        except InvalidMessageError as exc:
            expected: list[ChatBlob] | str = f"refused: {exc}"
            break
    else:
        expected = _converted(general)
    assert _converted(messages) == expected
    assert _converted(tuple(messages)) == expected  # any iterable, not only a list


def test_the_dict_shortcut_keeps_the_text_policy_and_the_alias() -> None:
    turn = [
        {"role": "human", "content": "a\x00b", "alias": "N\udfff"},
        {"role": "ai", "content": "ok", "name": ""},
    ]
    [blob] = turn_to_blobs(turn)
    assert [(m.role, m.content, m.alias) for m in blob.messages] == [
        ("user", "a\ufffdb", "N\ufffd"),
        ("assistant", "ok", None),
    ]
