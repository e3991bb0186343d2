"""The outbox file: its schema and version, connections, transactions and key fingerprint.

:class:`OutboxFile` is what :class:`~.outbox_store.OutboxStore` (the queue's state machine)
is built on. One connection per thread, WAL journal, ``synchronous=NORMAL``: a commit
survives the process being killed. Every method is one short transaction, so ``record``
costs one small write.

**Schema version.** The file carries its layout's version in ``PRAGMA user_version``
(:data:`SCHEMA_VERSION`). A file written before versions existed reads 0 and has a subset
of today's tables (every change so far only added tables), so opening it creates what is
missing and stamps it, in one transaction. A file with a version this code does not know
(written by a newer release), or a SQLite file that is not an outbox at all, is refused
with :class:`OutboxVersionError` and left as it is.
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import os
import secrets
import sqlite3
import threading
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, overload
from uuid import UUID

from .. import errors
from ..values import FailedTurn

__all__ = [
    "DEFAULT_OUTBOX_PATH",
    "SCHEMA_VERSION",
    "OutboxFailure",
    "OutboxFile",
    "OutboxVersionError",
    "TurnRow",
    "UndeliveredTurn",
    "UserState",
    "default_outbox_path",
]

#: Where the outbox lives unless ``outbox_path`` or ``MEMOBASE_OUTBOX_PATH`` says otherwise:
#: next to the app (the current directory), so it survives restarts like the app's own data.
DEFAULT_OUTBOX_PATH = "./memobase-outbox.db"

#: The layout this code reads and writes. 0: before versions (0.1/0.2: the tables below
#: without ``outbox_unconfirmed`` / ``outbox_meta`` in the oldest files). 1: stamped.
#: A change to the layout bumps this and adds its step to :data:`_MIGRATIONS`.
SCHEMA_VERSION = 1

_SCHEMA = """
CREATE TABLE IF NOT EXISTS outbox_turns (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    scope TEXT NOT NULL,
    user_id TEXT NOT NULL,
    turn_id TEXT NOT NULL,
    blobs TEXT NOT NULL,
    n_blobs INTEGER NOT NULL,
    delivered INTEGER NOT NULL DEFAULT 0,
    flushed INTEGER NOT NULL DEFAULT 0,
    blob_ids TEXT NOT NULL DEFAULT '[]',
    buffered_tokens INTEGER NOT NULL DEFAULT 0,
    state TEXT NOT NULL DEFAULT 'pending',
    attempts INTEGER NOT NULL DEFAULT 0,
    next_attempt_at REAL NOT NULL DEFAULT 0,
    uncertain INTEGER,
    last_error TEXT,
    created_at REAL NOT NULL,
    updated_at REAL NOT NULL,
    UNIQUE (scope, user_id, turn_id)
);
CREATE INDEX IF NOT EXISTS outbox_turns_work ON outbox_turns (scope, state, user_id, seq);
CREATE TABLE IF NOT EXISTS outbox_unconfirmed (
    scope TEXT NOT NULL,
    user_id TEXT NOT NULL,
    blob_id TEXT NOT NULL,
    PRIMARY KEY (scope, user_id, blob_id)
);
CREATE TABLE IF NOT EXISTS outbox_meta (
    key TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS outbox_users (
    scope TEXT NOT NULL,
    user_id TEXT NOT NULL,
    last_delivery_at REAL,
    last_flush_at REAL,
    flush_error TEXT,
    flush_attempts INTEGER NOT NULL DEFAULT 0,
    next_flush_at REAL NOT NULL DEFAULT 0,
    rebuffer_ids TEXT NOT NULL DEFAULT '[]',
    lease_owner TEXT,
    lease_until REAL NOT NULL DEFAULT 0,
    PRIMARY KEY (scope, user_id)
);
"""

# Row states: pending (some blob not delivered yet), failed (parked, see the module doc),
# delivered (all blobs on the server, waiting for a flush), done (processed; content erased).

# Row states: pending (some blob not delivered yet), failed (parked, see the module doc),
# delivered (all blobs on the server, waiting for a flush), done (processed; content erased).


def default_outbox_path() -> Path:
    """``MEMOBASE_OUTBOX_PATH`` if set, else ``./memobase-outbox.db``."""
    return Path(os.environ.get("MEMOBASE_OUTBOX_PATH") or DEFAULT_OUTBOX_PATH)


#: A turn whose last delivery attempt failed: the Backend protocol's :class:`FailedTurn`.
OutboxFailure = FailedTurn


@dataclass(frozen=True, slots=True)
class UndeliveredTurn:
    """A recorded turn not (fully) on the server yet, as ``export_user`` reports it."""

    turn_id: str
    recorded_at: float
    blobs: list[dict[str, Any]]
    delivered_blobs: int
    state: str
    last_error: str | None

    def to_json(self) -> dict[str, Any]:
        return {
            "turn_id": self.turn_id,
            "recorded_at": _datetime(self.recorded_at).isoformat(),
            "blobs": self.blobs,
            "delivered_blobs": self.delivered_blobs,
            "state": self.state,
            "last_error": self.last_error,
        }


@dataclass(slots=True)
class TurnRow:
    """One recorded turn as the worker sees it (blob bodies and delivery progress)."""

    seq: int
    user_id: UUID
    turn_id: str
    blobs: list[dict[str, Any]]
    delivered: int
    flushed: int
    blob_ids: list[str]
    attempts: int
    uncertain: int | None
    state: str


@dataclass(frozen=True, slots=True)
class UserState:
    last_delivery_at: float | None
    last_flush_at: float | None
    flush_error: str | None
    flush_attempts: int
    next_flush_at: float
    rebuffer_ids: frozenset[str]

    @property
    def needs_rebuffer(self) -> bool:
        return bool(self.rebuffer_ids)


class OutboxVersionError(errors.ConfigurationError):
    """The outbox file has a schema version this code does not know (a newer release wrote
    it), or is not an outbox file. Nothing in it was changed."""


# Steps from version N to N+1, run in order in the opening transaction after the
# ``CREATE ... IF NOT EXISTS`` of :data:`_SCHEMA` (which already adds missing tables).
_MIGRATIONS: dict[int, tuple[str, ...]] = {
    0: (),  # unversioned: the missing tables were just created; only the stamp is new
}
_TABLES = frozenset({"outbox_turns", "outbox_unconfirmed", "outbox_meta", "outbox_users"})


class OutboxFile:
    """The SQLite file. One connection per thread; every method is one short transaction.

    ``scope`` separates servers/projects sharing a file (derived from the project URL and
    the project id, never the key).
    """

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        if str(self.path) != ":memory:":
            self.path.parent.mkdir(parents=True, exist_ok=True)
        self._local = threading.local()
        self._lock = threading.Lock()
        self._write_lock = _write_lock_for(self.path)
        self._generation = 0
        self._connections: list[sqlite3.Connection] = []
        try:
            self._open_schema()
        except BaseException:
            self.close()
            raise

    def __repr__(self) -> str:
        return f"{type(self).__name__}(path={str(self.path)!r})"

    def _open_schema(self) -> None:
        """Check the file's version, then create or migrate it in one transaction.

        The check reads through a plain connection first, so a file that is refused is not
        even switched to WAL (which rewrites its header).
        """
        if str(self.path) != ":memory:" and self.path.exists():
            try:
                with contextlib.closing(sqlite3.connect(str(self.path), timeout=30.0)) as probe:
                    version, tables = _layout(probe)
            except sqlite3.Error as exc:
                raise self._unopenable(exc) from exc
            self._check(version, tables)
        with self._tx() as conn:
            version, tables = _layout(conn)  # again: another process may have migrated it
            if version == SCHEMA_VERSION:
                return
            self._check(version, tables)
            for statement in _SCHEMA.split(";"):
                if statement.strip():
                    conn.execute(statement)
            for step in range(version, SCHEMA_VERSION):
                for statement in _MIGRATIONS[step]:
                    conn.execute(statement)
            conn.execute(f"PRAGMA user_version={SCHEMA_VERSION}")

    def _check(self, version: int, tables: set[str]) -> None:
        if version > SCHEMA_VERSION or version < 0:
            raise OutboxVersionError(
                f"The outbox file {str(self.path)!r} has schema version {version}; this "
                f"version of memobase-integrations reads versions up to {SCHEMA_VERSION}. "
                "It was written by a newer release (or another program). What to do: "
                "upgrade memobase-integrations, or set outbox_path (MEMOBASE_OUTBOX_PATH) "
                "to another file; the file was left unchanged."
            )
        foreign = {t for t in tables if not t.startswith("sqlite_")} - _TABLES
        if foreign and not tables & _TABLES:
            raise OutboxVersionError(
                f"The file {str(self.path)!r} is a SQLite database but not a Memobase "
                f"outbox (it has the tables {', '.join(sorted(foreign)[:5])}). What to "
                "do: set outbox_path (MEMOBASE_OUTBOX_PATH) to a file of its own; this "
                "one was left unchanged."
            )

    def _unopenable(self, exc: sqlite3.Error) -> errors.ConfigurationError:
        return errors.ConfigurationError(
            f"The outbox file {str(self.path)!r} cannot be opened ({exc}). Set outbox_path "
            "(or MEMOBASE_OUTBOX_PATH) to a writable location."
        )

    # -- connections ------------------------------------------------------------------------
    def _conn(self) -> sqlite3.Connection:
        cached: tuple[int, sqlite3.Connection] | None = getattr(self._local, "conn", None)
        if cached is not None and cached[0] == self._generation:
            return cached[1]
        try:
            conn = sqlite3.connect(
                str(self.path), timeout=30.0, isolation_level=None, check_same_thread=False
            )
            conn.row_factory = sqlite3.Row
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=NORMAL")
            conn.execute("PRAGMA busy_timeout=30000")
            # A commit that crosses the WAL size limit would checkpoint (and fsync) inline,
            # on whatever thread committed: possibly the app's, inside record(). The worker
            # checkpoints instead (see checkpoint()).
            conn.execute("PRAGMA wal_autocheckpoint=0")
        except sqlite3.Error as exc:
            raise self._unopenable(exc) from exc
        with self._lock:
            self._connections.append(conn)
            self._local.conn = (self._generation, conn)
        return conn

    def _one(self, sql: str, args: Sequence[Any] = ()) -> sqlite3.Row | None:
        row: sqlite3.Row | None = self._conn().execute(sql, args).fetchone()
        return row

    def _all(self, sql: str, args: Sequence[Any] = ()) -> list[sqlite3.Row]:
        return self._conn().execute(sql, args).fetchall()

    def _write(self, sql: str, args: Sequence[Any] = ()) -> int:
        """One writing statement (autocommit); returns the rows it changed."""
        with self._write_lock:
            return self._conn().execute(sql, args).rowcount

    @contextlib.contextmanager
    def _tx(self) -> Iterator[sqlite3.Connection]:
        conn = self._conn()
        with self._write_lock:
            conn.execute("BEGIN IMMEDIATE")
            try:
                yield conn
            except BaseException:
                conn.execute("ROLLBACK")
                raise
            conn.execute("COMMIT")

    def close(self) -> None:
        """Close every connection; a later call reopens one (recording stays possible)."""
        with self._lock:
            self._generation += 1
            conns, self._connections = self._connections, []
        for conn in conns:
            with contextlib.suppress(sqlite3.Error):
                conn.close()

    def checkpoint(self) -> None:
        """Move the WAL into the database file (the worker calls this, off the hot path)."""
        with contextlib.suppress(sqlite3.Error), self._write_lock:
            self._conn().execute("PRAGMA wal_checkpoint(PASSIVE)")

    # -- scopes -----------------------------------------------------------------------------
    def fingerprint(self, secret: str) -> str:
        """A short, non-reversible tag of ``secret`` for telling projects apart in the file.

        HMAC-SHA256 keyed with a random salt kept in this file (``outbox_meta``), cut to 16
        hex digits: equal secrets get equal tags within one file, and the file holds
        nothing from which the secret (or a guess of it, without the file) can be checked
        against another file's tag.
        """
        salt = self._salt()
        digest = hmac.new(salt.encode(), secret.encode(), hashlib.sha256).hexdigest()
        return digest[:16]

    def _salt(self) -> str:
        row = self._one("SELECT value FROM outbox_meta WHERE key='salt'")
        if row is None:
            # INSERT OR IGNORE: two processes creating the file race; the first salt wins.
            self._write(
                "INSERT OR IGNORE INTO outbox_meta (key, value) VALUES ('salt', ?)",
                (secrets.token_hex(16),),
            )
            row = self._one("SELECT value FROM outbox_meta WHERE key='salt'")
        assert row is not None
        return str(row["value"])

    def rename_scope(self, old: str, new: str) -> int:
        """Move rows written under ``old`` (an earlier version's scope) to ``new``.

        Earlier versions wrote part of some API keys into the scope; the rewrite runs with
        ``secure_delete`` so the old text is overwritten in the file, not just unlinked, and
        the WAL is folded back and truncated so no copy of it stays there either.
        """
        if old == new:
            return 0
        present = self._one("SELECT 1 FROM outbox_users WHERE scope=? LIMIT 1", (old,))
        present = present or self._one("SELECT 1 FROM outbox_turns WHERE scope=? LIMIT 1", (old,))
        if present is None:
            return 0
        conn = self._conn()
        conn.execute("PRAGMA secure_delete=ON")
        try:
            with self._tx() as tx:
                moved = tx.execute(
                    "UPDATE OR IGNORE outbox_turns SET scope=? WHERE scope=?", (new, old)
                ).rowcount
                tx.execute("DELETE FROM outbox_turns WHERE scope=?", (old,))
                tx.execute("UPDATE OR IGNORE outbox_users SET scope=? WHERE scope=?", (new, old))
                tx.execute("DELETE FROM outbox_users WHERE scope=?", (old,))
            with contextlib.suppress(sqlite3.Error), self._write_lock:
                conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        finally:
            conn.execute("PRAGMA secure_delete=OFF")
        return int(moved)


def _layout(conn: sqlite3.Connection) -> tuple[int, set[str]]:
    """The file's ``user_version`` and table names."""
    version = int(conn.execute("PRAGMA user_version").fetchone()[0])
    tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    return version, tables


@overload
def _datetime(ts: float) -> datetime: ...
@overload
def _datetime(ts: None) -> None: ...
def _datetime(ts: float | None) -> datetime | None:
    return None if ts is None else datetime.fromtimestamp(ts, UTC)


# Writers of one file inside this process queue on a Python lock: it hands over at once,
# where SQLite's busy handler would poll in millisecond sleeps (a record() waiting behind
# the worker's commit would pay that). Other processes still meet SQLite's own locking.
_WRITE_LOCKS: dict[str, threading.Lock] = {}
_WRITE_LOCKS_GUARD = threading.Lock()


def _write_lock_for(path: Path) -> threading.Lock:
    key = str(path.resolve()) if str(path) != ":memory:" else f":memory:{id(path)}"
    with _WRITE_LOCKS_GUARD:
        return _WRITE_LOCKS.setdefault(key, threading.Lock())
