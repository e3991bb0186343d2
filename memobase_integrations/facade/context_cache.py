"""The facade's per-user cache of context strings, and the read failures its last
known value may stand in for."""

from __future__ import annotations

import threading
import uuid
from collections import OrderedDict
from typing import Any

from .. import errors
from ..values import ContextOptions

__all__ = ["FALLBACK_ERRORS", "ContextCache"]


class ContextCache:
    """Per-user cache of context strings, kept fresh by processing events.

    Reading the context sits on the request path, so it must not wait for the backend once a
    user is warm. When a user's processing finishes, its entries turn *stale* at once (a
    cheap in-memory step, safe on any thread: the next read goes to the backend) and the
    facade's refresher thread re-reads every stale variant, off every caller's path; the
    next request then finds the new context already in place. A stale value is kept for one
    more use: when the backend fails (server down, circuit breaker open), the last known
    context beats none. Writes through the facade (profile edits) make entries stale too;
    ``delete()`` drops them. A generation counter stops a read that raced with processing
    from storing a stale value as fresh. Users are kept in LRU order, at most ``max_users``.
    """

    def __init__(self, max_entries_per_user: int = 8, max_users: int = 10_000) -> None:
        self._lock = threading.Lock()
        self._data: OrderedDict[
            uuid.UUID, dict[tuple[Any, ...], tuple[ContextOptions, str, bool]]
        ] = OrderedDict()
        self._generation: dict[uuid.UUID, int] = {}
        self._max = max_entries_per_user
        self._max_users = max_users

    def generation(self, user_id: uuid.UUID) -> int:
        with self._lock:
            return self._generation.get(user_id, 0)

    def get(self, user_id: uuid.UUID, key: tuple[Any, ...]) -> str | None:
        """The fresh value, or ``None``."""
        with self._lock:
            entries = self._data.get(user_id)
            if entries is None or key not in entries or not entries[key][2]:
                return None
            self._data.move_to_end(user_id)
            return entries[key][1]

    def get_stale(self, user_id: uuid.UUID, key: tuple[Any, ...]) -> str | None:
        """The last known value, fresh or stale (the fallback when the backend fails)."""
        with self._lock:
            entry = self._data.get(user_id, {}).get(key)
            return None if entry is None else entry[1]

    def put(self, user_id: uuid.UUID, opts: ContextOptions, value: str, generation: int) -> None:
        with self._lock:
            if self._generation.get(user_id, 0) != generation:
                return  # processing finished while we were reading: the value may be stale
            entries = self._data.setdefault(user_id, {})
            self._data.move_to_end(user_id)
            key = opts.cache_key()
            if key not in entries and len(entries) >= self._max:
                entries.pop(next(iter(entries)))
            entries[key] = (opts, value, True)
            while len(self._data) > self._max_users:
                evicted, _ = self._data.popitem(last=False)
                self._generation.pop(evicted, None)

    def mark_stale(self, user_id: uuid.UUID, *_: Any) -> None:
        """The user's memory changed: no entry is fresh any more (each is kept as a fallback)."""
        with self._lock:
            self._generation[user_id] = self._generation.get(user_id, 0) + 1
            entries = self._data.get(user_id)
            if entries:
                for key, (opts, value, _fresh) in list(entries.items()):
                    entries[key] = (opts, value, False)

    invalidate = mark_stale

    def forget(self, user_id: uuid.UUID) -> None:
        """Drop everything about the user (after ``delete``: nothing may be served again)."""
        with self._lock:
            self._generation[user_id] = self._generation.get(user_id, 0) + 1
            self._data.pop(user_id, None)

    def stale_variants(self, user_id: uuid.UUID) -> tuple[int, list[ContextOptions]]:
        """The generation and the options of every stale entry (what a refresh re-reads)."""
        with self._lock:
            entries = self._data.get(user_id) or {}
            stale = [opts for opts, _value, fresh in entries.values() if not fresh]
            return self._generation.get(user_id, 0), stale


#: Context read failures that the last known context may stand in for (not refusals).
FALLBACK_ERRORS = (errors.MemobaseConnectionError, errors.ServerError, errors.StoreError)
