"""Durable recording for the remote backend: a local SQLite outbox and its delivery worker.

``record`` writes one row per turn into a SQLite file (WAL) and returns; a background thread
delivers the rows to the Memobase server, decides when the server should process
("flush") each user's buffer, and tells listeners when processing finished. Nothing on the
caller's thread touches the network.

The guarantee, precisely
------------------------
**At-least-once delivery with best-effort de-duplication, and proof of processing. Not
exactly-once.**

* A turn is durable once ``record`` returned: the row is committed in WAL mode with
  ``synchronous=NORMAL``, which survives a crash or kill of the process (not a power loss of
  the machine, which would need ``synchronous=FULL`` and an fsync per turn).
* Rows are delivered in order per user, retried with exponential backoff
  (:mod:`memobase_integrations.queue`: the same backoff and parking rules as the embedded
  engine), and never dropped silently. A row the server refuses for what it contains
  (``http_errors.refusal_is_permanent``: HTTP 422, errno 400/413/520, or errno 500 naming
  a data error such as PostgreSQL's ``UntranslatableCharacter`` for U+0000) is parked as
  *failed* at once; one that exhausted ``FlushPolicy.max_attempts`` is parked too, unless
  its last answer was lost (the server may hold it: it keeps being resolved first). A
  parked turn does not hold back the user's later turns; it is shown by ``status()`` and
  ``failures()`` and only leaves the outbox through ``retry_failed()`` or
  ``discard_failed()``. Other errors (the server down, its LLM down, a wrong key) are
  retried in order.
* The server has no idempotency key, so a send whose answer was lost (read timeout, connection
  dropped after the request was written, a gateway error) is ambiguous. Every blob carries
  ``fields = {"turn_id": ..., "blob_index": i}``, and a blob is marked *in flight* in the file
  before it is sent; before sending an in-flight blob again (after a lost answer, or after a
  crash between the send and the commit of its answer) the worker lists the user's chat blobs
  and reads them looking for that pair, and skips the send if it is there. While any send of
  a user is in flight like this, the user is never flushed (the flush would process the
  stored copy and the resend would be processed again).
* **Every delivered blob is proven processed.** The server stores a blob and its buffer row
  in two commits and answers an insert only after both, so a blob whose insert was answered
  is buffered and the next successful flush processes it. A blob found by the search above
  was not seen answered: if the server died between its two commits, it is stored but never
  buffered, and no flush would ever process it. Such blobs are remembered (in the file), and
  after a successful flush of a batch holding one the worker lists the user's chat blobs:
  the server deletes a chat blob once it processed it, so one of ours still stored was not
  processed (no buffer row, or a buffer the server's own processing failed). Such an
  orphan is re-buffered (a fresh copy inserted, then the orphan deleted) and flushed again;
  the turn is processed once, in a later batch. The check waits while a processing of the
  user is still running on the server (it is repeated at the next flush) and is skipped on
  servers that keep processed chat blobs (``persistent_chat_blobs``, recognised by their
  ``done`` buffer rows), where "still stored" proves nothing.
* De-duplication cannot catch a copy that was already processed and deleted by the server
  in between (e.g. another client flushed the user, or the server processed an over-full
  buffer on its own, between a lost answer and the search); in that window a turn can
  reach processing twice. That window is why this is not exactly-once.
* A flush the server answered with an error (e.g. its LLM was down: errno 503) leaves the
  buffer ``failed``, and Memobase never retries failed buffers. The worker therefore
  re-buffers those turns (inserts a fresh copy of each blob that is still stored, then
  deletes the failed copy) before the next flush, so they are processed once the server
  recovers. A flush whose *answer* was lost is not re-buffered (the processing may have run);
  the proof above settles it at the next flush.
* ``close(timeout)`` stops delivery at the deadline: a request still waiting for the server
  is interrupted (recorded as "answer lost", resolved at the next start), and no thread,
  connection or file handle of the backend outlives ``close``.

Several processes may share one outbox file (e.g. gunicorn workers): each user is worked on
under a short lease row in the file, so only one process delivers or flushes a given user at
a time; the lease of a crashed process is taken over at once on the same machine (its pid
is gone) and expires otherwise.
"""

from __future__ import annotations

import logging
import queue
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from typing import Any, Protocol
from uuid import UUID

from .. import errors
from ..messages import render_blob
from ..models import BlobData, ChatBlob, ChatModalResponse, SummaryBlob
from ..queue import (
    BackgroundLoop,
    Disposition,
    LeaseLost,
    StopOutcome,
    UserGuards,
    decide,
    retry_delay,
)
from ..settings import FlushPolicy
from ..tokens import count_tokens
from .http_errors import SendOutcome, refusal_is_permanent, send_outcome
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
    "LeaseLost",
    "OutboxFailure",
    "OutboxStore",
    "UndeliveredTurn",
    "UserGuards",
    "default_outbox_path",
    "lease_owner_id",
]

log = logging.getLogger(__name__)

# How often the worker folds the WAL back into the outbox file (record() never does).
_CHECKPOINT_SECONDS = 5.0

# -- the worker ------------------------------------------------------------------------------


class DeliveryClient(Protocol):
    """The network operations the worker needs (implemented by the remote backend)."""

    def insert_body(self, user_id: UUID, body: dict[str, Any]) -> UUID: ...
    def blob_ids(self, user_id: UUID) -> list[UUID]: ...
    def blob_fields(self, user_id: UUID, blob_id: UUID) -> dict[str, Any] | None: ...
    def buffer_ids(self, user_id: UUID, status: str) -> list[UUID]: ...
    def delete_blob(self, user_id: UUID, blob_id: UUID) -> None: ...
    def flush_now(self, user_id: UUID) -> list[ChatModalResponse]: ...
    def notify_processed(self, user_id: UUID, results: Sequence[ChatModalResponse]) -> None: ...


class _Stop(Exception):
    """Raised inside a user's pass when the drain deadline passed."""


class _Unsettled(Exception):
    """A processing of the user is still running on the server: nothing provable yet."""


def body_tokens(body: dict[str, Any]) -> int:
    """Tokens Memobase will count for a blob body (its rendered text, o200k)."""
    try:
        blob = BlobData.model_validate(body).to_blob()
    except ValueError:
        return 0
    if isinstance(blob, ChatBlob | SummaryBlob):
        return count_tokens(render_blob(blob))
    return 0


_Job = tuple[UUID, bool | None, "Future[Any]"]  # (user, flush wait (None: deliver only), future)


class DeliveryWorker(BackgroundLoop):
    """The background thread that empties the outbox. See the module docstring.

    Start, wake and the bounded close are :class:`~memobase_integrations.queue.BackgroundLoop`;
    explicit calls (``flush``, ``request_delivery``) come in as jobs the thread runs first.
    """

    def __init__(
        self,
        store: OutboxStore,
        scope: str,
        client: DeliveryClient,
        policy: FlushPolicy,
        guards: UserGuards,
    ) -> None:
        super().__init__("memobase-outbox", policy.worker_poll_seconds)
        self.store = store
        self.scope = scope
        self.client = client
        self.policy = policy
        self.guards = guards
        self._jobs: queue.SimpleQueue[_Job] = queue.SimpleQueue()
        self._last_error: dict[UUID, errors.MemobaseError] = {}
        self._drain_skip: set[UUID] = set()
        self._keeps_processed = False  # the server keeps processed chat blobs
        self._next_checkpoint = 0.0

    def _submit(self, user_id: UUID, wait: bool | None) -> Future[Any]:
        fut: Future[Any] = Future()
        if self.closing:
            fut.set_exception(
                errors.MemobaseError("The Memobase client is closing; no delivery was attempted.")
            )
            return fut
        self._jobs.put((user_id, wait, fut))
        if self.on_loop_thread():
            self._run_jobs()  # called from the worker itself: run it inline
            return fut
        self.start()
        self.wake()
        return fut

    def request_delivery(self, user_id: UUID) -> Future[None]:
        """Deliver this user's rows now (ignoring backoff); the future fails with the last
        error if some row could not be delivered."""
        return self._submit(user_id, None)

    def request_flush(self, user_id: UUID, wait: bool) -> Future[list[ChatModalResponse]]:
        """Deliver this user's rows, then flush and prove the flush (see the module doc).

        ``wait``: the future resolves with the results once processed; otherwise with
        ``[]`` once everything is delivered, and the flush follows on the worker.
        """
        return self._submit(user_id, wait)

    def drain_and_stop(self, timeout: float, abort: Callable[[], None] | None = None) -> None:
        """Deliver what can be delivered (and flush) within ``timeout`` seconds, then stop.

        At the deadline ``abort`` interrupts a request still waiting for the server, so the
        thread ends now rather than when that request times out.
        """
        outcome = self.close(timeout, drain=True, abort=abort)
        self._fail_jobs()
        if outcome is StopOutcome.TIMED_OUT:
            log.warning(
                "The Memobase outbox did not stop within %.1fs; undelivered turns stay in %s "
                "and are sent at the next start.",
                timeout,
                self.store.path,
            )

    def _fail_jobs(self) -> None:
        while True:
            try:
                _, _, fut = self._jobs.get_nowait()
            except queue.Empty:
                return
            if fut.set_running_or_notify_cancel():
                fut.set_exception(
                    errors.MemobaseError("The Memobase client closed before this call ran.")
                )

    # -- loop -------------------------------------------------------------------------------
    def _past_deadline(self) -> bool:
        return self.past_deadline()

    def _cycle(self) -> bool:
        self._run_jobs()
        if self.stopping:
            return False
        return self._background_pass()

    def _after_cycle(self) -> None:
        if time.monotonic() >= self._next_checkpoint:
            self.store.checkpoint()
            self._next_checkpoint = time.monotonic() + _CHECKPOINT_SECONDS

    def _finish(self) -> None:
        self.store.checkpoint()

    def _run_jobs(self) -> None:
        while True:
            try:
                user_id, wait, fut = self._jobs.get_nowait()
            except queue.Empty:
                return
            if not fut.set_running_or_notify_cancel():
                continue
            try:
                with self.guards.hold(user_id):
                    self._work_user(user_id, force=True, flush=False)
                    self._raise_if_undelivered(user_id)
                    if wait is None:
                        fut.set_result(None)
                        continue
                    if not wait:
                        fut.set_result([])
                    results = self._flush_now(user_id)
                if wait:
                    fut.set_result(results)
            except BaseException as exc:
                if isinstance(exc, LeaseLost):
                    exc = errors.MemobaseTimeoutError(
                        f"User {user_id} was taken over by another process sharing the outbox "
                        "file while this call ran; nothing was lost. What to do: call again."
                    )
                if not fut.done():
                    fut.set_exception(exc)
                elif isinstance(exc, errors.MemobaseError):
                    log.warning("Memobase outbox: flush of user %s failed: %s", user_id, exc)
                else:
                    raise

    def _raise_if_undelivered(self, user_id: UUID) -> None:
        if self.store.needs_delivery(self.scope, user_id):
            raise self._last_error.get(user_id) or errors.MemobaseError(
                "Some recorded turns could not be delivered; see status()."
            )

    def _flush_now(self, user_id: UUID) -> list[ChatModalResponse]:
        """An explicit flush: re-buffer, flush, and again for orphans the proof found."""
        results: list[ChatModalResponse] = []
        for _ in range(3):
            if self.store.user_state(self.scope, user_id).needs_rebuffer and not self._rebuffer(
                user_id
            ):
                break
            got = self._flush(user_id)
            if got is None:
                break
            results.extend(got)
            if not self.store.user_state(self.scope, user_id).needs_rebuffer:
                return results
        raise self._last_error.get(user_id) or errors.ServiceUnavailableError(
            "The flush could not run now (a send of this user awaits confirmation, or blobs "
            "are being given to the server again). What to do: call flush() again in a "
            "moment; status() shows the last error."
        )

    def _background_pass(self) -> bool:
        now = time.time()
        worked = False
        for user_id in self.store.users_with_work(self.scope, now, self.policy):
            with self.guards.try_hold(user_id) as held:
                if held:
                    try:
                        self._work_user(user_id, force=False, flush=True)
                    except LeaseLost:
                        log.info("Memobase outbox: user %s was taken over elsewhere", user_id)
                    worked = True
            if not self._jobs.empty() or self.stopping:
                break
        return worked and self.store.has_any_work(self.scope) and self._any_due()

    def _any_due(self) -> bool:
        return bool(self.store.users_with_work(self.scope, time.time(), self.policy))

    def _drain(self) -> None:
        """Close: the jobs already queued, one forced attempt per user with undelivered
        rows, then flush everyone."""
        self._run_jobs()
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
                    if not self._drain_user(user_id, flush=False):
                        self._drain_skip.add(user_id)
            if self.policy.flush_on_close:
                for user_id in self.store.users_to_flush(self.scope):
                    self._drain_user(user_id, flush=True)
        except _Stop:
            pass
        except Exception:
            log.exception("The Memobase outbox worker failed while draining.")

    def _drain_user(self, user_id: UUID, *, flush: bool) -> bool:
        """One user at close; ``False`` when it still has undelivered rows afterwards."""
        if self._past_deadline():
            raise _Stop
        left = (self._drain_deadline or 0.0) - time.monotonic()
        try:
            with self.guards.hold(user_id, wait_seconds=min(0.5, max(0.0, left))):
                if flush:
                    if not self.store.user_state(self.scope, user_id).needs_rebuffer or (
                        self._rebuffer(user_id)
                    ):
                        self._flush(user_id)
                else:
                    self._work_user(user_id, force=True, flush=False)
        except (errors.MemobaseTimeoutError, LeaseLost):
            # Another process has this user right now: it delivers it.
            log.info("Memobase outbox: user %s is busy elsewhere; left to its holder", user_id)
            return False
        return not self.store.has_undelivered(self.scope, user_id)

    # -- one user ---------------------------------------------------------------------------
    def _work_user(self, user_id: UUID, *, force: bool, flush: bool) -> None:
        now = time.time()
        state = self.store.user_state(self.scope, user_id)
        if state.needs_rebuffer and (force or state.next_flush_at <= now):
            if not self._rebuffer(user_id):
                return
            if flush and self._flush(user_id) is None:
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
        return retry_delay(self.policy, attempts)

    def _deliver_row(self, row: TurnRow, *, force: bool) -> bool:
        user_id = row.user_id
        threshold = self.policy.buffer_token_threshold
        for index in range(row.delivered, len(row.blobs)):
            body = row.blobs[index]
            tokens = body_tokens(body)
            blob_id: UUID | None = None
            if row.uncertain == index:
                # The last send of this blob lost its answer: ask the server first.
                try:
                    self.guards.renew(user_id)
                    blob_id = self._find_blob(user_id, row.turn_id, index)
                except errors.MemobaseError as exc:
                    self._row_failed(row, index, exc, searching=True)
                    return False
                if blob_id is not None:
                    self.store.mark_unconfirmed(self.scope, user_id, blob_id)
                if blob_id is None:  # not there: the send never arrived, send it again
                    self.store.set_uncertain(row.seq, None)
                    row.uncertain = None
            if blob_id is None:
                buffered = self.store.buffered_tokens(self.scope, user_id)
                if buffered > 0 and buffered + tokens > threshold:
                    # Flush first so the server's buffer never overflows on its own: an
                    # overflowing insert makes the server process in the background, out of
                    # our sight (no results for the listeners, and a race with our flushes).
                    state = self.store.user_state(self.scope, user_id)
                    if not force and state.next_flush_at > time.time():
                        return False
                    if self._flush(user_id) is None:
                        return False
                try:
                    self.guards.renew(user_id)
                    # Marked in flight first: if the process dies before the answer is
                    # committed, the next start asks the server instead of sending again.
                    self.store.set_uncertain(row.seq, index)
                    blob_id = self.client.insert_body(user_id, body)
                except errors.MemobaseError as exc:
                    self._row_failed(row, index, exc, searching=False)
                    return False
            self.store.blob_delivered(row.seq, index, blob_id, tokens)
            row.uncertain = None
            self._last_error.pop(user_id, None)
            if (
                self.store.buffered_tokens(self.scope, user_id) > threshold
                and self._flush(user_id) is None
            ):
                return index + 1 >= len(row.blobs)
        return True

    def _row_failed(
        self, row: TurnRow, index: int, exc: errors.MemobaseError, *, searching: bool
    ) -> None:
        outcome = send_outcome(exc)
        uncertain = index if searching or outcome is SendOutcome.UNKNOWN else None
        permanent = not searching and refusal_is_permanent(exc)
        attempts = row.attempts + 1
        # A turn whose answer was lost is not parked for its attempts: the server may hold
        # it, and it must be resolved (found or sent) before the user is flushed again.
        disposition = decide(
            self.policy, attempts, permanent=permanent, uncertain=uncertain is not None
        )
        parked = disposition is Disposition.PARK
        self._last_error[row.user_id] = exc
        self.store.row_failed(
            row.seq,
            exc.message,
            uncertain=uncertain,
            parked=parked,
            next_attempt_at=time.time() + self._backoff(attempts),
        )
        if self._past_deadline():
            # close() interrupted this call: expected, and resolved at the next start.
            level = logging.INFO
        else:
            # The first failure, a parked turn and every tenth attempt are worth a warning;
            # the rest of a long outage would only flood the log.
            level = logging.WARNING if parked or attempts % 10 == 1 else logging.DEBUG
        log.log(
            level,
            "Memobase outbox: turn %s of user %s not delivered (attempt %d%s): %s",
            row.turn_id,
            row.user_id,
            attempts,
            ", parked: the server refuses it" if permanent else ", parked" if parked else "",
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

    def _flush(self, user_id: UUID) -> list[ChatModalResponse] | None:
        """Have the server process the user's buffer, then prove it processed ours.

        ``None`` when no flush ran (or it failed); otherwise the results. Never while a
        failed buffer awaits re-buffering (a success would count its turns processed) or a
        send of the user is in flight (issue: the stored copy would be processed, then the
        resend).
        """
        if self.store.user_state(self.scope, user_id).needs_rebuffer:
            return None
        if self.store.has_uncertain(self.scope, user_id):
            log.debug("Memobase outbox: user %s has a send to confirm first; no flush", user_id)
            return None
        batch = frozenset(self.store.unflushed_blob_ids(self.scope, user_id))
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
            level = logging.INFO if self._past_deadline() else logging.WARNING
            log.log(level, "Memobase outbox: flush of user %s failed: %s", user_id, exc.message)
            return None
        try:
            orphans = self._verify(user_id, batch)
        except (errors.MemobaseError, _Unsettled) as exc:
            reason = (
                "a processing of this user is still running on the server"
                if isinstance(exc, _Unsettled)
                else exc.message
            )
            attempts = self.store.user_state(self.scope, user_id).flush_attempts + 1
            self.store.flush_unverified(
                self.scope,
                user_id,
                f"processed; not yet confirmed for every turn ({reason}); checked again at "
                "the next flush",
                next_flush_at=time.time() + self._backoff(attempts),
            )
        else:
            self.store.flush_succeeded(self.scope, user_id, orphans)
        if results:
            self.client.notify_processed(user_id, results)
        return results

    def _verify(self, user_id: UUID, batch: frozenset[str]) -> frozenset[str]:
        """Blobs of ``batch`` the server did not process in the flush that just succeeded.

        The server answers an insert only after both of its commits (blob, then buffer
        row), so a blob whose insert was answered with success was buffered. A blob adopted
        after a lost answer was not seen answered: when the batch holds one, the user's
        chat blobs are listed. The server deletes a chat blob once processed, so one of ours
        still stored was never buffered (the buffer row's commit was lost in a crash) or
        sits in a buffer the server's own processing failed: no flush will process it.
        """
        if self._keeps_processed or not (self.store.unconfirmed(self.scope, user_id) & batch):
            return frozenset()
        still = frozenset(str(b) for b in self.client.blob_ids(user_id)) & batch
        if not still:
            return frozenset()
        if self.client.buffer_ids(user_id, "processing"):
            raise _Unsettled
        if self.client.buffer_ids(user_id, "done"):
            self._keeps_processed = True
            log.info(
                "Memobase outbox: this server keeps processed chat blobs "
                "(persistent_chat_blobs); processing is not double-checked."
            )
            return frozenset()
        log.warning(
            "Memobase outbox: %d blob(s) of user %s were stored but never processed by the "
            "server (e.g. it crashed between storing a blob and buffering it); giving them "
            "to it again.",
            len(still),
            user_id,
        )
        return still

    def _rebuffer(self, user_id: UUID) -> bool:
        """Give the server fresh copies of blobs it will never process (a failed buffer, or
        orphans found by :meth:`_verify`).

        For each such blob that is still stored: insert a copy (new idle buffer row), record
        the copy's id, then delete the old one. The order makes a crash cost at worst a
        duplicate copy, never a lost turn; a copy whose answer was lost is found again by
        its ``(turn_id, blob_index)`` fields.
        """
        pending = self.store.user_state(self.scope, user_id).rebuffer_ids
        for row in self.store.unflushed_rows(self.scope, user_id):
            for index in range(row.flushed, row.delivered):
                old = row.blob_ids[index]
                if old not in pending:
                    continue
                if self._past_deadline():
                    raise _Stop
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
                        if new is not None:
                            self.store.mark_unconfirmed(self.scope, user_id, new)
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
                        f"re-buffering: {exc.message}",
                        rebuffer=False,
                        next_flush_at=time.time() + self._backoff(attempts),
                    )
                    return False
                self.store.rebuffer_done(self.scope, user_id, old, row.seq, index, new)
                try:
                    self.client.delete_blob(user_id, UUID(old))
                except errors.MemobaseError as exc:
                    # The old copy sits in a failed buffer or in none, which the server never
                    # processes: leaving it costs storage, not correctness.
                    log.info("Memobase outbox: could not delete blob %s: %s", old, exc.message)
        self.store.rebuffer_finished(self.scope, user_id)
        return True
