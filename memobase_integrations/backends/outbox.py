"""Durable recording for the remote backend: a local SQLite outbox and its delivery worker.

``record`` writes one row per turn into a SQLite file (WAL) and returns; a background thread
delivers the rows to the Memobase server, decides when the server should process
("flush") each user's buffer, and tells listeners when processing finished. Nothing on the
caller's thread touches the network.

The guarantee, precisely
------------------------
**At-least-once delivery with best-effort de-duplication. Not exactly-once.**

* A turn is durable once ``record`` returned: the row is committed in WAL mode with
  ``synchronous=NORMAL``, which survives a crash or kill of the process (not a power loss of
  the machine, which would need ``synchronous=FULL`` and an fsync per turn).
* Rows are delivered in order per user, retried with exponential backoff, and never dropped
  silently: a row the server refuses as invalid (HTTP 422 / errno 400) or that exhausted
  ``FlushPolicy.max_attempts`` is parked as *failed*, shown by ``status()`` and ``failures()``,
  and only leaves the outbox through ``retry_failed()`` or ``discard_failed()``.
* The server has no idempotency key, so a send whose answer was lost (read timeout, connection
  dropped after the request was written, a gateway error) is ambiguous. Every blob carries
  ``fields = {"turn_id": ..., "blob_index": i}``, and a blob is marked *in flight* in the file
  before it is sent; before sending an in-flight blob again (after a lost answer, or after a
  crash between the send and the commit of its answer) the worker lists the user's chat blobs
  and reads them looking for that pair, and skips the send if it is there. This catches
  every duplicate **while the blob is still buffered**. It cannot catch one whose first copy
  was already processed and deleted by the server in between (the server deletes chat blobs
  after processing, e.g. when another client flushed the user or the server processed an
  over-full buffer on its own); in that window a turn can reach processing twice. That
  window is why this is not exactly-once.
* A flush the server answered with an error (e.g. its LLM was down: errno 503) leaves the
  buffer ``failed``, and Memobase never retries failed buffers. The worker therefore
  re-buffers those turns (inserts a fresh copy of each blob that is still stored, then
  deletes the failed copy) before the next flush, so they are processed once the server
  recovers. A flush whose *answer* was lost is not re-buffered (the processing may have run).

Several processes may share one outbox file (e.g. gunicorn workers): each user is worked on
under a short lease row in the file, so only one process delivers or flushes a given user at
a time; the lease of a crashed process is taken over at once on the same machine (its pid
is gone) and expires otherwise.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import queue
import random
import sqlite3
import threading
import time
from collections.abc import AsyncIterator, Iterator, Sequence
from concurrent.futures import Future
from typing import Any, Protocol
from uuid import UUID

from .. import errors
from ..messages import render_blob
from ..models import BlobData, ChatBlob, ChatModalResponse, SummaryBlob
from ..settings import FlushPolicy
from ..tokens import count_tokens
from .http import SendOutcome, send_outcome
from .outbox_store import (
    DEFAULT_OUTBOX_PATH,
    OutboxFailure,
    OutboxStore,
    TurnRow,
    UndeliveredTurn,
    default_outbox_path,
    lease_owner_id,
)

__all__ = [
    "DEFAULT_OUTBOX_PATH",
    "DeliveryClient",
    "DeliveryWorker",
    "OutboxFailure",
    "OutboxStore",
    "UndeliveredTurn",
    "UserGuards",
    "default_outbox_path",
    "lease_owner_id",
]

log = logging.getLogger("memobase_integrations.outbox")

# How often the worker folds the WAL back into the outbox file (record() never does).
_CHECKPOINT_SECONDS = 5.0

# -- per-user mutual exclusion ---------------------------------------------------------------


class UserGuards:
    """One lock per user inside the process plus a lease row across processes.

    Delivery, flush and delete of one user never run at the same time: the server processes
    a buffer twice under parallel flushes, and a delivery racing a delete would resurrect
    the user.
    """

    def __init__(self, scope: str, owner: str, lease_seconds: float) -> None:
        self.scope = scope
        self.owner = owner
        self.lease_seconds = lease_seconds
        self.store: OutboxStore | None = None
        self._locks: dict[UUID, threading.Lock] = {}
        self._lock = threading.Lock()

    def _user_lock(self, user_id: UUID) -> threading.Lock:
        with self._lock:
            return self._locks.setdefault(user_id, threading.Lock())

    def try_lease(self, user_id: UUID) -> bool:
        store = self.store
        return store is None or store.claim(self.scope, user_id, self.owner, self.lease_seconds)

    def renew(self, user_id: UUID) -> None:
        self.try_lease(user_id)

    def _release_lease(self, user_id: UUID) -> None:
        if self.store is not None:
            with contextlib.suppress(sqlite3.Error, errors.MemobaseError):
                self.store.release(self.scope, user_id, self.owner)

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
        """Hold the user, waiting for the local lock and (bounded) for another process."""
        lock = self._user_lock(user_id)
        lock.acquire()
        try:
            deadline = time.monotonic() + wait_seconds
            while not self.try_lease(user_id) and time.monotonic() < deadline:
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
        lock = self._user_lock(user_id)
        while not lock.acquire(blocking=False):
            await asyncio.sleep(0.005)
        try:
            deadline = time.monotonic() + wait_seconds
            while (
                self.store is not None
                and not await asyncio.to_thread(self.try_lease, user_id)
                and time.monotonic() < deadline
            ):
                await asyncio.sleep(0.02)
            try:
                yield
            finally:
                if self.store is not None:
                    await asyncio.to_thread(self._release_lease, user_id)
        finally:
            lock.release()


# -- the worker ------------------------------------------------------------------------------


class DeliveryClient(Protocol):
    """The network operations the worker needs (implemented by the remote backend)."""

    def insert_body(self, user_id: UUID, body: dict[str, Any]) -> UUID: ...
    def blob_ids(self, user_id: UUID) -> list[UUID]: ...
    def blob_fields(self, user_id: UUID, blob_id: UUID) -> dict[str, Any] | None: ...
    def delete_blob(self, user_id: UUID, blob_id: UUID) -> None: ...
    def flush_now(self, user_id: UUID) -> list[ChatModalResponse]: ...
    def notify_processed(self, user_id: UUID, results: Sequence[ChatModalResponse]) -> None: ...


class _Stop(Exception):
    """Raised inside a user's pass when the drain deadline passed."""


def body_tokens(body: dict[str, Any]) -> int:
    """Tokens Memobase will count for a blob body (its rendered text, o200k)."""
    try:
        blob = BlobData.model_validate(body).to_blob()
    except ValueError:
        return 0
    if isinstance(blob, ChatBlob | SummaryBlob):
        return count_tokens(render_blob(blob))
    return 0


class DeliveryWorker:
    """The background thread that empties the outbox. See the module docstring."""

    def __init__(
        self,
        store: OutboxStore,
        scope: str,
        client: DeliveryClient,
        policy: FlushPolicy,
        guards: UserGuards,
    ) -> None:
        self.store = store
        self.scope = scope
        self.client = client
        self.policy = policy
        self.guards = guards
        self._wake = threading.Event()
        self._jobs: queue.SimpleQueue[tuple[UUID, Future[None]]] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._start_lock = threading.Lock()
        self._drain_deadline: float | None = None
        self._stopped = threading.Event()
        self._last_error: dict[UUID, errors.MemobaseError] = {}
        self._drain_skip: set[UUID] = set()

    # -- control ----------------------------------------------------------------------------
    def start(self) -> None:
        with self._start_lock:
            if self._thread is not None or self._stopped.is_set():
                return
            self._thread = threading.Thread(target=self._run, name="memobase-outbox", daemon=True)
            self._thread.start()

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def wake(self) -> None:
        self._wake.set()

    def request_delivery(self, user_id: UUID) -> Future[None]:
        """Deliver this user's rows now (ignoring backoff); the future fails with the last
        error if some row could not be delivered."""
        fut: Future[None] = Future()
        if self._stopped.is_set() or self._drain_deadline is not None:
            fut.set_exception(
                errors.MemobaseError("The Memobase client is closing; no delivery was attempted.")
            )
            return fut
        self._jobs.put((user_id, fut))
        if threading.current_thread() is self._thread:
            self._run_jobs()  # called from a listener on the worker itself: run it inline
            return fut
        self.start()
        self._wake.set()
        return fut

    def drain_and_stop(self, timeout: float) -> None:
        """Deliver what can be delivered (and flush) within ``timeout`` seconds, then stop."""
        with self._start_lock:
            thread = self._thread
            if thread is None:
                self._stopped.set()
                return
            self._drain_deadline = time.monotonic() + timeout
        self._wake.set()
        thread.join(timeout + 0.5)
        self._stopped.set()
        if thread.is_alive():
            log.warning(
                "The Memobase outbox did not finish within %.1fs; undelivered turns stay in %s "
                "and are sent at the next start.",
                timeout,
                self.store.path,
            )

    # -- loop -------------------------------------------------------------------------------
    def _past_deadline(self) -> bool:
        return self._drain_deadline is not None and time.monotonic() >= self._drain_deadline

    def _run(self) -> None:
        next_checkpoint = 0.0
        while True:
            self._wake.clear()
            try:
                self._run_jobs()
                if self._drain_deadline is not None:
                    self._drain()
                    self.store.checkpoint()
                    return
                busy = self._background_pass()
                if time.monotonic() >= next_checkpoint:
                    self.store.checkpoint()
                    next_checkpoint = time.monotonic() + _CHECKPOINT_SECONDS
            except Exception:  # never let the thread die: a bug here must not lose turns
                log.exception("The Memobase outbox worker hit an unexpected error; continuing.")
                busy = False
            if not busy:
                self._wake.wait(self.policy.worker_poll_seconds)

    def _run_jobs(self) -> None:
        while True:
            try:
                user_id, fut = self._jobs.get_nowait()
            except queue.Empty:
                return
            if not fut.set_running_or_notify_cancel():
                continue
            try:
                with self.guards.hold(user_id):
                    self._work_user(user_id, force=True, flush=False)
                if self.store.needs_delivery(self.scope, user_id):
                    raise self._last_error.get(user_id) or errors.MemobaseError(
                        "Some recorded turns could not be delivered; see status()."
                    )
                fut.set_result(None)
            except BaseException as exc:
                fut.set_exception(exc)

    def _background_pass(self) -> bool:
        now = time.time()
        worked = False
        for user_id in self.store.users_with_work(self.scope, now, self.policy):
            with self.guards.try_hold(user_id) as held:
                if held:
                    self._work_user(user_id, force=False, flush=True)
                    worked = True
            if not self._jobs.empty() or self._drain_deadline is not None:
                break
        return worked and self.store.has_any_work(self.scope) and self._any_due()

    def _any_due(self) -> bool:
        return bool(self.store.users_with_work(self.scope, time.time(), self.policy))

    def _drain(self) -> None:
        """Close: one forced attempt per user with undelivered rows, then flush everyone."""
        try:
            while not self._past_deadline():
                todo = [
                    u
                    for u in self.store.users_with_undelivered(self.scope)
                    if u not in self._drain_skip
                ]
                if not todo:
                    break
                for user_id in todo:
                    if self._past_deadline():
                        raise _Stop
                    with self.guards.hold(user_id, wait_seconds=0.5):
                        self._work_user(user_id, force=True, flush=False)
                    if self.store.has_undelivered(self.scope, user_id):
                        self._drain_skip.add(user_id)
            if self.policy.flush_on_close:
                for user_id in self.store.users_to_flush(self.scope):
                    if self._past_deadline():
                        raise _Stop
                    with self.guards.hold(user_id, wait_seconds=0.5):
                        self._flush(user_id)
        except _Stop:
            pass
        except Exception:
            log.exception("The Memobase outbox worker failed while draining.")

    # -- one user ---------------------------------------------------------------------------
    def _work_user(self, user_id: UUID, *, force: bool, flush: bool) -> None:
        now = time.time()
        state = self.store.user_state(self.scope, user_id)
        if state.needs_rebuffer and (force or state.next_flush_at <= now):
            if not self._rebuffer(user_id):
                return
            if flush and not self._flush(user_id):
                return
        for row in self.store.pending_rows(self.scope, user_id):
            if self._past_deadline():
                raise _Stop
            if not force and self.store.next_attempt_at(row.seq) > now:
                break  # keep the user's turns in order: wait for the head row
            if not self._deliver_row(row, force=force):
                return
        if flush and self._flush_due(user_id, time.time()):
            self._flush(user_id)

    def _flush_due(self, user_id: UUID, now: float) -> bool:
        if not self.store.unflushed_rows(self.scope, user_id):
            return False
        state = self.store.user_state(self.scope, user_id)
        if state.next_flush_at > now:
            return False
        if self.store.buffered_tokens(self.scope, user_id) > self.policy.buffer_token_threshold:
            return True
        idle = self.policy.idle_flush_seconds
        return idle is not None and now - (state.last_delivery_at or 0.0) >= idle

    def _backoff(self, attempts: int) -> float:
        base = self.policy.retry_base_seconds * (2.0 ** min(max(0, attempts - 1), 30))
        return min(self.policy.retry_max_seconds, base) * random.uniform(0.5, 1.0)

    def _deliver_row(self, row: TurnRow, *, force: bool) -> bool:
        user_id = row.user_id
        threshold = self.policy.buffer_token_threshold
        for index in range(row.delivered, len(row.blobs)):
            body = row.blobs[index]
            tokens = body_tokens(body)
            buffered = self.store.buffered_tokens(self.scope, user_id)
            if buffered > 0 and buffered + tokens > threshold:
                # Flush first so the server's buffer never overflows on its own: an
                # overflowing insert makes the server process in the background, out of
                # our sight (no results for the listeners, and a race with our flushes).
                state = self.store.user_state(self.scope, user_id)
                if not force and state.next_flush_at > time.time():
                    return False
                if not self._flush(user_id):
                    return False
            searching = row.uncertain == index
            try:
                self.guards.renew(user_id)
                blob_id = self._find_blob(user_id, row.turn_id, index) if searching else None
                searching = False
                if blob_id is None:
                    # Marked in flight first: if the process dies before the answer is
                    # committed, the next start asks the server instead of sending again.
                    self.store.set_uncertain(row.seq, index)
                    blob_id = self.client.insert_body(user_id, body)
            except errors.MemobaseError as exc:
                self._row_failed(row, index, exc, searching=searching)
                return False
            self.store.blob_delivered(row.seq, index, blob_id, tokens)
            row.uncertain = None
            self._last_error.pop(user_id, None)
            if self.store.buffered_tokens(self.scope, user_id) > threshold and not self._flush(
                user_id
            ):
                return index + 1 >= len(row.blobs)
        return True

    def _row_failed(
        self, row: TurnRow, index: int, exc: errors.MemobaseError, *, searching: bool
    ) -> None:
        outcome = send_outcome(exc)
        uncertain = index if searching or outcome is SendOutcome.UNKNOWN else None
        permanent = outcome is SendOutcome.ANSWERED and isinstance(exc, errors.ValidationError)
        attempts = row.attempts + 1
        limit = self.policy.max_attempts
        parked = permanent or (limit is not None and attempts >= limit)
        self._last_error[row.user_id] = exc
        self.store.row_failed(
            row.seq,
            exc.message,
            uncertain=uncertain,
            parked=parked,
            next_attempt_at=time.time() + self._backoff(attempts),
        )
        # The first failure, a parked turn and every tenth attempt are worth a warning; the
        # rest of a long outage would only flood the log.
        level = logging.WARNING if parked or attempts % 10 == 1 else logging.DEBUG
        log.log(
            level,
            "Memobase outbox: turn %s of user %s not delivered (attempt %d%s): %s",
            row.turn_id,
            row.user_id,
            attempts,
            ", parked" if parked else "",
            exc.message,
        )

    def _find_blob(
        self, user_id: UUID, turn_id: str, index: int, exclude: frozenset[str] = frozenset()
    ) -> UUID | None:
        """The id of a stored blob of ``(turn_id, index)`` (the answer to a lost send)."""
        known = self.store.known_blob_ids(self.scope, user_id) | exclude
        for blob_id in reversed(self.client.blob_ids(user_id)):
            if str(blob_id) in known:
                continue
            fields = self.client.blob_fields(user_id, blob_id)
            if fields and fields.get("turn_id") == turn_id and fields.get("blob_index") == index:
                log.info(
                    "Memobase outbox: turn %s blob %d was already stored (answer lost); not "
                    "sending it again.",
                    turn_id,
                    index,
                )
                return blob_id
        return None

    def _flush(self, user_id: UUID) -> bool:
        if self.store.user_state(self.scope, user_id).needs_rebuffer:
            # A success would mark the failed buffer's turns processed: re-buffer them first.
            return False
        self.guards.renew(user_id)
        try:
            results = self.client.flush_now(user_id)
        except errors.MemobaseError as exc:
            # The server answered: it ran the processing and it failed, so the buffer is now
            # ``failed`` on the server and must be re-buffered. A lost answer is not: the
            # processing may have succeeded.
            rebuffer = send_outcome(exc) is SendOutcome.ANSWERED and isinstance(
                exc, errors.ServerError
            )
            self._last_error[user_id] = exc
            attempts = self.store.user_state(self.scope, user_id).flush_attempts + 1
            self.store.flush_failed(
                self.scope,
                user_id,
                exc.message,
                rebuffer=rebuffer,
                next_flush_at=time.time() + self._backoff(attempts),
            )
            log.warning("Memobase outbox: flush of user %s failed: %s", user_id, exc.message)
            return False
        self.store.flush_succeeded(self.scope, user_id)
        self.client.notify_processed(user_id, results)
        return True

    def _rebuffer(self, user_id: UUID) -> bool:
        """Give the server fresh copies of the blobs stuck in a failed buffer.

        For each blob of the failed buffer that is still stored: insert a copy (new idle
        buffer row), record the copy's id, then delete the failed copy. The order makes a crash
        cost at worst a duplicate copy, never a lost turn; a copy whose answer was lost is
        found again by its ``(turn_id, blob_index)`` fields.
        """
        pending = self.store.user_state(self.scope, user_id).rebuffer_ids
        for row in self.store.unflushed_rows(self.scope, user_id):
            for index in range(row.flushed, row.delivered):
                old = row.blob_ids[index]
                if old not in pending:
                    continue
                stage = "check"
                try:
                    self.guards.renew(user_id)
                    if self.client.blob_fields(user_id, UUID(old)) is None:
                        # processed (the server deletes chat blobs) or deleted by someone
                        self.store.rebuffer_done(self.scope, user_id, old)
                        continue
                    new = None
                    if row.uncertain == index:
                        stage = "search"
                        new = self._find_blob(user_id, row.turn_id, index, frozenset({old}))
                    if new is None:
                        stage = "insert"
                        self.store.set_uncertain(row.seq, index)
                        new = self.client.insert_body(user_id, row.blobs[index])
                except errors.MemobaseError as exc:
                    if stage == "insert" and send_outcome(exc) is not SendOutcome.UNKNOWN:
                        self.store.set_uncertain(row.seq, None)
                    self._last_error[user_id] = exc
                    attempts = self.store.user_state(self.scope, user_id).flush_attempts + 1
                    self.store.flush_failed(
                        self.scope,
                        user_id,
                        f"re-buffering after a failed flush: {exc.message}",
                        rebuffer=False,
                        next_flush_at=time.time() + self._backoff(attempts),
                    )
                    return False
                self.store.rebuffer_done(self.scope, user_id, old, row.seq, index, new)
                try:
                    self.client.delete_blob(user_id, UUID(old))
                except errors.MemobaseError as exc:
                    # The failed copy sits in a failed buffer, which the server never
                    # processes again: leaving it costs storage, not correctness.
                    log.info("Memobase outbox: could not delete blob %s: %s", old, exc.message)
        self.store.rebuffer_finished(self.scope, user_id)
        return True
