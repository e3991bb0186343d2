"""User ids: Memobase accepts only UUID v4 or v5, so everything else is mapped.

The mapping is the official SDK's (``memobase.utils.string_to_uuid``), so a user id
written by this package and by any other Memobase client lands on the same user.
"""

from __future__ import annotations

import uuid

from .errors import InvalidMessageError, InvalidUserIdError
from .text_policy import first_unstorable

__all__ = ["MAX_TURN_ID_CHARS", "SDK_SALT", "check_turn_id", "string_to_uuid", "to_user_uuid"]

#: Turn ids are stored (and sent) as text of at most this many characters.
MAX_TURN_ID_CHARS = 255

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
    * any other string (an e-mail, a database key, "alice") is hashed like the SDK does;
    * a string holding U+0000 or a lone surrogate is refused: the SDK cannot hash it
      (UTF-8 cannot encode a lone surrogate) and an altered id would name another user.
    """
    if isinstance(user, uuid.UUID):
        parsed = user
    elif isinstance(user, str):
        if not user:
            raise InvalidUserIdError(
                "The user id is empty. Pass the id your app uses for this person "
                "(any non-empty string, or a UUID v4/v5)."
            )
        bad = first_unstorable(user)
        if bad is not None:
            raise InvalidUserIdError(
                f"The user id contains {bad}, which no store keeps (PostgreSQL refuses "
                "U+0000, UTF-8 cannot encode a lone surrogate). Ids must round-trip exactly, "
                "so it is refused rather than altered: pass the id as clean text (decode it "
                "with the right encoding, or hex-encode raw bytes)."
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


def check_turn_id(turn_id: object) -> str:
    """``turn_id`` when it can name a turn in both backends, else ``InvalidMessageError``.

    A turn id is the de-duplication key of a replayed turn, so it must come back exactly as
    given: a non-empty string of at most :data:`MAX_TURN_ID_CHARS` characters, without
    U+0000 or lone surrogates (which no store keeps), never silently altered.
    """
    if not isinstance(turn_id, str):
        raise InvalidMessageError(
            f"turn_id must be a str, not {type(turn_id).__name__}. Pass a stable text id "
            "(e.g. str(run_id)), or None to have a random one generated."
        )
    if not turn_id:
        raise InvalidMessageError(
            "turn_id is empty. Pass a stable id (e.g. your framework's run id) so a replay is "
            "recognised, or None to have a random one generated."
        )
    if len(turn_id) > MAX_TURN_ID_CHARS:
        raise InvalidMessageError(
            f"turn_id has {len(turn_id)} characters; the limit is {MAX_TURN_ID_CHARS}. Use a "
            "shorter stable id, e.g. a hash of the long one (uuid.uuid5(namespace, long_id))."
        )
    bad = first_unstorable(turn_id)
    if bad is not None:
        raise InvalidMessageError(
            f"turn_id contains {bad}, which no store keeps (PostgreSQL refuses U+0000, "
            "UTF-8 cannot encode a lone surrogate). Ids must round-trip exactly, so it is "
            "refused rather than altered: use clean text."
        )
    return turn_id


def _parse_uuid(text: str) -> uuid.UUID | None:
    """The UUID a string spells (any case, with or without hyphens), or None."""
    stripped = text.strip()
    if len(stripped) not in (32, 36, 38):  # hex, hyphenated, braced
        return None
    try:
        return uuid.UUID(stripped)
    except ValueError:
        return None
