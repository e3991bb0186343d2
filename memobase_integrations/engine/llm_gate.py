"""One gate in front of every LLM request of a worker: a bound on requests in flight, and a
shared pause when the endpoint says "slow down".

Why shared: a 429 (or a 5xx with ``Retry-After``) is the endpoint's verdict on the whole
key, not on one user. With flushes of many users in flight, a pause per request would let
every other flush keep hammering the endpoint; here the first such answer closes the gate
for all of the worker's calls until the header's time has passed (capped at
``FlushPolicy.llm_pause_max_seconds``). Timeouts and other failures do not close it: they
fail the one flush, whose turns follow the per-turn retry and parking policy.
"""

from __future__ import annotations

import email.utils
import logging
import threading
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from datetime import UTC, datetime

__all__ = ["LLMGate", "retry_after_seconds"]

logger = logging.getLogger(__name__)


def retry_after_seconds(headers: Mapping[str, str] | None) -> float | None:
    """The wait an answer asks for: ``retry-after-ms``, ``Retry-After`` in seconds or as an
    HTTP date; ``None`` when absent or unreadable."""
    if not headers:
        return None
    raw_ms = headers.get("retry-after-ms")
    if raw_ms:
        try:
            return max(0.0, float(raw_ms) / 1000.0)
        except ValueError:
            pass
    raw = headers.get("retry-after")
    if not raw:
        return None
    try:
        return max(0.0, float(raw))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(raw)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - datetime.now(UTC)).total_seconds())


class LLMGate:
    """At most ``max_in_flight`` requests at once, none while paused.

    Thread-safe; one per worker (the LLM client holds it). :meth:`close` opens a pause
    early so that nothing waits on a gate whose worker is stopping.
    """

    def __init__(self, max_in_flight: int = 16, *, max_pause_seconds: float = 60.0) -> None:
        self.max_in_flight = max_in_flight
        self.max_pause_seconds = max_pause_seconds
        self._slots = threading.BoundedSemaphore(max_in_flight)
        self._cond = threading.Condition()
        self._paused_until = 0.0
        self._in_flight = 0
        self._waiting = 0
        #: How many pauses were imposed (for tests and diagnostics).
        self.pauses = 0

    @property
    def in_flight(self) -> int:
        """Requests holding a slot now."""
        return self._in_flight

    @property
    def waiting(self) -> int:
        """Requests held back by a pause now."""
        return self._waiting

    def paused_for(self) -> float:
        """Seconds left in the current pause (0 when open)."""
        with self._cond:
            return max(0.0, self._paused_until - time.monotonic())

    def pause(self, seconds: float) -> None:
        """Close the gate for ``seconds`` (capped); a longer pause already set stays."""
        wait = min(max(0.0, seconds), self.max_pause_seconds)
        with self._cond:
            until = time.monotonic() + wait
            if until <= self._paused_until:
                return
            self._paused_until = until
            self.pauses += 1
        logger.warning(
            "memobase: the LLM endpoint asked to slow down; pausing all LLM calls of this "
            "worker for %.1fs",
            wait,
        )

    def resume(self) -> None:
        """End any pause now."""
        with self._cond:
            self._paused_until = 0.0
            self._cond.notify_all()

    def close(self) -> None:
        """The worker is stopping: waiting out a pause helps nobody."""
        self.resume()

    def _wait_open(self) -> None:
        with self._cond:
            if self._paused_until <= time.monotonic():
                return
            self._waiting += 1
            try:
                while (left := self._paused_until - time.monotonic()) > 0:
                    self._cond.wait(left)
            finally:
                self._waiting -= 1

    @contextmanager
    def slot(self) -> Iterator[None]:
        """Hold one in-flight slot for a request, once the gate is open."""
        self._wait_open()
        self._slots.acquire()
        try:
            self._wait_open()  # a pause may have started while this waited for a slot
            with self._cond:
                self._in_flight += 1
            try:
                yield
            finally:
                with self._cond:
                    self._in_flight -= 1
        finally:
            self._slots.release()
