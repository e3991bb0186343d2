"""The background thread of a queue worker: start, wake, stop within a budget.

Both workers (the embedded flush worker and the remote outbox's delivery worker) are one
daemon thread that runs *cycles*: a cycle does what is due and says whether it did
something; after a busy cycle the next one follows at once, otherwise the thread sleeps
``poll_seconds`` or until :meth:`BackgroundLoop.wake`. Closing is the part that must be
right everywhere, so it lives here once:

* :meth:`BackgroundLoop.close` ends the cycles, optionally *drains* (a last forced pass,
  bounded by the budget), and returns how it ended (:class:`StopOutcome`);
* at the deadline an ``abort`` callback may interrupt a blocking call (the remote backend
  shuts its sockets down), and the thread gets a short grace to notice;
* a thread still busy after that is *abandoned* (:attr:`BackgroundLoop.abandoned` tells
  the subclass to stop after its current step); what it held stays leased and is taken
  over later, so nothing is lost;
* a cycle that raises is logged and the loop goes on: a bug must not lose turns.
"""

from __future__ import annotations

import enum
import logging
import threading
import time
from collections.abc import Callable

__all__ = ["BackgroundLoop", "StopOutcome"]

log = logging.getLogger(__name__)

#: After the close deadline and an ``abort``, how long the thread may take to notice.
ABORT_GRACE_SECONDS = 5.0


class StopOutcome(enum.Enum):
    """How a worker's ``stop`` ended, so ``close()`` can say (and do) the right thing."""

    #: Stopped, after draining if asked.
    FINISHED = "finished"
    #: Still busy when the budget ran out (e.g. an LLM call in flight); what it had claimed
    #: stays leased and is taken over after the lease expires.
    TIMED_OUT = "timed out"
    #: The worker process was not running (it had died and a restart was pending) or died
    #: while draining: nothing was drained through it, the caller may drain inline.
    DIED = "died"


class BackgroundLoop:
    """A daemon thread running :meth:`_cycle` until stopped. Subclasses implement
    :meth:`_cycle` and may override :meth:`_drain` (the last pass at ``close(drain=True)``)
    and :meth:`_after_cycle` (housekeeping after every cycle, errors only logged)."""

    def __init__(self, name: str, poll_seconds: float) -> None:
        self.name = name
        self.poll_seconds = poll_seconds
        self._wakeup = threading.Event()
        self._stopping = threading.Event()
        self._abandon = threading.Event()
        self._start_lock = threading.Lock()
        self._closed = False
        self._thread: threading.Thread | None = None
        #: When the drain must end (``None``: no drain asked, or not stopping).
        self._drain_deadline: float | None = None

    # -- control ------------------------------------------------------------------------------
    def start(self) -> None:
        """Start the thread (once; a no-op when running, or after :meth:`close`)."""
        with self._start_lock:
            if self._thread is not None or self._closed:
                return
            self._thread = threading.Thread(target=self._run, name=self.name, daemon=True)
            self._thread.start()

    @property
    def running(self) -> bool:
        thread = self._thread
        return thread is not None and thread.is_alive()

    @property
    def closing(self) -> bool:
        """``close`` was called: no new work is accepted."""
        return self._closed

    @property
    def stopping(self) -> bool:
        """``close`` was called: the current cycle should end soon (the drain follows)."""
        return self._stopping.is_set()

    @property
    def abandoned(self) -> bool:
        """The budget of ``close`` ran out: stop after the current step."""
        return self._abandon.is_set()

    def on_loop_thread(self) -> bool:
        return threading.current_thread() is self._thread

    def wake(self) -> None:
        """Run a cycle now instead of at the end of the poll interval."""
        self._wakeup.set()

    def past_deadline(self) -> bool:
        """The drain's budget is spent (always ``False`` while not draining)."""
        deadline = self._drain_deadline
        return deadline is not None and time.monotonic() >= deadline

    def close(
        self,
        timeout: float,
        *,
        drain: bool = True,
        abort: Callable[[], None] | None = None,
        run_if_idle: bool = False,
    ) -> StopOutcome:
        """End the cycles and (with ``drain``) run the last pass, all within ``timeout``.

        ``abort`` is called at the deadline when the thread is still busy, to interrupt a
        blocking call; the thread then has :data:`ABORT_GRACE_SECONDS` to end.
        ``run_if_idle``: a loop that was never started runs only the drain now (the
        embedded ``close()`` without a worker); otherwise it just stops.
        """
        deadline = time.monotonic() + max(0.0, timeout)
        with self._start_lock:
            self._closed = True
            self._drain_deadline = deadline if drain else None
            self._stopping.set()
            thread = self._thread
            if thread is None and run_if_idle:
                thread = self._thread = threading.Thread(
                    target=self._run, name=self.name, daemon=True
                )
                thread.start()
        self._wakeup.set()
        if thread is None:
            return StopOutcome.FINISHED
        if thread is not threading.current_thread():
            thread.join(max(0.0, deadline - time.monotonic()))
            if thread.is_alive() and abort is not None:
                abort()
                thread.join(ABORT_GRACE_SECONDS)
        if thread.is_alive():
            self._abandon.set()
            return StopOutcome.TIMED_OUT
        return StopOutcome.FINISHED

    # -- the thread ---------------------------------------------------------------------------
    def _run(self) -> None:
        while not self._stopping.is_set():
            self._wakeup.clear()
            try:
                busy = self._cycle()
            except Exception:  # never let the thread die: a bug here must not lose turns
                log.exception("memobase: the %s worker's cycle failed; continuing", self.name)
                busy = False
            try:
                self._after_cycle()
            except Exception:
                log.debug("memobase: %s housekeeping failed", self.name, exc_info=True)
            if not busy:
                self._wakeup.wait(self.poll_seconds)
        if self._drain_deadline is not None and not self._abandon.is_set():
            try:
                self._drain()
            except Exception:
                log.exception("memobase: the %s worker failed while draining", self.name)
        try:
            self._finish()
        except Exception:
            log.debug("memobase: %s final housekeeping failed", self.name, exc_info=True)

    def _cycle(self) -> bool:
        """One pass over due work; ``True`` when it did something (run the next at once)."""
        raise NotImplementedError

    def _after_cycle(self) -> None:
        """Housekeeping after each cycle (kept off the request path)."""

    def _drain(self) -> None:
        """The last pass at ``close(drain=True)``; check :meth:`past_deadline` often."""

    def _finish(self) -> None:
        """Runs last on the thread, after the drain."""
