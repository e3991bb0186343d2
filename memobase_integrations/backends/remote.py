"""``RemoteBackend``: a Memobase server (Memobase Cloud or self-hosted) over HTTP.

Every endpoint an app needs (``memobase-spec.md`` §1.2) is here, sync over
:class:`httpx.Client` and natively async over :class:`httpx.AsyncClient`. The wire details
(envelope, errors, retries, query encoding) live in :mod:`.http`, one request builder per
route in :mod:`.remote_requests`, durable recording in :mod:`.outbox` (this backend's side
of it in :mod:`.remote_outbox`).

Differences from the official SDK, on purpose:

* ``update_user`` sends the data dict itself as the body (the SDK wraps it in ``{"data": ...}``
  and the server then stores it nested);
* user text in query strings is percent-encoded properly, lists are repeated keys and JSON
  parameters are JSON-encoded, so ``&``, ``#``, ``+`` and non-ASCII text survive;
* the user is created on first use (``auto_create_users``), so an insert never fails with the
  server's foreign-key error for a new user, and a concurrent create is not an error;
* parameters equal to the server's documented default are not sent, like the SDK, so requests
  stay short and match what the server expects.

**One implementation, two shells.** Sync and async methods build the same
:class:`~.wire.Request`, so they send byte-identical requests and parse answers the same
way. A policy that takes several requests (create the user on first use, create it again
when it was deleted behind our back, page through blobs, export) is written once as a
*flow*: a generator that yields the requests it needs and receives their results (or has
their typed error thrown in). :meth:`RemoteBackend._run` drives a flow with the sync client,
:meth:`RemoteBackend._arun` with the async one; the public twins are one-line shells.
"""

from __future__ import annotations

import asyncio
import atexit
import functools
import logging
import os
import threading
import time
import weakref
from collections.abc import Sequence
from pathlib import Path
from typing import Any, TypeVar
from uuid import UUID

import httpx
from pydantic import SecretStr

from .. import errors, tokens
from ..models import (
    Blob,
    BlobData,
    BlobInsertData,
    BlobType,
    ChatBlob,
    ChatModalResponse,
    EventData,
    EventGist,
    Profile,
    UserData,
    UserEvent,
)
from ..settings import FlushPolicy
from ..values import (
    BufferStatus,
    ContextOptions,
    FailedTurn,
    MemoryStatus,
    ProfileOptions,
    RecordReceipt,
    UserOrder,
    UserStatus,
)
from . import remote_requests as rq
from .base import ProcessedListener
from .http import HttpCore
from .outbox import DeliveryWorker, UserGuards
from .outbox_store import OutboxStore, default_outbox_path, lease_owner_id
from .remote_flows import Exported, Flow, UserFlows, arun_flow, run_flow
from .remote_models import DailyUsage, ProjectBilling, ProjectUsers
from .remote_outbox import Delivery, Listeners, legacy_scope, outbox_scope, turn_bodies
from .wire import server_credentials

__all__ = ["RemoteBackend"]

log = logging.getLogger(__name__)

T = TypeVar("T")


def _close_at_exit(ref: weakref.ReferenceType[RemoteBackend]) -> None:
    backend = ref()
    if backend is not None:
        backend.close()


class RemoteBackend:
    """The :class:`~memobase_integrations.backends.base.Backend` of a Memobase server.

    ``project_url`` / ``api_key`` default to ``MEMOBASE_PROJECT_URL`` / ``MEMOBASE_API_KEY``.
    ``record`` writes to a local outbox (``outbox_path``, default ``MEMOBASE_OUTBOX_PATH`` or
    ``./memobase-outbox.db``) that a background thread delivers; see
    :mod:`memobase_integrations.backends.outbox` for the exact guarantee. ``close()`` (also run
    at interpreter exit) drains it within ``policy.close_timeout_seconds``.

    Reads are bounded: ``read_deadline`` seconds per read in total, retries and backoff
    included (``timeout`` is the limit of one attempt). After the server failed, the reads
    an app makes while answering (context, profile, events, searches) fail at once for
    ``breaker_cooldown`` seconds, then one probes the server again (``0`` turns this off).

    ``transport`` / ``async_transport`` replace httpx's network layer (tests, proxies).
    """

    kind = "remote"

    def __init__(
        self,
        project_url: str | None = None,
        api_key: str | None = None,
        *,
        timeout: float = 30.0,
        read_deadline: float = 5.0,
        breaker_cooldown: float = 10.0,
        max_retries: int = 2,
        retry_backoff: float = 0.5,
        retry_backoff_max: float = 8.0,
        outbox_path: str | os.PathLike[str] | None = None,
        policy: FlushPolicy | None = None,
        transport: httpx.BaseTransport | None = None,
        async_transport: httpx.AsyncBaseTransport | None = None,
        auto_create_users: bool = True,
    ) -> None:
        # A long turn is split by tokens on the caller's thread, and the outbox counts what it
        # delivers: start building the encoder now, in the background (never in a request).
        tokens.preload()
        url, key = server_credentials(project_url, api_key)
        if timeout <= 0 or max_retries < 0 or read_deadline <= 0 or breaker_cooldown < 0:
            raise errors.ConfigurationError(
                "timeout and read_deadline must be > 0, breaker_cooldown and max_retries >= 0 "
                f"(got timeout={timeout!r}, read_deadline={read_deadline!r}, "
                f"breaker_cooldown={breaker_cooldown!r}, max_retries={max_retries!r})."
            )
        self.base_url = url
        self._api_key = SecretStr(key)
        self.timeout = timeout
        self.policy = policy or FlushPolicy()
        self._http = HttpCore(
            self.base_url,
            key,
            timeout=timeout,
            max_retries=max_retries,
            backoff=retry_backoff,
            backoff_max=retry_backoff_max,
            transport=transport,
            async_transport=async_transport,
            read_deadline=read_deadline,
            breaker_cooldown=breaker_cooldown,
        )
        self._scope = ""  # set when the outbox file is opened (the fingerprint's salt is there)
        self._listeners = Listeners()
        self._flows = UserFlows(auto_create_users, self._notify)
        self._lock = threading.Lock()
        self._outbox_path = Path(outbox_path) if outbox_path is not None else default_outbox_path()
        self._store: OutboxStore | None = None
        self._worker: DeliveryWorker | None = None
        # A lease must outlive the longest call made under it (one request and its retries).
        self._guards = UserGuards(
            "",
            owner=lease_owner_id(),
            lease_seconds=max(60.0, timeout * (max_retries + 2)),
        )
        self._closed = False
        self._atexit_hook = functools.partial(_close_at_exit, weakref.ref(self))
        atexit.register(self._atexit_hook)
        if self._outbox_path.exists():
            # Turns recorded before a crash or restart are delivered without waiting for the
            # next record().
            store = self._open_store()
            if store.has_any_work(self._scope):
                self._start_worker()

    def __repr__(self) -> str:
        return f"RemoteBackend(url={self.base_url!r})"

    @property
    def auto_create_users(self) -> bool:
        """Create users on first write (and again when deleted behind the cache)."""
        return self._flows.auto_create_users

    @auto_create_users.setter
    def auto_create_users(self, value: bool) -> None:
        self._flows.auto_create_users = value

    # -- outbox plumbing --------------------------------------------------------------------
    def _open_store(self) -> OutboxStore:
        with self._lock:
            if self._store is None:
                store = OutboxStore(self._outbox_path)
                key = self._api_key.get_secret_value()
                self._scope = outbox_scope(store, self.base_url, key)
                moved = store.rename_scope(legacy_scope(self.base_url, key), self._scope)
                if moved:
                    log.info("Outbox rows of an earlier version moved to the key's fingerprint.")
                self._guards.scope = self._scope
                self._guards.store = store
                self._store = store
            return self._store

    def _existing_store(self) -> OutboxStore | None:
        if self._store is None and self._outbox_path.exists():
            return self._open_store()
        return self._store

    def _start_worker(self) -> DeliveryWorker | None:
        if self._closed:
            return None
        store = self._open_store()
        with self._lock:
            if self._worker is None:
                self._worker = DeliveryWorker(
                    store, self._scope, Delivery(self), self.policy, self._guards
                )
            worker = self._worker
        worker.start()
        return worker

    def _notify(self, user_id: UUID, results: Sequence[ChatModalResponse]) -> None:
        """Tell the listeners, on the notifier thread: a listener may do blocking I/O (the
        facade's cache refresh reads the context), which must not run on the caller's
        thread, an event loop, or the outbox thread."""
        self._listeners.notify(user_id, results)

    _turn_bodies = staticmethod(turn_bodies)

    # -- hot path ---------------------------------------------------------------------------
    def record(self, user_id: UUID, blobs: Sequence[ChatBlob], turn_id: str) -> RecordReceipt:
        """Write the turn to the local outbox and return: no network on this thread.

        The receipt has no blob ids: the server assigns them at delivery. ``duplicate`` is
        true when this ``turn_id`` was recorded for the user before (nothing new is written).
        """
        if not blobs:
            return RecordReceipt(turn_id=turn_id, blob_ids=())
        bodies = self._turn_bodies(blobs, turn_id)
        added = self._open_store().add(self._scope, user_id, turn_id, bodies)
        worker = self._start_worker()
        if worker is not None:
            worker.wake()
        elif added:
            log.warning(
                "Turn %s was recorded after close(); it stays in %s until the next start.",
                turn_id,
                self._outbox_path,
            )
        return RecordReceipt(turn_id=turn_id, blob_ids=(), duplicate=not added)

    async def arecord(
        self, user_id: UUID, blobs: Sequence[ChatBlob], turn_id: str
    ) -> RecordReceipt:
        """:meth:`record` in a worker thread: the SQLite commit is sub-millisecond, but it may
        wait on another process's write lock, which must not stall the event loop."""
        return await asyncio.to_thread(self.record, user_id, blobs, turn_id)

    def add_listener(self, listener: ProcessedListener) -> None:
        self._listeners.add(listener)

    # -- one implementation, two drivers (see the module docstring) ------------------------
    def _run(self, flow: Flow[T]) -> T:
        return run_flow(self._http.send, flow)

    async def _arun(self, flow: Flow[T]) -> T:
        return await arun_flow(self._http.asend, flow)

    # -- health -----------------------------------------------------------------------------
    def healthcheck(self) -> None:
        """``GET /healthcheck``; raises a typed error when the server is not healthy."""
        self._http.send(rq.healthcheck_request())

    async def ahealthcheck(self) -> None:
        await self._http.asend(rq.healthcheck_request())

    def ping(self) -> bool:
        """True when the server answers its healthcheck (never raises for a network error)."""
        try:
            self.healthcheck()
        except errors.MemobaseError:
            return False
        return True

    async def aping(self) -> bool:
        try:
            await self.ahealthcheck()
        except errors.MemobaseError:
            return False
        return True

    # -- users ------------------------------------------------------------------------------
    def create_user(self, user_id: UUID | None = None, data: dict[str, Any] | None = None) -> UUID:
        """``POST /users``; the server picks an id when ``user_id`` is None."""
        return self._run(self._flows.create_user(user_id, data))

    async def acreate_user(
        self, user_id: UUID | None = None, data: dict[str, Any] | None = None
    ) -> UUID:
        return await self._arun(self._flows.create_user(user_id, data))

    def get_user(self, user_id: UUID) -> UserData:
        """``GET /users/{id}`` (raises :class:`NotFoundError` for an unknown user)."""
        return self._http.send(rq.get_user_request(user_id))

    async def aget_user(self, user_id: UUID) -> UserData:
        return await self._http.asend(rq.get_user_request(user_id))

    def get_or_create_user(self, user_id: UUID, data: dict[str, Any] | None = None) -> UserData:
        """Get the user, creating it (with ``data``) if missing; a concurrent create by
        another client (the server's duplicate-key error) counts as "exists"."""
        return self._run(self._flows.get_or_create_user(user_id, data))

    async def aget_or_create_user(
        self, user_id: UUID, data: dict[str, Any] | None = None
    ) -> UserData:
        return await self._arun(self._flows.get_or_create_user(user_id, data))

    def ensure_user(self, user_id: UUID, data: dict[str, Any] | None = None) -> None:
        """Make sure the user exists (one GET the first time per backend, then cached)."""
        self._run(self._flows.ensure_user(user_id, data))

    async def aensure_user(self, user_id: UUID, data: dict[str, Any] | None = None) -> None:
        await self._arun(self._flows.ensure_user(user_id, data))

    def update_user(self, user_id: UUID, data: dict[str, Any]) -> UUID:
        """Replace the user's data with ``data`` (sent as the body itself, not nested)."""
        return self._http.send(rq.update_user_request(user_id, data))

    async def aupdate_user(self, user_id: UUID, data: dict[str, Any]) -> UUID:
        return await self._http.asend(rq.update_user_request(user_id, data))

    def delete_user(self, user_id: UUID) -> bool:
        """Forget the user: its undelivered outbox turns here, and on the server its profile,
        events, gists, blobs and buffers. A user the server does not know is not an error;
        returns ``False`` when there was nothing to forget (here or on the server)."""
        with self._guards.hold(user_id):
            return self._run(self._flows.delete_user(user_id, self._delete_local(user_id)))

    async def adelete_user(self, user_id: UUID) -> bool:
        async with self._guards.ahold(user_id):
            local = await asyncio.to_thread(self._delete_local, user_id)
            return await self._arun(self._flows.delete_user(user_id, local))

    def _delete_local(self, user_id: UUID) -> int:
        store = self._existing_store()
        return store.delete_user(self._scope, user_id) if store is not None else 0

    # -- blobs ------------------------------------------------------------------------------
    def _insert_body(
        self, user_id: UUID, body: dict[str, Any], *, wait_process: bool
    ) -> BlobInsertData:
        return self._run(self._flows.insert(user_id, body, wait_process))

    def insert(
        self, user_id: UUID, blob: Blob | BlobData, *, wait_process: bool = False
    ) -> BlobInsertData:
        """``POST /blobs/insert`` now (not through the outbox). With ``wait_process`` the
        server processes inline when the buffer passed its threshold (``chat_results``)."""
        return self._run(self._flows.insert(user_id, rq.blob_body(blob), wait_process))

    async def ainsert(
        self, user_id: UUID, blob: Blob | BlobData, *, wait_process: bool = False
    ) -> BlobInsertData:
        return await self._arun(self._flows.insert(user_id, rq.blob_body(blob), wait_process))

    def get_blob(self, user_id: UUID, blob_id: UUID) -> BlobData:
        return self._http.send(
            rq.blob_request(rq.GET_BLOB, user_id, blob_id, BlobData.model_validate)
        )

    async def aget_blob(self, user_id: UUID, blob_id: UUID) -> BlobData:
        return await self._http.asend(
            rq.blob_request(rq.GET_BLOB, user_id, blob_id, BlobData.model_validate)
        )

    def list_blobs(
        self,
        user_id: UUID,
        blob_type: BlobType = BlobType.chat,
        *,
        page: int = 0,
        page_size: int = 10,
    ) -> list[UUID]:
        """Ids of the user's stored blobs of a type, oldest first (processed chat blobs are
        deleted by the server, so this is the buffer for chat)."""
        return self._http.send(rq.list_blobs_request(user_id, blob_type, page, page_size))

    async def alist_blobs(
        self,
        user_id: UUID,
        blob_type: BlobType = BlobType.chat,
        *,
        page: int = 0,
        page_size: int = 10,
    ) -> list[UUID]:
        return await self._http.asend(rq.list_blobs_request(user_id, blob_type, page, page_size))

    def delete_blob(self, user_id: UUID, blob_id: UUID) -> None:
        self._http.send(rq.blob_request(rq.DELETE_BLOB, user_id, blob_id, rq.parse_none))

    async def adelete_blob(self, user_id: UUID, blob_id: UUID) -> None:
        await self._http.asend(rq.blob_request(rq.DELETE_BLOB, user_id, blob_id, rq.parse_none))

    # -- buffer -----------------------------------------------------------------------------
    def buffer_capacity(
        self,
        user_id: UUID,
        blob_type: BlobType = BlobType.chat,
        status: BufferStatus | None = "idle",
    ) -> list[UUID]:
        """Ids of the user's buffer rows (not blob ids) in a status (``None``: the server's
        default, ``processing``)."""
        return self._http.send(rq.capacity_request(user_id, blob_type, status))

    async def abuffer_capacity(
        self,
        user_id: UUID,
        blob_type: BlobType = BlobType.chat,
        status: BufferStatus | None = "idle",
    ) -> list[UUID]:
        return await self._http.asend(rq.capacity_request(user_id, blob_type, status))

    def flush(
        self, user_id: UUID, blob_type: BlobType = BlobType.chat, *, wait: bool = True
    ) -> list[ChatModalResponse]:
        """Deliver the user's recorded turns, then have the server process the buffer.

        ``wait=True`` returns what changed once processed; ``wait=False`` returns ``[]`` once
        the turns are delivered, and the outbox thread has them processed right after. Either
        way the outbox checks afterwards that every delivered turn was processed (see
        :mod:`.outbox`). Raises the delivery error if recorded turns could not reach the
        server (they stay in the outbox). Listeners hear of the results on a thread of their
        own, never on the caller's.
        """
        worker = self._outbox_worker(blob_type)
        if worker is not None:
            return worker.request_flush(user_id, wait).result()
        with self._guards.hold(user_id):
            results = self._http.send(rq.flush_request(user_id, blob_type, wait))
        return self._flushed(user_id, results, wait)

    async def aflush(
        self, user_id: UUID, blob_type: BlobType = BlobType.chat, *, wait: bool = True
    ) -> list[ChatModalResponse]:
        worker = await asyncio.to_thread(self._outbox_worker, blob_type)
        if worker is not None:
            return await asyncio.wrap_future(worker.request_flush(user_id, wait))
        async with self._guards.ahold(user_id):
            results = await self._http.asend(rq.flush_request(user_id, blob_type, wait))
        return self._flushed(user_id, results, wait)

    def _flushed(
        self, user_id: UUID, results: list[ChatModalResponse], wait: bool
    ) -> list[ChatModalResponse]:
        if wait:
            self._notify(user_id, results)
        return results

    def _outbox_worker(self, blob_type: BlobType) -> DeliveryWorker | None:
        """The worker that flushes chat buffers when the outbox exists: it delivers first,
        then flushes under the user's lease and proves that every delivered blob was
        processed (the outbox module's guarantee); listeners hear of it from there."""
        if blob_type != BlobType.chat or self._existing_store() is None:
            return None
        return self._start_worker()

    # -- reads ------------------------------------------------------------------------------
    def context(self, user_id: UUID, options: ContextOptions) -> str:
        return self._http.send(rq.context_request(user_id, options))

    async def acontext(self, user_id: UUID, options: ContextOptions) -> str:
        return await self._http.asend(rq.context_request(user_id, options))

    def profile(self, user_id: UUID, options: ProfileOptions) -> list[Profile]:
        return self._http.send(rq.profile_request(user_id, options))

    async def aprofile(self, user_id: UUID, options: ProfileOptions) -> list[Profile]:
        return await self._http.asend(rq.profile_request(user_id, options))

    def events(
        self,
        user_id: UUID,
        topk: int = 10,
        max_token_size: int | None = None,
        *,
        need_summary: bool = False,
    ) -> list[UserEvent]:
        """The newest events (the server looks back 21 days), newest first."""
        return self._http.send(rq.events_request(user_id, topk, max_token_size, need_summary))

    async def aevents(
        self,
        user_id: UUID,
        topk: int = 10,
        max_token_size: int | None = None,
        *,
        need_summary: bool = False,
    ) -> list[UserEvent]:
        return await self._http.asend(
            rq.events_request(user_id, topk, max_token_size, need_summary)
        )

    def search_events(
        self,
        user_id: UUID,
        query: str,
        topk: int = 10,
        similarity_threshold: float = 0.2,
        time_range_in_days: int = 180,
    ) -> list[UserEvent]:
        return self._http.send(
            rq.search_events_request(user_id, query, topk, similarity_threshold, time_range_in_days)
        )

    async def asearch_events(
        self,
        user_id: UUID,
        query: str,
        topk: int = 10,
        similarity_threshold: float = 0.2,
        time_range_in_days: int = 180,
    ) -> list[UserEvent]:
        return await self._http.asend(
            rq.search_events_request(user_id, query, topk, similarity_threshold, time_range_in_days)
        )

    def search_gists(
        self,
        user_id: UUID,
        query: str,
        topk: int = 10,
        similarity_threshold: float = 0.2,
        time_range_in_days: int = 180,
    ) -> list[EventGist]:
        return self._http.send(
            rq.search_gists_request(user_id, query, topk, similarity_threshold, time_range_in_days)
        )

    async def asearch_gists(
        self,
        user_id: UUID,
        query: str,
        topk: int = 10,
        similarity_threshold: float = 0.2,
        time_range_in_days: int = 180,
    ) -> list[EventGist]:
        return await self._http.asend(
            rq.search_gists_request(user_id, query, topk, similarity_threshold, time_range_in_days)
        )

    def search_events_by_tags(
        self,
        user_id: UUID,
        tags: Sequence[str] | None = None,
        tag_values: dict[str, str] | None = None,
        topk: int = 10,
    ) -> list[UserEvent]:
        """Events carrying all ``tags`` and exactly the ``tag_values`` (newest first)."""
        return self._http.send(rq.tags_request(user_id, tags, tag_values, topk))

    async def asearch_events_by_tags(
        self,
        user_id: UUID,
        tags: Sequence[str] | None = None,
        tag_values: dict[str, str] | None = None,
        topk: int = 10,
    ) -> list[UserEvent]:
        return await self._http.asend(rq.tags_request(user_id, tags, tag_values, topk))

    # -- profile and event writes -----------------------------------------------------------
    def add_profile(self, user_id: UUID, content: str, topic: str, sub_topic: str) -> UUID:
        """Add a profile row as given (the server does not normalise the names)."""
        return self._run(self._flows.add_profile(user_id, content, topic, sub_topic))

    async def aadd_profile(self, user_id: UUID, content: str, topic: str, sub_topic: str) -> UUID:
        return await self._arun(self._flows.add_profile(user_id, content, topic, sub_topic))

    def update_profile(
        self,
        user_id: UUID,
        profile_id: UUID,
        content: str,
        topic: str | None = None,
        sub_topic: str | None = None,
    ) -> None:
        """Replace a profile's content (and its topic/sub_topic when both are given). The
        server silently ignores an unknown profile id."""
        body = rq.profile_body(content, topic, sub_topic)
        self._http.send(rq.profile_id_request(rq.UPDATE_PROFILE, user_id, profile_id, body))

    async def aupdate_profile(
        self,
        user_id: UUID,
        profile_id: UUID,
        content: str,
        topic: str | None = None,
        sub_topic: str | None = None,
    ) -> None:
        body = rq.profile_body(content, topic, sub_topic)
        await self._http.asend(rq.profile_id_request(rq.UPDATE_PROFILE, user_id, profile_id, body))

    def delete_profile(self, user_id: UUID, profile_id: UUID) -> None:
        self._http.send(rq.profile_id_request(rq.DELETE_PROFILE, user_id, profile_id))

    async def adelete_profile(self, user_id: UUID, profile_id: UUID) -> None:
        await self._http.asend(rq.profile_id_request(rq.DELETE_PROFILE, user_id, profile_id))

    def import_profile(self, user_id: UUID, context: str) -> None:
        """``POST /users/profile/import`` (experimental on the server): process a free text
        about the user synchronously, flushing the chat buffer before and after."""
        self._http.send(rq.import_profile_request(user_id, context))

    async def aimport_profile(self, user_id: UUID, context: str) -> None:
        await self._http.asend(rq.import_profile_request(user_id, context))

    def update_event(self, user_id: UUID, event_id: UUID, data: EventData | dict[str, Any]) -> None:
        """Merge the given keys into the event's data (no re-embedding on the server)."""
        self._http.send(rq.event_request(rq.UPDATE_EVENT, user_id, event_id, rq.event_body(data)))

    async def aupdate_event(
        self, user_id: UUID, event_id: UUID, data: EventData | dict[str, Any]
    ) -> None:
        await self._http.asend(
            rq.event_request(rq.UPDATE_EVENT, user_id, event_id, rq.event_body(data))
        )

    def delete_event(self, user_id: UUID, event_id: UUID) -> None:
        self._http.send(rq.event_request(rq.DELETE_EVENT, user_id, event_id))

    async def adelete_event(self, user_id: UUID, event_id: UUID) -> None:
        await self._http.asend(rq.event_request(rq.DELETE_EVENT, user_id, event_id))

    # -- project ----------------------------------------------------------------------------
    def get_profile_config(self) -> str:
        """The project's profile config YAML (``""`` when unset)."""
        return self._http.send(rq.get_config_request())

    async def aget_profile_config(self) -> str:
        return await self._http.asend(rq.get_config_request())

    def set_profile_config(self, config_yaml: str | None) -> None:
        """Set (``None``: reset) the project's profile config; the server validates it."""
        self._http.send(rq.set_config_request(config_yaml))

    async def aset_profile_config(self, config_yaml: str | None) -> None:
        await self._http.asend(rq.set_config_request(config_yaml))

    def usage(self) -> ProjectBilling:
        """``GET /project/billing``: tokens left this month and this month's cost."""
        return self._http.send(rq.billing_request())

    async def ausage(self) -> ProjectBilling:
        return await self._http.asend(rq.billing_request())

    def daily_usage(self, last_days: int = 7) -> list[DailyUsage]:
        return self._http.send(rq.usage_request(last_days))

    async def adaily_usage(self, last_days: int = 7) -> list[DailyUsage]:
        return await self._http.asend(rq.usage_request(last_days))

    def project_users(
        self,
        search: str | None = None,
        order_by: UserOrder | None = None,
        order_desc: bool | None = None,
        limit: int | None = None,
        offset: int | None = None,
    ) -> ProjectUsers:
        """The project's users with profile/event counts (``count``: all matches)."""
        return self._http.send(
            rq.project_users_request(search, order_by, order_desc, limit, offset)
        )

    async def aproject_users(
        self,
        search: str | None = None,
        order_by: UserOrder | None = None,
        order_desc: bool | None = None,
        limit: int | None = None,
        offset: int | None = None,
    ) -> ProjectUsers:
        return await self._http.asend(
            rq.project_users_request(search, order_by, order_desc, limit, offset)
        )

    # -- operations -------------------------------------------------------------------------
    def status(self, user_id: UUID | None = None) -> MemoryStatus:
        """The outbox: turns not yet delivered, tokens delivered but not processed, failures
        (with their error text) and the last flush, per user and overall."""
        store = self._existing_store()
        if store is None:
            users = (UserStatus(user_id=user_id),) if user_id is not None else ()
            return MemoryStatus(backend="remote", users=users)
        return store.status(self._scope, user_id)

    async def astatus(self, user_id: UUID | None = None) -> MemoryStatus:
        return await asyncio.to_thread(self.status, user_id)

    def failures(self, user_id: UUID | None = None) -> list[FailedTurn]:
        """Every undelivered turn whose last attempt failed, with the error text."""
        store = self._existing_store()
        return [] if store is None else store.failures(self._scope, user_id)

    async def afailures(self, user_id: UUID | None = None) -> list[FailedTurn]:
        return await asyncio.to_thread(self.failures, user_id)

    def retry_failed(self, user_id: UUID | None = None) -> int:
        """Make failed turns (parked ones too) due now; returns how many."""
        store = self._existing_store()
        if store is None:
            return 0
        count = store.retry_failed(self._scope, user_id)
        worker = self._start_worker()
        if worker is not None:
            worker.wake()
        return count

    async def aretry_failed(self, user_id: UUID | None = None) -> int:
        return await asyncio.to_thread(self.retry_failed, user_id)

    def discard_failed(self, user_id: UUID | None = None) -> int:
        """Drop failed turns from the outbox for good; returns how many."""
        store = self._existing_store()
        return 0 if store is None else store.discard_failed(self._scope, user_id)

    async def adiscard_failed(self, user_id: UUID | None = None) -> int:
        return await asyncio.to_thread(self.discard_failed, user_id)

    def _export(self, user_id: UUID, server: Exported) -> dict[str, Any]:
        store = self._existing_store()
        undelivered = [] if store is None else store.undelivered(self._scope, user_id)
        return server.to_json(user_id, [t.to_json() for t in undelivered])

    def export_user(self, user_id: UUID) -> dict[str, Any]:
        """Everything kept about the user, JSON-ready: the user's data, profile, events (the
        server's 21-day window), blobs still stored on the server and undelivered turns."""
        return self._export(user_id, self._run(self._flows.export_user(user_id)))

    async def aexport_user(self, user_id: UUID) -> dict[str, Any]:
        server = await self._arun(self._flows.export_user(user_id))
        return await asyncio.to_thread(self._export, user_id, server)

    def close(self, timeout: float | None = None) -> None:
        """Deliver and flush what the outbox holds (within ``timeout``, default
        ``policy.close_timeout_seconds``), stop the worker and close the HTTP clients.

        Whatever is not delivered in time stays in the outbox file for the next start.
        """
        if self._closed:
            return
        self._closed = True
        atexit.unregister(self._atexit_hook)
        self._shutdown(timeout)
        self._http.close()
        if self._store is not None:
            self._store.close()

    def _shutdown(self, timeout: float | None) -> None:
        """Drain the outbox within the budget (a request still waiting at the deadline is
        interrupted), then let the listeners hear of the last flushes (within what is left,
        at least a moment), so no thread of this backend outlives ``close``."""
        limit = self.policy.close_timeout_seconds if timeout is None else timeout
        end = time.monotonic() + limit
        with self._lock:
            worker = self._worker
        if worker is not None:
            worker.drain_and_stop(limit, abort=self._http.abort)
        self._listeners.stop(max(1.0, end - time.monotonic()))

    async def aclose(self, timeout: float | None = None) -> None:
        if self._closed:
            return
        self._closed = True
        atexit.unregister(self._atexit_hook)
        await asyncio.to_thread(self._shutdown, timeout)
        await self._http.aclose()
        if self._store is not None:
            self._store.close()
