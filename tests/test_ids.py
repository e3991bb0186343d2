"""User-id mapping: the official SDK's hash for any string; UUID v4/v5 pass through."""

from __future__ import annotations

import uuid

import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from memobase_integrations.errors import InvalidUserIdError
from memobase_integrations.ids import SDK_SALT, string_to_uuid, to_user_uuid


def _spells_a_uuid(text: str) -> bool:
    try:
        uuid.UUID(text.strip())
    except ValueError:
        return False
    return True


@given(st.text(min_size=1))
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
