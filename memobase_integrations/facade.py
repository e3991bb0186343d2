"""``Memobase`` and ``UserMemory``: the one API the adapters (and apps) call.

The facade maps user ids, converts turns into blobs, caches contexts per user (dropped when
that user's processing finishes) and forwards everything else to the backend. It holds no
I/O of its own, so sync and async twins stay trivially identical.
"""

from __future__ import annotations

import asyncio
import logging
import os
import threading
import typing
import uuid
from collections import OrderedDict
from collections.abc import Iterable, Mapping, Sequence
from types import TracebackType
from typing import TYPE_CHECKING, Any, Unpack

import pydantic

from . import errors
from .arguments import (
    check_arg,
    check_bool,
    check_call_options,
    check_count,
    check_json,
    check_options,
    check_search_options,
    check_text,
    check_timeout,
    check_usage_days,
    check_uuid,
)
from .backends.base import Backend
from .background import SerialRunner
from .errors import ConfigurationError, InvalidMessageError, ValidationError
from .ids import check_turn_id, to_user_uuid
from .messages import DEFAULT_MAX_BLOB_TOKENS, DEFAULT_MAX_TURN_CHARS, Message, turn_to_blobs
from .models import (
    Blob,
    BlobData,
    BlobInsertData,
    BlobType,
    ChatBlob,
    ChatModalResponse,
    EventData,
    EventGist,
    Profile,
    SummaryBlob,
    UserData,
    UserEvent,
)
from .options import EmbeddedOptions, FromEnvOptions, RemoteOptions
from .settings import FlushPolicy, LLMSettings
from .values import (
    BufferStatus,
    ContextKwargs,
    ContextOptions,
    FailedTurn,
    MemoryStatus,
    ProfileKwargs,
    ProfileOptions,
    RecordReceipt,
    SearchKwargs,
    UserOrder,
)

if TYPE_CHECKING:
    from .backends.remote_models import DailyUsage, ProjectBilling, ProjectUsers
    from .engine.config import ProfileConfig

__all__ = ["Memobase", "UserMemory"]

log = logging.getLogger(__name__)

MessageLike = Message | dict[str, Any]


class _ContextCache:
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
_FALLBACK_ERRORS = (errors.MemobaseConnectionError, errors.ServerError, errors.StoreError)


class Memobase:
    """Long-term user memory behind one interface, remote or embedded.

    Build it with :meth:`from_env`, :meth:`embedded` or :meth:`remote`; get a user's memory
    with :meth:`user`; call :meth:`close` (or use ``with``) to drain pending work.
    """

    def __init__(
        self,
        backend: Backend,
        *,
        max_blob_tokens: int = DEFAULT_MAX_BLOB_TOKENS,
        max_turn_chars: int | None = DEFAULT_MAX_TURN_CHARS,
    ) -> None:
        """``max_blob_tokens``: the size ChatBlobs are cut to (well below Memobase's 16384
        processing cap). ``max_turn_chars``: the most text one ``record`` may carry (see
        :data:`~.messages.DEFAULT_MAX_TURN_CHARS`; ``None`` for no limit)."""
        missing = _missing_methods(backend)
        if missing:  # a partial backend would fail later, on some call, far from here
            raise ConfigurationError(
                f"Memobase() needs a backend (EmbeddedBackend, RemoteBackend, or "
                f"testing.InMemoryBackend in tests), got {type(backend).__name__}, which lacks "
                f"{', '.join(missing[:5])}{' ...' if len(missing) > 5 else ''}. Use "
                "Memobase.embedded(), .remote() or .from_env()."
            )
        limits = _check_limits(max_blob_tokens, max_turn_chars, "Memobase()")
        self.max_blob_tokens: int = limits["max_blob_tokens"]
        self.max_turn_chars: int | None = limits["max_turn_chars"]
        self.backend = backend
        self._cache = _ContextCache()
        # Re-reads contexts after processing; never on a caller's thread or an event loop.
        self._refresher = SerialRunner("memobase-context-refresh")
        self._refresh_lock = threading.Lock()
        self._refresh_pending: set[uuid.UUID] = set()
        self._closing = False
        backend.add_listener(self._on_processed)

    def _on_processed(self, user_id: uuid.UUID, _results: Sequence[ChatModalResponse]) -> None:
        """A backend listener: may be called on any thread (an event loop included), so it
        only marks the cache and queues the re-read for the refresher thread."""
        self._processed(user_id)

    def _processed(self, user_id: uuid.UUID) -> None:
        self._cache.mark_stale(user_id)
        with self._refresh_lock:
            if user_id in self._refresh_pending or self._closing:
                return
            self._refresh_pending.add(user_id)
        if not self._refresher.submit(lambda: self._refresh(user_id)):
            with self._refresh_lock:
                self._refresh_pending.discard(user_id)

    def _refresh(self, user_id: uuid.UUID) -> None:
        """Re-read each stale variant of the user's context (on the refresher thread)."""
        with self._refresh_lock:
            self._refresh_pending.discard(user_id)
        generation, variants = self._cache.stale_variants(user_id)
        for opts in variants:
            if self._closing:
                return
            try:
                value = self.backend.context(user_id, opts)
            except Exception:  # the next request reads it itself
                log.debug("memobase: context refresh failed for user %s", user_id, exc_info=True)
                continue
            self._cache.put(user_id, opts, value, generation)

    def _stop_refresher(self) -> None:
        self._closing = True
        self._refresher.stop(10.0)

    # -- construction -------------------------------------------------------------------------
    @classmethod
    def remote(
        cls,
        project_url: str | None = None,
        api_key: str | None = None,
        **options: Unpack[RemoteOptions],
    ) -> Memobase:
        """Talk to a Memobase server (Memobase Cloud or self-hosted) over HTTP.

        ``options`` are :class:`~.backends.remote.RemoteBackend`'s, plus ``max_blob_tokens``
        and ``max_turn_chars`` (see :class:`Memobase`)."""
        from .backends.remote import RemoteBackend

        where = "Memobase.remote()"
        given: dict[str, Any] = dict(options)
        limits = _pop_limits(given, where)
        _check_url(project_url, "project_url", where)
        check_text(api_key, "api_key", where, optional=True, blank=True)
        checked = check_call_options(RemoteBackend.__init__, given, where)
        backend = RemoteBackend(project_url=project_url, api_key=api_key, **checked)
        return _facade(cls, backend, limits)

    @classmethod
    def embedded(
        cls,
        database_url: str | None = None,
        *,
        llm: LLMSettings | None = None,
        profile_config: ProfileConfig | str | None = None,
        policy: FlushPolicy | None = None,
        **options: Unpack[EmbeddedOptions],
    ) -> Memobase:
        """Run Memobase's pipeline in-process on SQLite (default) or PostgreSQL.

        ``database_url`` defaults to ``sqlite:///memobase.db``; an empty string is refused
        (it would silently mean that default). ``options`` are
        :class:`~.backends.embedded.EmbeddedBackend`'s, plus ``max_blob_tokens`` and
        ``max_turn_chars`` (see :class:`Memobase`)."""
        from .backends.embedded import EmbeddedBackend

        where = "Memobase.embedded()"
        given: dict[str, Any] = dict(options)
        limits = _pop_limits(given, where)
        _check_url(database_url, "database_url", where)
        checked = check_call_options(
            EmbeddedBackend.__init__,
            {"llm": llm, "profile_config": profile_config, "policy": policy, **given},
            where,
        )
        return _facade(cls, EmbeddedBackend(database_url=database_url, **checked), limits)

    @classmethod
    def from_env(
        cls, env: Mapping[str, str] | None = None, **options: Unpack[FromEnvOptions]
    ) -> Memobase:
        """``MEMOBASE_PROJECT_URL`` (+ ``MEMOBASE_API_KEY``) selects a server; otherwise the
        embedded engine on ``MEMOBASE_DATABASE_URL`` (default ``sqlite:///memobase.db``)."""
        env = os.environ if env is None else env
        given: dict[str, Any] = dict(options)
        if not isinstance(env, Mapping):
            raise ConfigurationError(
                f"Memobase.from_env(): env must be a mapping of variable names to values (like "
                f"os.environ) or None, got {type(env).__name__}."
            )
        if env.get("MEMOBASE_PROJECT_URL"):
            return cls.remote(env["MEMOBASE_PROJECT_URL"], env.get("MEMOBASE_API_KEY"), **given)
        if env.get("MEMOBASE_API_KEY"):
            raise ConfigurationError(
                "MEMOBASE_API_KEY is set but MEMOBASE_PROJECT_URL is not. Set "
                "MEMOBASE_PROJECT_URL=https://api.memobase.dev (Memobase Cloud) or your server's "
                "URL, or unset MEMOBASE_API_KEY to use the embedded engine."
            )
        given.setdefault("llm", LLMSettings.from_env(env))
        # An empty variable means unset (the default store), as shells usually intend.
        return cls.embedded(env.get("MEMOBASE_DATABASE_URL") or None, **given)

    # -- users --------------------------------------------------------------------------------
    def user(self, user_id: str | uuid.UUID) -> UserMemory:
        """The memory of one user. Any string id is mapped to a UUID like the official SDK."""
        return UserMemory(self, user_id)

    # -- operations ---------------------------------------------------------------------------
    def status(self) -> MemoryStatus:
        return self.backend.status(None)

    async def astatus(self) -> MemoryStatus:
        return await self.backend.astatus(None)

    def failures(self) -> list[FailedTurn]:
        """Every kept turn of every user whose last attempt failed, with the error text
        (processing with the embedded engine, delivery with a server; see FailedTurn)."""
        return self.backend.failures(None)

    async def afailures(self) -> list[FailedTurn]:
        return await self.backend.afailures(None)

    def retry_failed(self) -> int:
        """Make every failed turn (parked ones too) due again now; returns how many."""
        return self.backend.retry_failed(None)

    async def aretry_failed(self) -> int:
        return await self.backend.aretry_failed(None)

    def discard_failed(self) -> int:
        """Drop every failed turn for good (the only way a recorded turn is dropped
        unprocessed); returns how many."""
        return self.backend.discard_failed(None)

    async def adiscard_failed(self) -> int:
        return await self.backend.adiscard_failed(None)

    def get_profile_config(self) -> str:
        return self.backend.get_profile_config()

    async def aget_profile_config(self) -> str:
        return await self.backend.aget_profile_config()

    def set_profile_config(self, config_yaml: str | None) -> None:
        """Make ``config_yaml`` (Memobase's profile-config YAML; ``None`` or ``""``: the
        default profile) the store's or project's config. It is validated here first, for
        both backends: a misspelt key (``langauge:``) is refused with a suggestion instead of
        being ignored as a server would."""
        self.backend.set_profile_config(_checked_config(config_yaml, "set_profile_config()"))

    async def aset_profile_config(self, config_yaml: str | None) -> None:
        text = _checked_config(config_yaml, "aset_profile_config()")
        await self.backend.aset_profile_config(text)

    # -- users and usage of the project -------------------------------------------------------
    def add_user(
        self, data: dict[str, Any] | None = None, *, user_id: str | uuid.UUID | None = None
    ) -> uuid.UUID:
        """Create a user with ``data`` (any JSON object) and return its UUID.

        ``user_id`` is mapped like :meth:`user`; without it a new UUID is chosen. An id that
        exists already is an error (the server answers errno 500, the embedded store raises
        :class:`~.errors.ValidationError`); users are also created implicitly by their
        first recorded turn, so this is only needed to attach data up front.
        """
        mapped = None if user_id is None else to_user_uuid(user_id)
        return self.backend.create_user(
            mapped, check_json(data, "data", "add_user()", optional=True)
        )

    async def aadd_user(
        self, data: dict[str, Any] | None = None, *, user_id: str | uuid.UUID | None = None
    ) -> uuid.UUID:
        mapped = None if user_id is None else to_user_uuid(user_id)
        checked = check_json(data, "data", "aadd_user()", optional=True)
        return await self.backend.acreate_user(mapped, checked)

    def get_all_users(
        self,
        search: str = "",
        order_by: UserOrder = "updated_at",
        order_desc: bool = True,
        limit: int = 10,
        offset: int = 0,
    ) -> ProjectUsers:
        """A page of the project's users with their profile and event counts; ``count`` is
        how many match ``search`` (a substring of the id or of the user's data)."""
        args = _users_page(search, order_by, order_desc, limit, offset, "get_all_users()")
        return self.backend.project_users(*args)

    async def aget_all_users(
        self,
        search: str = "",
        order_by: UserOrder = "updated_at",
        order_desc: bool = True,
        limit: int = 10,
        offset: int = 0,
    ) -> ProjectUsers:
        args = _users_page(search, order_by, order_desc, limit, offset, "aget_all_users()")
        return await self.backend.aproject_users(*args)

    def usage(self) -> ProjectBilling:
        """Tokens left (``None``: unlimited) and this month's token cost."""
        return self.backend.usage()

    async def ausage(self) -> ProjectBilling:
        return await self.backend.ausage()

    def daily_usage(self, last_days: int = 7) -> list[DailyUsage]:
        """Inserts and LLM tokens per day, today first."""
        return self.backend.daily_usage(check_usage_days(last_days, "daily_usage()"))

    async def adaily_usage(self, last_days: int = 7) -> list[DailyUsage]:
        days = check_usage_days(last_days, "adaily_usage()")
        return await self.backend.adaily_usage(days)

    def close(self, timeout: float | None = None) -> None:
        """Deliver and flush pending turns (bounded by ``timeout``), then stop workers."""
        checked = check_timeout(timeout, "Memobase.close()")
        self._stop_refresher()
        self.backend.close(checked)

    async def aclose(self, timeout: float | None = None) -> None:
        checked = check_timeout(timeout, "Memobase.aclose()")
        await asyncio.to_thread(self._stop_refresher)
        await self.backend.aclose(checked)

    def __enter__(self) -> Memobase:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    async def __aenter__(self) -> Memobase:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    def __repr__(self) -> str:
        return f"Memobase(backend={self.backend!r})"


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
        result = self._backend.insert(self.id, _checked_blob(blob, where), wait_process=wait)
        if result.chat_results:
            self.memobase._processed(self.id)
        return result

    async def ainsert(self, blob: Blob, *, wait_process: bool = False) -> BlobInsertData:
        where = "UserMemory.ainsert()"
        wait = check_bool(wait_process, "wait_process", where)
        checked = _checked_blob(blob, where)
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
        blob_kind, wait_ = _flush_args(blob_type, wait, "UserMemory.flush()")
        results = self._backend.flush(self.id, blob_kind, wait=wait_)
        if wait_:
            # Listeners may hear of it on another thread later; the next read of this
            # caller must not be served from before the flush.
            self.memobase._processed(self.id)
        return results

    async def aflush(
        self, blob_type: BlobType = BlobType.chat, *, wait: bool = True
    ) -> list[ChatModalResponse]:
        blob_kind, wait_ = _flush_args(blob_type, wait, "UserMemory.aflush()")
        results = await self._backend.aflush(self.id, blob_kind, wait=wait_)
        if wait_:
            self.memobase._processed(self.id)
        return results

    # -- reading ------------------------------------------------------------------------------
    def _context_options(
        self, chats: Sequence[MessageLike] | None, options: dict[str, Any], where: str
    ) -> ContextOptions:
        return check_options(ContextOptions, options, where, chats=_chats(chats, where))

    def context(
        self,
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
        except _FALLBACK_ERRORS as exc:
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
        except _FALLBACK_ERRORS as exc:
            return self._stale_or_raise(key, exc)
        if key is not None:
            cache.put(self.id, opts, value, generation)
        return value

    def profile(self, **options: Unpack[ProfileKwargs]) -> list[Profile]:
        """The structured profile rows (``topic/sub_topic/content``); see ProfileOptions."""
        return self._backend.profile(self.id, _profile_options(options, "UserMemory.profile()"))

    async def aprofile(self, **options: Unpack[ProfileKwargs]) -> list[Profile]:
        opts = _profile_options(options, "UserMemory.aprofile()")
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
        self, query: str, topk: int = 10, **options: Unpack[SearchKwargs]
    ) -> list[UserEvent]:
        """Events closest to ``query``: by words, and by vectors when embeddings are on (a
        Memobase server needs embeddings). Options: ``similarity_threshold`` (0.2),
        ``time_range_in_days`` (180)."""
        q, k, opts = _search_args(query, topk, options, "UserMemory.search_events()")
        return self._backend.search_events(self.id, q, k, **opts)

    async def asearch_events(
        self, query: str, topk: int = 10, **options: Unpack[SearchKwargs]
    ) -> list[UserEvent]:
        q, k, opts = _search_args(query, topk, options, "UserMemory.asearch_events()")
        return await self._backend.asearch_events(self.id, q, k, **opts)

    def search_gists(
        self, query: str, topk: int = 10, **options: Unpack[SearchKwargs]
    ) -> list[EventGist]:
        """Event gists closest to ``query``; as :meth:`search_events`."""
        q, k, opts = _search_args(query, topk, options, "UserMemory.search_gists()")
        return self._backend.search_gists(self.id, q, k, **opts)

    async def asearch_gists(
        self, query: str, topk: int = 10, **options: Unpack[SearchKwargs]
    ) -> list[EventGist]:
        q, k, opts = _search_args(query, topk, options, "UserMemory.asearch_gists()")
        return await self._backend.asearch_gists(self.id, q, k, **opts)

    # -- profile writes -----------------------------------------------------------------------
    def add_profile(self, content: str, topic: str, sub_topic: str) -> uuid.UUID:
        """Add a profile row; ``topic`` and ``sub_topic`` must be non-blank."""
        args = _profile_row(content, topic, sub_topic, "UserMemory.add_profile()")
        profile_id = self._backend.add_profile(self.id, *args)
        self.memobase._cache.invalidate(self.id)
        return profile_id

    async def aadd_profile(self, content: str, topic: str, sub_topic: str) -> uuid.UUID:
        args = _profile_row(content, topic, sub_topic, "UserMemory.aadd_profile()")
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
        args = _profile_update(profile_id, content, topic, sub_topic, "UserMemory.update_profile()")
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
        args = _profile_update(profile_id, content, topic, sub_topic, where)
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
        args = _event_update(event_id, data, "UserMemory.update_event()")
        self._backend.update_event(self.id, *args)
        self.memobase._cache.invalidate(self.id)

    async def aupdate_event(self, event_id: uuid.UUID, data: EventData | dict[str, Any]) -> None:
        args = _event_update(event_id, data, "UserMemory.aupdate_event()")
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
        args = _tag_search(tags, tag_values, topk, "UserMemory.search_events_by_tags()")
        return self._backend.search_events_by_tags(self.id, *args)

    async def asearch_events_by_tags(
        self,
        tags: Sequence[str] | None = None,
        tag_values: dict[str, str] | None = None,
        topk: int = 10,
    ) -> list[UserEvent]:
        args = _tag_search(tags, tag_values, topk, "UserMemory.asearch_events_by_tags()")
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
        kind, first, size = _blob_page(blob_type, page, page_size, "UserMemory.list_blobs()")
        return self._backend.list_blobs(self.id, kind, page=first, page_size=size)

    async def alist_blobs(
        self, blob_type: BlobType = BlobType.chat, *, page: int = 0, page_size: int = 10
    ) -> list[uuid.UUID]:
        kind, first, size = _blob_page(blob_type, page, page_size, "UserMemory.alist_blobs()")
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
        kind, state = _buffer_args(blob_type, status, "UserMemory.buffer()")
        return self._backend.buffer_capacity(self.id, kind, state)

    async def abuffer(
        self, blob_type: BlobType = BlobType.chat, status: BufferStatus = "idle"
    ) -> list[uuid.UUID]:
        kind, state = _buffer_args(blob_type, status, "UserMemory.abuffer()")
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


def _missing_methods(backend: object) -> list[str]:
    """The Backend protocol's methods ``backend`` does not have."""
    return [
        name
        for name, member in vars(Backend).items()
        if not name.startswith("_") and callable(member) and not hasattr(backend, name)
    ]


# -- argument checks (see arguments.py) -------------------------------------------------------
def _pop_limits(options: dict[str, Any], where: str) -> dict[str, Any]:
    """The facade's own options among a constructor's keyword options, checked before the
    backend is built (so a refused limit creates no store)."""
    names = ("max_blob_tokens", "max_turn_chars")
    limits: dict[str, Any] = {k: options.pop(k) for k in names if k in options}
    _check_limits(
        limits.get("max_blob_tokens", DEFAULT_MAX_BLOB_TOKENS),
        limits.get("max_turn_chars", DEFAULT_MAX_TURN_CHARS),
        where,
    )
    return limits


def _check_limits(max_blob_tokens: Any, max_turn_chars: Any, where: str) -> dict[str, Any]:
    blob_tokens = check_count(max_blob_tokens, "max_blob_tokens", where, error=ConfigurationError)
    if blob_tokens < 16:
        raise ConfigurationError(f"{where}: max_blob_tokens must be >= 16, got {blob_tokens}.")
    turn_chars = check_count(
        max_turn_chars, "max_turn_chars", where, optional=True, error=ConfigurationError
    )
    return {"max_blob_tokens": blob_tokens, "max_turn_chars": turn_chars}


def _facade(cls: type[Memobase], backend: Backend, limits: dict[str, Any]) -> Memobase:
    try:
        return cls(backend, **limits)
    except BaseException:
        backend.close(0)  # a refused limit must not leave the backend's worker running
        raise


def _check_url(value: Any, name: str, where: str) -> None:
    if value is None:
        return
    if not isinstance(value, str):
        raise ConfigurationError(
            f"{where}: {name} must be a str or None, got {type(value).__name__}. Pass it as "
            "text (decode bytes first)."
        )
    if not value.strip():
        raise ConfigurationError(
            f"{where}: {name} is empty. Pass a URL (e.g. sqlite:///memobase.db, "
            "postgresql+psycopg://user@host/db, https://api.memobase.dev), or None for the "
            "default."
        )


def _checked_config(config_yaml: Any, where: str) -> str | None:
    from .engine.config import ProfileConfig

    if config_yaml is not None and not isinstance(config_yaml, str):
        raise ValidationError(
            f"Memobase.{where}: config_yaml must be the YAML text (a str) or None for the "
            f"default profile, got {type(config_yaml).__name__}. For a ProfileConfig, pass "
            "config.to_yaml()."
        )
    ProfileConfig.from_yaml(config_yaml)  # raises ValidationError naming the problem
    return config_yaml


def _checked_blob(blob: Any, where: str) -> Blob:
    kinds = typing.get_args(Blob)
    if not isinstance(blob, kinds):
        raise InvalidMessageError(
            f"{where}: blob must be one of {', '.join(k.__name__ for k in kinds)}, got "
            f"{type(blob).__name__}. To record a conversation turn, use record(messages)."
        )
    if isinstance(blob, ChatBlob):
        messages = [
            Message.of(m.role, m.content, name=m.alias, created_at=m.created_at).to_wire()
            for m in blob.messages
        ]
        return blob.model_copy(update={"messages": messages})
    if isinstance(blob, SummaryBlob):
        return blob.model_copy(update={"summary": check_text(blob.summary, "summary", where)})
    return typing.cast(Blob, blob)


def _flush_args(blob_type: Any, wait: Any, where: str) -> tuple[BlobType, bool]:
    return _blob_kind(blob_type, where), check_bool(wait, "wait", where)


def _chats(chats: Any, where: str) -> list[Message] | None:
    if chats is None:
        return None
    if isinstance(chats, str | bytes | dict | Message) or not isinstance(chats, Iterable):
        raise ValidationError(
            f"{where}: chats must be a list of messages (Message or {{'role', 'content'}} "
            f"dicts), got {type(chats).__name__}."
        )
    converted = [Message.coerce(m) for m in chats]
    return converted or None


def _profile_options(options: Mapping[str, Any], where: str) -> ProfileOptions:
    rest = dict(options)
    chats = _chats(rest.pop("chats", None), where)
    return check_options(ProfileOptions, rest, where, chats=chats)


def _search_args(
    query: Any, topk: Any, options: Mapping[str, Any], where: str
) -> tuple[str, int, dict[str, Any]]:
    text: str = check_text(query, "query", where)
    return text, check_count(topk, "topk", where), check_search_options(dict(options), where)


def _profile_row(content: Any, topic: Any, sub_topic: Any, where: str) -> tuple[str, str, str]:
    return (
        check_text(content, "content", where, blank=True),  # the server accepts an empty memo
        check_text(topic, "topic", where),
        check_text(sub_topic, "sub_topic", where),
    )


def _profile_update(
    profile_id: Any, content: Any, topic: Any, sub_topic: Any, where: str
) -> tuple[uuid.UUID, str, str | None, str | None]:
    return (
        check_uuid(profile_id, "profile_id", where),
        check_text(content, "content", where, blank=True),
        check_text(topic, "topic", where, optional=True),
        check_text(sub_topic, "sub_topic", where, optional=True),
    )


def _blob_kind(blob_type: Any, where: str) -> BlobType:
    try:
        return BlobType(blob_type)
    except ValueError:
        raise ValidationError(
            f"{where}: blob_type got {blob_type!r:.40}; pass a BlobType (BlobType.chat, "
            f"BlobType.summary, ...: {', '.join(t.value for t in BlobType)})."
        ) from None


def _users_page(
    search: Any, order_by: Any, order_desc: Any, limit: Any, offset: Any, where: str
) -> tuple[str, UserOrder, bool, int, int]:
    where = f"Memobase.{where}"
    return (
        check_arg(search, str, "search", where),
        check_arg(order_by, UserOrder, "order_by", where),
        check_bool(order_desc, "order_desc", where),
        check_arg(limit, int, "limit", where),
        check_arg(offset, int, "offset", where),
    )


def _event_update(
    event_id: Any, data: Any, where: str
) -> tuple[uuid.UUID, EventData | dict[str, Any]]:
    checked_id = check_uuid(event_id, "event_id", where)
    if isinstance(data, EventData):
        return checked_id, data
    try:
        return checked_id, EventData.model_validate(check_json(data, "data", where))
    except pydantic.ValidationError as exc:
        first = exc.errors(include_url=False)[0]
        raise ValidationError(
            f"{where}: Invalid event data: data.{'.'.join(str(p) for p in first['loc'])}: "
            f"{first['msg']}. Pass "
            "EventData fields: event_tip (str), event_tags ([{tag, value}]), profile_delta."
        ) from None


def _tag_search(
    tags: Any, tag_values: Any, topk: Any, where: str
) -> tuple[Sequence[str] | None, dict[str, str] | None, int]:
    return (
        check_arg(tags, Sequence[str] | None, "tags", where),
        check_arg(tag_values, dict[str, str] | None, "tag_values", where),
        check_count(topk, "topk", where),
    )


def _blob_page(blob_type: Any, page: Any, page_size: Any, where: str) -> tuple[BlobType, int, int]:
    return (
        _blob_kind(blob_type, where),
        check_arg(page, int, "page", where),
        check_arg(page_size, int, "page_size", where),
    )


def _buffer_args(blob_type: Any, status: Any, where: str) -> tuple[BlobType, BufferStatus]:
    return _blob_kind(blob_type, where), check_arg(status, BufferStatus, "status", where)
