"""Value types shared by every layer: call options, status and receipts.

They sit below both ``engine`` and ``backends`` (and import neither), so the engine's
context packer and stores can use them without reaching up into the backend protocol.
The facade and the package root re-export them; ``backends.base`` only owns the protocol.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal, TypedDict
from uuid import UUID

from .messages import Message

__all__ = [
    "BufferStatus",
    "ContextKwargs",
    "ContextOptions",
    "FailedTurn",
    "MemoryStatus",
    "ProfileKwargs",
    "ProfileOptions",
    "RecordReceipt",
    "SearchKwargs",
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


class ProfileKwargs(TypedDict, total=False):
    """The keyword options of ``UserMemory.profile()``: :class:`ProfileOptions`' fields, so a
    type checker sees each one (``tests/core/test_typed_options.py`` keeps them in step)."""

    topk: int | None
    max_token_size: int | None
    prefer_topics: Sequence[str] | None
    only_topics: Sequence[str] | None
    max_subtopic_size: int | None
    topic_limits: dict[str, int] | None
    chats: Sequence[Message | dict[str, Any]] | None


class ContextKwargs(TypedDict, total=False):
    """The keyword options of ``UserMemory.context()`` besides ``max_token_size`` and
    ``chats`` (which are parameters of their own): :class:`ContextOptions`' other fields."""

    prefer_topics: Sequence[str] | None
    only_topics: Sequence[str] | None
    max_subtopic_size: int | None
    topic_limits: dict[str, int] | None
    profile_event_ratio: float
    event_similarity_threshold: float
    time_range_in_days: int
    customize_context_prompt: str | None
    full_profile_and_only_search_event: bool
    fill_window_with_events: bool


class SearchKwargs(TypedDict, total=False):
    """The keyword options of ``search_events()`` / ``search_gists()``."""

    similarity_threshold: float
    time_range_in_days: int


@dataclass(frozen=True, slots=True)
class FailedTurn:
    """A recorded turn whose last attempt failed and that is still kept (never dropped
    without :meth:`Backend.discard_failed`).

    What "attempt" means depends on the backend: the embedded engine (and the in-memory
    backend) *processes* turns, so a failure is the LLM pipeline's; a remote backend
    *delivers* turns to its server, so a failure is the delivery's (processing then happens,
    and fails, on the server). ``turn_id`` is ``None`` for a blob added with ``insert()``.
    ``parked``: not retried automatically (``FlushPolicy.max_attempts`` was reached, or the
    server refused the turn for good) until :meth:`Backend.retry_failed`; otherwise the
    next automatic attempt is due at ``next_attempt_at``.
    """

    user_id: UUID
    turn_id: str | None
    attempts: int
    error: str
    parked: bool
    next_attempt_at: datetime | None


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
