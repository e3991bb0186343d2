"""Time-boxing and the fail-open / strict policy for memory calls made on an app's behalf.

Memory is an enhancement: when Memobase is slow or down, the default is to log and let the
app answer without it (fail-open). Apps that would rather fail loudly pass ``strict=True``
(strict) and get a :class:`memobase_integrations.errors.MemobaseError` subclass.

The sync path runs the call on a small worker pool so a stuck backend cannot hold the caller
past ``timeout``; the async path uses ``asyncio.wait_for`` on the backend's native coroutine,
so nothing blocking ever runs on the event loop.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextvars
import logging
import threading
from collections.abc import Awaitable, Callable
from typing import TypeVar

from memobase_integrations import ConfigurationError, MemobaseError, MemobaseTimeoutError

__all__ = ["Guard"]

T = TypeVar("T")

logger = logging.getLogger(__name__)

_pool_lock = threading.Lock()
_pool: concurrent.futures.ThreadPoolExecutor | None = None


def _executor() -> concurrent.futures.ThreadPoolExecutor:
    global _pool
    with _pool_lock:
        if _pool is None:
            _pool = concurrent.futures.ThreadPoolExecutor(
                max_workers=8, thread_name_prefix="langchain-memobase"
            )
        return _pool


def _timeout_error(what: str, timeout: float) -> MemobaseTimeoutError:
    return MemobaseTimeoutError(
        f"{what} did not finish within {timeout:g}s. Check that the Memobase backend is "
        "reachable and healthy, raise `timeout=`, or drop `strict=True` to answer "
        "without memory when this happens."
    )


def _as_memobase_error(what: str, exc: Exception) -> MemobaseError:
    if isinstance(exc, MemobaseError):
        return exc
    return MemobaseError(
        f"{what} failed unexpectedly ({type(exc).__name__}: {exc}). This is likely a bug; "
        "drop `strict=True` to answer without memory meanwhile, and report it."
    )


class Guard:
    """Applies one ``timeout`` and one ``fail_open`` choice to every memory call."""

    def __init__(self, *, fail_open: bool, timeout: float | None) -> None:
        if timeout is not None and timeout <= 0:
            raise ConfigurationError(
                f"timeout must be a positive number of seconds or None, got {timeout!r}."
            )
        self.fail_open = fail_open
        self.timeout = timeout

    def _handle(self, what: str, exc: Exception, default: T) -> T:
        if self.fail_open:
            logger.warning("%s failed; continuing without memory: %s", what, exc)
            return default
        raise _as_memobase_error(what, exc) from exc

    def call(self, what: str, op: Callable[[], T], default: T) -> T:
        """Run ``op`` within the timeout; on failure log and return ``default`` or raise."""
        try:
            if self.timeout is None:
                return op()
            future = _executor().submit(contextvars.copy_context().run, op)
            try:
                return future.result(timeout=self.timeout)
            except concurrent.futures.TimeoutError:
                future.cancel()
                raise _timeout_error(what, self.timeout) from None
        except Exception as exc:
            return self._handle(what, exc, default)

    def call_local(self, what: str, op: Callable[[], T], default: T) -> T:
        """Like :meth:`call` without the timeout thread, for operations that are local by
        contract (``record`` is one local write: no network, no LLM), where handing the call
        to a pool thread would cost more than the call itself."""
        try:
            return op()
        except Exception as exc:
            return self._handle(what, exc, default)

    async def acall(self, what: str, op: Callable[[], Awaitable[T]], default: T) -> T:
        """The async twin: awaits the backend's coroutine, never a blocking call."""
        try:
            if self.timeout is None:
                return await op()
            try:
                return await asyncio.wait_for(op(), timeout=self.timeout)
            except TimeoutError:
                raise _timeout_error(what, self.timeout) from None
        except Exception as exc:
            return self._handle(what, exc, default)
