"""Per-user mutual exclusion for queue workers: a local lock plus a lease row.

Delivery, flush and delete of one user must never run at the same time (a server processes
a buffer twice under parallel flushes; a delivery racing a delete resurrects the user). In
one process a lock per user does it; across processes sharing a queue file, a lease row
with an owner and an expiry. The rule this module keeps: **a lease that cannot be had ends
in a typed error** (:class:`~memobase_integrations.errors.MemobaseTimeoutError`), never in a silent
entry without it, and work under a lease that another process took over stops
(:class:`LeaseLost`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import threading
import time
from collections.abc import AsyncIterator, Iterator
from typing import Protocol
from uuid import UUID, uuid4

from .. import errors

__all__ = ["LeaseLost", "LeaseStore", "UserGuards", "lease_owner_id", "owner_alive"]

log = logging.getLogger(__name__)

_HOST = socket.gethostname()


def lease_owner_id() -> str:
    """``host:pid:random``: unique per backend, and tells whether its process still runs."""
    return f"{_HOST}:{os.getpid()}:{uuid4().hex[:12]}"


def owner_alive(owner: str) -> bool:
    """Whether the process named by a :func:`lease_owner_id` may still run.

    On this machine the pid is checked, so a crashed owner's lease is taken over at once;
    an owner on another machine (a shared network file) is trusted until its lease expires.
    """
    host, _, rest = owner.partition(":")
    pid_text = rest.partition(":")[0]
    if host != _HOST or not pid_text.isdigit():
        return True
    try:
        os.kill(int(pid_text), 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class LeaseStore(Protocol):
    """Where lease rows live (the outbox file implements it)."""

    def claim(self, scope: str, user_id: UUID, owner: str, seconds: float) -> bool:
        """Take or renew the lease unless another live owner holds it."""
        ...

    def release(self, scope: str, user_id: UUID, owner: str) -> None: ...


class LeaseLost(Exception):
    """Another process took over the user's lease while we worked on it: stop at once."""

    def __init__(self, user_id: UUID) -> None:
        super().__init__(f"the outbox lease of user {user_id} was taken over")
        self.user_id = user_id


class UserGuards:
    """One lock per user inside the process plus a lease row across processes.

    ``store`` may be set later (the lease rows live in a file opened lazily); until then the
    local lock alone guards. A caller that cannot get the user within its wait gets
    :class:`~memobase_integrations.errors.MemobaseTimeoutError`; work under the lease calls
    :meth:`renew` before each long step.
    """

    def __init__(self, scope: str, owner: str, lease_seconds: float) -> None:
        self.scope = scope
        self.owner = owner
        self.lease_seconds = lease_seconds
        self.store: LeaseStore | None = None
        self._locks: dict[UUID, threading.Lock] = {}
        self._lock = threading.Lock()

    def _user_lock(self, user_id: UUID) -> threading.Lock:
        with self._lock:
            return self._locks.setdefault(user_id, threading.Lock())

    def try_lease(self, user_id: UUID) -> bool:
        store = self.store
        return store is None or store.claim(self.scope, user_id, self.owner, self.lease_seconds)

    def renew(self, user_id: UUID) -> None:
        """Extend the lease before a long call; :class:`LeaseLost` if it is no longer ours."""
        if not self.try_lease(user_id):
            raise LeaseLost(user_id)

    def _release_lease(self, user_id: UUID) -> None:
        if self.store is not None:
            try:
                self.store.release(self.scope, user_id, self.owner)
            except Exception:  # the lease expires on its own: nothing is held for long
                log.debug("releasing the lease of user %s failed", user_id, exc_info=True)

    def _busy(self, user_id: UUID, wait_seconds: float, what: str) -> errors.MemobaseTimeoutError:
        return errors.MemobaseTimeoutError(
            f"User {user_id} is busy: {what} did not become free within {wait_seconds:g}s "
            "(a delivery, flush or delete of this user is running, here or in another "
            "process sharing the outbox file). Nothing was done. What to do: call again "
            "in a moment."
        )

    @contextlib.contextmanager
    def try_hold(self, user_id: UUID) -> Iterator[bool]:
        """Hold the user if it is free right now (the worker skips busy users)."""
        lock = self._user_lock(user_id)
        if not lock.acquire(blocking=False):
            yield False
            return
        try:
            if not self.try_lease(user_id):
                yield False
                return
            try:
                yield True
            finally:
                self._release_lease(user_id)
        finally:
            lock.release()

    @contextlib.contextmanager
    def hold(self, user_id: UUID, wait_seconds: float = 60.0) -> Iterator[None]:
        """Hold the user, waiting at most ``wait_seconds`` for the local lock and the
        lease; raises :class:`errors.MemobaseTimeoutError` when either cannot be had."""
        deadline = time.monotonic() + wait_seconds
        lock = self._user_lock(user_id)
        if not lock.acquire(timeout=max(0.0, wait_seconds)):
            raise self._busy(user_id, wait_seconds, "its lock in this process")
        try:
            while not self.try_lease(user_id):
                if time.monotonic() >= deadline:
                    raise self._busy(user_id, wait_seconds, "its lease in the outbox file")
                time.sleep(0.02)
            try:
                yield
            finally:
                self._release_lease(user_id)
        finally:
            lock.release()

    @contextlib.asynccontextmanager
    async def ahold(self, user_id: UUID, wait_seconds: float = 60.0) -> AsyncIterator[None]:
        """:meth:`hold` without blocking the event loop (polls; cancellation-safe)."""
        deadline = time.monotonic() + wait_seconds
        lock = self._user_lock(user_id)
        while not lock.acquire(blocking=False):
            if time.monotonic() >= deadline:
                raise self._busy(user_id, wait_seconds, "its lock in this process")
            await asyncio.sleep(0.005)
        try:
            while self.store is not None and not await asyncio.to_thread(self.try_lease, user_id):
                if time.monotonic() >= deadline:
                    raise self._busy(user_id, wait_seconds, "its lease in the outbox file")
                await asyncio.sleep(0.02)
            try:
                yield
            finally:
                if self.store is not None:
                    await asyncio.to_thread(self._release_lease, user_id)
        finally:
            lock.release()
