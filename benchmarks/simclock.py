"""A simulated wall clock for the pace benchmark (sessions days apart, turns a minute apart).

The embedded engine reads "now" through one function, ``engine.store.clock.utcnow`` (every
module calls it as ``clock.utcnow()``, never a copy imported by name): buffer rows get their
insert time from it and the idle flush compares against it. While :meth:`SimClock.installed`
is active it returns the simulated time, so the library's *own* flush policy (threshold,
``idle_flush_seconds``) decides when a buffer is processed, exactly as configured, without
waiting days.

This is a patch of the library's clock made by the benchmark, in its own process only; the
library has no clock parameter (a hook a later change could add). Nothing else is patched:
the peers' background machinery is driven through their own APIs (see ``pace.py``).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta

__all__ = ["SimClock"]

_TARGETS = (("memobase_integrations.engine.store.clock", "utcnow"),)


class SimClock:
    """Simulated UTC time; advances only when told."""

    def __init__(self, start: datetime | None = None) -> None:
        self._now = start or datetime(2025, 1, 6, 9, 0, tzinfo=UTC)

    def now(self) -> datetime:
        return self._now

    def set(self, when: datetime) -> None:
        if when < self._now:
            raise ValueError(f"the simulated clock cannot go back ({when} < {self._now})")
        self._now = when

    def restart(self, when: datetime) -> None:
        """Jump to ``when``, even backwards: only for a new user's calendar, once everything
        buffered before has been processed (nothing open can see time go back)."""
        self._now = when

    def advance(self, seconds: float) -> None:
        self._now += timedelta(seconds=seconds)

    @contextmanager
    def installed(self) -> Iterator[SimClock]:
        """Make the embedded engine read this clock while the block runs."""
        import importlib

        saved = []
        for module_name, attr in _TARGETS:
            module = importlib.import_module(module_name)
            saved.append((module, attr, getattr(module, attr)))
            setattr(module, attr, self.now)
        try:
            yield self
        finally:
            for module, attr, original in saved:
                setattr(module, attr, original)
