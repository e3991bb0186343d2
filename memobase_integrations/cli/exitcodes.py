"""Exit codes and the one-line error messages the CLI prints.

Scripts branch on the exit code, people read the line on stderr; both must be stable. Every
failure ends here: a :class:`~memobase_integrations.errors.MemobaseError` keeps its own
message (it already says what to do), a few well-known third-party failures (bad SQLAlchemy
URLs, missing database drivers, unreachable databases) get a message of ours, and anything
else becomes an "internal error" line instead of a traceback.
"""

from __future__ import annotations

import os
import re
from enum import IntEnum

from .. import errors

__all__ = ["CLIError", "ExitCode", "debug_enabled", "describe_failure"]


class ExitCode(IntEnum):
    """What a script can rely on (documented in the README and ``--help``)."""

    OK = 0
    #: The request made sense but could not be satisfied: unknown user, refused input,
    #: an operation the backend does not offer, a declined confirmation.
    USER_ERROR = 1
    #: Bad command line (unknown option, missing argument, conflicting options).
    USAGE = 2
    #: The store or server could not be reached, or failed while answering.
    UNREACHABLE = 3
    #: Configuration is invalid: bad database URL, missing or wrong API key, bad profile
    #: config file, no LLM configured for processing.
    CONFIG = 4
    #: Processing ran but the LLM step failed (the turns stay buffered for a retry).
    PROCESSING = 5
    #: A bug in this package; the message asks for ``MEMOBASE_DEBUG=1`` and a report.
    INTERNAL = 70
    #: Interrupted with Ctrl-C.
    INTERRUPTED = 130


class CLIError(Exception):
    """A failure the CLI itself detected, with the exit code it should cause."""

    def __init__(self, message: str, code: ExitCode = ExitCode.USER_ERROR) -> None:
        super().__init__(message)
        self.message = message
        self.code = code


_ERROR_CODES: tuple[tuple[type[errors.MemobaseError], ExitCode], ...] = (
    # Order matters: subclasses before their bases.
    (errors.StoreNotFoundError, ExitCode.UNREACHABLE),  # like a missing SQLite file
    (errors.MemobaseConnectionError, ExitCode.UNREACHABLE),  # includes TimeoutError
    (errors.ServerError, ExitCode.UNREACHABLE),  # includes ServiceUnavailableError
    (errors.StoreError, ExitCode.UNREACHABLE),  # the local database failed (was ServerError)
    (errors.AuthenticationError, ExitCode.CONFIG),
    (errors.ConfigurationError, ExitCode.CONFIG),
    (errors.LLMError, ExitCode.PROCESSING),
)


def _one_line(text: str) -> str:
    """Server messages can span lines (Python tracebacks in ``errmsg``); scripts want one."""
    return re.sub(r"\s+", " ", text).strip()


def wrong_endpoint(exc: BaseException) -> bool:
    """A 404 that is not Memobase's "no such user/item" answer: the URL serves something
    else (an empty body, a web page, an unknown route), so the URL is what is wrong."""
    return isinstance(exc, errors.NotFoundError) and exc.status_code == 404 and exc.errno is None


def describe_failure(exc: BaseException) -> tuple[str, ExitCode]:
    """The single stderr line and the exit code for any exception that reached the CLI."""
    if isinstance(exc, CLIError):
        return _one_line(exc.message), exc.code
    if wrong_endpoint(exc):
        assert isinstance(exc, errors.MemobaseError)
        return _one_line(exc.message), ExitCode.CONFIG
    if isinstance(exc, errors.MemobaseError):
        if isinstance(exc, errors.ConfigurationError) and _cause_is_unreachable_db(exc):
            # The embedded store reports "Cannot open the database" as a configuration
            # problem; when the driver could not connect at all, scripts want "unreachable".
            return _one_line(exc.message), ExitCode.UNREACHABLE
        for cls, code in _ERROR_CODES:
            if isinstance(exc, cls):
                return _one_line(exc.message), code
        return _one_line(exc.message), ExitCode.USER_ERROR
    described = _describe_sqlalchemy(exc)
    if described is not None:
        return described
    if isinstance(exc, ModuleNotFoundError):
        return (
            _one_line(
                f"A required module is not installed: {exc.name}. If it is a database driver, "
                "install it (PostgreSQL: pip install 'memobase-integrations[postgres]' and use a "
                "postgresql+psycopg:// URL)."
            ),
            ExitCode.CONFIG,
        )
    return (
        _one_line(
            f"internal error ({type(exc).__name__}: {exc}). This is a bug in "
            "memobase-integrations: rerun with MEMOBASE_DEBUG=1 to see the traceback and "
            "please report it."
        ),
        ExitCode.INTERNAL,
    )


def _cause_is_unreachable_db(exc: BaseException) -> bool:
    """True when a wrapped SQLAlchemy error says the database server could not be reached."""
    try:
        from sqlalchemy import exc as sa_exc
    except ImportError:  # pragma: no cover - sqlalchemy is a core dependency
        return False
    cause = exc.__cause__
    return isinstance(cause, sa_exc.OperationalError | sa_exc.InterfaceError)


def _describe_sqlalchemy(exc: BaseException) -> tuple[str, ExitCode] | None:
    """SQLAlchemy errors the embedded backend may let through (it should wrap them)."""
    try:
        from sqlalchemy import exc as sa_exc
    except ImportError:  # pragma: no cover - sqlalchemy is a core dependency
        return None
    if isinstance(exc, sa_exc.ArgumentError):  # includes NoSuchModuleError (unknown dialect)
        return (
            _one_line(
                f"Invalid database URL: {exc}. Use e.g. sqlite:///memobase.db or "
                "postgresql+psycopg://user@host:5432/dbname."
            ),
            ExitCode.CONFIG,
        )
    if isinstance(exc, sa_exc.OperationalError | sa_exc.InterfaceError):
        reason = str(exc.orig) if getattr(exc, "orig", None) is not None else str(exc)
        return (
            _one_line(
                f"Cannot reach the database: {reason}. Check --database-url / "
                "MEMOBASE_DATABASE_URL and that the database server is running."
            ),
            ExitCode.UNREACHABLE,
        )
    if isinstance(exc, sa_exc.SQLAlchemyError):
        return (
            _one_line(
                f"Database error: {type(exc).__name__}: {exc}. Check that --database-url points "
                "at a memobase-integrations store."
            ),
            ExitCode.UNREACHABLE,
        )
    return None


def debug_enabled() -> bool:
    """``MEMOBASE_DEBUG=1`` shows tracebacks (for bug reports); off by default."""
    return os.environ.get("MEMOBASE_DEBUG", "").strip().lower() in {"1", "true", "yes", "on"}
