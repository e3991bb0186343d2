"""The remote backend's side of the outbox: which rows are whose, and the network half of
the delivery worker.

The worker (:mod:`.outbox`) decides what to send and when; :class:`Delivery` sends it with
the backend's sync client. The scope tells apart servers and projects that share one
outbox file without writing any part of a key into it.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any
from uuid import UUID

from .. import errors
from ..background import SerialRunner
from ..models import Blob, BlobType, ChatModalResponse
from . import remote_requests as rq
from .base import ProcessedListener
from .outbox_store import OutboxStore

if TYPE_CHECKING:
    from .remote import RemoteBackend

__all__ = ["Delivery", "Listeners", "legacy_scope", "outbox_scope", "turn_bodies"]

log = logging.getLogger(__name__)

#: Blob ids listed per page when the worker searches a user's chat blobs.
_PAGE = 100


def _key_project(api_key: str) -> str | None:
    """The part of a ``sk-<project>-<secret>`` key that names the project (``None`` for other
    keys). Not safe to store: for some keys it is part of the secret."""
    if api_key.startswith("sk-") and "-" in api_key[3:]:
        return api_key[3:].rsplit("-", 1)[0]
    return None


def legacy_scope(base_url: str, api_key: str) -> str:
    """The scope versions before 0.2 wrote, with that key part in clear (see
    :func:`outbox_scope`); rows under it are moved on open."""
    project = _key_project(api_key)
    return base_url if project is None else f"{base_url}#{project}"


def outbox_scope(store: OutboxStore, base_url: str, api_key: str) -> str:
    """Which server and project outbox rows belong to: URL plus a fingerprint of the key's
    project part.

    Memobase Cloud serves every project at one URL and tells them apart by the key
    (``sk-<project>-<secret>``). The project part survives a key rotation, so rows recorded
    before it are still delivered; but for some keys it is secret too, so only a salted,
    non-reversible fingerprint of it is stored (:meth:`OutboxStore.fingerprint`).
    """
    project = _key_project(api_key)
    return base_url if project is None else f"{base_url}#key-{store.fingerprint(project)}"


class Delivery:
    """The network operations of the outbox worker (:class:`.outbox.DeliveryClient`), done
    with the backend's sync client and its policies (user creation, listeners)."""

    def __init__(self, backend: RemoteBackend) -> None:
        self._backend = backend

    def insert_body(self, user_id: UUID, body: dict[str, Any]) -> UUID:
        return self._backend._insert_body(user_id, body, wait_process=False).id

    def blob_ids(self, user_id: UUID) -> list[UUID]:
        return list_all(lambda page: self._backend.list_blobs(user_id, page=page, page_size=_PAGE))

    def buffer_ids(self, user_id: UUID, status: str) -> list[UUID]:
        return self._backend._http.send(rq.capacity_request(user_id, BlobType.chat, status))

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


def list_all(page_of: Callable[[int], list[UUID]], pages: int = 100) -> list[UUID]:
    """Every id of a paged listing (at most ``pages`` pages of :data:`_PAGE`)."""
    found: list[UUID] = []
    for page in range(pages):
        ids = page_of(page)
        found.extend(ids)
        if len(ids) < _PAGE:
            break
    return found


def turn_bodies(blobs: Sequence[Blob], turn_id: str) -> list[dict[str, Any]]:
    """The insert bodies of a turn's blobs, each tagged ``fields = {turn_id, blob_index}``:
    how the worker recognises a blob whose insert answer was lost (see :mod:`.outbox`)."""
    bodies = []
    for index, blob in enumerate(blobs):
        body = rq.blob_body(blob)
        body["fields"] = {**(body.get("fields") or {}), "turn_id": turn_id, "blob_index": index}
        bodies.append(body)
    return bodies


class Listeners:
    """The backend's processed-listeners, run on a thread of their own (a
    :class:`~memobase_integrations.background.SerialRunner`), never on the caller's thread,
    an event loop or the outbox thread: a listener may do blocking I/O."""

    def __init__(self) -> None:
        self._listeners: list[ProcessedListener] = []
        self._runner = SerialRunner("memobase-listeners")

    def add(self, listener: ProcessedListener) -> None:
        self._listeners.append(listener)

    def notify(self, user_id: UUID, results: Sequence[ChatModalResponse]) -> None:
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

        self._runner.submit(run)

    def stop(self, timeout: float) -> None:
        """Let the listeners hear of what is queued (within ``timeout``), then end the thread."""
        self._runner.stop(timeout)
