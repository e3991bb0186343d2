"""The one way tests wait for something that happens on another thread or process.

Polling with a generous deadline, never a fixed sleep: a loaded 2-core CI machine can be
slow, and a test must only fail when the thing never happens, not when it happens late.
The deadline is a give-up point, not a timed assertion.
"""

from __future__ import annotations

import time
from collections.abc import Callable

__all__ = ["wait_until"]


def wait_until(
    condition: Callable[[], object],
    what: str = "",
    *,
    timeout: float = 60.0,
    interval: float = 0.02,
) -> None:
    """Poll ``condition`` until it is truthy; ``AssertionError`` naming ``what`` when it is
    still falsy after ``timeout`` seconds (checked once more at the deadline)."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() >= deadline:
            if condition():
                return
            raise AssertionError(f"gave up after {timeout:g} s waiting for {what or condition}")
        time.sleep(interval)
