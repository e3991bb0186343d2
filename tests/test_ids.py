"""User-id mapping: the official SDK's hash for any string; UUID v4/v5 pass through."""

from __future__ import annotations

import uuid

import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from memobase_integrations.errors import InvalidMessageError, InvalidUserIdError
from memobase_integrations.ids import SDK_SALT, check_turn_id, string_to_uuid, to_user_uuid


def _spells_a_uuid(text: str) -> bool:
    try:
        uuid.UUID(text.strip())
    except ValueError:
        return False
    return True


@given(st.text(st.characters(codec="utf-8", exclude_characters="\x00"), min_size=1))
def test_any_other_string_maps_exactly_like_the_sdk(text: str) -> None:
    assume(not _spells_a_uuid(text))
    mapped = to_user_uuid(text)
    assert mapped == uuid.uuid5(uuid.NAMESPACE_DNS, text + "memobase_client")
    assert mapped.version == 5  # ... which the server accepts
    assert to_user_uuid(text) == mapped  # deterministic


def test_known_sdk_value() -> None:
    # memobase.utils.string_to_uuid("alice") in the SDK 0.0.27
    assert SDK_SALT == "memobase_client"
    assert string_to_uuid("alice") == uuid.uuid5(uuid.NAMESPACE_DNS, "alicememobase_client")
    assert to_user_uuid("alice") == string_to_uuid("alice")


uuids45 = st.one_of(
    st.builds(uuid.uuid4), st.builds(uuid.uuid5, st.just(uuid.NAMESPACE_URL), st.text())
)


@given(uuids45, st.sampled_from(["plain", "upper", "hex", "braces", "object"]))
def test_v4_and_v5_pass_through_in_any_spelling(value: uuid.UUID, style: str) -> None:
    spellings: dict[str, str | uuid.UUID] = {
        "plain": str(value),
        "upper": str(value).upper(),
        "hex": value.hex,
        "braces": "{" + str(value) + "}",
        "object": value,
    }
    spelled = spellings[style]
    assert to_user_uuid(spelled) == value


@given(
    st.one_of(
        st.builds(uuid.uuid1),
        st.builds(uuid.uuid3, st.just(uuid.NAMESPACE_DNS), st.text()),
        st.integers(min_value=0, max_value=2**128 - 1).map(lambda n: uuid.UUID(int=n)),
    ),
    st.booleans(),
)
def test_other_versions_are_rejected(value: uuid.UUID, as_text: bool) -> None:
    assume(value.version not in (4, 5))
    with pytest.raises(InvalidUserIdError) as info:
        to_user_uuid(str(value) if as_text else value)
    assert "UUID v4 or v5" in str(info.value)
    assert "f'user:{id}'" in str(info.value)  # how to keep using the id: hash it as a string
    assert isinstance(info.value, ValueError)


def test_empty_and_wrong_types_are_rejected() -> None:
    with pytest.raises(InvalidUserIdError, match="empty"):
        to_user_uuid("")
    with pytest.raises(InvalidUserIdError, match=r"str or uuid\.UUID, not int"):
        to_user_uuid(42)  # type: ignore[arg-type]


def test_a_uuid1_hashed_as_a_key_is_accepted() -> None:
    legacy = uuid.uuid1()
    assert to_user_uuid(f"user:{legacy}") == string_to_uuid(f"user:{legacy}")


@pytest.mark.parametrize("bad", ["al\x00ice", "\x00", "al\ud83dice", "\udfff", "emoji\ud83d"])
def test_user_ids_no_store_can_keep_are_refused_not_altered(bad: str) -> None:
    # The SDK's hash cannot even encode a lone surrogate (UnicodeEncodeError), and an id
    # must round-trip exactly: refused with our error, never silently changed.
    with pytest.raises(InvalidUserIdError, match=r"U\+(0000|D[89A-F][0-9A-F]{2}).*refused"):
        to_user_uuid(bad)


def test_user_ids_in_any_script_still_map_like_the_sdk() -> None:
    for text in ["👩‍👩‍👧", "שלום", "e\u0301", "日本", "\ufffd"]:
        assert to_user_uuid(text) == uuid.uuid5(uuid.NAMESPACE_DNS, text + "memobase_client")


@pytest.mark.parametrize(
    ("turn_id", "match"),
    [
        (5, "must be a str, not int"),
        (b"t1", "must be a str, not bytes"),
        ("", "is empty"),
        ("x" * 256, "256 characters; the limit is 255"),
        ("turn\x00", "U\\+0000"),
        ("turn\udc80", "U\\+DC80"),
    ],
)
def test_turn_ids_that_cannot_round_trip_are_refused(turn_id: object, match: str) -> None:
    with pytest.raises(InvalidMessageError, match=match):
        check_turn_id(turn_id)


def test_turn_ids_in_any_script_pass_unchanged() -> None:
    for turn_id in ["langchain:run-1", "👍🏽", "مرحبا", "x" * 255]:
        assert check_turn_id(turn_id) == turn_id
