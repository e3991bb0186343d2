"""Where the CLI's memory lives: an embedded store (a database URL) or a Memobase server.

The CLI inspects and manages memory that an app wrote; it must never invent a store. So a
SQLite URL whose file does not exist is an error (a typo would otherwise silently create an
empty database and report "no memory"), a database without the store's tables is an error
too (the store is opened with ``create_store=False``: no table is created, no SQLite header
rewritten), and commands turn off the background processing the embedded engine would
otherwise start.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from ..errors import ConfigurationError
from ..facade import Memobase
from ..settings import FlushPolicy, LLMSettings
from .exitcodes import CLIError, ExitCode

__all__ = ["DEFAULT_DATABASE_URL", "Target"]

DEFAULT_DATABASE_URL = "sqlite:///memobase.db"

#: The CLI processes only when asked (``flush``): no idle flush, no flush on close.
_CLI_POLICY = FlushPolicy(idle_flush_seconds=None, flush_on_close=False)


@dataclass(frozen=True, slots=True)
class Target:
    """The store or server a command talks to, resolved from options and environment."""

    database_url: str | None = None
    project_url: str | None = None

    @classmethod
    def resolve(
        cls,
        database_url: str | None,
        project_url: str | None,
        env: Mapping[str, str] | None = None,
    ) -> Target:
        """Options win over ``MEMOBASE_PROJECT_URL`` / ``MEMOBASE_DATABASE_URL``.

        Both given on the command line is a usage error: which one did the user mean?
        """
        env = os.environ if env is None else env
        if database_url and project_url:
            raise CLIError(
                "Give either --database-url (embedded store) or --project-url (Memobase "
                "server), not both.",
                ExitCode.USAGE,
            )
        if project_url:
            return cls(project_url=project_url)
        if database_url:
            return cls(database_url=database_url)
        if env.get("MEMOBASE_PROJECT_URL"):
            return cls(project_url=env["MEMOBASE_PROJECT_URL"])
        return cls(database_url=env.get("MEMOBASE_DATABASE_URL") or DEFAULT_DATABASE_URL)

    @property
    def is_remote(self) -> bool:
        return self.project_url is not None

    def describe(self) -> str:
        """Where we are looking, for messages (a URL without credentials)."""
        if self.project_url is not None:
            return f"server {self.project_url}"
        return f"store {_redact(self.database_url or DEFAULT_DATABASE_URL)}"

    def checked_database_url(self) -> str:
        """The embedded store's URL, refused early when malformed or a missing SQLite file."""
        url = self.database_url or DEFAULT_DATABASE_URL
        _check_database_url(url)
        return url

    def open(self, *, llm: LLMSettings | None = None) -> Memobase:
        """Build the facade. ``llm`` is only needed by commands that process (``flush``)."""
        if self.project_url is not None:
            return Memobase.remote(self.project_url, os.environ.get("MEMOBASE_API_KEY"))
        url = self.checked_database_url()
        # No background worker: a CLI command processes only when asked (``flush``). And no
        # schema: pointed at the wrong database, the CLI must leave it exactly as it was.
        return Memobase.embedded(
            url,
            llm=llm or LLMSettings(),
            policy=_CLI_POLICY,
            start_worker=False,
            create_store=False,
        )


def _redact(url: str) -> str:
    """Hide a password in a database URL (``postgresql://u:secret@h/db`` -> ``u:***``)."""
    try:
        from sqlalchemy.engine import make_url

        return make_url(url).render_as_string(hide_password=True)
    except Exception:
        return url


def _check_database_url(url: str) -> None:
    """Refuse malformed URLs and SQLite files that do not exist, before touching anything."""
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError

    try:
        parsed = make_url(url)
    except ArgumentError as exc:
        raise ConfigurationError(
            f"Invalid database URL {url!r}: {exc}. Use e.g. sqlite:///memobase.db or "
            "postgresql+psycopg://user@host:5432/dbname."
        ) from None
    if parsed.get_backend_name() != "sqlite":
        return
    database = parsed.database or ""
    if database.startswith("file:"):
        return  # SQLite URI filenames (?uri=true): let SQLite interpret them
    if database in {"", ":memory:"}:
        raise CLIError(
            f"The database URL {url!r} names no SQLite file, so there is nothing to inspect. "
            "Point --database-url at the file your app uses, e.g. sqlite:///memobase.db.",
            ExitCode.CONFIG,
        )
    if not Path(database).is_file():
        raise CLIError(
            f"No memobase store at {database!r} (from {url!r}): the file does not exist. "
            "Check --database-url / MEMOBASE_DATABASE_URL (default sqlite:///memobase.db, "
            "relative to the current directory); run `memobase-integrations demo --keep` to "
            "make a sample store.",
            ExitCode.UNREACHABLE,
        )
