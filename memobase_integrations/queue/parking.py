"""When a failed item stops being retried: the parking rules of both queues.

A *parked* item stays in its queue, visible in ``status()`` / ``failures()``, and leaves it
only through ``retry_failed()`` or ``discard_failed()``; it no longer holds back the user's
later items. The rules, in order:

1. **Unresolved** (``uncertain``): the last send's answer was lost, so the other side may
   hold the item. It is never parked for its attempts: it must be resolved (found or sent
   again) first, or a flush could process a copy and the resend again.
2. **Permanent**: the failure is about what the item *contains* (a server refusal that
   ``http.refusal_is_permanent`` recognises, a blob larger than any batch): retrying can
   only fail the same way, so it is parked at once.
3. **Exhausted**: ``FlushPolicy.max_attempts`` failures (``None``: retried forever).
4. Everything else is **retried** after :func:`~.backoff.retry_delay`.

What counts as permanent is the backend's knowledge (the wire's errors, the engine's size
rules); what happens then is decided here, once.
"""

from __future__ import annotations

import enum

from ..settings import FlushPolicy

__all__ = ["Disposition", "decide"]


class Disposition(enum.Enum):
    """What becomes of an item after a failed attempt."""

    RETRY = "retry"  # again after a backoff
    PARK = "park"  # kept, visible, not retried until retry_failed()


def decide(
    policy: FlushPolicy, attempts: int, *, permanent: bool = False, uncertain: bool = False
) -> Disposition:
    """The disposition after the ``attempts``-th failure (counting this one)."""
    if uncertain:
        return Disposition.RETRY
    if permanent:
        return Disposition.PARK
    limit = policy.max_attempts
    if limit is not None and attempts >= limit:
        return Disposition.PARK
    return Disposition.RETRY
