"""``RemoteBackend``: a Memobase server (Memobase Cloud or self-hosted) over HTTP.

Every endpoint an app needs (``memobase-spec.md`` §1.2) is here, sync over
:class:`httpx.Client` and natively async over :class:`httpx.AsyncClient`. The wire details
(envelope, errors, retries, query encoding) live in :mod:`.http`, one request builder per
route in :mod:`.remote_requests`, durable recording in :mod:`.outbox`.

Differences from the official SDK, on purpose:

* ``update_user`` sends the data dict itself as the body (the SDK wraps it in ``{"data": ...}``
  and the server then stores it nested);
* user text in query strings is percent-encoded properly, lists are repeated keys and JSON
  parameters are JSON-encoded, so ``&``, ``#``, ``+`` and non-ASCII text survive;
* the user is created on first use (``auto_create_users``), so an insert never fails with the
  server's foreign-key error for a new user, and a concurrent create is not an error;
* parameters equal to the server's documented default are not sent, like the SDK, so requests
  stay short and match what the server expects.

Sync and async methods build the same :class:`~.http.Request` description, so they send
byte-identical requests and parse answers the same way.
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
from typing import Any
from uuid import UUID

import httpx
from pydantic import SecretStr

from .. import errors
from ..background import SerialRunner
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
    MemoryStatus,
    ProfileOptions,
    RecordReceipt,
    UserOrder,
    UserStatus,
)
from . import remote_requests as rq
from .base import ProcessedListener
from .http import HttpCore, Request, encode_query, normalise_project_url
from .outbox import DeliveryWorker, UserGuards
from .outbox_store import OutboxFailure, OutboxStore, default_outbox_path, lease_owner_id
from .remote_models import DailyUsage, ProjectBilling, ProjectUsers

__all__ = ["RemoteBackend"]

log = logging.getLogger(__name__)


def _key_project(api_key: str) -> str | None:
    """The part of a ``sk-<project>-<secret>`` key that names the project (``None`` for other
    keys). Not safe to store: for some keys it is part of the secret."""
    if api_key.startswith("sk-") and "-" in api_key[3:]:
        return api_key[3:].rsplit("-", 1)[0]
    return None


def _legacy_scope(base_url: str, api_key: str) -> str:
    """The scope versions before 0.2 wrote, with that key part in clear (see ``_scope``)."""
    project = _key_project(api_key)
    return base_url if project is None else f"{base_url}#{project}"


def _scope(store: OutboxStore, base_url: str, api_key: str) -> str:
    """Which server and project outbox rows belong to: URL plus a fingerprint of the key's
    project part.

    Memobase Cloud serves every project at one URL and tells them apart by the key
    (``sk-<project>-<secret>``). The project part survives a key rotation, so rows recorded
    before it are still delivered; but for some keys it is secret too, so only a salted,
    non-reversible fingerprint of it is stored (:meth:`OutboxStore.fingerprint`).
    """
    project = _key_project(api_key)
    return base_url if project is None else f"{base_url}#key-{store.fingerprint(project)}"


def _close_at_exit(ref: weakref.ReferenceType[RemoteBackend]) -> None:
    backend = ref()
    if backend is not None:
        backend.close()


class _Delivery:
    """The network half of the outbox worker, done with the backend's sync client."""

    def __init__(self, backend: RemoteBackend) -> None:
        self._backend = backend

    def insert_body(self, user_id: UUID, body: dict[str, Any]) -> UUID:
        return self._backend._insert_body(user_id, body, wait_process=False).id

    def blob_ids(self, user_id: UUID) -> list[UUID]:
        found: list[UUID] = []
        for page in range(100):
            ids = self._backend.list_blobs(user_id, BlobType.chat, page=page, page_size=100)
            found.extend(ids)
            if len(ids) < 100:
                break
        return found

    def buffer_ids(self, user_id: UUID, status: str) -> list[UUID]:
        return self._backend._http.send(
            self._backend._capacity_request(user_id, BlobType.chat, status)
        )

    def blob_fields(self, user_id: UUID, blob_id: UUID) -> dict[str, Any] | None:
        try:
            return self._backend.get_blob(user_id, blob_id).fields or {}
        except errors.NotFoundError as exc:
            if rq.is_missing(exc):
                return None
            raise

    def delete_blob(self, user_id: UUID, blob_id: UUID) -> None:
        self._backend.delete_blob(user_id, blob_id)

    def flush_now(self, user_id: UUID) -> list[ChatModalResponse]:
        return self._backend._http.send(rq.flush_request(user_id, BlobType.chat, True))

    def notify_processed(self, user_id: UUID, results: Sequence[ChatModalResponse]) -> None:
        self._backend._notify(user_id, results)


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
        url = project_url or os.environ.get("MEMOBASE_PROJECT_URL")
        if not url:
            raise errors.ConfigurationError(
                "No Memobase server given. Pass project_url=... or set MEMOBASE_PROJECT_URL "
                "(https://api.memobase.dev for Memobase Cloud, or your server, e.g. "
                "http://localhost:8019)."
            )
        key = (api_key if api_key is not None else os.environ.get("MEMOBASE_API_KEY", "")).strip()
        if not key:
            raise errors.ConfigurationError(
                "No Memobase API key given. Pass api_key=... or set MEMOBASE_API_KEY (the "
                "project token sk-proj-... on Memobase Cloud; the server's ACCESS_TOKEN when "
                "self-hosted)."
            )
        if any(c.isspace() for c in key) or not key.isprintable():
            raise errors.ConfigurationError(
                "The Memobase API key contains spaces or control characters; copy the token "
                "again (it is one word, e.g. sk-proj-...)."
            )
        if timeout <= 0 or max_retries < 0 or read_deadline <= 0 or breaker_cooldown < 0:
            raise errors.ConfigurationError(
                "timeout and read_deadline must be > 0, breaker_cooldown and max_retries >= 0 "
                f"(got timeout={timeout!r}, read_deadline={read_deadline!r}, "
                f"breaker_cooldown={breaker_cooldown!r}, max_retries={max_retries!r})."
            )
        self.base_url = normalise_project_url(url)
        self._api_key = SecretStr(key)
        self.timeout = timeout
        self.policy = policy or FlushPolicy()
        self.auto_create_users = auto_create_users
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
        self._listeners: list[ProcessedListener] = []
        # Listeners run here, never on the caller's thread, an event loop or the outbox thread.
        self._notifier = SerialRunner("memobase-listeners")
        self._known_users: set[UUID] = set()
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

    # -- outbox plumbing --------------------------------------------------------------------
    def _open_store(self) -> OutboxStore:
        with self._lock:
            if self._store is None:
                store = OutboxStore(self._outbox_path)
                key = self._api_key.get_secret_value()
                self._scope = _scope(store, self.base_url, key)
                moved = store.rename_scope(_legacy_scope(self.base_url, key), self._scope)
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
                    store, self._scope, _Delivery(self), self.policy, self._guards
                )
            worker = self._worker
        worker.start()
        return worker

    def _notify(self, user_id: UUID, results: Sequence[ChatModalResponse]) -> None:
        """Tell the listeners, on the notifier thread: a listener may do blocking I/O (the
        facade's cache refresh reads the context), which must not run on the caller's
        thread, an event loop, or the outbox thread."""
        listeners = list(self._listeners)
        if not listeners:
            return
        snapshot = list(results)

        def run() -> None:
            for listener in listeners:
                try:
                    listener(user_id, snapshot)
                except Exception:  # a listener's bug must not break delivery
                    log.exception("A Memobase processed-listener failed for user %s", user_id)

        self._notifier.submit(run)

    @staticmethod
    def _turn_bodies(blobs: Sequence[Blob], turn_id: str) -> list[dict[str, Any]]:
        bodies = []
        for index, blob in enumerate(blobs):
            body = rq.blob_body(blob)
            body["fields"] = {**(body.get("fields") or {}), "turn_id": turn_id, "blob_index": index}
            bodies.append(body)
        return bodies

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
        self._listeners.append(listener)

    # -- health -----------------------------------------------------------------------------
    def healthcheck(self) -> None:
        """``GET /healthcheck``; raises a typed error when the server is not healthy."""
        self._http.send(Request(rq.HEALTHCHECK, rq.parse_none))

    async def ahealthcheck(self) -> None:
        await self._http.asend(Request(rq.HEALTHCHECK, rq.parse_none))

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
        created = self._http.send(rq.create_user_request(user_id, data))
        self._remember(created)
        return created

    async def acreate_user(
        self, user_id: UUID | None = None, data: dict[str, Any] | None = None
    ) -> UUID:
        created = await self._http.asend(rq.create_user_request(user_id, data))
        self._remember(created)
        return created

    def get_user(self, user_id: UUID) -> UserData:
        """``GET /users/{id}`` (raises :class:`NotFoundError` for an unknown user)."""
        return self._http.send(rq.get_user_request(user_id))

    async def aget_user(self, user_id: UUID) -> UserData:
        return await self._http.asend(rq.get_user_request(user_id))

    def get_or_create_user(self, user_id: UUID, data: dict[str, Any] | None = None) -> UserData:
        """Get the user, creating it (with ``data``) if missing; a concurrent create by
        another client (the server's duplicate-key error) counts as "exists"."""
        try:
            user = self.get_user(user_id)
        except errors.NotFoundError as exc:
            if not rq.is_missing(exc):
                raise
            try:
                self._http.send(rq.create_user_request(user_id, data))
            except errors.ServerError as create_exc:
                if not rq.is_duplicate_user(create_exc):
                    raise
            user = UserData(id=user_id, data=data)
        self._remember(user_id)
        return user

    async def aget_or_create_user(
        self, user_id: UUID, data: dict[str, Any] | None = None
    ) -> UserData:
        try:
            user = await self.aget_user(user_id)
        except errors.NotFoundError as exc:
            if not rq.is_missing(exc):
                raise
            try:
                await self._http.asend(rq.create_user_request(user_id, data))
            except errors.ServerError as create_exc:
                if not rq.is_duplicate_user(create_exc):
                    raise
            user = UserData(id=user_id, data=data)
        self._remember(user_id)
        return user

    def _remember(self, user_id: UUID) -> None:
        with self._lock:
            self._known_users.add(user_id)

    def _forget(self, user_id: UUID) -> None:
        with self._lock:
            self._known_users.discard(user_id)

    def _known(self, user_id: UUID) -> bool:
        with self._lock:
            return user_id in self._known_users

    def ensure_user(self, user_id: UUID, data: dict[str, Any] | None = None) -> None:
        """Make sure the user exists (one GET the first time per backend, then cached)."""
        if not self._known(user_id):
            self.get_or_create_user(user_id, data)

    async def aensure_user(self, user_id: UUID, data: dict[str, Any] | None = None) -> None:
        if not self._known(user_id):
            await self.aget_or_create_user(user_id, data)

    def update_user(self, user_id: UUID, data: dict[str, Any]) -> UUID:
        """Replace the user's data with ``data`` (sent as the body itself, not nested)."""
        return self._http.send(
            Request(rq.UPDATE_USER, rq.parse_id, rq.user_path(user_id), json=data)
        )

    async def aupdate_user(self, user_id: UUID, data: dict[str, Any]) -> UUID:
        return await self._http.asend(
            Request(rq.UPDATE_USER, rq.parse_id, rq.user_path(user_id), json=data)
        )

    def delete_user(self, user_id: UUID) -> bool:
        """Forget the user: its undelivered outbox turns here, and on the server its profile,
        events, gists, blobs and buffers. A user the server does not know is not an error;
        returns ``False`` when there was nothing to forget (here or on the server)."""
        with self._guards.hold(user_id):
            store = self._existing_store()
            local = store.delete_user(self._scope, user_id) if store is not None else 0
            self._forget(user_id)
            try:
                self._http.send(Request(rq.DELETE_USER, rq.parse_none, rq.user_path(user_id)))
            except errors.NotFoundError as exc:
                if not rq.is_missing(exc):
                    raise
                return local > 0
            return True

    async def adelete_user(self, user_id: UUID) -> bool:
        async with self._guards.ahold(user_id):
            store = await asyncio.to_thread(self._existing_store)
            local = 0
            if store is not None:
                local = await asyncio.to_thread(store.delete_user, self._scope, user_id)
            self._forget(user_id)
            try:
                await self._http.asend(
                    Request(rq.DELETE_USER, rq.parse_none, rq.user_path(user_id))
                )
            except errors.NotFoundError as exc:
                if not rq.is_missing(exc):
                    raise
                return local > 0
            return True

    # -- blobs ------------------------------------------------------------------------------
    def _insert_body(
        self, user_id: UUID, body: dict[str, Any], *, wait_process: bool
    ) -> BlobInsertData:
        if self.auto_create_users:
            self.ensure_user(user_id)
        try:
            result = self._http.send(rq.insert_request(user_id, body, wait_process))
        except errors.ServerError as exc:
            # The user was deleted behind our cache (another client): create it, insert again.
            # Safe: a foreign-key failure means nothing was stored.
            if not (self.auto_create_users and rq.is_missing_user(exc)):
                raise
            self._forget(user_id)
            self.ensure_user(user_id)
            result = self._http.send(rq.insert_request(user_id, body, wait_process))
        if result.chat_results:
            self._notify(user_id, result.chat_results)
        return result

    async def _ainsert_body(
        self, user_id: UUID, body: dict[str, Any], *, wait_process: bool
    ) -> BlobInsertData:
        if self.auto_create_users:
            await self.aensure_user(user_id)
        try:
            result = await self._http.asend(rq.insert_request(user_id, body, wait_process))
        except errors.ServerError as exc:
            if not (self.auto_create_users and rq.is_missing_user(exc)):
                raise
            self._forget(user_id)
            await self.aensure_user(user_id)
            result = await self._http.asend(rq.insert_request(user_id, body, wait_process))
        if result.chat_results:
            self._notify(user_id, result.chat_results)
        return result

    def insert(
        self, user_id: UUID, blob: Blob | BlobData, *, wait_process: bool = False
    ) -> BlobInsertData:
        """``POST /blobs/insert`` now (not through the outbox). With ``wait_process`` the
        server processes inline when the buffer passed its threshold (``chat_results``)."""
        return self._insert_body(user_id, rq.blob_body(blob), wait_process=wait_process)

    async def ainsert(
        self, user_id: UUID, blob: Blob | BlobData, *, wait_process: bool = False
    ) -> BlobInsertData:
        return await self._ainsert_body(user_id, rq.blob_body(blob), wait_process=wait_process)

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
    def _capacity_request(
        self, user_id: UUID, blob_type: BlobType, status: str | None
    ) -> Request[list[UUID]]:
        return Request(
            rq.CAPACITY,
            rq.parse_ids,
            {"user_id": str(user_id), "buffer_type": str(blob_type)},
            encode_query([("status", rq.differs(status, "processing"))]),
        )

    def buffer_capacity(
        self,
        user_id: UUID,
        blob_type: BlobType = BlobType.chat,
        status: BufferStatus | None = "idle",
    ) -> list[UUID]:
        """Ids of the user's buffer rows (not blob ids) in a status (``None``: the server's
        default, ``processing``)."""
        return self._http.send(self._capacity_request(user_id, blob_type, status))

    async def abuffer_capacity(
        self,
        user_id: UUID,
        blob_type: BlobType = BlobType.chat,
        status: BufferStatus | None = "idle",
    ) -> list[UUID]:
        return await self._http.asend(self._capacity_request(user_id, blob_type, status))

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

    async def aflush(
        self, user_id: UUID, blob_type: BlobType = BlobType.chat, *, wait: bool = True
    ) -> list[ChatModalResponse]:
        worker = await asyncio.to_thread(self._outbox_worker, blob_type)
        if worker is not None:
            return await asyncio.wrap_future(worker.request_flush(user_id, wait))
        async with self._guards.ahold(user_id):
            results = await self._http.asend(rq.flush_request(user_id, blob_type, wait))
        if wait:
            self._notify(user_id, results)
        return results

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
        params = rq.search_params(query, topk, similarity_threshold, time_range_in_days)
        return self._http.send(
            Request(
                rq.SEARCH_EVENTS,
                rq.parse_list("events", rq.EVENT_LIST),
                rq.user_path(user_id),
                params,
            )
        )

    async def asearch_events(
        self,
        user_id: UUID,
        query: str,
        topk: int = 10,
        similarity_threshold: float = 0.2,
        time_range_in_days: int = 180,
    ) -> list[UserEvent]:
        params = rq.search_params(query, topk, similarity_threshold, time_range_in_days)
        return await self._http.asend(
            Request(
                rq.SEARCH_EVENTS,
                rq.parse_list("events", rq.EVENT_LIST),
                rq.user_path(user_id),
                params,
            )
        )

    def search_gists(
        self,
        user_id: UUID,
        query: str,
        topk: int = 10,
        similarity_threshold: float = 0.2,
        time_range_in_days: int = 180,
    ) -> list[EventGist]:
        params = rq.search_params(query, topk, similarity_threshold, time_range_in_days)
        return self._http.send(
            Request(
                rq.SEARCH_GISTS, rq.parse_list("gists", rq.GIST_LIST), rq.user_path(user_id), params
            )
        )

    async def asearch_gists(
        self,
        user_id: UUID,
        query: str,
        topk: int = 10,
        similarity_threshold: float = 0.2,
        time_range_in_days: int = 180,
    ) -> list[EventGist]:
        params = rq.search_params(query, topk, similarity_threshold, time_range_in_days)
        return await self._http.asend(
            Request(
                rq.SEARCH_GISTS, rq.parse_list("gists", rq.GIST_LIST), rq.user_path(user_id), params
            )
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
    def _add_profile_request(
        self, user_id: UUID, content: str, topic: str, sub_topic: str
    ) -> Request[UUID]:
        body = rq.profile_body(content, topic, sub_topic)
        return Request(rq.ADD_PROFILE, rq.parse_id, rq.user_path(user_id), json=body)

    def add_profile(self, user_id: UUID, content: str, topic: str, sub_topic: str) -> UUID:
        """Add a profile row as given (the server does not normalise the names)."""
        if self.auto_create_users:
            self.ensure_user(user_id)
        return self._http.send(self._add_profile_request(user_id, content, topic, sub_topic))

    async def aadd_profile(self, user_id: UUID, content: str, topic: str, sub_topic: str) -> UUID:
        if self.auto_create_users:
            await self.aensure_user(user_id)
        return await self._http.asend(self._add_profile_request(user_id, content, topic, sub_topic))

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
        self._http.send(
            Request(
                rq.IMPORT_PROFILE, rq.parse_none, rq.user_path(user_id), json={"context": context}
            )
        )

    async def aimport_profile(self, user_id: UUID, context: str) -> None:
        await self._http.asend(
            Request(
                rq.IMPORT_PROFILE, rq.parse_none, rq.user_path(user_id), json={"context": context}
            )
        )

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
        return self._http.send(Request(rq.GET_CONFIG, rq.parse_config))

    async def aget_profile_config(self) -> str:
        return await self._http.asend(Request(rq.GET_CONFIG, rq.parse_config))

    def set_profile_config(self, config_yaml: str | None) -> None:
        """Set (``None``: reset) the project's profile config; the server validates it."""
        self._http.send(Request(rq.SET_CONFIG, rq.parse_none, json={"profile_config": config_yaml}))

    async def aset_profile_config(self, config_yaml: str | None) -> None:
        await self._http.asend(
            Request(rq.SET_CONFIG, rq.parse_none, json={"profile_config": config_yaml})
        )

    def usage(self) -> ProjectBilling:
        """``GET /project/billing``: tokens left this month and this month's cost."""
        return self._http.send(Request(rq.BILLING, ProjectBilling.model_validate))

    async def ausage(self) -> ProjectBilling:
        return await self._http.asend(Request(rq.BILLING, ProjectBilling.model_validate))

    def daily_usage(self, last_days: int = 7) -> list[DailyUsage]:
        params = encode_query([("last_days", rq.differs(last_days, 7))])
        return self._http.send(Request(rq.USAGE, rq.USAGE_LIST.validate_python, params=params))

    async def adaily_usage(self, last_days: int = 7) -> list[DailyUsage]:
        params = encode_query([("last_days", rq.differs(last_days, 7))])
        return await self._http.asend(
            Request(rq.USAGE, rq.USAGE_LIST.validate_python, params=params)
        )

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

    def failures(self, user_id: UUID | None = None) -> list[OutboxFailure]:
        """Every undelivered turn whose last attempt failed, with the error text."""
        store = self._existing_store()
        return [] if store is None else store.failures(self._scope, user_id)

    async def afailures(self, user_id: UUID | None = None) -> list[OutboxFailure]:
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

    def _export(
        self,
        user: UserData | None,
        profile: list[Profile],
        events: list[UserEvent],
        blobs: list[tuple[UUID, BlobData]],
        user_id: UUID,
    ) -> dict[str, Any]:
        store = self._existing_store()
        undelivered = [] if store is None else store.undelivered(self._scope, user_id)
        return {
            "user_id": str(user_id),
            "backend": "remote",
            "user": None if user is None else user.model_dump(mode="json"),
            "profile": [p.model_dump(mode="json") for p in profile],
            "events": [e.model_dump(mode="json") for e in events],
            "buffered_blobs": [
                {"id": str(bid), **blob.model_dump(mode="json")} for bid, blob in blobs
            ],
            "undelivered_turns": [t.to_json() for t in undelivered],
        }

    def export_user(self, user_id: UUID) -> dict[str, Any]:
        """Everything kept about the user, JSON-ready: the user's data, profile, events (the
        server's 21-day window), blobs still stored on the server and undelivered turns."""
        try:
            user: UserData | None = self.get_user(user_id)
        except errors.NotFoundError as exc:
            if not rq.is_missing(exc):
                raise
            user = None
        profile = self.profile(user_id, ProfileOptions())
        events = self.events(user_id, topk=1000)
        blobs: list[tuple[UUID, BlobData]] = []
        for blob_type in (BlobType.chat, BlobType.summary):
            for page in range(100):
                ids = self.list_blobs(user_id, blob_type, page=page, page_size=100)
                blobs.extend((bid, self.get_blob(user_id, bid)) for bid in ids)
                if len(ids) < 100:
                    break
        return self._export(user, profile, events, blobs, user_id)

    async def aexport_user(self, user_id: UUID) -> dict[str, Any]:
        try:
            user: UserData | None = await self.aget_user(user_id)
        except errors.NotFoundError as exc:
            if not rq.is_missing(exc):
                raise
            user = None
        profile = await self.aprofile(user_id, ProfileOptions())
        events = await self.aevents(user_id, topk=1000)
        blobs: list[tuple[UUID, BlobData]] = []
        for blob_type in (BlobType.chat, BlobType.summary):
            for page in range(100):
                ids = await self.alist_blobs(user_id, blob_type, page=page, page_size=100)
                for bid in ids:
                    blobs.append((bid, await self.aget_blob(user_id, bid)))
                if len(ids) < 100:
                    break
        return await asyncio.to_thread(self._export, user, profile, events, blobs, user_id)

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
        self._notifier.stop(max(1.0, end - time.monotonic()))

    async def aclose(self, timeout: float | None = None) -> None:
        if self._closed:
            return
        self._closed = True
        atexit.unregister(self._atexit_hook)
        await asyncio.to_thread(self._shutdown, timeout)
        await self._http.aclose()
        if self._store is not None:
            self._store.close()
