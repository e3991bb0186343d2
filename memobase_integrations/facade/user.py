"""``UserMemory``: one user's memory, the surface apps and adapters call per user
(recording, reading, profile and event edits, the user's data, failures), each with its
async twin."""

from __future__ import annotations

import logging
import uuid
from collections.abc import Iterable, Sequence
from typing import Any, Unpack

from ..arguments import check_bool, check_count, check_json, check_options, check_uuid
from ..backends.base import Backend
from ..errors import ConfigurationError
from ..ids import check_turn_id, to_user_uuid
from ..messages import turn_to_blobs
from ..models import (
    Blob,
    BlobData,
    BlobInsertData,
    BlobType,
    ChatModalResponse,
    EventData,
    EventGist,
    Profile,
    UserData,
    UserEvent,
)
from ..values import (
    BufferStatus,
    ContextKwargs,
    ContextOptions,
    FailedTurn,
    MemoryStatus,
    ProfileKwargs,
    RecordReceipt,
    SearchKwargs,
)
from .checks import (
    MessageLike,
    blob_page,
    buffer_args,
    checked_blob,
    checked_chats,
    event_update,
    flush_args,
    profile_options,
    profile_row,
    profile_update,
    search_args,
    tag_search,
)
from .client import Memobase
from .context_cache import FALLBACK_ERRORS

__all__ = ["UserMemory"]

log = logging.getLogger(__name__)


class UserMemory:
    """One user's memory. Cheap to create; holds only the mapped id and the facade."""

    def __init__(self, memobase: Memobase, user_id: str | uuid.UUID) -> None:
        if not isinstance(memobase, Memobase):
            raise ConfigurationError(
                f"UserMemory() needs a Memobase, got {type(memobase).__name__}; use "
                "Memobase.user(user_id)."
            )
        self.memobase = memobase
        self.external_id = str(user_id)
        self.id = to_user_uuid(user_id)

    @property
    def _backend(self) -> Backend:
        return self.memobase.backend

    def __repr__(self) -> str:
        return f"UserMemory(id={self.id}, external_id={self.external_id!r})"

    # -- recording ----------------------------------------------------------------------------
    def _blobs(self, messages: Iterable[MessageLike], turn_id: str | None) -> tuple[Any, str]:
        turn = str(uuid.uuid4()) if turn_id is None else check_turn_id(turn_id)
        blobs = turn_to_blobs(
            messages,
            max_blob_tokens=self.memobase.max_blob_tokens,
            max_turn_chars=self.memobase.max_turn_chars,
            fields={"turn_id": turn},
        )
        return blobs, turn

    def record(
        self, messages: Iterable[MessageLike], *, turn_id: str | None = None
    ) -> RecordReceipt:
        """Durably record a finished turn; processing happens later in the background.

        Pass a stable ``turn_id`` (e.g. your framework's run id) to make replays no-ops.
        Returns without any network or LLM call.

        Raises :class:`InvalidMessageError` for a turn that cannot be recorded (not a list of
        messages, a wrong type, more than ``max_turn_chars`` of text, a ``turn_id`` that is
        not a non-empty str of at most 255 characters or holds U+0000 / a lone surrogate).
        Such characters in message *text* are replaced by U+FFFD instead (see
        :mod:`.text_policy`).
        """
        blobs, turn = self._blobs(messages, turn_id)
        return self._backend.record(self.id, blobs, turn)

    async def arecord(
        self, messages: Iterable[MessageLike], *, turn_id: str | None = None
    ) -> RecordReceipt:
        blobs, turn = self._blobs(messages, turn_id)
        return await self._backend.arecord(self.id, blobs, turn)

    def insert(self, blob: Blob, *, wait_process: bool = False) -> BlobInsertData:
        """The seed endpoint's semantics: store, buffer, and process inline when over the
        threshold and ``wait_process`` is true (``chat_results`` says what happened)."""
        where = "UserMemory.insert()"
        wait = check_bool(wait_process, "wait_process", where)
        result = self._backend.insert(self.id, checked_blob(blob, where), wait_process=wait)
        if result.chat_results:
            self.memobase._processed(self.id)
        return result

    async def ainsert(self, blob: Blob, *, wait_process: bool = False) -> BlobInsertData:
        where = "UserMemory.ainsert()"
        wait = check_bool(wait_process, "wait_process", where)
        checked = checked_blob(blob, where)
        result = await self._backend.ainsert(self.id, checked, wait_process=wait)
        if result.chat_results:
            self.memobase._processed(self.id)
        return result

    def get_blob(self, blob_id: uuid.UUID) -> BlobData:
        blob = check_uuid(blob_id, "blob_id", "UserMemory.get_blob()")
        return self._backend.get_blob(self.id, blob)

    async def aget_blob(self, blob_id: uuid.UUID) -> BlobData:
        blob = check_uuid(blob_id, "blob_id", "UserMemory.aget_blob()")
        return await self._backend.aget_blob(self.id, blob)

    def flush(
        self, blob_type: BlobType = BlobType.chat, *, wait: bool = True
    ) -> list[ChatModalResponse]:
        """Process everything buffered for this user now."""
        blob_kind, wait_ = flush_args(blob_type, wait, "UserMemory.flush()")
        results = self._backend.flush(self.id, blob_kind, wait=wait_)
        if wait_:
            # Listeners may hear of it on another thread later; the next read of this
            # caller must not be served from before the flush.
            self.memobase._processed(self.id)
        return results

    async def aflush(
        self, blob_type: BlobType = BlobType.chat, *, wait: bool = True
    ) -> list[ChatModalResponse]:
        blob_kind, wait_ = flush_args(blob_type, wait, "UserMemory.aflush()")
        results = await self._backend.aflush(self.id, blob_kind, wait=wait_)
        if wait_:
            self.memobase._processed(self.id)
        return results

    # -- reading ------------------------------------------------------------------------------
    def _context_options(
        self, chats: Sequence[MessageLike] | None, options: dict[str, Any], where: str
    ) -> ContextOptions:
        return check_options(ContextOptions, options, where, chats=checked_chats(chats, where))

    def context(
        self,
        /,
        max_token_size: int = 1000,
        *,
        chats: Sequence[MessageLike] | None = None,
        **options: Unpack[ContextKwargs],
    ) -> str:
        """The memory text to put in a prompt (profile + events), cached until the next
        processing of this user finishes. See :class:`ContextOptions` for the options."""
        opts = self._context_options(
            chats, {"max_token_size": max_token_size, **options}, "UserMemory.context()"
        )
        cache = self.memobase._cache
        key = opts.cache_key() if opts.chats is None else None
        if key is not None and (hit := cache.get(self.id, key)) is not None:
            return hit
        generation = cache.generation(self.id)
        try:
            value = self._backend.context(self.id, opts)
        except FALLBACK_ERRORS as exc:
            return self._stale_or_raise(key, exc)
        if key is not None:
            cache.put(self.id, opts, value, generation)
        return value

    def _stale_or_raise(self, key: tuple[Any, ...] | None, exc: Exception) -> str:
        """The last known context when the backend is down or failing; else the error."""
        stale = None if key is None else self.memobase._cache.get_stale(self.id, key)
        if stale is None:
            raise exc
        log.info("memobase: serving the last known context of %s (backend failed: %s)", self, exc)
        return stale

    def cached_context(
        self,
        /,
        max_token_size: int = 1000,
        *,
        chats: Sequence[MessageLike] | None = None,
        **options: Unpack[ContextKwargs],
    ) -> str | None:
        """The context :meth:`context` would return, if it is cached; ``None`` otherwise.

        Never does I/O, so callers that must bound a real read (with a timeout thread, say)
        can skip that machinery for the common warm case.
        """
        opts = self._context_options(
            chats, {"max_token_size": max_token_size, **options}, "UserMemory.cached_context()"
        )
        if opts.chats is not None:
            return None
        return self.memobase._cache.get(self.id, opts.cache_key())

    async def acontext(
        self,
        /,
        max_token_size: int = 1000,
        *,
        chats: Sequence[MessageLike] | None = None,
        **options: Unpack[ContextKwargs],
    ) -> str:
        opts = self._context_options(
            chats, {"max_token_size": max_token_size, **options}, "UserMemory.acontext()"
        )
        cache = self.memobase._cache
        key = opts.cache_key() if opts.chats is None else None
        if key is not None and (hit := cache.get(self.id, key)) is not None:
            return hit
        generation = cache.generation(self.id)
        try:
            value = await self._backend.acontext(self.id, opts)
        except FALLBACK_ERRORS as exc:
            return self._stale_or_raise(key, exc)
        if key is not None:
            cache.put(self.id, opts, value, generation)
        return value

    def profile(self, /, **options: Unpack[ProfileKwargs]) -> list[Profile]:
        """The structured profile rows (``topic/sub_topic/content``); see ProfileOptions."""
        return self._backend.profile(self.id, profile_options(options, "UserMemory.profile()"))

    async def aprofile(self, /, **options: Unpack[ProfileKwargs]) -> list[Profile]:
        opts = profile_options(options, "UserMemory.aprofile()")
        return await self._backend.aprofile(self.id, opts)

    def events(self, topk: int = 10, max_token_size: int | None = None) -> list[UserEvent]:
        """The newest events (the timeline), newest first."""
        where = "UserMemory.events()"
        limit = check_count(topk, "topk", where)
        budget = check_count(max_token_size, "max_token_size", where, optional=True)
        return self._backend.events(self.id, limit, budget)

    async def aevents(self, topk: int = 10, max_token_size: int | None = None) -> list[UserEvent]:
        where = "UserMemory.aevents()"
        limit = check_count(topk, "topk", where)
        budget = check_count(max_token_size, "max_token_size", where, optional=True)
        return await self._backend.aevents(self.id, limit, budget)

    def search_events(
        self, /, query: str, topk: int = 10, **options: Unpack[SearchKwargs]
    ) -> list[UserEvent]:
        """Events closest to ``query``: by words, and by vectors when embeddings are on (a
        Memobase server needs embeddings). Options: ``similarity_threshold`` (0.2),
        ``time_range_in_days`` (180)."""
        q, k, opts = search_args(query, topk, options, "UserMemory.search_events()")
        return self._backend.search_events(self.id, q, k, **opts)

    async def asearch_events(
        self, /, query: str, topk: int = 10, **options: Unpack[SearchKwargs]
    ) -> list[UserEvent]:
        q, k, opts = search_args(query, topk, options, "UserMemory.asearch_events()")
        return await self._backend.asearch_events(self.id, q, k, **opts)

    def search_gists(
        self, /, query: str, topk: int = 10, **options: Unpack[SearchKwargs]
    ) -> list[EventGist]:
        """Event gists closest to ``query``; as :meth:`search_events`."""
        q, k, opts = search_args(query, topk, options, "UserMemory.search_gists()")
        return self._backend.search_gists(self.id, q, k, **opts)

    async def asearch_gists(
        self, /, query: str, topk: int = 10, **options: Unpack[SearchKwargs]
    ) -> list[EventGist]:
        q, k, opts = search_args(query, topk, options, "UserMemory.asearch_gists()")
        return await self._backend.asearch_gists(self.id, q, k, **opts)

    # -- profile writes -----------------------------------------------------------------------
    def add_profile(self, content: str, topic: str, sub_topic: str) -> uuid.UUID:
        """Add a profile row; ``topic`` and ``sub_topic`` must be non-blank."""
        args = profile_row(content, topic, sub_topic, "UserMemory.add_profile()")
        profile_id = self._backend.add_profile(self.id, *args)
        self.memobase._cache.invalidate(self.id)
        return profile_id

    async def aadd_profile(self, content: str, topic: str, sub_topic: str) -> uuid.UUID:
        args = profile_row(content, topic, sub_topic, "UserMemory.aadd_profile()")
        profile_id = await self._backend.aadd_profile(self.id, *args)
        self.memobase._cache.invalidate(self.id)
        return profile_id

    def update_profile(
        self,
        profile_id: uuid.UUID,
        content: str,
        topic: str | None = None,
        sub_topic: str | None = None,
    ) -> None:
        """Replace a profile row's content (and its topic / sub_topic when given).

        The embedded engine raises :class:`NotFoundError` when the user has no such row. A
        Memobase server answers success for a missing id and changes nothing (it gives no
        way to tell without an extra read), so with a server check ``profile()`` if it
        matters."""
        args = profile_update(profile_id, content, topic, sub_topic, "UserMemory.update_profile()")
        self._backend.update_profile(self.id, *args)
        self.memobase._cache.invalidate(self.id)

    async def aupdate_profile(
        self,
        profile_id: uuid.UUID,
        content: str,
        topic: str | None = None,
        sub_topic: str | None = None,
    ) -> None:
        where = "UserMemory.aupdate_profile()"
        args = profile_update(profile_id, content, topic, sub_topic, where)
        await self._backend.aupdate_profile(self.id, *args)
        self.memobase._cache.invalidate(self.id)

    def delete_profile(self, profile_id: uuid.UUID) -> None:
        """Delete a profile row; :class:`NotFoundError` when the user has no such row."""
        self._backend.delete_profile(
            self.id, check_uuid(profile_id, "profile_id", "UserMemory.delete_profile()")
        )
        self.memobase._cache.invalidate(self.id)

    async def adelete_profile(self, profile_id: uuid.UUID) -> None:
        await self._backend.adelete_profile(
            self.id, check_uuid(profile_id, "profile_id", "UserMemory.adelete_profile()")
        )
        self.memobase._cache.invalidate(self.id)

    def delete_event(self, event_id: uuid.UUID) -> None:
        """Delete an event; :class:`NotFoundError` when the user has no such event."""
        self._backend.delete_event(
            self.id, check_uuid(event_id, "event_id", "UserMemory.delete_event()")
        )
        self.memobase._cache.invalidate(self.id)

    async def adelete_event(self, event_id: uuid.UUID) -> None:
        await self._backend.adelete_event(
            self.id, check_uuid(event_id, "event_id", "UserMemory.adelete_event()")
        )
        self.memobase._cache.invalidate(self.id)

    def update_event(self, event_id: uuid.UUID, data: EventData | dict[str, Any]) -> None:
        """Merge ``data``'s non-null keys (``event_tip``, ``event_tags``, ``profile_delta``)
        into the event. Its embedding and gists stay as they were, as on the server."""
        args = event_update(event_id, data, "UserMemory.update_event()")
        self._backend.update_event(self.id, *args)
        self.memobase._cache.invalidate(self.id)

    async def aupdate_event(self, event_id: uuid.UUID, data: EventData | dict[str, Any]) -> None:
        args = event_update(event_id, data, "UserMemory.aupdate_event()")
        await self._backend.aupdate_event(self.id, *args)
        self.memobase._cache.invalidate(self.id)

    def search_events_by_tags(
        self,
        tags: Sequence[str] | None = None,
        tag_values: dict[str, str] | None = None,
        topk: int = 10,
    ) -> list[UserEvent]:
        """The newest events that carry every tag in ``tags`` (any value) and exactly the
        ``tag_values`` (e.g. ``{"emotion": "happy"}``). Needs no embeddings."""
        args = tag_search(tags, tag_values, topk, "UserMemory.search_events_by_tags()")
        return self._backend.search_events_by_tags(self.id, *args)

    async def asearch_events_by_tags(
        self,
        tags: Sequence[str] | None = None,
        tag_values: dict[str, str] | None = None,
        topk: int = 10,
    ) -> list[UserEvent]:
        args = tag_search(tags, tag_values, topk, "UserMemory.asearch_events_by_tags()")
        return await self._backend.asearch_events_by_tags(self.id, *args)

    # -- the user's own data, blobs and buffer --------------------------------------------------
    def info(self) -> UserData:
        """The user's data and timestamps (:class:`~.errors.NotFoundError` if unknown)."""
        return self._backend.get_user(self.id)

    async def ainfo(self) -> UserData:
        return await self._backend.aget_user(self.id)

    def update_data(self, data: dict[str, Any]) -> None:
        """Replace the user's data (the JSON object given to :meth:`Memobase.add_user`)."""
        self._backend.update_user(self.id, check_json(data, "data", "UserMemory.update_data()"))

    async def aupdate_data(self, data: dict[str, Any]) -> None:
        checked = check_json(data, "data", "UserMemory.aupdate_data()")
        await self._backend.aupdate_user(self.id, checked)

    def list_blobs(
        self, blob_type: BlobType = BlobType.chat, *, page: int = 0, page_size: int = 10
    ) -> list[uuid.UUID]:
        """Ids of the user's stored blobs, oldest first. Processed chat blobs are deleted,
        so for chat these are the turns still waiting to be processed."""
        kind, first, size = blob_page(blob_type, page, page_size, "UserMemory.list_blobs()")
        return self._backend.list_blobs(self.id, kind, page=first, page_size=size)

    async def alist_blobs(
        self, blob_type: BlobType = BlobType.chat, *, page: int = 0, page_size: int = 10
    ) -> list[uuid.UUID]:
        kind, first, size = blob_page(blob_type, page, page_size, "UserMemory.alist_blobs()")
        return await self._backend.alist_blobs(self.id, kind, page=first, page_size=size)

    def delete_blob(self, blob_id: uuid.UUID) -> None:
        """Delete one stored blob (and its buffered turn); a missing blob is not an error."""
        self._backend.delete_blob(self.id, check_uuid(blob_id, "blob_id", "delete_blob()"))

    async def adelete_blob(self, blob_id: uuid.UUID) -> None:
        await self._backend.adelete_blob(
            self.id, check_uuid(blob_id, "blob_id", "UserMemory.adelete_blob()")
        )

    def buffer(
        self, blob_type: BlobType = BlobType.chat, status: BufferStatus = "idle"
    ) -> list[uuid.UUID]:
        """Ids of the user's buffered blobs in a state: ``idle`` (waiting), ``processing``,
        ``failed`` (waiting for a retry) or ``done``. Embedded: blob ids; a server answers
        ids of its buffer rows."""
        kind, state = buffer_args(blob_type, status, "UserMemory.buffer()")
        return self._backend.buffer_capacity(self.id, kind, state)

    async def abuffer(
        self, blob_type: BlobType = BlobType.chat, status: BufferStatus = "idle"
    ) -> list[uuid.UUID]:
        kind, state = buffer_args(blob_type, status, "UserMemory.abuffer()")
        return await self._backend.abuffer_capacity(self.id, kind, state)

    # -- whole user ---------------------------------------------------------------------------
    def delete(self) -> bool:
        """Forget this user: profile, events, gists and every turn not yet processed.

        Idempotent. Returns ``True`` when something was forgotten, ``False`` when nothing
        was stored for this user (so callers can say "nothing to forget")."""
        found = self._backend.delete_user(self.id)
        self.memobase._cache.forget(self.id)
        return bool(found)

    async def adelete(self) -> bool:
        found = await self._backend.adelete_user(self.id)
        self.memobase._cache.forget(self.id)
        return bool(found)

    def export(self) -> dict[str, Any]:
        """Everything kept about this user, as JSON-ready data."""
        return self._backend.export_user(self.id)

    async def aexport(self) -> dict[str, Any]:
        return await self._backend.aexport_user(self.id)

    def status(self) -> MemoryStatus:
        return self._backend.status(self.id)

    async def astatus(self) -> MemoryStatus:
        return await self._backend.astatus(self.id)

    def failures(self) -> list[FailedTurn]:
        """This user's kept turns whose last attempt failed, with the error text."""
        return self._backend.failures(self.id)

    async def afailures(self) -> list[FailedTurn]:
        return await self._backend.afailures(self.id)

    def retry_failed(self) -> int:
        """Make this user's failed turns (parked ones too) due again now; returns how many."""
        return self._backend.retry_failed(self.id)

    async def aretry_failed(self) -> int:
        return await self._backend.aretry_failed(self.id)

    def discard_failed(self) -> int:
        """Drop this user's failed turns for good; returns how many."""
        return self._backend.discard_failed(self.id)

    async def adiscard_failed(self) -> int:
        return await self._backend.adiscard_failed(self.id)
