"""What a Memobase failure does to the app's turn: one policy for every adapter.

Long-term memory is an enhancement. When Memobase is slow or down, the default is to log the
failure, tell the app's ``on_error`` callback, and let the turn go on without memory
("fail open"). Apps that would rather fail loudly pass ``strict=True`` and get a
:class:`~memobase_integrations.errors.MemobaseError` (an unexpected exception is wrapped in
one, with the original as its ``__cause__``, so callers catch one family).

``timeout`` bounds each call made on the app's behalf. The sync path runs the call on a small
shared worker pool so a stuck backend cannot hold the caller past it; the async path uses
``asyncio.wait_for`` on the backend's native coroutine, so nothing blocking ever runs on the
event loop. Local-by-contract operations (``record`` is one local write) use
:meth:`FailurePolicy.call_local`, which skips the thread hop.

The adapters (``langchain_memobase``, ``llamaindex_memobase``) only build one of these from
their public options and pass their logger, so the log lines stay on the logger each package
documents.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextvars
import logging
import threading
from collections.abc import Awaitable, Callable
from typing import TypeVar

from . import errors as mb_errors

__all__ = ["ErrorHandler", "FailurePolicy", "as_memobase_error", "handle_failure"]

T = TypeVar("T")

#: Called with the exception and what was being done ("read the user's memory", ...).
ErrorHandler = Callable[[BaseException, str], None]

_default_logger = logging.getLogger(__name__)

_pool_lock = threading.Lock()
_pool: concurrent.futures.ThreadPoolExecutor | None = None


def _executor() -> concurrent.futures.ThreadPoolExecutor:
    global _pool
    with _pool_lock:
        if _pool is None:
            _pool = concurrent.futures.ThreadPoolExecutor(
                max_workers=8, thread_name_prefix="memobase-call"
            )
        return _pool


def _timeout_error(action: str, timeout: float) -> mb_errors.MemobaseTimeoutError:
    return mb_errors.MemobaseTimeoutError(
        f"Memobase could not {action}: the call did not finish within {timeout:g}s. Check "
        "that the Memobase backend is reachable and healthy, raise `timeout=`, or drop "
        "`strict=True` to answer without memory when this happens."
    )


def as_memobase_error(action: str, exc: BaseException) -> mb_errors.MemobaseError:
    """``exc`` itself when it is a MemobaseError, else a MemobaseError that says it is
    unexpected (the caller chains the original with ``from exc``)."""
    if isinstance(exc, mb_errors.MemobaseError):
        return exc
    return mb_errors.MemobaseError(
        f"Memobase could not {action}: unexpected {type(exc).__name__}: {exc}. This is "
        "likely a bug; drop `strict=True` to answer without memory meanwhile, and report it."
    )


def handle_failure(
    exc: Exception,
    action: str,
    *,
    strict: bool,
    on_error: ErrorHandler | None = None,
    logger: logging.Logger | None = None,
) -> None:
    """Raise in strict mode; otherwise log ``exc`` and tell ``on_error``.

    A failing ``on_error`` callback is logged and swallowed: a broken observer must not break
    the turn that fail-open mode is protecting.
    """
    if strict:
        raise as_memobase_error(action, exc) from exc
    log = logger or _default_logger
    log.warning(
        "Memobase could not %s; continuing without it (strict=False). Cause: %s: %s",
        action,
        type(exc).__name__,
        exc,
        exc_info=log.isEnabledFor(logging.DEBUG),
    )
    if on_error is not None:
        try:
            on_error(exc, action)
        except Exception:
            log.exception("The on_error callback raised while handling a Memobase failure.")


class FailurePolicy:
    """One ``strict`` / ``timeout`` / ``on_error`` choice, applied to every memory call.

    ``action`` names what was being done, as a verb phrase ("read the user's memory"); it
    appears in log lines, in ``on_error`` calls and in error messages.
    """

    __slots__ = ("logger", "on_error", "strict", "timeout")

    def __init__(
        self,
        *,
        strict: bool = False,
        timeout: float | None = None,
        on_error: ErrorHandler | None = None,
        logger: logging.Logger | None = None,
    ) -> None:
        if not isinstance(strict, bool):
            raise mb_errors.ConfigurationError(f"strict must be True or False, got {strict!r}.")
        if timeout is not None and (
            isinstance(timeout, bool) or not isinstance(timeout, int | float) or timeout <= 0
        ):
            raise mb_errors.ConfigurationError(
                f"timeout must be a positive number of seconds or None, got {timeout!r}."
            )
        if on_error is not None and not callable(on_error):
            raise mb_errors.ConfigurationError(
                "on_error must be a callable (exception, action) -> None, got "
                f"{type(on_error).__name__}."
            )
        self.strict = strict
        self.timeout = None if timeout is None else float(timeout)
        self.on_error = on_error
        self.logger = logger or _default_logger

    @property
    def fail_open(self) -> bool:
        """True when failures are logged and swallowed (the default)."""
        return not self.strict

    def __repr__(self) -> str:
        return f"FailurePolicy(strict={self.strict}, timeout={self.timeout})"

    def handle(self, exc: Exception, action: str) -> None:
        """Raise (strict) or log and report ``exc`` (fail open)."""
        handle_failure(exc, action, strict=self.strict, on_error=self.on_error, logger=self.logger)

    def call(self, action: str, op: Callable[[], T], default: T) -> T:
        """Run ``op`` within the timeout; on failure return ``default`` or raise."""
        return self.call_or(action, op, lambda _exc: default)

    def call_or(self, action: str, op: Callable[[], T], fallback: Callable[[Exception], T]) -> T:
        """Like :meth:`call`, with a fallback computed from the failure (e.g. a tool's
        "memory is unavailable" answer that says why)."""
        try:
            if self.timeout is None:
                return op()
            future = _executor().submit(contextvars.copy_context().run, op)
            try:
                return future.result(timeout=self.timeout)
            except concurrent.futures.TimeoutError:
                future.cancel()
                raise _timeout_error(action, self.timeout) from None
        except Exception as exc:
            self.handle(exc, action)
            return fallback(exc)

    def call_local(self, action: str, op: Callable[[], T], default: T) -> T:
        """Like :meth:`call` without the timeout thread, for operations that are local by
        contract (``record`` is one local write: no network, no LLM), where handing the call
        to a pool thread would cost more than the call itself."""
        try:
            return op()
        except Exception as exc:
            self.handle(exc, action)
            return default

    async def acall(self, action: str, op: Callable[[], Awaitable[T]], default: T) -> T:
        """The async twin of :meth:`call`: awaits the backend's coroutine, never blocks."""
        return await self.acall_or(action, op, lambda _exc: default)

    async def acall_or(
        self, action: str, op: Callable[[], Awaitable[T]], fallback: Callable[[Exception], T]
    ) -> T:
        """The async twin of :meth:`call_or`."""
        try:
            if self.timeout is None:
                return await op()
            try:
                return await asyncio.wait_for(op(), timeout=self.timeout)
            except TimeoutError:
                raise _timeout_error(action, self.timeout) from None
        except Exception as exc:
            self.handle(exc, action)
            return fallback(exc)
