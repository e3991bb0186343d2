"""The circuit breaker of request-path reads (see :class:`CircuitBreaker`)."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

__all__ = ["CircuitBreaker"]


class CircuitBreaker:
    """Remembers that the server just failed, so request-path reads stop waiting for it.

    Closed: everything goes out. A failure that says the server is down or stuck (no
    connection could be made, a timeout, a gateway's 502/503/504) opens it for
    ``cooldown`` seconds, during which :meth:`admit` refuses request-path reads at once
    (no connection is attempted). After the cool-down one read is let through as a probe
    (half-open); the others keep failing fast until it ends. Any answer from the server,
    to any request (the outbox's deliveries too), closes it.

    Hand-written rather than ``pybreaker``: that library holds its lock for the whole
    guarded call (concurrent reads would queue behind one another) and supports async only
    through tornado.
    """

    def __init__(self, cooldown: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.cooldown = cooldown
        self._clock = clock
        self._lock = threading.Lock()
        self._open_until: float | None = None
        self._probing = False
        self.last_error: str | None = None

    @property
    def is_open(self) -> bool:
        with self._lock:
            return self._open_until is not None

    def admit(self) -> bool:
        """May a request-path read go out now? (``True`` once per cool-down as the probe.)"""
        if self.cooldown <= 0:
            return True
        with self._lock:
            if self._open_until is None:
                return True
            if self._clock() < self._open_until or self._probing:
                return False
            self._probing = True
            return True

    def retry_in(self) -> float:
        with self._lock:
            if self._open_until is None:
                return 0.0
            return max(0.0, self._open_until - self._clock())

    def succeeded(self) -> None:
        with self._lock:
            self._open_until = None
            self._probing = False
            self.last_error = None

    def failed(self, error: str) -> None:
        with self._lock:
            self._open_until = self._clock() + self.cooldown
            self._probing = False
            self.last_error = error

    def release_probe(self) -> None:
        """The probe ended without telling anything about the server (e.g. cancelled)."""
        with self._lock:
            self._probing = False
