"""Where an ``EmbeddedBackend``'s flush worker runs, and how it stops within a budget.

The backend decides *whether* to run a worker; this decides *where* (a child process when it
can, else a thread of this process, see :mod:`.worker_process`), restarts it as a thread if
the process cannot start, listens for PostgreSQL's NOTIFY when the worker is a thread here,
and stops it on ``close()``: draining through the worker within the budget, or in this
process when the worker process had died or none ran.
"""

from __future__ import annotations

import logging
import time
from typing import Any
from uuid import UUID

from ..engine.notify import TurnListener
from ..errors import ConfigurationError, MemobaseError
from ..models import BlobType
from ..options import WorkerMode
from .processor import Processor
from .worker import FlushWorker, StopOutcome
from .worker_process import ProcessWorker, process_worker_obstacle

__all__ = ["WorkerHost"]

logger = logging.getLogger(__name__)


class WorkerHost:
    """The backend's handle on its flush worker (``None`` until :meth:`start`)."""

    def __init__(self, processor: Processor, owner: object = None) -> None:
        self.processor = processor
        # A running worker keeps its backend alive: a backend its app forgot must still be
        # closed (and drained) by its interpreter-exit hook, which holds it only weakly.
        self._owner = owner
        self.policy = processor.policy
        self.worker: FlushWorker | ProcessWorker | None = None
        #: ``"process"``, ``"thread"`` or ``None`` (no background worker).
        self.mode: str | None = None
        self._listener: TurnListener | None = None
        self._closed = False

    @property
    def pid(self) -> int | None:
        return self.worker.pid if isinstance(self.worker, ProcessWorker) else None

    @property
    def alive(self) -> bool:
        return self.worker is not None and self.worker.alive

    def wake(self) -> None:
        if self.worker is not None:
            self.worker.wake()

    def request(self, user_id: UUID, blob_type: BlobType) -> None:
        if self.worker is not None:
            self.worker.request(user_id, blob_type)

    # -- start ------------------------------------------------------------------------------
    def start(self, mode: WorkerMode, child_config: dict[str, Any]) -> None:
        llm, store = self.processor.llm, self.processor.store
        if mode != "thread" and llm.configured:
            obstacle = process_worker_obstacle(child_config, in_memory=store.in_memory)
            if obstacle is None:
                process = ProcessWorker(
                    child_config,
                    self.processor.notify,
                    on_give_up=self._fall_back_to_thread if mode == "auto" else None,
                )
                process.owner = self._owner
                try:
                    process.start()
                    self.worker, self.mode = process, "process"
                    return
                except OSError as exc:
                    if mode == "process":
                        raise ConfigurationError(
                            f"Could not start the flush worker process: {exc}. Use worker='thread'."
                        ) from exc
                    obstacle = f"starting it failed ({exc})"
            if mode == "process":
                raise ConfigurationError(
                    f"worker='process' is not possible here: {obstacle}. Use worker='thread' "
                    "(or 'auto', which falls back to it)."
                )
            logger.debug("memobase: flush worker runs as a thread: %s", obstacle)
        # Without an LLM there is nothing to process: a thread that only warns is cheaper
        # than an interpreter.
        self.worker, self.mode = self._start_thread(), "thread"

    def _fall_back_to_thread(self, reason: str) -> None:
        """``worker="auto"`` only: the worker process cannot start here, so run it as a thread."""
        if self._closed:
            return
        logger.warning(
            "memobase: %s; the flush worker runs as a thread in this process instead.", reason
        )
        self.worker, self.mode = self._start_thread(), "thread"

    def _start_thread(self) -> FlushWorker:
        """The worker as a thread of this process, woken by PostgreSQL's NOTIFY if it can."""
        thread = FlushWorker(self.processor, self.policy)
        thread.owner = self._owner
        thread.start()
        if self.processor.llm.configured and self._listener is None:
            listener = TurnListener(self.processor.store.engine, thread.wake)
            if listener.start():
                self._listener = listener
        return thread

    @property
    def listener(self) -> TurnListener | None:
        """PostgreSQL's NOTIFY, when it wakes the worker thread of this process."""
        return self._listener

    # -- stop -------------------------------------------------------------------------------
    def stop(self, *, drain: bool, budget: float) -> None:
        """Stop the worker within ``budget`` seconds, draining first if asked (through the
        worker; in this process when it had died or none ran). Logs what was left."""
        self._closed = True
        deadline = time.monotonic() + budget
        try:
            if self.worker is not None:
                outcome = self.worker.stop(drain=drain, timeout=budget)
                if outcome is StopOutcome.TIMED_OUT:
                    logger.warning(
                        "memobase: close() timed out after %.1fs; unprocessed turns stay "
                        "buffered and are processed on the next start.",
                        budget,
                    )
                elif outcome is StopOutcome.DIED:
                    self._drain_after_dead_worker(drain, deadline)
            elif drain:
                self._drain_bounded(deadline, why="")
        finally:
            if self._listener is not None:
                self._listener.stop()

    def _drain_after_dead_worker(self, drain: bool, deadline: float) -> None:
        """close() found the worker process dead: do its drain here, and say what happened."""
        code = getattr(self.worker, "exit_code", None)
        if not drain:
            logger.warning(
                "memobase: the flush worker process had exited (code %s) before close(); "
                "nothing was lost: unprocessed turns stay buffered for the next start.",
                code,
            )
            return
        left = max(0.0, deadline - time.monotonic())
        logger.warning(
            "memobase: the flush worker process had exited (code %s) before close(); "
            "processing what is buffered in this process instead (at most %.1fs).",
            code,
            left,
        )
        self._drain_bounded(deadline, why="the worker process had exited")

    def _drain_bounded(self, deadline: float, *, why: str) -> None:
        """close()'s drain in this process, on a throwaway worker thread joined until
        ``deadline``; ``why`` (if any) is logged with the outcome."""
        outcome = FlushWorker(self.processor, self.policy, name="memobase-close-drain").drain(
            timeout=max(0.0, deadline - time.monotonic())
        )
        if outcome is StopOutcome.TIMED_OUT:
            logger.warning(
                "memobase: close() ran out of time while processing in this process%s; "
                "unprocessed turns stay buffered and are processed on the next start.",
                f" ({why})" if why else "",
            )
        elif why:
            try:
                pending = self.processor.store.status(None).pending_turns
            except MemobaseError:
                pending = -1
            logger.warning(
                "memobase: close() processed the buffer in this process (%s); %s",
                why,
                "nothing is left buffered."
                if pending == 0
                else "turns that could not be processed stay buffered for the next start.",
            )
