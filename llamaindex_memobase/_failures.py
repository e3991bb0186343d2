"""One place that decides what a Memobase failure does to a LlamaIndex turn.

LlamaIndex lets any exception from a memory block or a memory write fail the whole chat or
agent turn. Long-term memory is an enhancement, so by default a failure is logged, handed to
the app's ``on_error`` callback and the turn goes on without memory ("fail open"). With
``strict=True`` the error propagates instead, for apps that would rather fail than answer
without memory.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

logger = logging.getLogger(__name__)

__all__ = ["ErrorHandler", "handle_failure", "logger"]

#: Called with the exception and what was being done ("read context", "record turn", ...).
ErrorHandler = Callable[[BaseException, str], None]


def handle_failure(
    exc: Exception, action: str, *, strict: bool, on_error: ErrorHandler | None
) -> None:
    """Re-raise ``exc`` in strict mode; otherwise log it and tell ``on_error``.

    A failing ``on_error`` callback is logged and swallowed: a broken observer must not break
    the turn that fail-open mode is protecting.
    """
    if strict:
        raise exc
    logger.warning(
        "Memobase could not %s; continuing without it (strict=False). Cause: %s: %s",
        action,
        type(exc).__name__,
        exc,
        exc_info=logger.isEnabledFor(logging.DEBUG),
    )
    if on_error is not None:
        try:
            on_error(exc, action)
        except Exception:
            logger.exception("The on_error callback raised while handling a Memobase failure.")
