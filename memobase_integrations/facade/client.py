"""``Memobase``: building the facade on a backend, its lifecycle (the context refresher,
close) and the project-wide operations."""

from __future__ import annotations

import asyncio
import logging
import os
import threading
import uuid
from collections.abc import Mapping, Sequence
from types import TracebackType
from typing import TYPE_CHECKING, Any, Unpack

from ..arguments import check_call_options, check_json, check_text, check_timeout, check_usage_days
from ..backends.base import Backend
from ..background import SerialRunner
from ..errors import ConfigurationError
from ..ids import to_user_uuid
from ..messages import DEFAULT_MAX_BLOB_TOKENS, DEFAULT_MAX_TURN_CHARS
from ..models import ChatModalResponse
from ..options import EmbeddedOptions, FromEnvOptions, RemoteOptions
from ..settings import FlushPolicy, LLMSettings
from ..values import FailedTurn, MemoryStatus, UserOrder
from .checks import check_limits, check_url, checked_config, pop_limits, users_page
from .context_cache import ContextCache

if TYPE_CHECKING:
    from ..backends.remote_models import DailyUsage, ProjectBilling, ProjectUsers
    from ..engine.config import ProfileConfig
    from .user import UserMemory

__all__ = ["Memobase"]

log = logging.getLogger(__name__)


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
        limits = check_limits(max_blob_tokens, max_turn_chars, "Memobase()")
        self.max_blob_tokens: int = limits["max_blob_tokens"]
        self.max_turn_chars: int | None = limits["max_turn_chars"]
        self.backend = backend
        self._cache = ContextCache()
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
        /,
        project_url: str | None = None,
        api_key: str | None = None,
        **options: Unpack[RemoteOptions],
    ) -> Memobase:
        """Talk to a Memobase server (Memobase Cloud or self-hosted) over HTTP.

        ``options`` are :class:`~.backends.remote.RemoteBackend`'s, plus ``max_blob_tokens``
        and ``max_turn_chars`` (see :class:`Memobase`)."""
        from ..backends.remote import RemoteBackend

        where = "Memobase.remote()"
        given: dict[str, Any] = dict(options)
        limits = pop_limits(given, where)
        check_url(project_url, "project_url", where)
        check_text(api_key, "api_key", where, optional=True, blank=True)
        checked = check_call_options(RemoteBackend.__init__, given, where)
        backend = RemoteBackend(project_url=project_url, api_key=api_key, **checked)
        return _facade(cls, backend, limits)

    @classmethod
    def embedded(
        cls,
        /,
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
        from ..backends.embedded import EmbeddedBackend

        where = "Memobase.embedded()"
        given: dict[str, Any] = dict(options)
        limits = pop_limits(given, where)
        check_url(database_url, "database_url", where)
        checked = check_call_options(
            EmbeddedBackend.__init__,
            {"llm": llm, "profile_config": profile_config, "policy": policy, **given},
            where,
        )
        return _facade(cls, EmbeddedBackend(database_url=database_url, **checked), limits)

    @classmethod
    def from_env(
        cls, /, env: Mapping[str, str] | None = None, **options: Unpack[FromEnvOptions]
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
        from .user import UserMemory  # user.py imports this module

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
        self.backend.set_profile_config(checked_config(config_yaml, "set_profile_config()"))

    async def aset_profile_config(self, config_yaml: str | None) -> None:
        text = checked_config(config_yaml, "aset_profile_config()")
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
        args = users_page(search, order_by, order_desc, limit, offset, "get_all_users()")
        return self.backend.project_users(*args)

    async def aget_all_users(
        self,
        search: str = "",
        order_by: UserOrder = "updated_at",
        order_desc: bool = True,
        limit: int = 10,
        offset: int = 0,
    ) -> ProjectUsers:
        args = users_page(search, order_by, order_desc, limit, offset, "aget_all_users()")
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


def _missing_methods(backend: object) -> list[str]:
    """The Backend protocol's methods ``backend`` does not have."""
    return [
        name
        for name, member in vars(Backend).items()
        if not name.startswith("_") and callable(member) and not hasattr(backend, name)
    ]


def _facade(cls: type[Memobase], backend: Backend, limits: dict[str, Any]) -> Memobase:
    try:
        return cls(backend, **limits)
    except BaseException:
        backend.close(0)  # a refused limit must not leave the backend's worker running
        raise
