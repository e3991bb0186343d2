"""``EmbeddedBackend``: Memobase's insert-and-process pipeline in-process.

Storage is SQLAlchemy on SQLite (default ``sqlite:///memobase.db``) or PostgreSQL (several
app processes sharing one store); processing uses any OpenAI-compatible LLM through the
``openai`` SDK. See :mod:`..engine.store` for the storage guarantees and
:mod:`.worker` for when processing happens. Processing itself (claim, pipeline, commit or
fail) is :class:`~.processor.Processor`, where the worker runs (thread or process) is
:class:`~.worker_host.WorkerHost`; this class wires them to the store and the reads.

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
* Event and gist search works with embeddings off: a full-text index (SQLite FTS5 or
  PostgreSQL ``tsvector``, see :mod:`..engine.fts`) finds the user's items sharing a word
  with the query, and BM25 ranks them (:mod:`..engine.search`); ``similarity`` is then the
  score's share of the best match's. With embeddings on, that ranking and the cosine ranking
  of the stored vectors (an exact scan in Python over the user's rows in the window - fine
  for the thousands of gists one user accumulates) are fused by reciprocal rank fusion:
  each list keeps what passes ``similarity_threshold`` (its own kind of score), and
  ``similarity`` is the fused score (1.0 for an item first in both, 0.5 for one first in
  one list only), which must pass the threshold too. Items without a vector
  (written while embeddings were off) are still found by their words.
* The context's events for ``chats`` come from the same search over the last 3 messages.
  With embeddings off the matches come first, then the newest of the other gists: a word
  match is far stricter than a vector's similarity, and a chat that shares no word with the
  memory should not lose the recent events it had before.
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
from datetime import datetime, timedelta
from typing import Any

from pydantic import ValidationError as PydanticValidationError

from .. import tokens
from ..engine.config import ProfileConfig, ResolvedConfig
from ..engine.context import pack_context, truncate_profiles
from ..engine.fts import Kind
from ..engine.llm import NO_LLM_MESSAGE, LLMClient
from ..engine.llm_gate import LLMGate
from ..engine.notify import TurnListener
from ..engine.parsing import parse_pick_ids
from ..engine.prompts import Step, pick_profiles_prompt
from ..engine.search import Scored, bm25, fuse, query_terms, relative
from ..engine.store import (
    ConfigState,
    Store,
    StoredEmbedded,
    utcnow,
)
from ..errors import (
    ConfigurationError,
    MemobaseError,
    NotFoundError,
    UnsupportedError,
    ValidationError,
)
from ..messages import Message
from ..models import (
    PROCESSED_BLOB_TYPES,
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
from ..options import WorkerMode
from ..queue import with_default_error
from ..settings import FlushPolicy, LLMSettings
from ..tokens import count_tokens
from ..values import (
    BufferStatus,
    ContextOptions,
    FailedTurn,
    MemoryStatus,
    ProfileOptions,
    RecordReceipt,
    UserOrder,
)
from .base import ProcessedListener
from .processor import Processor
from .project_config import ConfigCache
from .remote_models import DailyUsage, ProjectBilling, ProjectUser, ProjectUsers
from .worker import FlushWorker
from .worker_host import WorkerHost
from .worker_process import ProcessWorker

__all__ = ["EmbeddedBackend", "WorkerMode"]

logger = logging.getLogger(__name__)

#: Gist candidates considered for a context (the server's limit).
_CONTEXT_GISTS = 60
#: Seconds between two prunings of the turn ledger (``FlushPolicy.turn_ledger_days``).
_LEDGER_PRUNE_INTERVAL = 3600.0
#: Messages of the recent chat that make the gist-search query (the server uses 3).
_QUERY_MESSAGES = 3


class EmbeddedBackend:
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
        self._hint_lock = threading.Lock()
        self._buffered_hint: dict[uuid.UUID, int] = {}
        # Buffer rows recorded with an upper-bound token size while the tokenizer was still
        # loading, and whether a thread is correcting them (see _correct_estimates).
        self._estimates: list[tuple[uuid.UUID, str]] = []
        self._estimates_lock = threading.Lock()
        self._correcting = False
        self._closed = False
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

    def _resolve_config(self, state: ConfigState | None) -> ResolvedConfig:
        return self._configs.resolve(state)

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
            self._queue_estimates(estimates)
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

    def _queue_estimates(self, estimates: list[tuple[uuid.UUID, str]]) -> None:
        """Hand rows recorded with an upper-bound token size (the tokenizer was loading) to
        a background thread that writes their exact counts once it can."""
        with self._estimates_lock:
            self._estimates.extend(estimates)
            if self._correcting:
                return
            self._correcting = True
        threading.Thread(
            target=self._correct_estimates, name="memobase-token-counts", daemon=True
        ).start()

    def _correct_estimates(self) -> None:
        """Exact token counts for the queued rows, off the request path: waits for the
        tokenizer, then one UPDATE per batch, until no row is left. Until then a bound can
        only make a buffer due early, never late; a row already flushed is simply not there
        any more (the UPDATE changes nothing)."""
        while True:
            with self._estimates_lock:
                batch, self._estimates = self._estimates, []
                if not batch:
                    self._correcting = False
                    return
            try:
                sizes = {blob_id: count_tokens(text) for blob_id, text in batch}
                self.store.set_token_sizes(sizes)
            except Exception:
                logger.warning(
                    "memobase: could not write exact token counts for %d buffered blobs; "
                    "their upper bounds stay (a flush may come early)",
                    len(batch),
                    exc_info=True,
                )

    async def arecord(
        self, user_id: uuid.UUID, blobs: Sequence[ChatBlob], turn_id: str
    ) -> RecordReceipt:
        return await asyncio.to_thread(self.record, user_id, blobs, turn_id)

    # -- users ------------------------------------------------------------------------------
    def ensure_user(self, user_id: uuid.UUID, data: dict[str, Any] | None = None) -> None:
        self.store.ensure_user(user_id, data)

    async def aensure_user(self, user_id: uuid.UUID, data: dict[str, Any] | None = None) -> None:
        await asyncio.to_thread(self.ensure_user, user_id, data)

    def delete_user(self, user_id: uuid.UUID) -> bool:
        """Forget the user: profile, events, gists, blobs, buffered turns, the turn ledger.
        Returns ``False`` when the store had nothing about the user.

        A flush of this user that is running right now writes nothing when it finishes (its
        lease check fails because its rows are gone).
        """
        return self.store.delete_user(user_id)

    async def adelete_user(self, user_id: uuid.UUID) -> bool:
        return await asyncio.to_thread(self.delete_user, user_id)

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

    def get_blob(self, user_id: uuid.UUID, blob_id: uuid.UUID) -> BlobData:
        return self.store.get_blob(user_id, blob_id)

    async def aget_blob(self, user_id: uuid.UUID, blob_id: uuid.UUID) -> BlobData:
        return await asyncio.to_thread(self.get_blob, user_id, blob_id)

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

    # -- reads ------------------------------------------------------------------------------
    def _profiles(self, user_id: uuid.UUID) -> list[Profile]:
        return [p.to_model() for p in self.store.list_profiles(user_id)]

    def _pick_profiles(
        self,
        profiles: list[Profile],
        chats: Sequence[Message],
        only_topics: Sequence[str] | None,
        cfg: ResolvedConfig,
    ) -> list[Profile]:
        """The optional LLM profile filter; any failure keeps the unfiltered list (as the
        server does): a read must not fail because the LLM is down."""
        if not profiles or not chats or not self.llm.configured:
            return profiles
        system, user = pick_profiles_prompt(
            [m.to_wire() for m in chats], profiles, cfg, only_topics=only_topics
        )
        try:
            raw = self.llm.complete(Step.pick_related_profiles, system, user)
        except MemobaseError as exc:
            logger.warning("memobase: profile filter failed, using all profiles: %s", exc)
            return profiles
        picked = [profiles[i] for i in parse_pick_ids(raw) if 0 <= i < len(profiles)]
        return picked or profiles

    def profile(self, user_id: uuid.UUID, options: ProfileOptions) -> list[Profile]:
        """Profile rows, newest first, filtered like ``GET /users/profile`` (with ``chats``,
        the LLM picks the related ones first)."""
        profiles = self._profiles(user_id)
        if options.chats:
            profiles = self._pick_profiles(
                profiles, options.chats, options.only_topics, self._resolved_config()
            )
        return truncate_profiles(profiles, options, topk=options.topk)

    async def aprofile(self, user_id: uuid.UUID, options: ProfileOptions) -> list[Profile]:
        return await asyncio.to_thread(self.profile, user_id, options)

    def context(self, user_id: uuid.UUID, options: ContextOptions) -> str:
        """The memory block for a prompt (``GET /users/context``).

        No LLM call unless asked: with ``chats``, the gists are searched by the last 3
        messages (one embedding call when embeddings are on; by words alone when they are off
        or the call fails); the LLM profile filter runs only with
        ``full_profile_and_only_search_event=False``, as on the server.
        """
        if options.chats:
            cfg = self._resolved_config()
            profiles = self._profiles(user_id)
            if not options.full_profile_and_only_search_event:
                profiles = self._pick_profiles(profiles, options.chats, options.only_topics, cfg)
            gists = self._context_gists(user_id, options)
        else:
            # The common read: config version, profiles and newest gists in one transaction.
            rows = self.store.context_rows(
                user_id,
                since=utcnow() - timedelta(days=options.time_range_in_days),
                limit=_CONTEXT_GISTS,
                config_stamp=self._configs.stamp(),
            )
            cfg = self._resolve_config(rows.config)
            profiles = [p.to_model() for p in rows.profiles]
            gists = rows.gists
        return pack_context(profiles, gists, options, cfg.language)

    async def acontext(self, user_id: uuid.UUID, options: ContextOptions) -> str:
        return await asyncio.to_thread(self.context, user_id, options)

    def _context_gists(self, user_id: uuid.UUID, options: ContextOptions) -> list[EventGist]:
        """The gist candidates of a context, in the order to pack them: without ``chats`` the
        newest; with ``chats`` the search over the last messages (see the module doc)."""
        since = utcnow() - timedelta(days=options.time_range_in_days)
        if not options.chats:
            return self.store.list_gists(user_id, since=since, limit=_CONTEXT_GISTS)
        query = "\n".join(m.content for m in options.chats[-_QUERY_MESSAGES:])
        threshold = options.event_similarity_threshold
        if self.llm.embeddings_enabled:
            try:
                ranked = self._ranked("gist", user_id, query, threshold, since, vectors=True)
                return self._gists(user_id, ranked[:_CONTEXT_GISTS])
            except MemobaseError as exc:
                logger.warning("memobase: gist search failed, searching by words only: %s", exc)
        try:
            ranked = self._ranked("gist", user_id, query, threshold, since, vectors=False)
            found = self._gists(user_id, ranked[:_CONTEXT_GISTS])
        except MemobaseError as exc:
            logger.warning("memobase: gist search failed, using the newest gists: %s", exc)
            found = []
        if len(found) < _CONTEXT_GISTS:
            chosen = {g.id for g in found}
            newest = self.store.list_gists(user_id, since=since, limit=_CONTEXT_GISTS)
            found += [g for g in newest if g.id not in chosen][: _CONTEXT_GISTS - len(found)]
        return found

    def _ranked(
        self,
        kind: Kind,
        user_id: uuid.UUID,
        query: str,
        threshold: float,
        since: datetime,
        *,
        vectors: bool,
    ) -> list[Scored]:
        """The user's events or gists since ``since`` for ``query``, best first: BM25 (as a
        share of the best match) alone, or fused with the cosine ranking when ``vectors``.

        Every item returned has its score above ``threshold``. Fused, an item must also be
        above it in the ranking it comes from (cosine, as on a Memobase server, or share of
        the best word match): a word match that is not among the best never passes a high
        threshold on the strength of its rank alone."""
        terms = query_terms(query)
        corpus = self.store.lexical_corpus(user_id, kind, terms, since)
        lexical = relative(
            bm25(terms, corpus.docs, n_docs=corpus.n_docs, avg_len=corpus.avg_len), threshold
        )
        if not vectors:
            return lexical
        stored = (
            self.store.gist_embeddings(user_id, since)
            if kind == "gist"
            else self.store.event_embeddings(user_id, since)
        )
        cosine = [
            Scored(row.id, sim, row.created_at)
            for sim, row in _rank(self._query_vector(query), stored)
            if sim > threshold
        ]
        return [item for item in fuse([lexical, cosine]) if item.score > threshold]

    def _gists(self, user_id: uuid.UUID, ranked: Sequence[Scored]) -> list[EventGist]:
        found = {g.id: g for g in self.store.gists_by_ids(user_id, [r.id for r in ranked])}
        return [
            found[r.id].model_copy(update={"similarity": r.score}) for r in ranked if r.id in found
        ]

    def _query_vector(self, query: str) -> list[float]:
        return self.llm.embed([query])[0]

    def events(
        self, user_id: uuid.UUID, topk: int = 10, max_token_size: int | None = None
    ) -> list[UserEvent]:
        """The newest ``topk`` events, newest first; with ``max_token_size``, cut at the first
        event whose ``event_tip`` no longer fits the running token count."""
        events = self.store.list_events(user_id, limit=topk)
        if max_token_size is None:
            return events
        kept: list[UserEvent] = []
        used = 0
        for e in events:
            used += count_tokens(e.event_data.event_tip or "")
            if used > max_token_size:
                break
            kept.append(e)
        return kept

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
        ``query``, best first, at most ``topk``; ``similarity`` says how relevant (see the
        module doc: a share of the best match with embeddings off, the fused score with
        them on). No LLM call; one embedding call when embeddings are on."""
        since = utcnow() - timedelta(days=time_range_in_days)
        vectors = self.llm.embeddings_enabled
        ranked = self._ranked(
            "event", user_id, query, similarity_threshold, since, vectors=vectors
        )[:topk]
        found = {e.id: e for e in self.store.events_by_ids(user_id, [r.id for r in ranked])}
        return [
            found[r.id].model_copy(update={"similarity": r.score}) for r in ranked if r.id in found
        ]

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
        since = utcnow() - timedelta(days=time_range_in_days)
        vectors = self.llm.embeddings_enabled
        ranked = self._ranked("gist", user_id, query, similarity_threshold, since, vectors=vectors)
        return self._gists(user_id, ranked[:topk])

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

    # -- profile writes ---------------------------------------------------------------------
    def add_profile(
        self, user_id: uuid.UUID, content: str, topic: str, sub_topic: str
    ) -> uuid.UUID:
        if not topic.strip() or not sub_topic.strip():
            raise ValidationError(
                "A profile needs a non-empty topic and sub_topic, e.g. topic='work', "
                "sub_topic='title'."
            )
        return self.store.add_profile(user_id, content, topic, sub_topic)

    async def aadd_profile(
        self, user_id: uuid.UUID, content: str, topic: str, sub_topic: str
    ) -> uuid.UUID:
        return await asyncio.to_thread(self.add_profile, user_id, content, topic, sub_topic)

    def update_profile(
        self,
        user_id: uuid.UUID,
        profile_id: uuid.UUID,
        content: str,
        topic: str | None = None,
        sub_topic: str | None = None,
    ) -> None:
        self.store.update_profile(user_id, profile_id, content, topic, sub_topic)

    async def aupdate_profile(
        self,
        user_id: uuid.UUID,
        profile_id: uuid.UUID,
        content: str,
        topic: str | None = None,
        sub_topic: str | None = None,
    ) -> None:
        await asyncio.to_thread(self.update_profile, user_id, profile_id, content, topic, sub_topic)

    def delete_profile(self, user_id: uuid.UUID, profile_id: uuid.UUID) -> None:
        self.store.delete_profile(user_id, profile_id)

    async def adelete_profile(self, user_id: uuid.UUID, profile_id: uuid.UUID) -> None:
        await asyncio.to_thread(self.delete_profile, user_id, profile_id)

    def delete_event(self, user_id: uuid.UUID, event_id: uuid.UUID) -> None:
        self.store.delete_event(user_id, event_id)

    async def adelete_event(self, user_id: uuid.UUID, event_id: uuid.UUID) -> None:
        await asyncio.to_thread(self.delete_event, user_id, event_id)

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

    def export_user(self, user_id: uuid.UUID) -> dict[str, Any]:
        """Everything about the user as JSON-ready data: profiles, events, gists, the blobs
        still stored (buffered ones with their status and last error) and the flush log."""
        return self.store.export_user(user_id)

    async def aexport_user(self, user_id: uuid.UUID) -> dict[str, Any]:
        return await asyncio.to_thread(self.export_user, user_id)

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

    # -- the rest of Memobase's surface (issue 16.5) -----------------------------------------
    def create_user(
        self, user_id: uuid.UUID | None = None, data: dict[str, Any] | None = None
    ) -> uuid.UUID:
        """Create a user (a new uuid4 when ``user_id`` is None) with ``data``. Raises
        :class:`ValidationError` (errno 409) when the id exists already."""
        new_id = user_id or uuid.uuid4()
        if not self.store.create_user(new_id, data):
            raise ValidationError(
                f"User {new_id} already exists. Read it with get_user, or replace its data "
                "with update_user.",
                errno=409,
            )
        return new_id

    async def acreate_user(
        self, user_id: uuid.UUID | None = None, data: dict[str, Any] | None = None
    ) -> uuid.UUID:
        return await asyncio.to_thread(self.create_user, user_id, data)

    def get_user(self, user_id: uuid.UUID) -> UserData:
        """The user's data and timestamps; :class:`NotFoundError` for an unknown user."""
        row = self.store.get_user(user_id)
        if row is None:
            raise NotFoundError(
                f"User {user_id} not found. Users are created by their first recorded turn, "
                "insert or profile write, or explicitly with add_user.",
                errno=404,
            )
        return UserData(
            data=row.data, id=row.id, created_at=row.created_at, updated_at=row.updated_at
        )

    async def aget_user(self, user_id: uuid.UUID) -> UserData:
        return await asyncio.to_thread(self.get_user, user_id)

    def update_user(self, user_id: uuid.UUID, data: dict[str, Any]) -> uuid.UUID:
        """Replace the user's data as a whole; :class:`NotFoundError` for an unknown user."""
        if not self.store.set_user_data(user_id, data):
            raise NotFoundError(f"User {user_id} not found; create it first (add_user).", errno=404)
        return user_id

    async def aupdate_user(self, user_id: uuid.UUID, data: dict[str, Any]) -> uuid.UUID:
        return await asyncio.to_thread(self.update_user, user_id, data)

    def project_users(
        self,
        search: str | None = None,
        order_by: UserOrder | None = None,
        order_desc: bool | None = None,
        limit: int | None = None,
        offset: int | None = None,
    ) -> ProjectUsers:
        """The users with their profile and event counts (``count``: all that match)."""
        limit = 10 if limit is None else limit
        offset = 0 if offset is None else offset
        if limit < 0 or offset < 0:
            raise ValidationError(
                f"limit and offset must be >= 0 (got limit={limit}, offset={offset})."
            )
        rows, count = self.store.list_users(
            search=search or "",
            order_by=order_by or "updated_at",
            descending=True if order_desc is None else order_desc,
            limit=limit,
            offset=offset,
        )
        users = [
            ProjectUser(
                id=r.id,
                additional_fields=r.data,
                project_id="__root__",
                created_at=r.created_at,
                updated_at=r.updated_at,
                profile_count=r.profile_count,
                event_count=r.event_count,
            )
            for r in rows
        ]
        return ProjectUsers(users=users, count=count)

    async def aproject_users(
        self,
        search: str | None = None,
        order_by: UserOrder | None = None,
        order_desc: bool | None = None,
        limit: int | None = None,
        offset: int | None = None,
    ) -> ProjectUsers:
        return await asyncio.to_thread(
            self.project_users, search, order_by, order_desc, limit, offset
        )

    def list_blobs(
        self,
        user_id: uuid.UUID,
        blob_type: BlobType = BlobType.chat,
        *,
        page: int = 0,
        page_size: int = 10,
    ) -> list[uuid.UUID]:
        """Ids of the user's stored blobs of a type, oldest first (processed chat blobs are
        deleted, so for chat this is what is still buffered)."""
        if page < 0 or page_size < 1:
            raise ValidationError(
                f"page must be >= 0 and page_size >= 1 (got page={page}, page_size={page_size})."
            )
        return self.store.list_blob_ids(
            user_id, blob_type, offset=page * page_size, limit=page_size
        )

    async def alist_blobs(
        self,
        user_id: uuid.UUID,
        blob_type: BlobType = BlobType.chat,
        *,
        page: int = 0,
        page_size: int = 10,
    ) -> list[uuid.UUID]:
        return await asyncio.to_thread(
            functools.partial(self.list_blobs, page=page, page_size=page_size),
            user_id,
            blob_type,
        )

    def delete_blob(self, user_id: uuid.UUID, blob_id: uuid.UUID) -> None:
        """Delete a stored blob (and its buffered turn); a missing blob is not an error."""
        self.store.delete_blob(user_id, blob_id)

    async def adelete_blob(self, user_id: uuid.UUID, blob_id: uuid.UUID) -> None:
        await asyncio.to_thread(self.delete_blob, user_id, blob_id)

    def buffer_capacity(
        self,
        user_id: uuid.UUID,
        blob_type: BlobType = BlobType.chat,
        status: BufferStatus | None = "idle",
    ) -> list[uuid.UUID]:
        """The user's buffered turns in a status, as blob ids (one buffer row per blob here;
        the server answers ids of its buffer rows). ``None`` means ``processing``, the
        server's default. ``failed`` includes turns waiting for a retry."""
        return self.store.buffer_blob_ids(user_id, blob_type, status or "processing")

    async def abuffer_capacity(
        self,
        user_id: uuid.UUID,
        blob_type: BlobType = BlobType.chat,
        status: BufferStatus | None = "idle",
    ) -> list[uuid.UUID]:
        return await asyncio.to_thread(self.buffer_capacity, user_id, blob_type, status)

    def search_events_by_tags(
        self,
        user_id: uuid.UUID,
        tags: Sequence[str] | None = None,
        tag_values: dict[str, str] | None = None,
        topk: int = 10,
    ) -> list[UserEvent]:
        """The newest events carrying all ``tags`` (any value) and exactly ``tag_values``;
        with neither, simply the newest ``topk``. No LLM, no embeddings."""
        if topk < 1:
            raise ValidationError(f"topk must be >= 1, got {topk}.")
        return self.store.events_with_tags(user_id, list(tags or ()), dict(tag_values or {}), topk)

    async def asearch_events_by_tags(
        self,
        user_id: uuid.UUID,
        tags: Sequence[str] | None = None,
        tag_values: dict[str, str] | None = None,
        topk: int = 10,
    ) -> list[UserEvent]:
        return await asyncio.to_thread(self.search_events_by_tags, user_id, tags, tag_values, topk)

    def update_event(
        self, user_id: uuid.UUID, event_id: uuid.UUID, data: EventData | dict[str, Any]
    ) -> None:
        """Merge the given (non-null) keys into the event's data, as the server does: the
        event's embedding and gists are not recomputed. :class:`NotFoundError` if missing."""
        patch = _event_patch(data)
        self.store.update_event_data(user_id, event_id, patch)

    async def aupdate_event(
        self, user_id: uuid.UUID, event_id: uuid.UUID, data: EventData | dict[str, Any]
    ) -> None:
        await asyncio.to_thread(self.update_event, user_id, event_id, data)

    # -- usage ------------------------------------------------------------------------------
    def _count_insert(self, *, success: bool) -> None:
        try:
            self.store.add_usage(_today(), inserts=1, successes=int(success))
        except MemobaseError as exc:  # metering must never fail the write it counts
            logger.warning("memobase: could not count an insert in the usage: %s", exc)

    def usage(self) -> ProjectBilling:
        """``GET /project/billing`` for this store: unlimited (``token_left`` is None), the
        next refill is the first of next month (UTC) and the cost is this month's LLM tokens
        (prompt + completion, as the LLM endpoint reported them)."""
        self.processor.meter_llm_usage()
        now = utcnow()
        first = now.replace(day=1, hour=0, minute=0, second=0, microsecond=0)
        refill = (
            first.replace(year=first.year + 1, month=1)
            if first.month == 12
            else (first.replace(month=first.month + 1))
        )
        rows = self.store.usage_since(first.date().isoformat())
        cost = sum(r[2] + r[3] for r in rows.values())
        return ProjectBilling(token_left=None, next_refill_at=refill, project_token_cost_month=cost)

    async def ausage(self) -> ProjectBilling:
        return await asyncio.to_thread(self.usage)

    def daily_usage(self, last_days: int = 7) -> list[DailyUsage]:
        """One entry per UTC day, today first, for the last ``last_days`` days (days without
        activity included with zeros). Inserts count ``insert()`` calls (the HTTP endpoint's);
        tokens are the LLM's (processing and search), as its endpoint reported them."""
        if last_days < 1:
            raise ValidationError(f"last_days must be >= 1, got {last_days}.")
        self.processor.meter_llm_usage()
        today = utcnow().date()
        days = [today - timedelta(days=i) for i in range(last_days)]
        rows = self.store.usage_since(days[-1].isoformat())
        out = []
        for day in days:
            inserts, ok, prompt, completion = rows.get(day.isoformat(), (0, 0, 0, 0))
            out.append(
                DailyUsage(
                    date=day,
                    total_insert=inserts,
                    total_success_insert=ok,
                    total_input_token=prompt,
                    total_output_token=completion,
                )
            )
        return out

    async def adaily_usage(self, last_days: int = 7) -> list[DailyUsage]:
        return await asyncio.to_thread(self.daily_usage, last_days)


def _today() -> str:
    return utcnow().date().isoformat()


def _event_patch(data: EventData | dict[str, Any]) -> dict[str, Any]:
    """The keys to merge into an event: validated as :class:`EventData`, nulls dropped."""
    if isinstance(data, EventData):
        checked = data
    else:
        try:
            checked = EventData.model_validate(data)
        except PydanticValidationError as exc:
            raise ValidationError(
                f"Invalid event data: {exc.errors(include_url=False, include_input=False)}. "
                "Pass profile_delta (a list of {content, attributes}), event_tip (text) "
                "and/or event_tags (a list of {tag, value})."
            ) from exc
    return {
        k: v
        for k, v in checked.model_dump(
            mode="json", exclude_unset=not isinstance(data, EventData)
        ).items()
        if v is not None
    }


def _close_at_exit(ref: weakref.ReferenceType[EmbeddedBackend]) -> None:
    backend = ref()
    if backend is not None and not backend._closed:
        try:
            backend.close()
        except Exception:
            logger.exception("memobase: closing the embedded backend at exit failed")


def _rank(
    query: Sequence[float], rows: Sequence[StoredEmbedded]
) -> list[tuple[float, StoredEmbedded]]:
    """Rows by cosine similarity to ``query``, best first (ties: newest first)."""
    qn = math.sqrt(sum(x * x for x in query)) or 1.0
    scored: list[tuple[float, StoredEmbedded]] = []
    for row in rows:
        vec = row.embedding
        if not vec or len(vec) != len(query):
            continue
        vn = math.sqrt(sum(x * x for x in vec)) or 1.0
        sim = sum(a * b for a, b in zip(query, vec, strict=True)) / (qn * vn)
        scored.append((sim, row))
    scored.sort(key=lambda sr: (sr[0], sr[1].created_at), reverse=True)
    return scored
