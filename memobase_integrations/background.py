"""A daemon thread that runs callbacks in order, off every caller's path.

Processing listeners (cache refreshes, an app's own hooks) may do blocking I/O. Run where the
event is noticed they would stall whoever noticed it: an event loop (``ainsert``,
``aflush``), an app thread (``flush``) or the outbox thread (delivery of other users). So
the backends and the facade hand them to a :class:`SerialRunner` instead: ``submit`` only
appends to a queue; one lazily started daemon thread runs the callbacks, one at a time, in
the order they were submitted; ``stop`` lets it finish what is queued within a bound and
leaves no thread behind.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable

__all__ = ["SerialRunner"]

log = logging.getLogger(__name__)


class SerialRunner:
    """Runs submitted callables one at a time on its own daemon thread (see the module)."""

    def __init__(self, name: str) -> None:
        self.name = name
        self._queue: deque[Callable[[], None]] = deque()
        self._cond = threading.Condition()
        self._thread: threading.Thread | None = None
        self._stopping = False
        self._busy = False

    def submit(self, fn: Callable[[], None]) -> bool:
        """Queue ``fn``; ``False`` (and nothing runs) once :meth:`stop` was called."""
        with self._cond:
            if self._stopping:
                return False
            self._queue.append(fn)
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name=self.name, daemon=True)
                self._thread.start()
            self._cond.notify()
            return True

    def idle(self) -> bool:
        """Nothing queued and nothing running (tests wait on this)."""
        with self._cond:
            return not self._queue and not self._busy

    def _run(self) -> None:
        while True:
            with self._cond:
                while not self._queue and not self._stopping:
                    self._cond.wait()
                if not self._queue:
                    return
                fn = self._queue.popleft()
                self._busy = True
            try:
                fn()
            except Exception:  # a callback's bug must not end the thread
                log.exception("memobase: a background callback (%s) failed", self.name)
            finally:
                with self._cond:
                    self._busy = False

    def stop(self, timeout: float) -> bool:
        """Run what is queued (within ``timeout`` seconds), then end the thread.

        Returns ``False`` when a callback was still running at the bound: the daemon thread
        then ends as soon as that callback returns; what was still queued is dropped.
        """
        with self._cond:
            self._stopping = True
            thread = self._thread
            self._cond.notify_all()
        if thread is None:
            return True
        end = time.monotonic() + max(0.0, timeout)
        thread.join(max(0.0, end - time.monotonic()))
        if thread.is_alive():
            with self._cond:
                dropped = len(self._queue)
                self._queue.clear()
            if dropped:
                log.warning(
                    "memobase: %d background callback(s) of %s dropped at close", dropped, self.name
                )
            return False
        return True
