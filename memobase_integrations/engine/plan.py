"""The values a flush exchanges between the store, the pipeline and the backend.

Pure data (no SQLAlchemy): the pipeline computes a :class:`FlushPlan` from the
:class:`ClaimedBlob` rows of a :class:`Claim` and the user's :class:`StoredProfile` rows
without touching the database, and the store writes it. Keeping them here lets
``pipeline.py`` stay free of the storage layer.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import datetime

from ..models import BlobType, ChatBlob, EventData, Profile, ProfileAttributes, SummaryBlob

__all__ = ["Claim", "ClaimedBlob", "FlushPlan", "NewProfile", "ProfileUpdate", "StoredProfile"]


@dataclass(frozen=True, slots=True)
class StoredProfile:
    id: uuid.UUID
    topic: str
    sub_topic: str
    content: str
    update_hits: int
    created_at: datetime
    updated_at: datetime

    def to_model(self) -> Profile:
        return Profile(
            id=self.id,
            content=self.content,
            created_at=self.created_at,
            updated_at=self.updated_at,
            attributes=ProfileAttributes(
                topic=self.topic, sub_topic=self.sub_topic, update_hits=self.update_hits
            ),
        )


@dataclass(frozen=True, slots=True)
class NewProfile:
    topic: str
    sub_topic: str
    content: str


@dataclass(frozen=True, slots=True)
class ProfileUpdate:
    id: uuid.UUID
    content: str
    update_hits: int


@dataclass(slots=True)
class FlushPlan:
    """Everything one flush writes, computed by the pipeline without touching the database.

    ``event`` is ``None`` when the entry summary found nothing worth keeping: the buffer is
    then marked done with an empty :class:`ChatModalResponse`, as Memobase does.
    """

    event: EventData | None = None
    event_embedding: list[float] | None = None
    gists: list[tuple[str, list[float] | None]] = field(default_factory=list)
    add: list[NewProfile] = field(default_factory=list)
    update: list[ProfileUpdate] = field(default_factory=list)
    delete: list[uuid.UUID] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class ClaimedBlob:
    blob_id: uuid.UUID
    turn_id: str | None
    blob: ChatBlob | SummaryBlob
    created_at: datetime
    token_size: int


@dataclass(frozen=True, slots=True)
class Claim:
    """A batch of one user's buffer rows leased to one flush."""

    user_id: uuid.UUID
    blob_type: BlobType
    owner: str
    seqs: tuple[int, ...]
    blobs: tuple[ClaimedBlob, ...]
    attempts: int
    started_at: datetime

    @property
    def token_size(self) -> int:
        return sum(b.token_size for b in self.blobs)

    @property
    def turn_ids(self) -> list[str]:
        """Distinct turn ids in processing order (blobs from ``insert`` have none)."""
        seen: dict[str, None] = {}
        for b in self.blobs:
            if b.turn_id is not None:
                seen.setdefault(b.turn_id)
        return list(seen)
