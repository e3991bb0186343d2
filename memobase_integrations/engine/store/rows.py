"""The store's row states, ids and the plain records its methods return."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Final

import uuid_utils

from ...errors import MemobaseError
from ...models import PROCESSED_BLOB_TYPES, BlobType, EventData, EventGist, EventGistData, UserEvent
from ..plan import StoredProfile

__all__ = [
    "BUSY",
    "DONE",
    "FAILED",
    "IDLE",
    "PROCESSING",
    "ConfigState",
    "ContextRows",
    "DueUser",
    "LeaseLostError",
    "StoredEmbedded",
    "StoredUser",
    "new_row_id",
    "turn_blob_id",
]

from hashlib import sha1

IDLE: Final = "idle"
PROCESSING: Final = "processing"
DONE: Final = "done"
FAILED: Final = "failed"
OPEN_STATES: Final = (IDLE, PROCESSING, FAILED)
PROCESSED_TYPES: Final = tuple(str(x) for x in sorted(PROCESSED_BLOB_TYPES))


def new_row_id() -> uuid.UUID:
    """A time-ordered id (UUIDv7) for a profile, event or gist row.

    Ids made later in this process sort after earlier ones (``uuid_utils`` guarantees it per
    process, even within one millisecond), so rows written together - one flush's gists, its
    profile rows - share their timestamp but still read back in the order they were written:
    every read that feeds a context sorts by time and then by id. With random ids that order
    changed from store to store, and the same memory gave a different prompt.

    The id carries version 4, not 7: Memobase's clients accept only UUID v4/v5 ids (the
    official SDK validates every profile and event id it reads, the server's routes refuse
    other versions), and ``serve`` hands these ids to them. The order is unchanged: the
    version nibble is the same in every id and sits after the timestamp bits.
    """
    return uuid.UUID(int=uuid_utils.uuid7().int, version=4)


def turn_blob_id(user_id: uuid.UUID, turn_id: str, part: int) -> uuid.UUID:
    """The blob id of part ``part`` of a turn: stable, so a replay names the same blobs.

    ``uuid.uuid5(user_id, f"turn:{turn_id}:{part}")``, spelled out: ``uuid5`` imports
    ``hashlib`` on every call, a cost each ``record`` paid once per blob.
    """
    name = f"turn:{turn_id}:{part}".encode()
    return uuid.UUID(bytes=sha1(user_id.bytes + name).digest()[:16], version=5)


#: The version of a store that has no project row yet (no config was ever saved).
NO_CONFIG_ROW: Final = "no-config-row"


@dataclass(frozen=True, slots=True)
class ConfigState:
    """The project config's version (``mb_project.updated_at``, or a marker when the row
    does not exist) and its YAML text (``None``: the defaults)."""

    stamp: object
    text: str | None


@dataclass(frozen=True, slots=True)
class ContextRows:
    """One ``context()`` read: the config (``None`` when unchanged), profiles, gists."""

    config: ConfigState | None
    profiles: list[StoredProfile]
    gists: list[EventGist]


class _Busy:
    """Returned by :meth:`Store.claim` when another flush holds a live lease on the user."""

    _instance: _Busy | None = None

    def __new__(cls) -> _Busy:
        if cls._instance is None:
            cls._instance = super().__new__(cls)
        return cls._instance

    def __repr__(self) -> str:
        return "BUSY"


BUSY: Final = _Busy()


@dataclass(frozen=True, slots=True)
class DueUser:
    user_id: uuid.UUID
    blob_type: BlobType
    reason: str


@dataclass(frozen=True, slots=True)
class StoredEmbedded:
    """An event or gist with its stored embedding, for similarity search in Python."""

    id: uuid.UUID
    embedding: list[float] | None
    created_at: datetime


@dataclass(frozen=True, slots=True)
class StoredUser:
    """A user row: its data, timestamps and (in listings) its profile and event counts."""

    id: uuid.UUID
    data: dict[str, Any] | None
    created_at: datetime
    updated_at: datetime
    profile_count: int = 0
    event_count: int = 0


class LeaseLostError(MemobaseError):
    """Internal: the flush's lease was taken over (or the user deleted) before it committed."""


def escape_like(text: str) -> str:
    """``text`` as a literal inside a LIKE pattern (escape character ``\\``)."""
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def as_utc(value: Any) -> datetime:
    if isinstance(value, str):  # SQLite aggregates lose the column type
        value = datetime.fromisoformat(value)
    assert isinstance(value, datetime)
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def iso_or_none(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


def event_model(r: Any) -> UserEvent:
    return UserEvent(
        id=r.id,
        event_data=EventData.model_validate(r.event_data),
        created_at=r.created_at,
        updated_at=r.updated_at,
    )


def gist_model(r: Any) -> EventGist:
    return EventGist(
        id=r.id,
        gist_data=EventGistData(content=r.content),
        created_at=r.created_at,
        updated_at=r.updated_at,
    )
