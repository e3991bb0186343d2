"""``EmbeddedBackend``: Memobase's insert-and-process pipeline in-process.

Storage is SQLAlchemy on SQLite (default ``sqlite:///memobase.db``) or PostgreSQL (several
app processes sharing one store); processing uses any OpenAI-compatible LLM through the
``openai`` SDK. See :mod:`..engine.store` for the storage guarantees and
:mod:`.worker` for when processing happens. Processing itself (claim, pipeline, commit or
fail) is :class:`~.processor.Processor`, where the worker runs (thread or process) is
:class:`~.worker_host.WorkerHost`; this class wires them to the store and the reads.

``EmbeddedBackend`` wires the parts: the :class:`~..engine.store.Store`, the reads
(:class:`.embedded_reader.EmbeddedReader`: profiles, context, events, searches), the
project config cache (:mod:`.project_config`), the usage counters
(:mod:`.embedded_usage`) and the flush path; the user, blob and buffer administration calls
come from the :class:`.embedded_admin.EmbeddedAdmin` mixin.

Guarantees:

* ``record`` is one small local transaction on the caller's thread (blobs, buffer rows and the
  turn ledger) - no LLM, no network. It is durable when it returns, and idempotent on the
  turn id: a replay returns ``RecordReceipt(duplicate=True)`` and writes nothing. The ledger
  forgets a turn id ``FlushPolicy.turn_ledger_days`` (30) after it was recorded, never while
  the turn is still buffered.
* Every buffered turn is processed **exactly once**: a flush leases the user's rows, runs the
  LLM steps outside any transaction and writes all its results in one transaction that also
  retires the rows - and that transaction only commits if the lease is still its own. A
  crash leaves the rows leased; the lease expires and the next flush takes them over.
* Nothing is silently dropped: an LLM failure or an unusable answer writes nothing, marks the
  rows ``failed`` with the error text, and the worker retries them with exponential backoff
  (``FlushPolicy.retry_base_seconds`` .. ``retry_max_seconds``; parked after
  ``max_attempts`` if set). ``retry_failed`` and ``discard_failed`` act on them by hand.
* Batches are taken **oldest first** and at most ``max_process_tokens`` each; a bigger buffer
  is processed in several consecutive batches. (Memobase keeps the newest blobs that fit and
  silently drops the older ones; processing in order keeps a later "I changed jobs" after
  the earlier job, and loses nothing.)

Choices worth knowing:

* Async twins run the sync code in ``asyncio.to_thread`` (SQL and LLM alike): one pipeline
  implementation, and the event loop never blocks.
* ``events()`` returns the newest ``topk`` events with no time window (the server hard-codes
  21 days there, which hides the timeline of anyone who paused for three weeks); the
  search calls keep their ``time_range_in_days`` parameter.
* ``update_profile``/``delete_profile``/``delete_event`` of a missing id raise
  ``NotFoundError`` (the server silently ignores a missing profile); ``delete_user`` of an
  unknown user is a no-op (forgetting is idempotent).
* Event and gist search works with embeddings off, and ranks by words and vectors together
  when they are on: see :mod:`.embedded_reader`.
"""

from __future__ import annotations

import asyncio
import atexit
import functools
import logging
import math
import threading
import uuid
import weakref
from collections.abc import Sequence
from typing import Any

from .. import tokens
from ..engine.config import ProfileConfig, ResolvedConfig
from ..engine.llm import NO_LLM_MESSAGE, LLMClient
from ..engine.llm_gate import LLMGate
from ..engine.notify import TurnListener
from ..engine.store import Store
from ..errors import (
    ConfigurationError,
    MemobaseError,
    UnsupportedError,
    ValidationError,
)
from ..models import (
    PROCESSED_BLOB_TYPES,
    Blob,
    BlobInsertData,
    BlobType,
    ChatBlob,
    ChatModalResponse,
    EventGist,
    Profile,
    UserEvent,
)
from ..options import WorkerMode
from ..queue import with_default_error
from ..settings import FlushPolicy, LLMSettings
from ..values import (
    ContextOptions,
    FailedTurn,
    MemoryStatus,
    ProfileOptions,
    RecordReceipt,
)
from .base import ProcessedListener
from .embedded_admin import EmbeddedAdmin
from .embedded_reader import EmbeddedReader
from .embedded_token_counts import TokenCountCorrector
from .embedded_usage import UsageMeter
from .processor import Processor
from .project_config import ConfigCache
from .remote_models import DailyUsage, ProjectBilling
from .worker import FlushWorker
from .worker_host import WorkerHost
from .worker_process import ProcessWorker

__all__ = ["EmbeddedBackend", "WorkerMode"]

logger = logging.getLogger(__name__)


class EmbeddedBackend(EmbeddedAdmin):
    """The :class:`~.base.Backend` that runs everything in-process.

    Parameters
    ----------
    database_url:
        ``sqlite:///path.db`` (default ``sqlite:///memobase.db``), ``sqlite://`` (in memory,
        this process only) or ``postgresql+psycopg://user:pw@host/db``.
    llm:
        Where the LLM lives; ``None`` reads ``OPENAI_API_KEY`` / ``OPENAI_BASE_URL`` /
        ``MEMOBASE_LLM_MODEL`` (:meth:`LLMSettings.from_env`). Without any, recording works and
        processing waits (``flush`` raises ``ConfigurationError`` saying what to set).
    profile_config:
        A :class:`ProfileConfig`, its YAML, or ``None``. When given it is saved as the store's
        project config (so every process sharing the store uses it); ``set_profile_config``
        changes it later.
    policy:
        When to process (:class:`FlushPolicy`).
    start_worker:
        Run the background flush worker (default). Without it, processing happens only on
        explicit ``flush``/``insert(wait_process=True)``/``close``.
    worker:
        Where that worker runs. ``"process"``: a child process (:mod:`.worker_process`), so
        its parsing and SQL never take the GIL from the app's ``record`` and ``context``
        calls - the choice for a server under load. ``"thread"``: a daemon thread in this
        process (no extra interpreter; what an in-memory database or an injected
        ``http_client`` needs). ``"auto"`` (default) picks ``"process"`` when it can and
        ``"thread"`` otherwise; ``worker_mode`` tells which one runs.
    engine_options:
        Extra :func:`sqlalchemy.create_engine` arguments, e.g. ``{"connect_args": {"options":
        "-csearch_path=memobase"}}`` to keep the tables in a PostgreSQL schema.
    lease_seconds:
        How long a flush's claim survives without renewal. A live flush renews it every third
        of that; a crashed process's turns are picked up again after it expires.
    keep_processed_blobs:
        Keep chat blobs after processing (Memobase's ``persistent_chat_blobs``).
    create_store:
        Create the store's tables when the database has none (default). ``False`` opens an
        existing store only and writes no schema: a database without the store's tables
        raises :class:`~memobase_integrations.errors.StoreNotFoundError` (the CLI's mode).
    """

    kind = "embedded"

    def __init__(
        self,
        database_url: str | None = None,
        *,
        llm: LLMSettings | None = None,
        profile_config: ProfileConfig | str | None = None,
        policy: FlushPolicy | None = None,
        start_worker: bool = True,
        worker: WorkerMode = "auto",
        engine_options: dict[str, Any] | None = None,
        lease_seconds: float = 60.0,
        keep_processed_blobs: bool = False,
        create_store: bool = True,
    ) -> None:
        if (
            isinstance(lease_seconds, bool)
            or not isinstance(lease_seconds, int | float)
            or not 0 < lease_seconds < math.inf
        ):
            raise ConfigurationError(
                f"lease_seconds must be a positive number of seconds, got {lease_seconds!r:.40}."
            )
        if worker not in ("auto", "thread", "process"):
            raise ConfigurationError(
                f"worker must be 'auto', 'thread' or 'process', got {worker!r}."
            )
        settings = llm if llm is not None else LLMSettings.from_env()
        self.policy = policy or FlushPolicy()
        gate = LLMGate(
            self.policy.max_llm_requests, max_pause_seconds=self.policy.llm_pause_max_seconds
        )
        self.llm = LLMClient(settings, gate)
        try:
            self.store = Store(database_url, engine_options=engine_options, create=create_store)
        except BaseException:
            self.llm.close()  # a refused store must leave no client behind
            raise
        # The store opened: start building the o200k encoder (about a second) now, on a
        # background thread, so neither the first record() nor the first flush pays for it.
        tokens.preload()
        self.lease_seconds = lease_seconds
        self.keep_processed_blobs = keep_processed_blobs
        self._configs = ConfigCache(self.store)
        #: Claims, runs and commits batches (what the worker process builds alone).
        self.processor = Processor(
            self.store,
            self.llm,
            self.policy,
            config=self._configs,
            lease_seconds=lease_seconds,
            keep_processed_blobs=keep_processed_blobs,
        )
        #: The read side: profiles, context, events and searches.
        self.reader = EmbeddedReader(self.store, self.llm, self._configs)
        self._hint_lock = threading.Lock()
        self._buffered_hint: dict[uuid.UUID, int] = {}
        # Buffer rows recorded with an upper-bound token size while the tokenizer was still
        # loading get their exact counts on a background thread.
        self._token_counts = TokenCountCorrector(self.store)
        self._closed = False
        self._usage = UsageMeter(self.store, self.processor.meter_llm_usage)
        if profile_config is not None:
            try:
                self._save_initial_config(profile_config)
            except BaseException:
                self.store.close()
                self.llm.close()
                raise
        self._host = WorkerHost(self.processor, owner=self)
        if start_worker:
            child_config = {
                "database_url": self.store.url.render_as_string(hide_password=False),
                "llm": settings,
                "policy": self.policy,
                "engine_options": engine_options,
                "lease_seconds": lease_seconds,
                "keep_processed_blobs": keep_processed_blobs,
                "create_store": False,  # this process has opened (or created) it already
                "nice": self.policy.worker_nice,
            }
            try:
                self._host.start(worker, child_config)
            except BaseException:
                self.store.close()
                self.llm.close()
                raise
        # Drain on interpreter exit (bounded by close_timeout_seconds); a weak reference so
        # the hook never keeps a forgotten backend alive.
        self._atexit = functools.partial(_close_at_exit, weakref.ref(self))
        atexit.register(self._atexit)

    def __repr__(self) -> str:
        return (
            f"EmbeddedBackend(database={self.store.safe_url!r}, llm={self.llm!r}, "
            f"worker={self.worker_mode!r})"
        )

    @property
    def worker_mode(self) -> str | None:
        """``"process"``, ``"thread"`` or ``None`` (no background worker)."""
        return self._host.mode

    @property
    def _worker(self) -> FlushWorker | ProcessWorker | None:
        return self._host.worker

    @property
    def _listener(self) -> TurnListener | None:
        return self._host.listener

    @property
    def worker_pid(self) -> int | None:
        """The flush-worker process's pid with ``worker_mode == "process"`` (it changes when a
        crashed worker is restarted), else ``None``."""
        return self._host.pid

    # -- configuration ----------------------------------------------------------------------
    def _save_initial_config(self, value: ProfileConfig | str) -> None:
        config = ProfileConfig.coerce(value)  # validates (raises ValidationError)
        if isinstance(value, str):
            text: str | None = value if value.strip() else None
        else:
            text = config.to_yaml() or None
        if self.store.get_profile_config() != text:
            self.store.set_profile_config(text)

    def _resolved_config(self) -> ResolvedConfig:
        return self._configs.resolved()

    # -- listeners --------------------------------------------------------------------------
    def add_listener(self, listener: ProcessedListener) -> None:
        self.processor.add_listener(listener)

    # -- hot path ---------------------------------------------------------------------------
    def record(self, user_id: uuid.UUID, blobs: Sequence[ChatBlob], turn_id: str) -> RecordReceipt:
        """Durably store a finished turn: one local transaction, no LLM, no network."""
        if not turn_id or len(turn_id) > 255:
            raise ValidationError(
                f"turn_id must be a non-empty string of at most 255 characters, got "
                f"{turn_id!r:.80}. Use a stable id such as your framework's run id."
            )
        for blob in blobs:
            if not isinstance(blob, ChatBlob):
                raise ValidationError(
                    f"record() stores ChatBlobs only, got {type(blob).__name__}; use insert() "
                    "for other blob types."
                )
        estimates: list[tuple[uuid.UUID, str]] = []
        receipt, added = self.store.record_turn(
            user_id,
            turn_id,
            blobs,
            estimates=estimates,
            estimate_limit=self.policy.max_process_tokens,
        )
        if estimates:
            self._token_counts.queue(estimates)
        if added and self._worker is not None:
            # A cheap local hint instead of a SUM query on the hot path: wake the worker when
            # this process alone has buffered enough for the user. The worker's own poll
            # (worker_poll_seconds) catches everything else, e.g. other processes' turns.
            with self._hint_lock:
                total = self._buffered_hint.get(user_id, 0) + added
                due = total > self.policy.buffer_token_threshold
                self._buffered_hint[user_id] = 0 if due else total
                if len(self._buffered_hint) > 100_000:
                    self._buffered_hint.clear()
            if due:
                self._worker.wake()
        return receipt

    async def arecord(
        self, user_id: uuid.UUID, blobs: Sequence[ChatBlob], turn_id: str
    ) -> RecordReceipt:
        return await asyncio.to_thread(self.record, user_id, blobs, turn_id)

    # -- blobs and buffer -------------------------------------------------------------------
    def insert(
        self, user_id: uuid.UUID, blob: Blob, *, wait_process: bool = False
    ) -> BlobInsertData:
        """The seed endpoint: store the blob, buffer it, and process the user's buffer when it
        is over the threshold - inline with ``wait_process`` (``chat_results`` says what
        happened), else in the background worker. ``chat_results`` is ``[]`` otherwise.

        Doc, code, image and transcript blobs are stored (``get_blob`` returns them) but never
        processed; flushing those types raises :class:`UnsupportedError`.
        """
        try:
            blob_id, idle = self.store.insert_blob(user_id, blob)
        except MemobaseError:
            self._count_insert(success=False)
            raise
        self._count_insert(success=True)
        results: list[ChatModalResponse] = []
        if blob.type in PROCESSED_BLOB_TYPES and idle > self.policy.buffer_token_threshold:
            if wait_process:
                results = self.processor.flush_all(user_id, blob.type)
            else:
                self._request(user_id, blob.type)
        return BlobInsertData(id=blob_id, chat_results=results)

    async def ainsert(
        self, user_id: uuid.UUID, blob: Blob, *, wait_process: bool = False
    ) -> BlobInsertData:
        return await asyncio.to_thread(self.insert, user_id, blob, wait_process=wait_process)

    def flush(
        self, user_id: uuid.UUID, blob_type: BlobType = BlobType.chat, *, wait: bool = True
    ) -> list[ChatModalResponse]:
        """Process everything buffered for the user now (failed rows still backing off
        included; parked ones need ``retry_failed``). With ``wait=False`` the worker does it
        and ``[]`` is returned at once. If another thread or process is flushing this user,
        this waits for it and then processes what is left.

        Raises :class:`LLMError` when processing fails (the turns stay buffered, ``failed``,
        and are retried), :class:`ConfigurationError` when no LLM is configured.
        """
        self._check_processable(blob_type)
        if not wait:
            self._request(user_id, blob_type)
            return []
        return self.processor.flush_all(user_id, blob_type)

    async def aflush(
        self, user_id: uuid.UUID, blob_type: BlobType = BlobType.chat, *, wait: bool = True
    ) -> list[ChatModalResponse]:
        return await asyncio.to_thread(self.flush, user_id, blob_type, wait=wait)

    def failures(self, user_id: uuid.UUID | None = None) -> list[FailedTurn]:
        """Every buffered turn whose last processing run failed (one user's, or all), with
        the error text; ``parked`` ones wait for :meth:`retry_failed`."""
        return self.store.failures(user_id)

    async def afailures(self, user_id: uuid.UUID | None = None) -> list[FailedTurn]:
        return await asyncio.to_thread(self.failures, user_id)

    def retry_failed(self, user_id: uuid.UUID | None = None) -> int:
        """Make failed turns (one user's, or all; parked ones included) eligible again now;
        returns how many turns."""
        users = {f.user_id for f in self.store.failures(user_id)}
        count = self.store.retry_failed(user_id)
        if count and self._worker is not None:
            for user in sorted(users):
                self._worker.request(user, BlobType.chat)
                self._worker.request(user, BlobType.summary)
        return count

    async def aretry_failed(self, user_id: uuid.UUID | None = None) -> int:
        return await asyncio.to_thread(self.retry_failed, user_id)

    def discard_failed(self, user_id: uuid.UUID | None = None) -> int:
        """Delete failed turns (one user's, or all) for good - the only way buffered work is
        dropped; returns how many turns."""
        return self.store.discard_failed(user_id)

    async def adiscard_failed(self, user_id: uuid.UUID | None = None) -> int:
        return await asyncio.to_thread(self.discard_failed, user_id)

    # -- processing core --------------------------------------------------------------------
    def _check_processable(self, blob_type: BlobType) -> None:
        if blob_type not in PROCESSED_BLOB_TYPES:
            raise UnsupportedError(
                f"Blob type {blob_type!s} is stored but not processed: Memobase builds "
                "profiles and events from chat and summary blobs only."
            )

    def processing_possible(self) -> bool:
        return self.processor.processing_possible()

    def _request(self, user_id: uuid.UUID, blob_type: BlobType) -> None:
        if self._worker is not None and self._worker.alive:
            self._worker.request(user_id, blob_type)
            return

        def run() -> None:
            try:
                self.processor.flush_all(user_id, blob_type)
            except MemobaseError as exc:
                logger.warning("memobase: background flush of %s failed: %s", user_id, exc)

        threading.Thread(target=run, name="memobase-flush-once", daemon=True).start()

    # -- reads (EmbeddedReader) -------------------------------------------------------------
    def profile(self, user_id: uuid.UUID, options: ProfileOptions) -> list[Profile]:
        """Profile rows, newest first, filtered like ``GET /users/profile`` (with ``chats``,
        the LLM picks the related ones first)."""
        return self.reader.profile(user_id, options)

    async def aprofile(self, user_id: uuid.UUID, options: ProfileOptions) -> list[Profile]:
        return await asyncio.to_thread(self.profile, user_id, options)

    def context(self, user_id: uuid.UUID, options: ContextOptions) -> str:
        """The memory block for a prompt (``GET /users/context``); no LLM call unless asked
        (see :meth:`.EmbeddedReader.context`)."""
        return self.reader.context(user_id, options)

    async def acontext(self, user_id: uuid.UUID, options: ContextOptions) -> str:
        return await asyncio.to_thread(self.context, user_id, options)

    def events(
        self, user_id: uuid.UUID, topk: int = 10, max_token_size: int | None = None
    ) -> list[UserEvent]:
        """The newest ``topk`` events, newest first; with ``max_token_size``, cut at the first
        event whose ``event_tip`` no longer fits the running token count."""
        return self.reader.events(user_id, topk, max_token_size)

    async def aevents(
        self, user_id: uuid.UUID, topk: int = 10, max_token_size: int | None = None
    ) -> list[UserEvent]:
        return await asyncio.to_thread(self.events, user_id, topk, max_token_size)

    def search_events(
        self,
        user_id: uuid.UUID,
        query: str,
        topk: int = 10,
        similarity_threshold: float = 0.2,
        time_range_in_days: int = 180,
    ) -> list[UserEvent]:
        """The user's events of the last ``time_range_in_days`` days most relevant to
        ``query``, best first, at most ``topk`` (see the module doc for ``similarity``)."""
        return self.reader.search_events(
            user_id, query, topk, similarity_threshold, time_range_in_days
        )

    async def asearch_events(
        self,
        user_id: uuid.UUID,
        query: str,
        topk: int = 10,
        similarity_threshold: float = 0.2,
        time_range_in_days: int = 180,
    ) -> list[UserEvent]:
        return await asyncio.to_thread(
            self.search_events, user_id, query, topk, similarity_threshold, time_range_in_days
        )

    def search_gists(
        self,
        user_id: uuid.UUID,
        query: str,
        topk: int = 10,
        similarity_threshold: float = 0.2,
        time_range_in_days: int = 180,
    ) -> list[EventGist]:
        """Like :meth:`search_events`, over the gists (one line of an event's memo each)."""
        return self.reader.search_gists(
            user_id, query, topk, similarity_threshold, time_range_in_days
        )

    async def asearch_gists(
        self,
        user_id: uuid.UUID,
        query: str,
        topk: int = 10,
        similarity_threshold: float = 0.2,
        time_range_in_days: int = 180,
    ) -> list[EventGist]:
        return await asyncio.to_thread(
            self.search_gists, user_id, query, topk, similarity_threshold, time_range_in_days
        )

    # -- project ----------------------------------------------------------------------------
    def get_profile_config(self) -> str:
        """The project's profile config YAML (``""`` when the defaults are used)."""
        return self.store.get_profile_config() or ""

    async def aget_profile_config(self) -> str:
        return await asyncio.to_thread(self.get_profile_config)

    def set_profile_config(self, config_yaml: str | None) -> None:
        """Validate (``ProfileConfig.from_yaml``) and save; ``None`` or ``""`` resets to the
        defaults. Every process sharing the store uses it from its next flush."""
        ProfileConfig.from_yaml(config_yaml)
        text = config_yaml if config_yaml and config_yaml.strip() else None
        self.store.set_profile_config(text)
        self._configs.clear()  # this process sees its own change at once

    async def aset_profile_config(self, config_yaml: str | None) -> None:
        await asyncio.to_thread(self.set_profile_config, config_yaml)

    # -- operations -------------------------------------------------------------------------
    def status(self, user_id: uuid.UUID | None = None) -> MemoryStatus:
        """Pending / processing / failed turns, buffered tokens, last flush, last error.

        Without an LLM, users with pending turns report the configuration problem as their
        ``last_error``, so "why is nothing processed?" has an answer.
        """
        status = self.store.status(user_id, backend=self.kind)
        return status if self.llm.configured else with_default_error(status, NO_LLM_MESSAGE)

    async def astatus(self, user_id: uuid.UUID | None = None) -> MemoryStatus:
        return await asyncio.to_thread(self.status, user_id)

    def close(self, timeout: float | None = None) -> None:
        """Flush what is buffered (if ``FlushPolicy.flush_on_close`` and an LLM is set),
        bounded by ``timeout`` (default ``close_timeout_seconds``), then stop the threads.

        Turns not processed in time stay durably buffered for the next start. If the worker
        process had died (its restart pending), the buffer is processed in this process
        within the same budget, and a warning says so. The budget holds even when an LLM
        call is slower: a drain still inside one is abandoned (its lease expires, the next
        start takes the turns over). Returns with no thread, pipe or child process of this
        backend left running, except such an abandoned drain thread, which ends with its
        LLM call.
        """
        if self._closed:
            return
        self._closed = True
        atexit.unregister(self._atexit)
        budget = self.policy.close_timeout_seconds if timeout is None else timeout
        drain = self.policy.flush_on_close and self.llm.configured
        try:
            self._host.stop(drain=drain, budget=budget)
        finally:
            self.processor.close()
            self.llm.close()
            self.store.close()

    async def aclose(self, timeout: float | None = None) -> None:
        await asyncio.to_thread(self.close, timeout)

    # -- events by tag (EmbeddedReader) ------------------------------------------------------
    def search_events_by_tags(
        self,
        user_id: uuid.UUID,
        tags: Sequence[str] | None = None,
        tag_values: dict[str, str] | None = None,
        topk: int = 10,
    ) -> list[UserEvent]:
        """The newest events carrying all ``tags`` (any value) and exactly ``tag_values``;
        with neither, simply the newest ``topk``. No LLM, no embeddings."""
        return self.reader.search_events_by_tags(user_id, tags, tag_values, topk)

    async def asearch_events_by_tags(
        self,
        user_id: uuid.UUID,
        tags: Sequence[str] | None = None,
        tag_values: dict[str, str] | None = None,
        topk: int = 10,
    ) -> list[UserEvent]:
        return await asyncio.to_thread(self.search_events_by_tags, user_id, tags, tag_values, topk)

    # -- usage ------------------------------------------------------------------------------
    def _count_insert(self, *, success: bool) -> None:
        self._usage.count_insert(success=success)

    def usage(self) -> ProjectBilling:
        """``GET /project/billing`` for this store (see :meth:`.UsageMeter.billing`)."""
        return self._usage.billing()

    async def ausage(self) -> ProjectBilling:
        return await asyncio.to_thread(self.usage)

    def daily_usage(self, last_days: int = 7) -> list[DailyUsage]:
        """One entry per UTC day, today first, for the last ``last_days`` days (see
        :meth:`.UsageMeter.daily`)."""
        return self._usage.daily(last_days)

    async def adaily_usage(self, last_days: int = 7) -> list[DailyUsage]:
        return await asyncio.to_thread(self.daily_usage, last_days)


def _close_at_exit(ref: weakref.ReferenceType[EmbeddedBackend]) -> None:
    backend = ref()
    if backend is not None and not backend._closed:
        try:
            backend.close()
        except Exception:
            logger.exception("memobase: closing the embedded backend at exit failed")
