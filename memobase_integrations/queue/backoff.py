"""When a failed item of a queue is tried again: one formula for both backends.

Exponential with up to 10% jitter, *then* capped: the delay of attempt ``n`` is
``min(cap, base * 2**(n-1) * u)`` with ``u`` uniform in ``[1.0, 1.1]``. The jitter spreads
the retries of many processes that failed together (a server came back); because the cap
is applied last, no delay ever exceeds ``cap``, so ``FlushPolicy.retry_max_seconds`` is a
promise, and no retry comes before ``base * 2**(n-1)``, so ``retry_base_seconds`` is one
too. (The embedded worker used to apply its 10% after capping, up to 330 s for a 300 s
cap; the outbox took 50-100% of the capped value, retrying up to twice as early.)
"""

from __future__ import annotations

import random
from collections.abc import Callable

from ..settings import FlushPolicy

__all__ = ["JITTER", "backoff_delay", "retry_delay"]

#: The largest jitter factor: a delay is stretched by up to 10% before the cap.
JITTER = 0.1

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

    At least ``min(cap, base * 2**(attempts-1))``, never more than ``cap``. ``rand`` is the
    jitter source (``random.uniform``; tests pass the extremes); a value outside
    ``[1, 1 + JITTER]`` is clamped into it.
    """
    exponent = min(max(0, attempts - 1), _MAX_EXPONENT)
    factor = min(1.0 + JITTER, max(1.0, rand(1.0, 1.0 + JITTER)))
    return min(cap, base * 2.0**exponent * factor)


def retry_delay(policy: FlushPolicy, attempts: int) -> float:
    """:func:`backoff_delay` with ``retry_base_seconds`` / ``retry_max_seconds`` of a policy."""
    return backoff_delay(attempts, policy.retry_base_seconds, policy.retry_max_seconds)
