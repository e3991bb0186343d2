"""When a failed item of a queue is tried again: one formula for both backends.

Exponential, capped, then jittered *downwards* ("equal jitter"): the delay of attempt ``n``
is ``min(cap, base * 2**(n-1))`` times a random factor in ``[0.5, 1.0]``. The jitter spreads
the retries of many processes that failed together (a server came back), and because it is
applied to the capped value it can only shorten a wait: no delay ever exceeds ``cap``, so
``FlushPolicy.retry_max_seconds`` is a promise. (The embedded worker used to add up to 10%
after capping, the outbox to take 50-100% of the cap; this is the latter, kept for both.)
"""

from __future__ import annotations

import random
from collections.abc import Callable

from ..settings import FlushPolicy

__all__ = ["backoff_delay", "retry_delay"]

# 2**30 times any sane base is far beyond every cap: larger exponents only risk overflow.
_MAX_EXPONENT = 30


def backoff_delay(
    attempts: int,
    base: float,
    cap: float,
    *,
    rand: Callable[[float, float], float] = random.uniform,
) -> float:
    """Seconds to wait after the ``attempts``-th failure (1 = the first one).

    Never more than ``cap``, never less than half the capped exponential value.
    ``rand`` is the jitter source (``random.uniform``; tests pass the extremes).
    """
    exponent = min(max(0, attempts - 1), _MAX_EXPONENT)
    capped = min(cap, base * 2.0**exponent)
    return capped * min(1.0, max(0.5, rand(0.5, 1.0)))


def retry_delay(policy: FlushPolicy, attempts: int) -> float:
    """:func:`backoff_delay` with ``retry_base_seconds`` / ``retry_max_seconds`` of a policy."""
    return backoff_delay(attempts, policy.retry_base_seconds, policy.retry_max_seconds)
