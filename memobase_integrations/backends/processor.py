"""The processor: claim a user's batch -> run the pipeline -> commit, or record the failure.

This is everything processing needs and nothing else, so the worker process builds only
this (a store, an LLM client and the pipeline), never a whole ``EmbeddedBackend``; the
backend delegates its ``flush`` to the same object.

Exactly once, whoever runs it: a claim leases the user's rows in the store; the LLM steps
run outside any transaction; the results are written in one transaction that also retires
the rows and commits only if the lease is still this claim's. A live flush's lease is
renewed (:class:`~.worker.LeaseKeeper`); a crashed one's expires and the rows are taken
over. The store answers ``BUSY`` while any flush holds a live lease on the user, so two
flushes of one user never overlap, in one process or across several.

Failures keep the turns: the rows are marked ``failed`` with the error text and retried
with exponential backoff (``FlushPolicy.retry_base_seconds`` .. ``retry_max_seconds``),
parked after ``max_attempts`` (:mod:`..queue.parking`).

Thread-safe: the worker runs flushes of different users on several threads at once
(``FlushPolicy.max_concurrent_flushes``); the LLM client's gate bounds the requests in
flight and shares a rate-limit pause between them (:mod:`..engine.llm_gate`).
"""

from __future__ import annotations

import heapq
import logging
import os
import socket
import threading
import time
import uuid
from collections.abc import Sequence
from datetime import timedelta

from ..engine.llm import NO_LLM_MESSAGE, LLMClient
from ..engine.pipeline import Pipeline
from ..engine.plan import Claim
from ..engine.store import BUSY, DueUser, LeaseLostError, Store, clock
from ..errors import ConfigurationError, MemobaseError, ServerError
from ..models import BlobType, ChatModalResponse
from ..queue import Disposition, decide, retry_delay
from ..settings import FlushPolicy
from .base import ProcessedListener
from .project_config import ConfigCache
from .worker import LeaseKeeper

__all__ = ["Processor"]

logger = logging.getLogger(__name__)

#: Seconds between two prunings of the turn ledger (``FlushPolicy.turn_ledger_days``).
_LEDGER_PRUNE_INTERVAL = 3600.0


class Processor:
    """Processes claimed batches against one store with one LLM client.

    ``config`` resolves the project's profile config (shared with the reader when the
    backend builds both). Listeners get ``(user_id, [response])`` after each commit.
    """

    def __init__(
        self,
        store: Store,
        llm: LLMClient,
        policy: FlushPolicy,
        *,
        config: ConfigCache,
        lease_seconds: float,
        keep_processed_blobs: bool = False,
    ) -> None:
        self.store = store
        self.llm = llm
        self.policy = policy
        self.config = config
        self.pipeline = Pipeline(llm)
        self.lease_seconds = lease_seconds
        self.keep_processed_blobs = keep_processed_blobs
        self._listeners: list[ProcessedListener] = []
        host = socket.gethostname()[:48]
        self._owner_prefix = f"{host}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        self._claims = 0
        self._lock = threading.Lock()
        self._retries: list[float] = []  # monotonic times at which failed turns are due
        self._next_ledger_prune = 0.0
        self._metered_lock = threading.Lock()
        self._metered = (0, 0)  # LLM prompt/completion tokens already written to mb_usage
        self._leases = LeaseKeeper(store.renew, lease_seconds)
        self._closed = False

    # -- listeners --------------------------------------------------------------------------
    def add_listener(self, listener: ProcessedListener) -> None:
        self._listeners.append(listener)

    def notify(self, user_id: uuid.UUID, responses: Sequence[ChatModalResponse]) -> None:
        """Tell the listeners about processed batches (also those of a worker process)."""
        for listener in list(self._listeners):
            try:
                listener(user_id, responses)
            except Exception:
                logger.exception("memobase: a processed-listener failed")

    # -- what the worker asks ---------------------------------------------------------------
    def processing_possible(self) -> bool:
        return self.llm.configured

    def due_users(self, *, drain: bool) -> Sequence[DueUser]:
        return self.store.due_users(
            threshold=self.policy.buffer_token_threshold,
            idle_seconds=self.policy.idle_flush_seconds,
            drain=drain,
        )

    def next_retry_in(self) -> float | None:
        """Seconds until the earliest retry this processor scheduled (so the worker wakes
        for it instead of polling); ``None`` when none is pending."""
        now = time.monotonic()
        with self._lock:
            while self._retries and self._retries[0] <= now - 1.0:
                heapq.heappop(self._retries)
            return max(0.0, self._retries[0] - now) if self._retries else None

    def maintain(self) -> None:
        """Worker housekeeping: the SQLite WAL checkpoint, and (at most hourly) forgetting
        turn ids older than ``FlushPolicy.turn_ledger_days``."""
        self.store.checkpoint()
        days = self.policy.turn_ledger_days
        now = time.monotonic()
        if days is None or now < self._next_ledger_prune:
            return
        self._next_ledger_prune = now + _LEDGER_PRUNE_INTERVAL
        cutoff = clock.utcnow() - timedelta(days=days)
        while self.store.prune_turns(cutoff) > 0 and not self._closed:
            pass

    # -- flushing ---------------------------------------------------------------------------
    def _new_owner(self) -> str:
        with self._lock:
            self._claims += 1
            return f"{self._owner_prefix}:{self._claims}"

    def _claim(self, user_id: uuid.UUID, blob_type: BlobType, *, force: bool) -> object:
        return self.store.claim(
            user_id,
            blob_type,
            self._new_owner(),
            lease_seconds=self.lease_seconds,
            max_tokens=self.policy.max_process_tokens,
            force=force,
        )

    def flush_once(self, user_id: uuid.UUID, blob_type: BlobType, *, force: bool) -> bool:
        """One batch for the worker; True if something was committed. Raises on failure
        (after recording it on the buffer rows)."""
        claim = self._claim(user_id, blob_type, force=force)
        if not isinstance(claim, Claim):
            return False
        return self.process(claim) is not None

    def flush_all(
        self, user_id: uuid.UUID, blob_type: BlobType, *, deadline: float | None = None
    ) -> list[ChatModalResponse]:
        """Process the user's whole buffer of this type, batch after batch, waiting for a
        concurrent flush of the same user (any thread or process) to finish first."""
        if not self.llm.configured:
            raise ConfigurationError(NO_LLM_MESSAGE)
        results: list[ChatModalResponse] = []
        pause = 0.02
        while deadline is None or time.monotonic() < deadline:
            claim = self._claim(user_id, blob_type, force=True)
            if claim is BUSY:
                time.sleep(pause)
                pause = min(pause * 2, 0.1)
                continue
            if not isinstance(claim, Claim):
                break
            response = self.process(claim)
            if response is not None:
                results.append(response)
        return results

    def process(self, claim: Claim) -> ChatModalResponse | None:
        """Run the pipeline on a claim and commit, or record the failure on its rows.

        Returns ``None`` when the lease was lost (another flush owns the rows now).
        """
        self._leases.add(claim.owner)
        try:
            profiles = self.store.list_profiles(claim.user_id)
            plan = self.pipeline.run(claim.blobs, claim.blob_type, profiles, self.config.resolved())
            response = self.store.commit_flush(claim, plan, keep_blobs=self.keep_processed_blobs)
        except LeaseLostError as exc:
            logger.warning("memobase: %s", exc.message)
            return None
        except MemobaseError as exc:
            self._record_failure(claim, exc)
            raise
        except Exception as exc:  # a bug: still never lose the turns
            self._record_failure(claim, exc)
            raise ServerError(
                f"Processing the buffer of user {claim.user_id} failed unexpectedly "
                f"({type(exc).__name__}: {exc}). The turns stay buffered (failed) and will be "
                "retried; please report this."
            ) from exc
        finally:
            self._leases.discard(claim.owner)
            self.meter_llm_usage()
        self.notify(claim.user_id, [response])
        return response

    def _record_failure(self, claim: Claim, exc: BaseException) -> None:
        text = exc.message if isinstance(exc, MemobaseError) else f"{type(exc).__name__}: {exc}"
        attempt = claim.attempts + 1
        retry_at = None  # parked
        if decide(self.policy, attempt) is Disposition.RETRY:
            delay = retry_delay(self.policy, attempt)
            retry_at = clock.utcnow() + timedelta(seconds=delay)
            with self._lock:
                heapq.heappush(self._retries, time.monotonic() + delay)
        try:
            self.store.fail_flush(claim, text, retry_at)
        except MemobaseError:
            # The rows stay "processing" under a lease that expires: still not lost.
            logger.exception("memobase: could not record a failed flush of %s", claim.user_id)

    # -- usage ------------------------------------------------------------------------------
    def meter_llm_usage(self) -> None:
        """Add the LLM tokens this process used since the last call to today's usage.

        The client's counters are per process and cumulative; writing the difference under a
        lock counts every token once, whichever thread (or worker process) spent it."""
        with self._metered_lock:
            steps = self.llm.usage().values()
            total = (
                sum(s.prompt_tokens for s in steps),
                sum(s.completion_tokens for s in steps),
            )
            prompt, completion = (total[0] - self._metered[0], total[1] - self._metered[1])
            if prompt <= 0 and completion <= 0:
                return
            try:
                self.store.add_usage(
                    clock.utcnow().date().isoformat(), input_tokens=prompt, output_tokens=completion
                )
            except MemobaseError as exc:
                logger.warning("memobase: could not record LLM usage: %s", exc)
                return
            self._metered = total

    def close(self) -> None:
        """Stop renewing leases (the store and the LLM client are the owner's to close)."""
        self._closed = True
        self._leases.stop()
