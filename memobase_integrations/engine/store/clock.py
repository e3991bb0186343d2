"""The store's clock: the one function every part of the embedded engine reads "now" from.

Every module of the store (and the embedded backend's reader) calls ``clock.utcnow()``
through this module, never a copy imported by name, so a test or a benchmark that needs
simulated time patches this one attribute and the whole engine follows it.
"""

from __future__ import annotations

from datetime import UTC, datetime

__all__ = ["utcnow"]


def utcnow() -> datetime:
    return datetime.now(UTC)
