"""The remote backend's multi-request policies, each written once as a *flow*.

A flow is a generator that yields the :class:`~.wire.Request` objects it needs and receives
their parsed results, or has their typed error thrown in, so it can handle it (a missing
user, a concurrent create). It never does I/O itself: :func:`run_flow` drives it with the
sync client, :func:`arun_flow` with the async one, and the sync and async methods of
:class:`~.remote.RemoteBackend` are thin shells over the same flow (the sans-I/O pattern of
h11 / httpcore). The flows' own steps (a set lookup, handing results to the listener
runner) never block, so they may run on an event loop.
"""

from __future__ import annotations

import threading
from collections.abc import Awaitable, Callable, Generator, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar
from uuid import UUID

from .. import errors
from ..models import (
    BlobData,
    BlobInsertData,
    BlobType,
    ChatModalResponse,
    Profile,
    UserData,
    UserEvent,
)
from ..values import ProfileOptions
from . import remote_requests as rq
from .wire import Request

__all__ = ["Exported", "Flow", "UserFlows", "arun_flow", "run_flow"]

T = TypeVar("T")

#: A multi-request policy: yields requests, receives their results, returns its answer.
Flow = Generator[Request[Any], Any, T]

_PAGE = 100


def run_flow(send: Callable[[Request[Any]], Any], flow: Flow[T]) -> T:
    """Drive ``flow`` with a sync ``send``: each yielded request is sent, its result sent
    back in, its typed error thrown in (the flow may handle it)."""
    try:
        req = next(flow)
        while True:
            try:
                result = send(req)
            except errors.MemobaseError as exc:
                req = flow.throw(exc)
            else:
                req = flow.send(result)
    except StopIteration as stop:
        return stop.value  # type: ignore[no-any-return]


async def arun_flow(send: Callable[[Request[Any]], Awaitable[Any]], flow: Flow[T]) -> T:
    """:func:`run_flow` with an async ``send``."""
    try:
        req = next(flow)
        while True:
            try:
                result = await send(req)
            except errors.MemobaseError as exc:
                req = flow.throw(exc)
            else:
                req = flow.send(result)
    except StopIteration as stop:
        return stop.value  # type: ignore[no-any-return]


@dataclass(frozen=True, slots=True)
class Exported:
    """The server's part of an export (see :meth:`~.remote.RemoteBackend.export_user`)."""

    user: UserData | None
    profile: list[Profile]
    events: list[UserEvent]
    blobs: list[tuple[UUID, BlobData]]

    def to_json(self, user_id: UUID, undelivered: list[dict[str, Any]]) -> dict[str, Any]:
        """The export, JSON-ready, with the outbox's ``undelivered`` turns."""
        return {
            "user_id": str(user_id),
            "backend": "remote",
            "user": None if self.user is None else self.user.model_dump(mode="json"),
            "profile": [p.model_dump(mode="json") for p in self.profile],
            "events": [e.model_dump(mode="json") for e in self.events],
            "buffered_blobs": [
                {"id": str(bid), **blob.model_dump(mode="json")} for bid, blob in self.blobs
            ],
            "undelivered_turns": undelivered,
        }


class UserFlows:
    """The flows, and the cache of users known to exist on the server they share.

    ``auto_create_users``: create a user on first write (one GET per user per backend),
    and again when another client deleted it behind the cache. ``notify`` hands results
    of an inline processing to the backend's listeners (on their own thread).
    """

    def __init__(
        self,
        auto_create_users: bool,
        notify: Callable[[UUID, Sequence[ChatModalResponse]], None],
    ) -> None:
        self.auto_create_users = auto_create_users
        self._notify = notify
        self._known: set[UUID] = set()
        self._lock = threading.Lock()

    def remember(self, user_id: UUID) -> None:
        with self._lock:
            self._known.add(user_id)

    def forget(self, user_id: UUID) -> None:
        with self._lock:
            self._known.discard(user_id)

    def known(self, user_id: UUID) -> bool:
        with self._lock:
            return user_id in self._known

    def create_user(self, user_id: UUID | None, data: dict[str, Any] | None) -> Flow[UUID]:
        created: UUID = yield rq.create_user_request(user_id, data)
        self.remember(created)
        return created

    def get_or_create_user(self, user_id: UUID, data: dict[str, Any] | None) -> Flow[UserData]:
        """Get the user, creating it if missing; a concurrent create by another client (the
        server's duplicate-key error) counts as "exists"."""
        try:
            user: UserData = yield rq.get_user_request(user_id)
        except errors.NotFoundError as exc:
            if not rq.is_missing(exc):
                raise
            try:
                yield rq.create_user_request(user_id, data)
            except errors.ServerError as create_exc:
                if not rq.is_duplicate_user(create_exc):
                    raise
            user = UserData(id=user_id, data=data)
        self.remember(user_id)
        return user

    def ensure_user(self, user_id: UUID, data: dict[str, Any] | None = None) -> Flow[None]:
        """One GET the first time per backend, then cached."""
        if not self.known(user_id):
            yield from self.get_or_create_user(user_id, data)

    def delete_user(self, user_id: UUID, local: int) -> Flow[bool]:
        """The server's half of ``delete_user`` (the outbox's rows are gone already)."""
        self.forget(user_id)
        try:
            yield rq.delete_user_request(user_id)
        except errors.NotFoundError as exc:
            if not rq.is_missing(exc):
                raise
            return local > 0
        return True

    def insert(
        self, user_id: UUID, body: dict[str, Any], wait_process: bool
    ) -> Flow[BlobInsertData]:
        if self.auto_create_users:
            yield from self.ensure_user(user_id)
        try:
            result: BlobInsertData = yield rq.insert_request(user_id, body, wait_process)
        except errors.ServerError as exc:
            # The user was deleted behind our cache (another client): create it, insert again.
            # Safe: a foreign-key failure means nothing was stored.
            if not (self.auto_create_users and rq.is_missing_user(exc)):
                raise
            self.forget(user_id)
            yield from self.ensure_user(user_id)
            result = yield rq.insert_request(user_id, body, wait_process)
        if result.chat_results:
            self._notify(user_id, result.chat_results)
        return result

    def add_profile(self, user_id: UUID, content: str, topic: str, sub_topic: str) -> Flow[UUID]:
        if self.auto_create_users:
            yield from self.ensure_user(user_id)
        created: UUID = yield rq.add_profile_request(user_id, content, topic, sub_topic)
        return created

    def export_user(self, user_id: UUID) -> Flow[Exported]:
        """What the server keeps about the user; the outbox's part is added by the shell."""
        try:
            user: UserData | None = yield rq.get_user_request(user_id)
        except errors.NotFoundError as exc:
            if not rq.is_missing(exc):
                raise
            user = None
        profile: list[Profile] = yield rq.profile_request(user_id, ProfileOptions())
        events: list[UserEvent] = yield rq.events_request(user_id, 1000, None, False)
        blobs: list[tuple[UUID, BlobData]] = []
        for blob_type in (BlobType.chat, BlobType.summary):
            for page in range(100):
                ids: list[UUID] = yield rq.list_blobs_request(user_id, blob_type, page, _PAGE)
                for bid in ids:
                    blob: BlobData = yield rq.blob_request(
                        rq.GET_BLOB, user_id, bid, BlobData.model_validate
                    )
                    blobs.append((bid, blob))
                if len(ids) < _PAGE:
                    break
        return Exported(user, profile, events, blobs)
