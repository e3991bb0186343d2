"""The embedded backend's background threads: the flush worker and the lease keeper.

Why threads and not asyncio: processing is a few blocking LLM calls per flush, and the
recording hot path must never wait for it. A daemon thread per backend keeps ``record`` a
local write while processing happens elsewhere, in sync and async apps alike.

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


class FlushRunner(Protocol):
    """What the worker needs from the backend."""

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


class FlushWorker(BackgroundLoop):
    """One daemon thread that flushes due users, one batch per user per cycle.

    A cycle takes the explicit requests first, then asks the store which users are due. After
    a cycle that processed something it immediately runs the next one (a user with more than
    one batch, or new due users); otherwise it sleeps ``worker_poll_seconds`` or until woken.
    Start, wake and the bounded stop are :class:`~memobase_integrations.queue.BackgroundLoop`.
    """

    def __init__(self, runner: FlushRunner, policy: FlushPolicy, name: str = "memobase-flush"):
        super().__init__(name, policy.worker_poll_seconds)
        self._runner = runner
        self._policy = policy
        self._lock = threading.Lock()
        self._requests: dict[tuple[UUID, BlobType], None] = {}
        self._warned_no_llm = False

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

        ``FINISHED`` if the thread finished within ``timeout``. If it did not
        (``TIMED_OUT``: an LLM call is still running), the thread is told to stop after its
        current step; whatever it had claimed stays ``processing`` under a lease that
        expires, and the next start picks those turns up again - nothing is lost.
        """
        return self.close(timeout, drain=drain)

    def drain(self, *, timeout: float) -> StopOutcome:
        """Start this (not yet started) worker only to flush everything buffered, then stop:
        ``close()``'s drain when no worker runs. Bounded like :meth:`stop`: a thread still
        inside an LLM call at ``timeout`` is abandoned (``TIMED_OUT``), its claim's lease
        expires and the next start takes the turns over."""
        return self.close(timeout, drain=True, run_if_idle=True)

    # -- the loop -------------------------------------------------------------------------------
    def _cycle(self) -> bool:
        return self._pass(drain=False)

    def _after_cycle(self) -> None:
        self._runner.maintain()

    def _drain(self) -> None:
        deadline = self._drain_deadline or 0.0
        while time.monotonic() < deadline and not self.abandoned:
            try:
                if not self._pass(drain=True, deadline=deadline):
                    return
            except Exception:
                logger.exception("memobase: flushing on close failed")
                return

    def _pass(self, *, drain: bool, deadline: float | None = None) -> bool:
        """One pass; True if any batch was committed (so another pass may find more)."""
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
        work: list[tuple[UUID, BlobType, bool]] = [(u, bt, True) for u, bt in requested]
        seen = set(requested)
        for due in self._runner.due_users(drain=drain):
            if (due.user_id, due.blob_type) not in seen:
                work.append((due.user_id, due.blob_type, False))
        progressed = False
        for user_id, blob_type, force in work:
            if self.abandoned or (deadline is not None and time.monotonic() > deadline):
                break
            if self.stopping and not drain:
                break
            try:
                progressed |= self._runner.flush_once(user_id, blob_type, force=force)
            except MemobaseError as exc:
                logger.warning(
                    "memobase: processing user %s failed, will retry with backoff: %s",
                    user_id,
                    exc.message,
                )
            except Exception:
                logger.exception("memobase: unexpected error while processing user %s", user_id)
        return progressed


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
