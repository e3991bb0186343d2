"""``MemoryStatus`` / ``UserStatus`` from per-user counts: one builder for both queues.

Each queue counts its own rows (SQL buffer rows, outbox rows); what a status *is* (which
users are listed, in what order, how the totals add up) is decided here, so
``status()`` means the same on both backends.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import replace
from uuid import UUID

from ..values import MemoryStatus, UserStatus

__all__ = ["memory_status", "with_default_error"]


def _has_news(user: UserStatus) -> bool:
    return bool(
        user.pending_turns
        or user.buffered_tokens
        or user.processing
        or user.failed
        or user.last_error
    )


def memory_status(
    backend: str, users: Iterable[UserStatus], *, asked: UUID | None = None
) -> MemoryStatus:
    """The status of ``users``: sorted by id, totals summed.

    A user with nothing outstanding (no pending, processing or failed turn, no buffered
    token, no error) is left out of an overall status; the user ``asked`` for is always
    listed, with zeros if the queue knows nothing of it.
    """
    listed: dict[UUID, UserStatus] = {}
    for user in users:
        if user.user_id == asked or _has_news(user):
            listed[user.user_id] = user
    if asked is not None and asked not in listed:
        listed[asked] = UserStatus(user_id=asked)
    ordered = tuple(sorted(listed.values(), key=lambda u: str(u.user_id)))
    return MemoryStatus(
        backend=backend,
        pending_turns=sum(u.pending_turns for u in ordered),
        buffered_tokens=sum(u.buffered_tokens for u in ordered),
        failed=sum(u.failed for u in ordered),
        users=ordered,
    )


def with_default_error(status: MemoryStatus, error: str) -> MemoryStatus:
    """``status`` where every user with pending turns and no error of its own shows
    ``error``: the answer to "why is nothing processed?" (e.g. no LLM configured)."""
    users = tuple(
        replace(u, last_error=error) if u.pending_turns and not u.last_error else u
        for u in status.users
    )
    return replace(status, users=users)
