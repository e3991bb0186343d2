"""Value types shared by every layer: call options, status and receipts.

They sit below both ``engine`` and ``backends`` (and import neither), so the engine's
context packer and stores can use them without reaching up into the backend protocol.
The facade and the package root re-export them; ``backends.base`` only owns the protocol.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal
from uuid import UUID

from .messages import Message

__all__ = [
    "BufferStatus",
    "ContextOptions",
    "MemoryStatus",
    "ProfileOptions",
    "RecordReceipt",
    "UserOrder",
    "UserStatus",
]

#: A buffer row's state (``GET /users/buffer/capacity?status=``).
BufferStatus = Literal["idle", "processing", "failed", "done"]
#: How ``GET /project/users`` can order users.
UserOrder = Literal["updated_at", "profile_count", "event_count"]


@dataclass(frozen=True, slots=True)
class ProfileOptions:
    """Filters of ``GET /users/profile``. Nothing is truncated unless asked."""

    topk: int | None = None
    max_token_size: int | None = None
    prefer_topics: Sequence[str] | None = None
    only_topics: Sequence[str] | None = None
    max_subtopic_size: int | None = None
    topic_limits: dict[str, int] | None = None
    chats: Sequence[Message] | None = None


@dataclass(frozen=True, slots=True)
class ContextOptions:
    """Parameters of ``GET /users/context`` with the server's defaults."""

    max_token_size: int = 1000
    prefer_topics: Sequence[str] | None = None
    only_topics: Sequence[str] | None = None
    max_subtopic_size: int | None = None
    topic_limits: dict[str, int] | None = None
    profile_event_ratio: float = 0.6
    chats: Sequence[Message] | None = None
    event_similarity_threshold: float = 0.2
    time_range_in_days: int = 180
    customize_context_prompt: str | None = None
    full_profile_and_only_search_event: bool = True
    fill_window_with_events: bool = False

    def cache_key(self) -> tuple[Any, ...]:
        """A hashable key; contexts that depend on recent chats are not cached."""
        return (
            self.max_token_size,
            tuple(self.prefer_topics or ()),
            tuple(self.only_topics or ()),
            self.max_subtopic_size,
            tuple(sorted((self.topic_limits or {}).items())),
            self.profile_event_ratio,
            self.event_similarity_threshold,
            self.time_range_in_days,
            self.customize_context_prompt,
            self.full_profile_and_only_search_event,
            self.fill_window_with_events,
        )


@dataclass(frozen=True, slots=True)
class RecordReceipt:
    """What ``record`` durably stored: the turn id and one blob id per ChatBlob.

    ``duplicate`` is true when the turn id had been recorded before (nothing new was written).
    """

    turn_id: str
    blob_ids: tuple[UUID, ...]
    duplicate: bool = False


@dataclass(frozen=True, slots=True)
class UserStatus:
    user_id: UUID
    pending_turns: int = 0
    buffered_tokens: int = 0
    processing: int = 0
    failed: int = 0
    last_flush_at: datetime | None = None
    last_error: str | None = None


@dataclass(frozen=True, slots=True)
class MemoryStatus:
    """Overall view: totals plus one :class:`UserStatus` per user with work outstanding."""

    backend: str
    pending_turns: int = 0
    buffered_tokens: int = 0
    failed: int = 0
    users: Sequence[UserStatus] = field(default_factory=tuple)
