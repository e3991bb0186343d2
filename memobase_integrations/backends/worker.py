"""The embedded backend's background threads: the flush worker and the lease keeper.

Why threads and not asyncio: a flush is a few blocking LLM calls of the one sync pipeline
(also what ``flush()`` runs inline), and the recording hot path must never wait for it. A
daemon loop thread per backend hands due users to short-lived flush threads, one per user in
flight (``FlushPolicy.max_concurrent_flushes``): while one flush waits for the LLM, the others
run, which is where a worker's throughput comes from with a hosted model's latency.

The worker owns *when* a user's buffer is processed (the flush policy):

* over the token threshold (``FlushPolicy.buffer_token_threshold``, strict ``>``);
* idle for ``idle_flush_seconds`` (Memobase never flushes an idle buffer; we do);
* on an explicit ``flush(wait=False)`` request;
* failed work once its backoff has elapsed, and work a dead process left under an expired
  lease;
* on ``close()``: everything still buffered, bounded by ``close_timeout_seconds``.

The lease keeper renews the leases of in-flight flushes, so a slow LLM never lets a live
flush's lease expire (which would let another process take the same turns over), while a
crashed process's lease does expire and its turns get picked up again.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections.abc import Callable, Sequence
from typing import Protocol
from uuid import UUID

from ..engine.store import DueUser
from ..errors import MemobaseError
from ..models import BlobType
from ..queue.loop import BackgroundLoop, StopOutcome
from ..settings import FlushPolicy

__all__ = ["FlushRunner", "FlushWorker", "LeaseKeeper", "StopOutcome"]  # StopOutcome: re-export

logger = logging.getLogger(__name__)

#: How long a user whose flush found nothing to do is skipped (unless explicitly requested).
_REST_SECONDS = 1.0
#: How long a due list read from the store keeps feeding finished flushes' slots.
_DUE_LIST_SECONDS = 1.0


class FlushRunner(Protocol):
    """What the worker needs from the processor (:class:`~.processor.Processor`)."""

    def due_users(self, *, drain: bool) -> Sequence[DueUser]: ...

    def flush_once(self, user_id: UUID, blob_type: BlobType, *, force: bool) -> bool:
        """Process one batch of the user; True if a batch was committed. Raises on failure
        (after recording it on the buffer rows)."""
        ...

    def processing_possible(self) -> bool:
        """False when no LLM is configured: the worker then leaves the buffer alone."""
        ...

    def maintain(self) -> None:
        """Housekeeping kept off the request path (e.g. the SQLite WAL checkpoint)."""
        ...

    def next_retry_in(self) -> float | None:
        """Seconds until a failed batch it scheduled is due again, if any."""
        ...


_Key = tuple[UUID, BlobType]


class FlushWorker(BackgroundLoop):
    """A daemon thread that hands due users to flush threads, several users at once.

    A cycle takes the explicit requests first, then asks the store which users are due, and
    starts one flush thread per user not already in flight, up to
    ``FlushPolicy.max_concurrent_flushes``. One user is never flushed twice at once (an
    in-flight user is skipped here, and the store's lease refuses a second claim anyway).
    A flush that committed wakes the loop (the user may have another batch); one that found
    nothing to do rests that user until the next poll, so a user leased by another process
    is not spun on. When idle the loop sleeps until woken (a recorded turn, a NOTIFY, a
    finished flush), until a scheduled retry is due, or for the safety-net poll
    (``FlushPolicy.embedded_poll_seconds``). Start, wake and the bounded stop are
    :class:`~memobase_integrations.queue.BackgroundLoop`.
    """

    def __init__(self, runner: FlushRunner, policy: FlushPolicy, name: str = "memobase-flush"):
        super().__init__(name, policy.embedded_poll_seconds)
        self._runner = runner
        self._policy = policy
        self._lock = threading.Condition()
        self._requests: dict[_Key, None] = {}
        self._inflight: dict[_Key, threading.Thread] = {}
        self._threads: list[threading.Thread] = []  # every flush thread not yet joined
        self._rest: dict[_Key, float] = {}  # user -> monotonic time before which it is skipped
        self._due: dict[_Key, None] = {}  # the last due list read, minus the users started
        self._due_read_at = -math.inf
        self._stop_deadline: float | None = None
        self._warned_no_llm = False
        #: Most flushes that were in flight at once (tests and diagnostics).
        self.peak_concurrency = 0
        #: What must live as long as this worker runs (its backend, whose exit hook drains).
        self.owner: object = None

    @property
    def alive(self) -> bool:
        return self.running

    def request(self, user_id: UUID, blob_type: BlobType) -> None:
        """Flush this user soon, regardless of the threshold (``flush(wait=False)``)."""
        with self._lock:
            self._requests[(user_id, blob_type)] = None
        self.wake()

    def stop(self, *, drain: bool, timeout: float) -> StopOutcome:
        """Stop the thread; with ``drain``, first flush everything still buffered.

        ``FINISHED`` if the thread and its flushes finished within ``timeout``. If they did
        not (``TIMED_OUT``: an LLM call is still running), they are told to stop after their
        current step; whatever they had claimed stays ``processing`` under a lease that
        expires, and the next start picks those turns up again - nothing is lost.
        """
        self._stop_deadline = time.monotonic() + max(0.0, timeout)
        return self._outcome(self.close(timeout, drain=drain))

    def drain(self, *, timeout: float) -> StopOutcome:
        """Start this (not yet started) worker only to flush everything buffered, then stop:
        ``close()``'s drain when no worker runs. Bounded like :meth:`stop`: flushes still
        inside an LLM call at ``timeout`` are abandoned (``TIMED_OUT``), their claims'
        leases expire and the next start takes the turns over."""
        self._stop_deadline = time.monotonic() + max(0.0, timeout)
        return self._outcome(self.close(timeout, drain=True, run_if_idle=True))

    def _outcome(self, outcome: StopOutcome) -> StopOutcome:
        """The loop thread may have ended in time while a flush thread is still inside an
        LLM call: that is a stop that ran out of time too."""
        with self._lock:
            running = bool(self._inflight)
        return StopOutcome.TIMED_OUT if running else outcome

    # -- the loop -------------------------------------------------------------------------------
    def _cycle(self) -> bool:
        started = self._pass(drain=False)
        if not started:
            self.poll_seconds = self._idle_wait()
        return started

    def _idle_wait(self) -> float:
        wait = self._policy.embedded_poll_seconds
        retry = self._runner.next_retry_in()
        if retry is not None:
            wait = min(wait, retry + 0.05)
        idle = self._policy.idle_flush_seconds
        if idle is not None:
            wait = min(wait, max(0.05, idle / 4))
        return max(0.01, wait)

    def _after_cycle(self) -> None:
        self._runner.maintain()

    def _drain(self) -> None:
        deadline = self._drain_deadline or 0.0
        with self._lock:
            self._rest.clear()
        while time.monotonic() < deadline and not self.abandoned:
            try:
                started = self._pass(drain=True, deadline=deadline)
            except Exception:
                logger.exception("memobase: flushing on close failed")
                return
            with self._lock:
                if not started and not self._inflight:
                    return
                self._lock.wait(max(0.0, min(0.5, deadline - time.monotonic())))

    def _finish(self) -> None:
        """Wait (until the stop's deadline) for the flushes still in flight."""
        deadline = self._stop_deadline if self._stop_deadline is not None else time.monotonic()
        with self._lock:
            while self._inflight and (left := deadline - time.monotonic()) > 0:
                self._lock.wait(left)
            running = list(self._inflight.values())
            done = [t for t in self._threads if t not in running]
        for thread in done:  # finished: only their last wake() is left
            thread.join(1.0)
        if running:
            self._abandon.set()  # each ends after its current step; its lease expires

    def _pass(self, *, drain: bool, deadline: float | None = None) -> bool:
        """Start flushes for what is due; True if any was started.

        Explicit requests go first. Then the due list read by an earlier pass, while it is
        younger than ``_DUE_LIST_SECONDS``; the store is asked again only when slots are
        still free after that (the list ran out of startable users, or is too old). Asking
        is a scan of the whole open buffer: before, every finished flush paid one, which
        with a backlog of a thousand users and several processes made the scans, not the
        flushes, most of a worker's CPU. A listed user processed elsewhere meanwhile costs
        one refused claim (its lease is live, or nothing is left to take).
        """
        if not self._runner.processing_possible():
            if not self._warned_no_llm:
                self._warned_no_llm = True
                logger.warning(
                    "memobase: no LLM configured; recorded turns stay buffered until one is."
                )
            with self._lock:
                self._requests.clear()
            return False
        with self._lock:
            requested = list(self._requests)
            self._requests.clear()
        started = self._start([(k, True) for k in requested], drain, deadline)
        if not drain and time.monotonic() - self._due_read_at < _DUE_LIST_SECONDS:
            started |= self._start([(k, False) for k in self._due], drain, deadline)
        if not self._room():
            return started
        due = self._runner.due_users(drain=drain)
        with self._lock:
            self._due = {(d.user_id, d.blob_type): None for d in due}
            self._due_read_at = time.monotonic()
        return self._start([(k, False) for k in self._due], drain, deadline) or started

    def _room(self) -> bool:
        with self._lock:
            return len(self._inflight) < self._policy.max_concurrent_flushes

    def _start(
        self, work: Sequence[tuple[_Key, bool]], drain: bool, deadline: float | None
    ) -> bool:
        """One flush thread per user of ``work`` (``(key, forced)``) that may run now."""
        started = False
        now = time.monotonic()
        for key, force in work:
            if self.abandoned or (deadline is not None and time.monotonic() > deadline):
                break
            if self.stopping and not drain:
                break
            with self._lock:
                busy = key in self._inflight
                full = len(self._inflight) >= self._policy.max_concurrent_flushes
                if force and (busy or full):
                    self._requests[key] = None  # after the running flush ends
                    continue
                if full:
                    break
                if busy or (not force and self._rest.get(key, 0.0) > now):
                    continue
                self._rest.pop(key, None)
                self._due.pop(key, None)
                thread = threading.Thread(
                    target=self._flush,
                    args=(key, force, drain),
                    name=self.name,  # (what a test or a thread dump looks for)
                    daemon=True,
                )
                self._inflight[key] = thread
                self._threads = [t for t in self._threads if t.is_alive()]
                self._threads.append(thread)
                self.peak_concurrency = max(self.peak_concurrency, len(self._inflight))
            thread.start()
            started = True
        return started

    def _flush(self, key: _Key, force: bool, drain: bool) -> None:
        user_id, blob_type = key
        progressed = False
        try:
            if not self.abandoned:
                progressed = self._runner.flush_once(user_id, blob_type, force=force)
        except MemobaseError as exc:
            logger.warning(
                "memobase: processing user %s failed, will retry with backoff: %s",
                user_id,
                exc.message,
            )
        except Exception:
            logger.exception("memobase: unexpected error while processing user %s", user_id)
        finally:
            with self._lock:
                self._inflight.pop(key, None)
                if force and progressed:
                    self._requests[key] = None  # a request means the whole buffer
                if not progressed:
                    # Nothing to do, leased elsewhere, or failed (its retry wakes us): skip
                    # this user for a moment (for the rest of a drain), never spin on it.
                    rest = min(self.poll_seconds, _REST_SECONDS)
                    self._rest[key] = math.inf if drain else time.monotonic() + rest
                self._lock.notify_all()
            self.wake()


class LeaseKeeper:
    """Renews the leases of this process's in-flight flushes every ``lease_seconds / 3``."""

    def __init__(
        self,
        renew: Callable[[Sequence[str], float], int],
        lease_seconds: float,
        name: str = "memobase-lease",
    ) -> None:
        self._renew = renew
        self._lease = lease_seconds
        self._owners: set[str] = set()
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._name = name

    def add(self, owner: str) -> None:
        with self._lock:
            self._owners.add(owner)
            if self._thread is None and not self._stop.is_set():
                self._thread = threading.Thread(target=self._run, name=self._name, daemon=True)
                self._thread.start()

    def discard(self, owner: str) -> None:
        with self._lock:
            self._owners.discard(owner)

    def stop(self) -> None:
        self._stop.set()
        thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout=1.0)

    def _run(self) -> None:
        interval = max(0.05, self._lease / 3)
        while not self._stop.wait(interval):
            with self._lock:
                owners = list(self._owners)
            if not owners:
                continue
            try:
                self._renew(owners, self._lease)
            except Exception:
                logger.warning("memobase: renewing flush leases failed; will retry", exc_info=True)
