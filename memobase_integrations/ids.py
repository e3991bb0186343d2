"""User ids: Memobase accepts only UUID v4 or v5, so everything else is mapped.

The mapping is the official SDK's (``memobase.utils.string_to_uuid``), so a user id
written by this package and by any other Memobase client lands on the same user.
"""

from __future__ import annotations

import uuid

from .errors import InvalidUserIdError

__all__ = ["SDK_SALT", "string_to_uuid", "to_user_uuid"]

#: The salt the official SDK appends before hashing (``string_to_uuid(s, salt=...)``).
SDK_SALT = "memobase_client"

_ACCEPTED_VERSIONS = frozenset({4, 5})


def string_to_uuid(value: str, salt: str = SDK_SALT) -> uuid.UUID:
    """``uuid5(NAMESPACE_DNS, value + salt)``, exactly as the official SDK computes it."""
    return uuid.uuid5(uuid.NAMESPACE_DNS, value + salt)


def to_user_uuid(user: str | uuid.UUID) -> uuid.UUID:
    """Map an app's user id to the UUID Memobase will store.

    * a ``uuid.UUID`` or a UUID string of version 4 or 5 passes through unchanged;
    * a UUID of any other version is rejected: the server answers HTTP 422 for it, and
      silently hashing it would make the same id mean two different users;
    * any other string (an e-mail, a database key, "alice") is hashed like the SDK does.
    """
    if isinstance(user, uuid.UUID):
        parsed = user
    elif isinstance(user, str):
        if not user:
            raise InvalidUserIdError(
                "The user id is empty. Pass the id your app uses for this person "
                "(any non-empty string, or a UUID v4/v5)."
            )
        maybe = _parse_uuid(user)
        if maybe is None:
            return string_to_uuid(user)
        parsed = maybe
    else:
        raise InvalidUserIdError(
            f"A user id must be a str or uuid.UUID, not {type(user).__name__}. "
            "Convert it with str(...) first."
        )
    if parsed.version not in _ACCEPTED_VERSIONS:
        raise InvalidUserIdError(
            f"The user id {parsed} is a UUID version {parsed.version}; Memobase accepts only "
            "UUID v4 or v5. Pass it as a plain string key (e.g. f'user:{id}') to have it "
            "hashed into a v5 UUID, or generate ids with uuid.uuid4()."
        )
    return parsed


def _parse_uuid(text: str) -> uuid.UUID | None:
    """The UUID a string spells (any case, with or without hyphens), or None."""
    stripped = text.strip()
    if len(stripped) not in (32, 36, 38):  # hex, hyphenated, braced
        return None
    try:
        return uuid.UUID(stripped)
    except ValueError:
        return None
