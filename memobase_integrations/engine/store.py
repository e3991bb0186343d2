"""The embedded engine's storage: SQLAlchemy 2 Core on SQLite (default) or PostgreSQL.

Design choices, and why:

* **One code path for both dialects.** Dialect differences are confined to three places: the
  ``INSERT ... ON CONFLICT DO NOTHING`` construct, how a write transaction starts (SQLite:
  ``BEGIN IMMEDIATE``; PostgreSQL: row locks), and the connection pragmas.
* **Every query is scoped by ``user_id`` in SQL.** No method reads another user's rows and
  filters in Python, so a bug in a caller cannot leak one user's memory into another's.
* **Short transactions.** Nothing here waits for an LLM while holding a transaction: a flush
  *claims* its rows (a lease), the pipeline runs outside any transaction, and the results are
  written in one final transaction together with marking the buffer done. A crash anywhere in
  between leaves the rows ``processing`` with a lease that expires, and the next flush for that
  user takes them over: nothing is half-written, nothing is lost.
* **Exclusivity per user.** A claim first locks the user's row (PostgreSQL ``FOR NO KEY
  UPDATE``; on SQLite the whole ``BEGIN IMMEDIATE`` transaction is exclusive), then refuses if
  the user already has rows under a live lease. So one flush per user runs at a time across
  threads and processes, and a user's turns are processed in the order they were recorded.
"""

from __future__ import annotations

import contextlib
import logging
import re
import threading
import uuid
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from hashlib import sha1
from typing import Any, Final

import sqlalchemy as sa
import uuid_utils
from sqlalchemy import event as sa_event
from sqlalchemy.dialects import postgresql as pg_dialect
from sqlalchemy.dialects import sqlite as sqlite_dialect
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.pool import StaticPool

from .. import tokens
from ..errors import (
    ConfigurationError,
    MemobaseConnectionError,
    MemobaseError,
    NotFoundError,
    StoreError,
    StoreNotFoundError,
)
from ..messages import render_blob
from ..models import (
    PROCESSED_BLOB_TYPES,
    Blob,
    BlobData,
    BlobType,
    ChatBlob,
    ChatModalResponse,
    EventData,
    EventGist,
    EventGistData,
    SummaryBlob,
    UserEvent,
)
from ..queue.status import memory_status
from ..tokens import count_tokens
from ..values import FailedTurn, MemoryStatus, RecordReceipt, UserStatus
from . import fts
from . import schema as t
from .plan import Claim, ClaimedBlob, FlushPlan, StoredProfile
from .search import event_text
from .sqlite_hotpath import SQLiteContextReader, SQLiteRecorder

__all__ = [
    "BUSY",
    "DEFAULT_DATABASE_URL",
    "ConfigState",
    "ContextRows",
    "DueUser",
    "LeaseLostError",
    "Store",
    "StoredEmbedded",
    "StoredUser",
    "redact_url",
    "turn_blob_id",
    "utcnow",
]

logger = logging.getLogger(__name__)

DEFAULT_DATABASE_URL: Final = "sqlite:///memobase.db"
#: Memobase refuses project configs longer than this (errno 400).
MAX_PROFILE_CONFIG_CHARS: Final = 65535

IDLE: Final = "idle"
PROCESSING: Final = "processing"
DONE: Final = "done"
FAILED: Final = "failed"
_OPEN: Final = (IDLE, PROCESSING, FAILED)
_PROCESSED_TYPES: Final = tuple(str(x) for x in sorted(PROCESSED_BLOB_TYPES))


def utcnow() -> datetime:
    return datetime.now(UTC)


def new_row_id() -> uuid.UUID:
    """A time-ordered id (UUIDv7) for a profile, event or gist row.

    Ids made later in this process sort after earlier ones (``uuid_utils`` guarantees it per
    process, even within one millisecond), so rows written together - one flush's gists, its
    profile rows - share their timestamp but still read back in the order they were written:
    every read that feeds a context sorts by time and then by id. With random ids that order
    changed from store to store, and the same memory gave a different prompt.

    The id carries version 4, not 7: Memobase's clients accept only UUID v4/v5 ids (the
    official SDK validates every profile and event id it reads, the server's routes refuse
    other versions), and ``serve`` hands these ids to them. The order is unchanged: the
    version nibble is the same in every id and sits after the timestamp bits.
    """
    return uuid.UUID(int=uuid_utils.uuid7().int, version=4)


def turn_blob_id(user_id: uuid.UUID, turn_id: str, part: int) -> uuid.UUID:
    """The blob id of part ``part`` of a turn: stable, so a replay names the same blobs.

    ``uuid.uuid5(user_id, f"turn:{turn_id}:{part}")``, spelled out: ``uuid5`` imports
    ``hashlib`` on every call, a cost each ``record`` paid once per blob.
    """
    name = f"turn:{turn_id}:{part}".encode()
    return uuid.UUID(bytes=sha1(user_id.bytes + name).digest()[:16], version=5)


def redact_url(url: sa.URL | str) -> str:
    """A database URL safe for messages and logs (password hidden)."""
    try:
        parsed = sa.make_url(url) if isinstance(url, str) else url
    except Exception:
        return "<unparseable database URL>"
    return parsed.render_as_string(hide_password=True)


#: The version of a store that has no project row yet (no config was ever saved).
_NO_CONFIG_ROW: Final = "no-config-row"


@dataclass(frozen=True, slots=True)
class ConfigState:
    """The project config's version (``mb_project.updated_at``, or a marker when the row
    does not exist) and its YAML text (``None``: the defaults)."""

    stamp: object
    text: str | None


@dataclass(frozen=True, slots=True)
class ContextRows:
    """One ``context()`` read: the config (``None`` when unchanged), profiles, gists."""

    config: ConfigState | None
    profiles: list[StoredProfile]
    gists: list[EventGist]


class _Busy:
    """Returned by :meth:`Store.claim` when another flush holds a live lease on the user."""

    _instance: _Busy | None = None

    def __new__(cls) -> _Busy:
        if cls._instance is None:
            cls._instance = super().__new__(cls)
        return cls._instance

    def __repr__(self) -> str:
        return "BUSY"


BUSY: Final = _Busy()


@dataclass(frozen=True, slots=True)
class DueUser:
    user_id: uuid.UUID
    blob_type: BlobType
    reason: str


@dataclass(frozen=True, slots=True)
class StoredEmbedded:
    """An event or gist with its stored embedding, for similarity search in Python."""

    id: uuid.UUID
    embedding: list[float] | None
    created_at: datetime


@dataclass(frozen=True, slots=True)
class StoredUser:
    """A user row: its data, timestamps and (in listings) its profile and event counts."""

    id: uuid.UUID
    data: dict[str, Any] | None
    created_at: datetime
    updated_at: datetime
    profile_count: int = 0
    event_count: int = 0


class LeaseLostError(MemobaseError):
    """Internal: the flush's lease was taken over (or the user deleted) before it committed."""


# --------------------------------------------------------------------------------------------
# The store
# --------------------------------------------------------------------------------------------


class Store:
    """All SQL of the embedded engine. Thread-safe; one instance per backend.

    ``engine_options`` go to :func:`sqlalchemy.create_engine` (e.g. ``connect_args=
    {"options": "-csearch_path=myschema"}`` to put the tables in a PostgreSQL schema).

    ``create=False`` opens an existing store only: no table is created or altered and a
    SQLite file's journal mode is left as it is, and a database without the store's tables
    raises :class:`~memobase_integrations.errors.StoreNotFoundError` (what inspecting tools
    such as the CLI need: pointed at the wrong database, they must not write to it).
    """

    def __init__(
        self,
        database_url: str | None = None,
        *,
        engine_options: Mapping[str, Any] | None = None,
        busy_timeout_seconds: float = 30.0,
        create: bool = True,
    ) -> None:
        self.url = _normalise_url(database_url or DEFAULT_DATABASE_URL)
        self.safe_url = redact_url(self.url)
        self.dialect = self.url.get_backend_name()
        self._create = create
        self._memory = self.dialect == "sqlite" and _is_memory_sqlite(self.url)
        # A single in-memory SQLite connection is shared by all threads: serialize its use
        # (closing it included: see close()).
        self._serial: threading.RLock | None = threading.RLock() if self._memory else None
        self._closed = False
        # SQLite has one writer at a time. Threads of this process queue on a FIFO lock
        # (woken at once, in arrival order) instead of SQLite's busy handler, which sleeps
        # 10-100 ms between retries; other processes still wait through busy_timeout.
        self._write_lock: _FifoLock | None = (
            _FifoLock() if self.dialect == "sqlite" and not self._memory else None
        )
        self.engine = self._create_engine(dict(engine_options or {}), busy_timeout_seconds)
        #: How searches find candidates (``fts.Mode``); set by the writing open, else found
        #: on the first search (an open that does not migrate, e.g. read-only).
        self._search_mode: fts.Mode | None = None
        self._open_schema()
        # Users this process knows exist: ``record`` then skips the "create user" statement.
        self._known_users: set[uuid.UUID] = set()
        # Hot-path statements, built once (SQLAlchemy caches their compiled form).
        self._insert_turn = (
            self._insert_ignore(t.turns)
            .on_conflict_do_nothing(index_elements=["user_id", "turn_id"])
            # rowcount is not reliable for INSERT on every driver; RETURNING is.
            .returning(t.turns.c.turn_id)
        )
        self._insert_blobs = sa.insert(t.blobs)
        self._insert_buffer = sa.insert(t.buffer)
        # context()'s reads, built once: the project config's version, the profiles, the gists.
        p, g, proj = t.profiles.c, t.gists.c, t.project.c
        self._q_config_stamp = sa.select(proj.updated_at).where(proj.id == 1)
        self._q_config = sa.select(proj.updated_at, proj.profile_config).where(proj.id == 1)
        self._q_profiles = (
            sa.select(t.profiles)
            .where(p.user_id == sa.bindparam("uid"))
            .order_by(p.updated_at.desc(), p.created_at.desc(), p.id)
        )
        self._q_gists = (
            sa.select(g.id, g.content, g.created_at, g.updated_at)
            .where(g.user_id == sa.bindparam("uid"), g.created_at >= sa.bindparam("since"))
            .order_by(g.created_at.desc(), g.id)
            .limit(sa.bindparam("limit", type_=sa.Integer()))
        )
        # On a SQLite file the record transaction runs on the driver's cursor (see the module).
        lean = self.dialect == "sqlite" and not self._memory
        self._sqlite_recorder = SQLiteRecorder(self.engine, idle=IDLE) if lean else None
        self._sqlite_reader = SQLiteContextReader(self.engine) if lean else None

    @property
    def in_memory(self) -> bool:
        """True for an in-memory SQLite database, which no other process can open."""
        return self._memory

    # -- engine and schema ----------------------------------------------------------------------
    def _create_engine(self, options: dict[str, Any], busy_timeout: float) -> Engine:
        if self.dialect == "sqlite":
            connect_args = dict(options.pop("connect_args", {}) or {})
            connect_args.setdefault("check_same_thread", False)
            connect_args.setdefault("timeout", busy_timeout)
            if self._memory:
                options.setdefault("poolclass", StaticPool)
            options["connect_args"] = connect_args
        else:
            options.setdefault("pool_pre_ping", True)
        try:
            engine = sa.create_engine(self.url, **options)
        except (ImportError, sa.exc.NoSuchModuleError) as exc:
            raise ConfigurationError(
                f"Cannot use the database URL {self.safe_url}: its driver is not installed "
                f"({exc}). For PostgreSQL install the extra: pip install "
                "'memobase-integrations[postgres]' (psycopg 3) and use "
                "postgresql+psycopg://user:password@host/dbname."
            ) from exc
        except (sa.exc.ArgumentError, TypeError, ValueError) as exc:
            raise ConfigurationError(
                f"Cannot use the database URL {self.safe_url}: {exc}. Use "
                "sqlite:///path/to/memobase.db or postgresql+psycopg://user:password@host/db."
            ) from exc
        if self.dialect == "sqlite":
            self._install_sqlite_hooks(engine, busy_timeout)
        return engine

    def _install_sqlite_hooks(self, engine: Engine, busy_timeout: float) -> None:
        memory = self._memory
        # Switching to WAL rewrites the file header: only for a store we may create. A store
        # this package made is in WAL mode already (the mode is kept in the file).
        wal = not memory and self._create

        @sa_event.listens_for(engine, "connect")
        def _on_connect(dbapi_conn: Any, _record: Any) -> None:
            # Take transaction control away from pysqlite so BEGIN IMMEDIATE is possible.
            dbapi_conn.isolation_level = None
            cur = dbapi_conn.cursor()
            try:
                if wal:
                    cur.execute("PRAGMA journal_mode=WAL")
                cur.execute("PRAGMA synchronous=NORMAL")
                if not memory:
                    # A commit that crosses the WAL size limit would checkpoint inline, and
                    # that commit may be a record() on the request path. The worker
                    # checkpoints instead (see checkpoint()).
                    cur.execute("PRAGMA wal_autocheckpoint=0")
                cur.execute(f"PRAGMA busy_timeout={int(busy_timeout * 1000)}")
                cur.execute("PRAGMA foreign_keys=ON")
            finally:
                cur.close()

        @sa_event.listens_for(engine, "begin")
        def _on_begin(conn: Connection) -> None:
            # Writers take the write lock up front: a deferred transaction that reads and then
            # writes can fail with SQLITE_BUSY without waiting (the WAL snapshot upgrade case).
            immediate = conn.get_execution_options().get("mb_write", False)
            conn.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")

    def _open_schema(self) -> None:
        """Create the tables, check the schema version, migrate an older store and make sure
        the search index exists - all in one transaction (the writing open)."""
        if not self._create:
            self._check_schema()
            return
        try:
            with self._write() as conn:
                if self.dialect == "postgresql":
                    # Serialize first-time creation between processes starting together.
                    conn.execute(sa.text("SELECT pg_advisory_xact_lock(724113801)"))
                fts5 = self.dialect == "sqlite" and fts.sqlite_has_fts5(conn)
                t.metadata.create_all(conn, checkfirst=True)
                row = conn.execute(sa.select(t.schema_version.c.version)).first()
                if row is None:
                    conn.execute(
                        sa.insert(t.schema_version).values(
                            id=1, version=t.SCHEMA_VERSION, updated_at=utcnow()
                        )
                    )
                elif row.version > t.SCHEMA_VERSION:
                    raise ConfigurationError(
                        f"The database {self.safe_url} has memobase schema version "
                        f"{row.version}, newer than this memobase-integrations supports "
                        f"({t.SCHEMA_VERSION}). Upgrade memobase-integrations, or point "
                        "database_url at another database."
                    )
                elif row.version < t.SCHEMA_VERSION:
                    self._migrate(conn, row.version, fts5=fts5)
                if fts.fts5_index_without_fts5(conn, self.dialect, fts5=fts5):
                    raise ConfigurationError(
                        f"The database {self.safe_url} has a full-text search index made with "
                        "SQLite's FTS5, which this Python's sqlite3 library lacks; writing "
                        "events from here would fail. Use a Python whose sqlite3 has FTS5 (the "
                        "python.org and most distribution builds do) for every process that "
                        "writes to this store."
                    )
                fts.install(conn, self.dialect, fts5=fts5)
                self._search_mode = fts.detect_mode(conn, self.dialect, t.SCHEMA_VERSION)
        except MemobaseError:
            self.engine.dispose()
            raise
        except sa.exc.SQLAlchemyError as exc:
            self.engine.dispose()
            raise ConfigurationError(
                f"Cannot open the database {self.safe_url}: {_short(exc)}. Check that the "
                "server is running and reachable, the credentials are right and, for SQLite, "
                "that the directory exists and is writable."
            ) from exc

    def _migrate(self, conn: Connection, version: int, *, fts5: bool) -> None:
        """Bring a store written by an older release to :data:`.schema.SCHEMA_VERSION`, inside
        the opening transaction (all or nothing; other processes opening meanwhile wait).

        1 -> 2: the search index (``mb_search`` was just created by ``create_all``): its
        dialect part, then every existing event and gist analysed into it. This takes time
        in proportion to the store's events and gists, once.
        """
        if version < 2:
            fts.install(conn, self.dialect, fts5=fts5)
            indexed = fts.backfill(conn)
            logger.info(
                "memobase: %s migrated from schema version %d to %d; %d events and gists "
                "indexed for search",
                self.safe_url,
                version,
                t.SCHEMA_VERSION,
                indexed,
            )
        conn.execute(
            sa.update(t.schema_version)
            .where(t.schema_version.c.id == 1)
            .values(version=t.SCHEMA_VERSION, updated_at=utcnow())
        )

    @property
    def search_mode(self) -> fts.Mode:
        """``"fts5"``, ``"tsvector"`` or ``"scan"`` (see :mod:`.fts`)."""
        if self._search_mode is None:
            with self.guard("inspecting the search index"), self._read() as conn:
                return self._detect_search_mode(conn)
        return self._search_mode

    def _detect_search_mode(self, conn: Connection) -> fts.Mode:
        if self._search_mode is None:
            try:
                with conn.begin_nested():
                    version = conn.execute(sa.select(t.schema_version.c.version)).scalar()
            except sa.exc.DatabaseError:  # no memobase tables at all
                version = None
            self._search_mode = fts.detect_mode(conn, self.dialect, version)
        return self._search_mode

    def _check_schema(self) -> None:
        """``create=False``: read the catalog only; refuse a database that is not a store."""
        try:
            with self._read() as conn:
                present = set(sa.inspect(conn).get_table_names())
                version = (
                    conn.execute(sa.select(t.schema_version.c.version)).scalar()
                    if t.schema_version.name in present
                    else None
                )
                missing = sorted(_missing_tables(present, version))
        except sa.exc.SQLAlchemyError as exc:
            self.engine.dispose()
            raise ConfigurationError(
                f"Cannot open the database {self.safe_url}: {_short(exc)}. Check that the "
                "server is running and reachable and the credentials are right."
            ) from exc
        if missing:
            self.engine.dispose()
            what = (
                "has no memobase store"
                if len(missing) == len(t.metadata.tables)
                else f"has an incomplete memobase store (missing {', '.join(missing)})"
            )
            raise StoreNotFoundError(
                f"The database {self.safe_url} {what}, and it was opened for reading only, so "
                "nothing was created. Point at the database your app uses "
                "(--database-url / MEMOBASE_DATABASE_URL); a store is created by the app's "
                "first Memobase.embedded(...) on it."
            )
        if version is not None and version > t.SCHEMA_VERSION:
            self.engine.dispose()
            raise ConfigurationError(
                f"The database {self.safe_url} has memobase schema version {version}, newer "
                f"than this memobase-integrations supports ({t.SCHEMA_VERSION}). Upgrade "
                "memobase-integrations."
            )

    def checkpoint(self) -> None:
        """Copy the SQLite WAL back into the database file (PASSIVE: never waits for, nor
        blocks, readers and writers). Called from the worker thread, so the request path
        never pays for it. A no-op on PostgreSQL and in-memory SQLite."""
        if self.dialect != "sqlite" or self._memory:
            return
        raw = self.engine.raw_connection()
        try:
            raw.cursor().execute("PRAGMA wal_checkpoint(PASSIVE)")
        finally:
            raw.close()

    def close(self) -> None:
        """Release the connections. Safe while other threads still use the store: in memory,
        the one shared connection is closed only between two of their statements (closing
        it under a running one crashes the interpreter), and later uses raise
        :class:`~memobase_integrations.errors.StoreError`; elsewhere each thread has its own
        pooled connection and a later use opens a new one."""
        # Closing must not fail on a busy or vanished file.
        with contextlib.suppress(sa.exc.SQLAlchemyError):
            self.checkpoint()
        if self._sqlite_recorder is not None:
            with self._writer(), contextlib.suppress(Exception):
                self._sqlite_recorder.close()
        if self._serial is None:
            self.engine.dispose()
            return
        with self._serial:
            self._closed = True
            self.engine.dispose()

    # -- transactions ---------------------------------------------------------------------------
    @contextmanager
    def _serialized(self) -> Iterator[None]:
        if self._serial is None:
            yield
        else:
            with self._serial:
                if self._closed:
                    # Its one connection is gone, and with it the data: a new connection
                    # would be an empty database, so say what happened instead.
                    raise StoreError(
                        f"The in-memory store {self.safe_url} was closed (its data went with "
                        "it). Build a new backend; close it only after the threads that use "
                        "it (a Memobase's context refresher: close the Memobase) are done."
                    )
                yield

    @contextmanager
    def _write(self) -> Iterator[Connection]:
        with self._serialized(), self._writer(), self.engine.connect() as conn:
            conn.execution_options(mb_write=True)
            with conn.begin():
                yield conn

    @contextmanager
    def _writer(self) -> Iterator[None]:
        if self._write_lock is None:
            yield
        else:
            with self._write_lock:
                yield

    @contextmanager
    def _read(self) -> Iterator[Connection]:
        with self._serialized(), self.engine.connect() as conn, conn.begin():
            yield conn

    @contextmanager
    def guard(self, action: str) -> Iterator[None]:
        """Turn database exceptions into the package's errors (only ours escape)."""
        try:
            yield
        except MemobaseError:
            raise
        except sa.exc.OperationalError as exc:
            raise MemobaseConnectionError(
                f"The database {self.safe_url} failed while {action}: {_short(exc)}. "
                "Check that it is reachable and not locked by a long transaction; retry."
            ) from exc
        except sa.exc.SQLAlchemyError as exc:
            raise StoreError(
                f"The database {self.safe_url} failed while {action}: {_short(exc)}."
            ) from exc

    def _insert_ignore(self, table: sa.Table) -> Any:
        """``INSERT ... ON CONFLICT DO NOTHING`` for the current dialect."""
        if self.dialect == "postgresql":
            return pg_dialect.insert(table)
        return sqlite_dialect.insert(table)

    @staticmethod
    def _ensure_user(conn: Connection, ins: Any, user_id: uuid.UUID, now: datetime) -> None:
        row = ins.values(id=user_id, data=None, created_at=now, updated_at=now)
        conn.execute(row.on_conflict_do_nothing(index_elements=["id"]))

    # -- users ----------------------------------------------------------------------------------
    def ensure_user(self, user_id: uuid.UUID, data: dict[str, Any] | None = None) -> None:
        now = utcnow()
        with self.guard("creating a user"), self._write() as conn:
            self._ensure_user(conn, self._insert_ignore(t.users), user_id, now)
            if data is not None:
                conn.execute(
                    sa.update(t.users)
                    .where(t.users.c.id == user_id)
                    .values(data=data, updated_at=now)
                )

    def delete_user(self, user_id: uuid.UUID) -> bool:
        """Delete the user and (by cascade) every row about them. True if they existed."""
        self._known_users.discard(user_id)
        with self.guard("deleting a user"), self._write() as conn:
            return bool(conn.execute(sa.delete(t.users).where(t.users.c.id == user_id)).rowcount)

    # -- recording ------------------------------------------------------------------------------
    def record_turn(
        self,
        user_id: uuid.UUID,
        turn_id: str,
        blobs: Sequence[ChatBlob],
        *,
        estimates: list[tuple[uuid.UUID, str]] | None = None,
        estimate_limit: int | None = None,
    ) -> tuple[RecordReceipt, int]:
        """Write a turn's blobs and buffer rows in one transaction; a replay is a no-op.

        Returns the receipt and the tokens the turn added to the buffer (0 for a replay). This
        is the hot path: three prepared statements in one short transaction (four the first
        time a user is seen by this process), no aggregate query.

        Each buffer row's ``token_size`` is its rendered text's exact o200k count, one
        tokenizer pass per blob. With ``estimates`` given, a caller that must not wait for
        the tokenizer to load (:func:`..tokens.preload`) gets the text's UTF-8 length instead,
        an upper bound (every o200k token covers at least one byte), and the ``(blob id,
        rendered text)`` of each such row appended to ``estimates``, to set the exact count
        later with :meth:`set_token_sizes`. An upper bound can make a buffer due early,
        never late: no turn waits longer than the policy says. A bound above
        ``estimate_limit`` (the batch cap, past which a claim would park the blob as too big)
        is not used: that blob is counted exactly, waiting for the encoder if need be.
        """
        if not turn_id or len(turn_id) > 255:
            raise ValueError("turn_id must be a non-empty string of at most 255 characters")
        now = utcnow()
        parts: list[tuple[uuid.UUID, ChatBlob, int]] = []
        estimated: list[tuple[uuid.UUID, str]] = []
        for part, blob in enumerate(blobs):
            blob_id = turn_blob_id(user_id, turn_id, part)
            text = render_blob(blob, blob.created_at or now)
            size = count_tokens(text) if estimates is None else tokens.count_tokens_if_ready(text)
            if size is None:
                size = tokens.token_bound(text)
                if estimate_limit is not None and size > estimate_limit:
                    size = count_tokens(text)
                else:
                    estimated.append((blob_id, text))
            parts.append((blob_id, blob, size))
        with self.guard("recording a turn"):
            try:
                known = self._record(user_id, turn_id, parts, now)
            except sa.exc.IntegrityError:
                # The user row vanished (deleted by another process): create it and retry.
                self._known_users.discard(user_id)
                known = self._record(user_id, turn_id, parts, now)
        if known is not None:
            return RecordReceipt(turn_id=turn_id, blob_ids=known, duplicate=True), 0
        if estimates is not None:
            estimates.extend(estimated)
        receipt = RecordReceipt(turn_id=turn_id, blob_ids=tuple(p[0] for p in parts))
        return receipt, sum(p[2] for p in parts)

    def set_token_sizes(self, sizes: Mapping[uuid.UUID, int]) -> int:
        """Replace the token sizes of these blobs' buffer rows (exact counts for the upper
        bounds ``record_turn(estimates=...)`` wrote). Returns the rows changed."""
        if not sizes:
            return 0
        b = t.buffer.c
        stmt = (
            sa.update(t.buffer)
            .where(b.blob_id == sa.bindparam("b_blob_id"))
            .values(token_size=sa.bindparam("b_size"))
        )
        rows = [{"b_blob_id": k, "b_size": v} for k, v in sizes.items()]
        with self.guard("correcting token counts"), self._write() as conn:
            if self.dialect == "postgresql":
                # Take the users' row locks first, as a claim does: a claim skips buffer rows
                # locked by another transaction (SKIP LOCKED), and skipping a row being
                # corrected here would process a user's turns out of order. This way a
                # claim waits for the correction to commit (and vice versa).
                users = sa.select(b.user_id).where(b.blob_id.in_(list(sizes))).distinct()
                conn.execute(
                    sa.select(t.users.c.id)
                    .where(t.users.c.id.in_(users))
                    .order_by(t.users.c.id)
                    .with_for_update(key_share=True)
                ).all()
            return int(conn.execute(stmt, rows).rowcount or 0)

    def _record(
        self,
        user_id: uuid.UUID,
        turn_id: str,
        parts: list[tuple[uuid.UUID, ChatBlob, int]],
        now: datetime,
    ) -> tuple[uuid.UUID, ...] | None:
        """The record transaction; returns the stored blob ids if the turn was a replay."""
        recorder, lock = self._sqlite_recorder, self._write_lock
        if recorder is not None and lock is not None:  # a SQLite file: never ``_serial``
            with lock:
                stored = recorder.record(
                    user_id, turn_id, parts, now, ensure_user=user_id not in self._known_users
                )
            if stored is not None:
                return stored
        else:
            with self._write() as conn:
                if user_id not in self._known_users:
                    self._ensure_user(conn, self._insert_ignore(t.users), user_id, now)
                turn_row = {
                    "user_id": user_id,
                    "turn_id": turn_id,
                    "blob_ids": [str(p[0]) for p in parts],
                    "created_at": now,
                }
                inserted = conn.execute(self._insert_turn, turn_row).first()
                if inserted is None:
                    stored = conn.execute(
                        sa.select(t.turns.c.blob_ids).where(
                            t.turns.c.user_id == user_id, t.turns.c.turn_id == turn_id
                        )
                    ).scalar_one()
                    return tuple(uuid.UUID(x) for x in stored)
                if parts:
                    conn.execute(
                        self._insert_blobs,
                        [
                            self._blob_row(user_id, blob_id, blob, now, turn_id, part)
                            for part, (blob_id, blob, _) in enumerate(parts)
                        ],
                    )
                    conn.execute(
                        self._insert_buffer,
                        [
                            self._buffer_row(user_id, blob_id, blob, now, turn_id, token_size=n)
                            for blob_id, blob, n in parts
                        ],
                    )
        if len(self._known_users) > 100_000:
            self._known_users.clear()
        self._known_users.add(user_id)
        return None

    def insert_blob(self, user_id: uuid.UUID, blob: Blob) -> tuple[uuid.UUID, int]:
        """Store one blob (the seed endpoint). Chat and summary blobs are buffered; the other
        types are stored only (Memobase cannot process them). Returns the id and the user's
        idle tokens of that blob type afterwards."""
        now = utcnow()
        blob_id = uuid.uuid4()
        processed = blob.type in PROCESSED_BLOB_TYPES
        with self.guard("inserting a blob"), self._write() as conn:
            self._ensure_user(conn, self._insert_ignore(t.users), user_id, now)
            conn.execute(sa.insert(t.blobs), [self._blob_row(user_id, blob_id, blob, now)])
            if not processed:
                return blob_id, 0
            assert isinstance(blob, ChatBlob | SummaryBlob)
            conn.execute(sa.insert(t.buffer), [self._buffer_row(user_id, blob_id, blob, now)])
            idle = self._idle_tokens(conn, user_id, blob.type)
        return blob_id, idle

    @staticmethod
    def _blob_row(
        user_id: uuid.UUID,
        blob_id: uuid.UUID,
        blob: Blob,
        now: datetime,
        turn_id: str | None = None,
        part: int = 0,
    ) -> dict[str, Any]:
        data = blob.model_dump(mode="json", exclude={"type", "fields", "created_at"})
        return {
            "id": blob_id,
            "user_id": user_id,
            "turn_id": turn_id,
            "part": part,
            "blob_type": str(blob.type),
            "blob_data": data,
            "fields": blob.fields,
            # An explicit blob time is honoured (e.g. importing history); Memobase uses insert time.
            "created_at": blob.created_at or now,
            "updated_at": now,
        }

    @staticmethod
    def _buffer_row(
        user_id: uuid.UUID,
        blob_id: uuid.UUID,
        blob: ChatBlob | SummaryBlob,
        now: datetime,
        turn_id: str | None = None,
        *,
        token_size: int | None = None,
    ) -> dict[str, Any]:
        if token_size is None:
            token_size = count_tokens(render_blob(blob, blob.created_at or now))
        return {
            "user_id": user_id,
            "blob_id": blob_id,
            "turn_id": turn_id,
            "blob_type": str(blob.type),
            "token_size": token_size,
            "status": IDLE,
            "attempts": 0,
            "created_at": now,
            "updated_at": now,
        }

    @staticmethod
    def _idle_tokens(conn: Connection, user_id: uuid.UUID, blob_type: BlobType) -> int:
        b = t.buffer.c
        total = conn.execute(
            sa.select(sa.func.coalesce(sa.func.sum(b.token_size), 0)).where(
                b.user_id == user_id, b.blob_type == str(blob_type), b.status == IDLE
            )
        ).scalar_one()
        return int(total)

    def idle_tokens(self, user_id: uuid.UUID, blob_type: BlobType) -> int:
        with self.guard("reading the buffer"), self._read() as conn:
            return self._idle_tokens(conn, user_id, blob_type)

    def get_blob(self, user_id: uuid.UUID, blob_id: uuid.UUID) -> BlobData:
        b = t.blobs.c
        with self.guard("reading a blob"), self._read() as conn:
            row = conn.execute(
                sa.select(b.blob_type, b.blob_data, b.fields, b.created_at, b.updated_at).where(
                    b.user_id == user_id, b.id == blob_id
                )
            ).first()
        if row is None:
            raise NotFoundError(
                f"Blob {blob_id} of user {user_id} does not exist. Processed chat blobs are "
                "deleted after their buffer is flushed (as Memobase does)."
            )
        return BlobData(
            blob_type=BlobType(row.blob_type),
            blob_data=row.blob_data,
            fields=row.fields,
            created_at=row.created_at,
            updated_at=row.updated_at,
        )

    # -- flushing: due users, claim, commit, fail ----------------------------------------------
    def due_users(
        self,
        *,
        threshold: int,
        idle_seconds: float | None,
        drain: bool = False,
        limit: int = 100,
    ) -> list[DueUser]:
        """Users whose buffer should be flushed now, with the reason.

        Due: idle tokens over ``threshold`` (strict ``>``, as Memobase); newest idle row older
        than ``idle_seconds``; failed rows whose backoff elapsed; rows left ``processing`` under
        an expired lease (a dead process). With ``drain`` any idle row is due (``close()``).
        A user with a live lease is skipped (someone is flushing them), and so is a user whose
        failed rows are still backing off (processing newer turns first would break order).
        """
        now = utcnow()
        b = t.buffer.c
        is_idle = b.status == IDLE
        stmt = (
            sa.select(
                b.user_id,
                b.blob_type,
                sa.func.sum(sa.case((is_idle, b.token_size), else_=0)).label("idle_tokens"),
                sa.func.sum(sa.case((is_idle, 1), else_=0)).label("idle_rows"),
                sa.func.max(sa.case((is_idle, b.created_at), else_=None)).label("newest"),
                sa.func.sum(
                    sa.case(
                        ((b.status == FAILED) & (b.next_attempt_at <= now), 1),
                        else_=0,
                    )
                ).label("retry_due"),
                sa.func.sum(
                    sa.case(((b.status == FAILED) & (b.next_attempt_at > now), 1), else_=0)
                ).label("backing_off"),
                sa.func.sum(
                    sa.case(((b.status == PROCESSING) & (b.lease_expires <= now), 1), else_=0)
                ).label("expired"),
                sa.func.sum(
                    sa.case(((b.status == PROCESSING) & (b.lease_expires > now), 1), else_=0)
                ).label("active"),
            )
            .where(b.status.in_(_OPEN), b.blob_type.in_(_PROCESSED_TYPES))
            .group_by(b.user_id, b.blob_type)
        )
        with self.guard("looking for due buffers"), self._read() as conn:
            rows = conn.execute(stmt).all()
        due: list[DueUser] = []
        busy_users = {r.user_id for r in rows if r.active}
        for r in rows:
            if r.user_id in busy_users or r.backing_off:
                continue
            reason = None
            if r.expired:
                reason = "expired lease"
            elif r.retry_due:
                reason = "retry"
            elif int(r.idle_tokens or 0) > threshold:
                reason = "threshold"
            elif r.idle_rows and drain:
                reason = "drain"
            elif r.idle_rows and idle_seconds is not None and r.newest is not None:
                newest = _as_utc(r.newest)
                if newest <= now - timedelta(seconds=idle_seconds):
                    reason = "idle"
            if reason:
                due.append(DueUser(r.user_id, BlobType(r.blob_type), reason))
        return due[:limit]

    def claim(
        self,
        user_id: uuid.UUID,
        blob_type: BlobType,
        owner: str,
        *,
        lease_seconds: float,
        max_tokens: int,
        force: bool,
    ) -> Claim | _Busy | None:
        """Lease the user's next batch (oldest first, at most ``max_tokens``).

        Returns :data:`BUSY` when another flush holds a live lease on this user, ``None``
        when nothing is eligible. ``force`` (explicit flushes) also takes failed rows whose
        backoff has not elapsed. Rows left ``processing`` by a dead owner are taken over.
        A single blob larger than ``max_tokens`` can never be processed: it is parked as
        failed with an explanation (never dropped) and the claim goes on with the next rows.
        """
        now = utcnow()
        b = t.buffer.c
        with self.guard("claiming a buffer"), self._write() as conn:
            if self.dialect == "postgresql":
                conn.execute(
                    sa.select(t.users.c.id)
                    .where(t.users.c.id == user_id)
                    .with_for_update(key_share=True)
                )
            active = conn.execute(
                sa.select(sa.func.count())
                .select_from(t.buffer)
                .where(b.user_id == user_id, b.status == PROCESSING, b.lease_expires > now)
            ).scalar_one()
            if active:
                return BUSY
            failed_ok = (b.status == FAILED) & b.next_attempt_at.is_not(None)
            if not force:
                backing_off = conn.execute(
                    sa.select(sa.func.count())
                    .select_from(t.buffer)
                    .where(
                        b.user_id == user_id,
                        b.blob_type == str(blob_type),
                        b.status == FAILED,
                        b.next_attempt_at > now,
                    )
                ).scalar_one()
                if backing_off:
                    return None
            eligible = sa.or_(
                b.status == IDLE,
                failed_ok,
                (b.status == PROCESSING) & (b.lease_expires <= now),
            )
            stmt = (
                sa.select(b.seq, b.blob_id, b.turn_id, b.token_size, b.attempts)
                .where(b.user_id == user_id, b.blob_type == str(blob_type), eligible)
                .order_by(b.seq)
                .limit(5000)
            )
            if self.dialect == "postgresql":
                stmt = stmt.with_for_update(skip_locked=True)
            candidates = conn.execute(stmt).all()
            chosen: list[Any] = []
            total = 0
            for row in candidates:
                if row.token_size > max_tokens and not chosen:
                    self._park_oversized(conn, row.seq, row.token_size, max_tokens, now)
                    continue
                if chosen and total + row.token_size > max_tokens:
                    break
                if row.token_size > max_tokens:
                    break
                chosen.append(row)
                total += row.token_size
            if not chosen:
                return None
            seqs = tuple(int(r.seq) for r in chosen)
            conn.execute(
                sa.update(t.buffer)
                .where(b.seq.in_(seqs))
                .values(
                    status=PROCESSING,
                    lease_owner=owner,
                    lease_expires=now + timedelta(seconds=lease_seconds),
                    updated_at=now,
                )
            )
            bl = t.blobs.c
            loaded = {
                r.id: r
                for r in conn.execute(
                    sa.select(bl.id, bl.blob_type, bl.blob_data, bl.fields, bl.created_at).where(
                        bl.user_id == user_id, bl.id.in_([r.blob_id for r in chosen])
                    )
                )
            }
        claimed: list[ClaimedBlob] = []
        for r in chosen:
            data = loaded[r.blob_id]
            blob = BlobData(
                blob_type=BlobType(data.blob_type), blob_data=data.blob_data, fields=data.fields
            ).to_blob()
            assert isinstance(blob, ChatBlob | SummaryBlob)
            claimed.append(ClaimedBlob(r.blob_id, r.turn_id, blob, data.created_at, r.token_size))
        return Claim(
            user_id=user_id,
            blob_type=blob_type,
            owner=owner,
            seqs=seqs,
            blobs=tuple(claimed),
            attempts=max(int(r.attempts) for r in chosen),
            started_at=now,
        )

    @staticmethod
    def _park_oversized(
        conn: Connection, seq: int, tokens: int, max_tokens: int, now: datetime
    ) -> None:
        conn.execute(
            sa.update(t.buffer)
            .where(t.buffer.c.seq == seq)
            .values(
                status=FAILED,
                next_attempt_at=None,
                lease_owner=None,
                lease_expires=None,
                attempts=t.buffer.c.attempts + 1,
                last_error=(
                    f"This blob has {tokens} tokens, more than FlushPolicy.max_process_tokens "
                    f"({max_tokens}); it can never be processed as one batch. Raise "
                    "max_process_tokens and call retry_failed(), or discard_failed()."
                ),
                updated_at=now,
            )
        )

    def renew(self, owners: Sequence[str], lease_seconds: float) -> int:
        """Extend the leases of in-flight flushes (the lease keeper calls this)."""
        if not owners:
            return 0
        b = t.buffer.c
        now = utcnow()
        with self.guard("renewing leases"), self._write() as conn:
            return int(
                conn.execute(
                    sa.update(t.buffer)
                    .where(b.lease_owner.in_(list(owners)), b.status == PROCESSING)
                    .values(lease_expires=now + timedelta(seconds=lease_seconds))
                ).rowcount
            )

    def commit_flush(
        self, claim: Claim, plan: FlushPlan, *, keep_blobs: bool = False
    ) -> ChatModalResponse:
        """Write a flush's results and retire its buffer rows in ONE transaction.

        Raises :class:`LeaseLostError` (and writes nothing) if the claim's rows are no longer
        this flush's: another flush took them over after the lease expired, or the user was
        deleted meanwhile. That check is what makes a batch commit at most once.
        """
        now = utcnow()
        b = t.buffer.c
        uid = claim.user_id
        # Ids and search terms are made before the transaction, which stays short.
        event_id = new_row_id()
        gist_rows: list[dict[str, Any]] = []
        search_rows: list[dict[str, Any]] = []
        if plan.event is not None:
            gist_rows = [
                {
                    "id": new_row_id(),
                    "user_id": uid,
                    "event_id": event_id,
                    "content": content,
                    "embedding": embedding,
                    "created_at": now,
                    "updated_at": now,
                }
                for content, embedding in plan.gists
            ]
            search_rows = [
                fts.doc_row(uid, event_id, "event", event_id, event_text(plan.event), now),
                *(
                    fts.doc_row(uid, g["id"], "gist", event_id, g["content"], now)
                    for g in gist_rows
                ),
            ]
        with self.guard("saving a flush"), self._write() as conn:
            owned = conn.execute(
                sa.update(t.buffer)
                .where(
                    b.seq.in_(claim.seqs),
                    b.user_id == uid,
                    b.lease_owner == claim.owner,
                    b.status == PROCESSING,
                )
                .values(
                    status=DONE,
                    lease_owner=None,
                    lease_expires=None,
                    next_attempt_at=None,
                    last_error=None,
                    updated_at=now,
                )
            ).rowcount
            if owned != len(claim.seqs):
                raise LeaseLostError(
                    f"The flush of user {uid} lost its lease before committing; another "
                    "flush owns these turns now, so this one wrote nothing."
                )
            response = ChatModalResponse()
            if plan.event is not None:
                conn.execute(
                    sa.insert(t.events).values(
                        id=event_id,
                        user_id=uid,
                        event_data=plan.event.model_dump(mode="json"),
                        embedding=plan.event_embedding,
                        created_at=now,
                        updated_at=now,
                    )
                )
                if gist_rows:
                    conn.execute(sa.insert(t.gists), gist_rows)
                # The search index, in the same transaction (FTS5 follows by trigger).
                conn.execute(sa.insert(t.search_docs), search_rows)
                response.event_id = event_id
            p = t.profiles.c
            if plan.delete:
                conn.execute(sa.delete(t.profiles).where(p.user_id == uid, p.id.in_(plan.delete)))
                response.delete_profiles = list(plan.delete)
            for upd in plan.update:
                changed = conn.execute(
                    sa.update(t.profiles)
                    .where(p.user_id == uid, p.id == upd.id)
                    .values(content=upd.content, update_hits=upd.update_hits, updated_at=now)
                ).rowcount
                if changed:  # a profile deleted by the app meanwhile is not resurrected
                    response.update_profiles.append(upd.id)
            if plan.add:
                rows: list[dict[str, Any]] = [
                    {
                        "id": new_row_id(),
                        "user_id": uid,
                        "topic": a.topic,
                        "sub_topic": a.sub_topic,
                        "content": a.content,
                        "update_hits": 0,
                        "created_at": now,
                        "updated_at": now,
                    }
                    for a in plan.add
                ]
                conn.execute(sa.insert(t.profiles), rows)
                response.add_profiles = [r["id"] for r in rows]
            conn.execute(
                sa.insert(t.flushes).values(
                    id=uuid.uuid4(),
                    user_id=uid,
                    blob_type=str(claim.blob_type),
                    turn_ids=claim.turn_ids,
                    blob_ids=[str(x.blob_id) for x in claim.blobs],
                    token_size=claim.token_size,
                    event_id=response.event_id,
                    result=response.model_dump(mode="json"),
                    owner=claim.owner,
                    started_at=claim.started_at,
                    created_at=now,
                )
            )
            conn.execute(sa.update(t.users).where(t.users.c.id == uid).values(last_flush_at=now))
            # Processed chat blobs are deleted (their buffer rows go by cascade), as Memobase
            # does; summary blobs are kept with a ``done`` buffer row.
            if claim.blob_type == BlobType.chat and not keep_blobs:
                conn.execute(
                    sa.delete(t.blobs).where(
                        t.blobs.c.user_id == uid,
                        t.blobs.c.id.in_([x.blob_id for x in claim.blobs]),
                    )
                )
        return response

    def fail_flush(self, claim: Claim, error: str, retry_at: datetime | None) -> int:
        """Give the claim's rows back as ``failed`` (retried at ``retry_at``; ``None`` parks
        them until ``retry_failed``). Only rows this flush still owns are touched."""
        b = t.buffer.c
        with self.guard("recording a failed flush"), self._write() as conn:
            return int(
                conn.execute(
                    sa.update(t.buffer)
                    .where(
                        b.seq.in_(claim.seqs),
                        b.user_id == claim.user_id,
                        b.lease_owner == claim.owner,
                    )
                    .values(
                        status=FAILED,
                        attempts=b.attempts + 1,
                        last_error=error[:4000],
                        next_attempt_at=retry_at,
                        lease_owner=None,
                        lease_expires=None,
                        updated_at=utcnow(),
                    )
                ).rowcount
            )

    def release(self, claim: Claim) -> int:
        """Give the claim's rows back as ``idle`` without counting an attempt (shutdown)."""
        b = t.buffer.c
        with self.guard("releasing a buffer"), self._write() as conn:
            return int(
                conn.execute(
                    sa.update(t.buffer)
                    .where(
                        b.seq.in_(claim.seqs),
                        b.user_id == claim.user_id,
                        b.lease_owner == claim.owner,
                    )
                    .values(status=IDLE, lease_owner=None, lease_expires=None, updated_at=utcnow())
                ).rowcount
            )

    def _failed_rows(self, conn: sa.Connection, user_id: uuid.UUID | None) -> list[sa.Row[Any]]:
        b = t.buffer.c
        stmt = (
            sa.select(
                b.seq, b.user_id, b.blob_id, b.turn_id, b.attempts, b.last_error, b.next_attempt_at
            )
            .where(b.status == FAILED)
            .order_by(b.seq)
        )
        if user_id is not None:
            stmt = stmt.where(b.user_id == user_id)
        return list(conn.execute(stmt))

    def failures(self, user_id: uuid.UUID | None = None) -> list[FailedTurn]:
        """One entry per failed turn (a blob from ``insert`` is a turn of its own), oldest
        first. A turn cut into several blobs fails as a whole (its rows are one batch)."""
        with self.guard("reading failed turns"), self._read() as conn:
            rows = self._failed_rows(conn, user_id)
        turns: dict[tuple[uuid.UUID, str], list[sa.Row[Any]]] = {}
        for r in rows:
            turns.setdefault((r.user_id, r.turn_id or f"blob:{r.blob_id}"), []).append(r)
        found = []
        for group in turns.values():
            parked = any(r.next_attempt_at is None for r in group)
            found.append(
                FailedTurn(
                    user_id=group[0].user_id,
                    turn_id=group[0].turn_id,
                    attempts=max(int(r.attempts) for r in group),
                    error=next((r.last_error for r in group if r.last_error), "failed"),
                    parked=parked,
                    next_attempt_at=None if parked else max(r.next_attempt_at for r in group),
                )
            )
        return found

    @staticmethod
    def _turns_in(rows: Sequence[sa.Row[Any]]) -> int:
        return len({(r.user_id, r.turn_id or f"blob:{r.blob_id}") for r in rows})

    def retry_failed(self, user_id: uuid.UUID | None = None) -> int:
        """Make failed rows eligible now (also parked ones), one user's or all. Returns the
        number of turns."""
        b = t.buffer.c
        with self.guard("retrying failed turns"), self._write() as conn:
            rows = self._failed_rows(conn, user_id)
            if rows:
                conn.execute(
                    sa.update(t.buffer)
                    .where(b.seq.in_([r.seq for r in rows]), b.status == FAILED)
                    .values(status=IDLE, next_attempt_at=None, updated_at=utcnow())
                )
            return self._turns_in(rows)

    def discard_failed(self, user_id: uuid.UUID | None = None) -> int:
        """Delete failed blobs (and their buffer rows), one user's or all. Returns the number
        of turns."""
        with self.guard("discarding failed turns"), self._write() as conn:
            rows = self._failed_rows(conn, user_id)
            if rows:
                conn.execute(sa.delete(t.blobs).where(t.blobs.c.id.in_([r.blob_id for r in rows])))
            return self._turns_in(rows)

    def prune_turns(self, before: datetime, *, limit: int = 5000) -> int:
        """Forget up to ``limit`` ledger entries recorded before ``before`` whose turns are no
        longer buffered. Returns how many went.

        The ledger (``mb_turns``) is what makes a replayed turn id a no-op; kept forever it
        grows by one row per turn. A turn still buffered (pending, processing or failed)
        always keeps its entry, so nothing can be processed twice; a replay of a pruned,
        processed turn is recorded again. Small batches keep each write short.
        """
        turns, b = t.turns, t.buffer.c
        still_buffered = (
            sa.select(b.seq)
            .where(b.user_id == turns.c.user_id, b.turn_id == turns.c.turn_id)
            .exists()
        )
        victims = (
            sa.select(turns.c.user_id, turns.c.turn_id)
            .where(turns.c.created_at < before, ~still_buffered)
            .limit(limit)
        )
        with self.guard("pruning the turn ledger"), self._write() as conn:
            keys = [(r.user_id, r.turn_id) for r in conn.execute(victims)]
            if keys:
                conn.execute(
                    sa.delete(turns).where(sa.tuple_(turns.c.user_id, turns.c.turn_id).in_(keys))
                )
            return len(keys)

    # -- status ---------------------------------------------------------------------------------
    def status(self, user_id: uuid.UUID | None, backend: str = "embedded") -> MemoryStatus:
        """Pending/processing/failed work per user, counted in turns (a blob from ``insert``
        counts as one turn), plus buffered tokens, last flush time and the last error."""
        b = t.buffer.c

        def turns(state: str | None = None) -> Any:
            # A claim stops at max_tokens, so one turn's rows can be in several states at
            # once (part processing, part idle): count distinct turns per user, never per
            # (user, state), or that turn is pending twice. A blob without a turn id (from
            # ``insert``) is a turn of its own.
            in_state = sa.true() if state is None else b.status == state
            return sa.func.count(sa.distinct(sa.case((in_state, b.turn_id)))) + sa.func.sum(
                sa.case((in_state & b.turn_id.is_(None), 1), else_=0)
            )

        stmt = (
            sa.select(
                b.user_id,
                turns().label("turns"),
                turns(PROCESSING).label("processing"),
                turns(FAILED).label("failed"),
                sa.func.sum(b.token_size).label("tokens"),
            )
            .where(b.status.in_(_OPEN))
            .group_by(b.user_id)
        )
        if user_id is not None:
            stmt = stmt.where(b.user_id == user_id)
        with self.guard("reading the status"), self._read() as conn:
            rows = conn.execute(stmt).all()
            user_ids = {r.user_id for r in rows}
            if user_id is not None:
                user_ids.add(user_id)
            per_user: dict[uuid.UUID, dict[str, Any]] = {
                u: {"pending": 0, "tokens": 0, "processing": 0, "failed": 0} for u in user_ids
            }
            for r in rows:
                per_user[r.user_id] = {
                    "pending": int(r.turns or 0),
                    "tokens": int(r.tokens or 0),
                    "processing": int(r.processing or 0),
                    "failed": int(r.failed or 0),
                }
            last_flush: dict[uuid.UUID, datetime | None] = {}
            errors: dict[uuid.UUID, str | None] = {}
            ids = list(user_ids)
            for chunk_start in range(0, len(ids), 500):
                chunk = ids[chunk_start : chunk_start + 500]
                for u in conn.execute(
                    sa.select(t.users.c.id, t.users.c.last_flush_at).where(t.users.c.id.in_(chunk))
                ):
                    last_flush[u.id] = u.last_flush_at
                failed_users = [u for u in chunk if per_user[u]["failed"]]
                if failed_users:
                    for e in conn.execute(
                        sa.select(b.user_id, b.last_error)
                        .where(b.user_id.in_(failed_users), b.status == FAILED)
                        .order_by(b.updated_at.desc(), b.seq.desc())
                    ):
                        errors.setdefault(e.user_id, e.last_error)
        statuses = [
            UserStatus(
                user_id=u,
                pending_turns=v["pending"],
                buffered_tokens=v["tokens"],
                processing=v["processing"],
                failed=v["failed"],
                last_flush_at=last_flush.get(u),
                last_error=errors.get(u),
            )
            for u, v in per_user.items()
        ]
        return memory_status(backend, statuses, asked=user_id)

    # -- profiles -------------------------------------------------------------------------------
    def list_profiles(self, user_id: uuid.UUID) -> list[StoredProfile]:
        """The user's profile rows, most recently updated first (Memobase's order); rows of
        one flush in the order it wrote them (time-ordered ids, see :func:`new_row_id`)."""
        with self.guard("reading profiles"), self._read() as conn:
            return self._profiles(conn, user_id)

    def _profiles(self, conn: Connection, user_id: uuid.UUID) -> list[StoredProfile]:
        rows = conn.execute(self._q_profiles, {"uid": user_id}).all()
        return [
            StoredProfile(
                id=r.id,
                topic=r.topic,
                sub_topic=r.sub_topic,
                content=r.content,
                update_hits=int(r.update_hits),
                created_at=r.created_at,
                updated_at=r.updated_at,
            )
            for r in rows
        ]

    def context_rows(
        self, user_id: uuid.UUID, *, since: datetime, limit: int, config_stamp: object
    ) -> ContextRows:
        """What ``context()`` reads, in one read transaction, one query per table: the
        project config's version (its ``updated_at``; the text only when that differs from
        ``config_stamp``, the version the caller has resolved), the user's profile rows
        (:meth:`list_profiles`' order) and the newest ``limit`` gists since ``since``."""
        if self._sqlite_reader is not None:
            with self.guard("reading the context"):
                state, profile_rows, gist_rows = self._sqlite_reader.read(
                    user_id, since, limit, config_stamp, _NO_CONFIG_ROW
                )
            return ContextRows(
                config=None if state is None else ConfigState(stamp=state[0], text=state[1]),
                profiles=[StoredProfile(*r) for r in profile_rows],
                gists=[
                    EventGist(
                        id=r[0],
                        gist_data=EventGistData(content=r[1]),
                        created_at=r[2],
                        updated_at=r[3],
                    )
                    for r in gist_rows
                ],
            )
        with self.guard("reading the context"), self._read() as conn:
            config = self._config_if_changed(conn, config_stamp)
            profiles = self._profiles(conn, user_id)
            rows = conn.execute(self._q_gists, {"uid": user_id, "since": since, "limit": limit})
            gists = [_gist_model(r) for r in rows]
        return ContextRows(config=config, profiles=profiles, gists=gists)

    def profile_config_if_changed(self, config_stamp: object) -> ConfigState | None:
        """The project config's ``(version, text)`` when its version is not ``config_stamp``;
        ``None`` when it is (a primary-key read of one timestamp: the cheap check that lets
        every process cache its resolved config and still see another process's change)."""
        with self.guard("reading the profile config"), self._read() as conn:
            return self._config_if_changed(conn, config_stamp)

    def _config_if_changed(self, conn: Connection, config_stamp: object) -> ConfigState | None:
        stamp = conn.execute(self._q_config_stamp).scalar_one_or_none()
        if (_NO_CONFIG_ROW if stamp is None else stamp) == config_stamp:
            return None
        row = None if stamp is None else conn.execute(self._q_config).first()
        if row is None:
            return ConfigState(stamp=_NO_CONFIG_ROW, text=None)
        return ConfigState(stamp=row.updated_at, text=row.profile_config)

    def add_profile(
        self, user_id: uuid.UUID, content: str, topic: str, sub_topic: str
    ) -> uuid.UUID:
        now = utcnow()
        pid = new_row_id()
        with self.guard("adding a profile"), self._write() as conn:
            self._ensure_user(conn, self._insert_ignore(t.users), user_id, now)
            conn.execute(
                sa.insert(t.profiles).values(
                    id=pid,
                    user_id=user_id,
                    topic=topic,
                    sub_topic=sub_topic,
                    content=content,
                    update_hits=0,
                    created_at=now,
                    updated_at=now,
                )
            )
        return pid

    def update_profile(
        self,
        user_id: uuid.UUID,
        profile_id: uuid.UUID,
        content: str,
        topic: str | None,
        sub_topic: str | None,
    ) -> None:
        values: dict[str, Any] = {"content": content, "updated_at": utcnow()}
        if topic is not None:
            values["topic"] = topic
        if sub_topic is not None:
            values["sub_topic"] = sub_topic
        p = t.profiles.c
        with self.guard("updating a profile"), self._write() as conn:
            changed = conn.execute(
                sa.update(t.profiles).where(p.user_id == user_id, p.id == profile_id).values(values)
            ).rowcount
        if not changed:
            raise NotFoundError(f"Profile {profile_id} of user {user_id} does not exist.")

    def _delete_owned(
        self, table: sa.Table, what: str, user_id: uuid.UUID, row_id: uuid.UUID
    ) -> None:
        """Delete one row of ``user_id`` by id (scoped in SQL); NotFoundError if none."""
        c = table.c
        with self.guard(f"deleting the {what}"), self._write() as conn:
            gone = conn.execute(
                sa.delete(table).where(c.user_id == user_id, c.id == row_id)
            ).rowcount
        if not gone:
            raise NotFoundError(f"{what.capitalize()} {row_id} of user {user_id} does not exist.")

    def delete_profile(self, user_id: uuid.UUID, profile_id: uuid.UUID) -> None:
        self._delete_owned(t.profiles, "profile", user_id, profile_id)

    # -- events and gists -----------------------------------------------------------------------
    def list_events(
        self, user_id: uuid.UUID, *, limit: int | None, since: datetime | None = None
    ) -> list[UserEvent]:
        """The newest events first (ties: in the order they were written)."""
        e = t.events.c
        stmt = sa.select(t.events).where(e.user_id == user_id)
        if since is not None:
            stmt = stmt.where(e.created_at >= since)
        stmt = stmt.order_by(e.created_at.desc(), e.id)
        if limit is not None:
            stmt = stmt.limit(limit)
        with self.guard("reading events"), self._read() as conn:
            rows = conn.execute(stmt).all()
        return [_event_model(r) for r in rows]

    def events_by_ids(self, user_id: uuid.UUID, ids: Sequence[uuid.UUID]) -> list[UserEvent]:
        if not ids:
            return []
        e = t.events.c
        with self.guard("reading events"), self._read() as conn:
            rows = conn.execute(
                sa.select(t.events).where(e.user_id == user_id, e.id.in_(list(ids)))
            ).all()
        return [_event_model(r) for r in rows]

    def event_embeddings(self, user_id: uuid.UUID, since: datetime) -> list[StoredEmbedded]:
        e = t.events.c
        with self.guard("reading event embeddings"), self._read() as conn:
            rows = conn.execute(
                sa.select(e.id, e.embedding, e.created_at)
                .where(e.user_id == user_id, e.created_at >= since, e.embedding.is_not(None))
                # A fixed order: the ranking's sort is stable, so equal scores keep it.
                .order_by(e.created_at.desc(), e.id)
            ).all()
        return [StoredEmbedded(r.id, r.embedding, r.created_at) for r in rows]

    def delete_event(self, user_id: uuid.UUID, event_id: uuid.UUID) -> None:
        # Its gists go with it (ON DELETE CASCADE).
        self._delete_owned(t.events, "event", user_id, event_id)

    def list_gists(
        self, user_id: uuid.UUID, *, since: datetime | None, limit: int | None
    ) -> list[EventGist]:
        """The newest gists first; the gists of one event in the order of its memo lines."""
        g = t.gists.c
        if since is not None and limit is not None:
            stmt: Any = self._q_gists
            params = {"uid": user_id, "since": since, "limit": limit}
        else:
            stmt = sa.select(g.id, g.content, g.created_at, g.updated_at).where(
                g.user_id == user_id
            )
            if since is not None:
                stmt = stmt.where(g.created_at >= since)
            stmt = stmt.order_by(g.created_at.desc(), g.id)
            if limit is not None:
                stmt = stmt.limit(limit)
            params = {}
        with self.guard("reading gists"), self._read() as conn:
            rows = conn.execute(stmt, params).all()
        return [_gist_model(r) for r in rows]

    def gist_embeddings(self, user_id: uuid.UUID, since: datetime) -> list[StoredEmbedded]:
        g = t.gists.c
        with self.guard("reading gist embeddings"), self._read() as conn:
            rows = conn.execute(
                sa.select(g.id, g.embedding, g.created_at)
                .where(g.user_id == user_id, g.created_at >= since, g.embedding.is_not(None))
                # A fixed order: the ranking's sort is stable, so equal scores keep it.
                .order_by(g.created_at.desc(), g.id)
            ).all()
        return [StoredEmbedded(r.id, r.embedding, r.created_at) for r in rows]

    def gists_by_ids(self, user_id: uuid.UUID, ids: Sequence[uuid.UUID]) -> list[EventGist]:
        if not ids:
            return []
        g = t.gists.c
        with self.guard("reading gists"), self._read() as conn:
            rows = conn.execute(
                sa.select(g.id, g.content, g.created_at, g.updated_at).where(
                    g.user_id == user_id, g.id.in_(list(ids))
                )
            ).all()
        return [_gist_model(r) for r in rows]

    def lexical_corpus(
        self, user_id: uuid.UUID, kind: fts.Kind, terms: Sequence[str], since: datetime
    ) -> fts.Corpus:
        """The user's events or gists since ``since`` sharing a term with the query, and the
        statistics to rank them (:func:`.search.bm25`), read in one transaction."""
        with self.guard("searching"), self._read() as conn:
            mode = self._detect_search_mode(conn)
            return fts.candidates(conn, mode, user_id, kind, terms, since)

    # -- project config -------------------------------------------------------------------------
    def get_profile_config(self) -> str | None:
        with self.guard("reading the profile config"), self._read() as conn:
            return conn.execute(
                sa.select(t.project.c.profile_config).where(t.project.c.id == 1)
            ).scalar_one_or_none()

    def set_profile_config(self, text: str | None) -> None:
        now = utcnow()
        with self.guard("saving the profile config"), self._write() as conn:
            conn.execute(
                self._insert_ignore(t.project)
                .values(id=1, profile_config=None, updated_at=now)
                .on_conflict_do_nothing(index_elements=["id"])
            )
            conn.execute(
                sa.update(t.project)
                .where(t.project.c.id == 1)
                .values(profile_config=text, updated_at=now)
            )

    # -- export and flush log -------------------------------------------------------------------
    def flush_log(self, user_id: uuid.UUID) -> list[dict[str, Any]]:
        """The user's committed flushes, oldest first (turn ids in processing order)."""
        f = t.flushes.c
        with self.guard("reading the flush log"), self._read() as conn:
            rows = conn.execute(
                sa.select(t.flushes).where(f.user_id == user_id).order_by(f.seq)
            ).all()
        return [
            {
                "id": str(r.id),
                "blob_type": r.blob_type,
                "turn_ids": list(r.turn_ids),
                "blob_ids": list(r.blob_ids),
                "token_size": int(r.token_size),
                "event_id": str(r.event_id) if r.event_id else None,
                "result": r.result,
                "owner": r.owner,
                "started_at": _iso(r.started_at),
                "created_at": _iso(r.created_at),
            }
            for r in rows
        ]

    def export_user(self, user_id: uuid.UUID) -> dict[str, Any]:
        """Everything stored about the user, as JSON-ready data (ISO dates, string ids)."""
        with self.guard("exporting a user"), self._read() as conn:
            user = conn.execute(sa.select(t.users).where(t.users.c.id == user_id)).first()
            profile_rows = conn.execute(
                sa.select(t.profiles)
                .where(t.profiles.c.user_id == user_id)
                .order_by(t.profiles.c.topic, t.profiles.c.sub_topic, t.profiles.c.id)
            ).all()
            event_rows = conn.execute(
                sa.select(t.events)
                .where(t.events.c.user_id == user_id)
                .order_by(t.events.c.created_at, t.events.c.id)
            ).all()
            gist_rows = conn.execute(
                sa.select(t.gists)
                .where(t.gists.c.user_id == user_id)
                .order_by(t.gists.c.created_at, t.gists.c.id)
            ).all()
            blob_rows = conn.execute(
                sa.select(t.blobs, t.buffer.c.status, t.buffer.c.attempts, t.buffer.c.last_error)
                .select_from(t.blobs.outerjoin(t.buffer, t.buffer.c.blob_id == t.blobs.c.id))
                .where(t.blobs.c.user_id == user_id)
                .order_by(t.blobs.c.created_at, t.blobs.c.turn_id, t.blobs.c.part)
            ).all()
        return {
            "user_id": str(user_id),
            "exists": user is not None,
            "data": user.data if user is not None else None,
            "created_at": _iso(user.created_at) if user is not None else None,
            "last_flush_at": _iso(user.last_flush_at) if user is not None else None,
            "profiles": [
                {
                    "id": str(r.id),
                    "topic": r.topic,
                    "sub_topic": r.sub_topic,
                    "content": r.content,
                    "update_hits": int(r.update_hits),
                    "created_at": _iso(r.created_at),
                    "updated_at": _iso(r.updated_at),
                }
                for r in profile_rows
            ],
            "events": [
                {
                    "id": str(r.id),
                    "event_data": r.event_data,
                    "has_embedding": r.embedding is not None,
                    "created_at": _iso(r.created_at),
                    "updated_at": _iso(r.updated_at),
                }
                for r in event_rows
            ],
            "gists": [
                {
                    "id": str(r.id),
                    "event_id": str(r.event_id),
                    "content": r.content,
                    "created_at": _iso(r.created_at),
                }
                for r in gist_rows
            ],
            "blobs": [
                {
                    "id": str(r.id),
                    "turn_id": r.turn_id,
                    "part": int(r.part),
                    "blob_type": r.blob_type,
                    "blob_data": r.blob_data,
                    "fields": r.fields,
                    "status": r.status,
                    "attempts": int(r.attempts) if r.attempts is not None else None,
                    "last_error": r.last_error,
                    "created_at": _iso(r.created_at),
                }
                for r in blob_rows
            ],
            "flushes": self.flush_log(user_id),
        }

    # -- the rest of Memobase's surface: users, blob and buffer listings, tags, usage --------
    # (issue 16.5; what ``GET/PUT /users``, ``/users/blobs``, ``/users/buffer/capacity``,
    # ``/users/event_tags/search``, ``PUT /users/event`` and ``/project/*`` need)
    def create_user(self, user_id: uuid.UUID, data: dict[str, Any] | None) -> bool:
        """Create the user; False (nothing written) when the id exists already."""
        now = utcnow()
        ins = (
            self._insert_ignore(t.users)
            .values(id=user_id, data=data, created_at=now, updated_at=now)
            .on_conflict_do_nothing(index_elements=["id"])
            .returning(t.users.c.id)
        )
        with self.guard("creating a user"), self._write() as conn:
            return conn.execute(ins).first() is not None

    def get_user(self, user_id: uuid.UUID) -> StoredUser | None:
        u = t.users.c
        with self.guard("reading a user"), self._read() as conn:
            row = conn.execute(
                sa.select(u.id, u.data, u.created_at, u.updated_at).where(u.id == user_id)
            ).first()
        if row is None:
            return None
        return StoredUser(row.id, row.data, row.created_at, row.updated_at)

    def set_user_data(self, user_id: uuid.UUID, data: dict[str, Any] | None) -> bool:
        """Replace the user's data as a whole; False when the user does not exist."""
        with self.guard("updating a user"), self._write() as conn:
            return bool(
                conn.execute(
                    sa.update(t.users)
                    .where(t.users.c.id == user_id)
                    .values(data=data, updated_at=utcnow())
                ).rowcount
            )

    def list_users(
        self,
        *,
        search: str,
        order_by: str,
        descending: bool,
        limit: int,
        offset: int,
    ) -> tuple[list[StoredUser], int]:
        """One page of users with their profile and event counts, and how many match.

        ``search`` is a case-insensitive substring of the user id (with or without hyphens)
        or of the user's data as JSON text.
        """
        u = t.users.c
        profile_count = (
            sa.select(sa.func.count())
            .where(t.profiles.c.user_id == u.id)
            .scalar_subquery()
            .label("profile_count")
        )
        event_count = (
            sa.select(sa.func.count())
            .where(t.events.c.user_id == u.id)
            .scalar_subquery()
            .label("event_count")
        )
        where: list[Any] = []
        needle = search.strip()
        if needle:
            id_text = sa.cast(u.id, sa.String)
            pattern = f"%{_escape_like(needle)}%"
            bare = f"%{_escape_like(needle.replace('-', ''))}%"
            where.append(
                sa.or_(
                    id_text.ilike(pattern, escape="\\"),
                    id_text.ilike(bare, escape="\\"),
                    sa.cast(u.data, sa.Text).ilike(pattern, escape="\\"),
                )
            )
        keys = {
            "updated_at": u.updated_at,
            "profile_count": profile_count,
            "event_count": event_count,
        }
        key = keys.get(order_by)
        if key is None:
            raise ValueError(f"order_by must be one of {sorted(keys)}, got {order_by!r}")
        ordering = [key.desc() if descending else key.asc(), u.id]
        stmt = (
            sa.select(u.id, u.data, u.created_at, u.updated_at, profile_count, event_count)
            .where(*where)
            .order_by(*ordering)
            .limit(limit)
            .offset(offset)
        )
        with self.guard("listing users"), self._read() as conn:
            rows = conn.execute(stmt).all()
            total = conn.execute(sa.select(sa.func.count()).select_from(t.users).where(*where))
            count = int(total.scalar_one())
        users = [
            StoredUser(
                r.id,
                r.data,
                r.created_at,
                r.updated_at,
                profile_count=int(r.profile_count),
                event_count=int(r.event_count),
            )
            for r in rows
        ]
        return users, count

    def list_blob_ids(
        self, user_id: uuid.UUID, blob_type: BlobType, *, offset: int, limit: int
    ) -> list[uuid.UUID]:
        """The user's stored blob ids of one type, oldest first."""
        b = t.blobs.c
        with self.guard("listing blobs"), self._read() as conn:
            return list(
                conn.execute(
                    sa.select(b.id)
                    .where(b.user_id == user_id, b.blob_type == str(blob_type))
                    .order_by(b.created_at, b.turn_id, b.part, b.id)
                    .offset(offset)
                    .limit(limit)
                ).scalars()
            )

    def delete_blob(self, user_id: uuid.UUID, blob_id: uuid.UUID) -> bool:
        """Delete one blob (its buffer row goes by cascade). True if it existed.

        A flush holding that blob's row finds its lease short of one row at commit and writes
        nothing; its other rows are taken over once the lease expires.
        """
        b = t.blobs.c
        with self.guard("deleting a blob"), self._write() as conn:
            return bool(
                conn.execute(
                    sa.delete(t.blobs).where(b.user_id == user_id, b.id == blob_id)
                ).rowcount
            )

    def buffer_blob_ids(
        self, user_id: uuid.UUID, blob_type: BlobType, status: str
    ) -> list[uuid.UUID]:
        """Blob ids of the user's buffer rows in ``status``, in buffer order."""
        b = t.buffer.c
        with self.guard("reading the buffer"), self._read() as conn:
            return list(
                conn.execute(
                    sa.select(b.blob_id)
                    .where(b.user_id == user_id, b.blob_type == str(blob_type), b.status == status)
                    .order_by(b.seq)
                ).scalars()
            )

    def events_with_tags(
        self,
        user_id: uuid.UUID,
        tags: Sequence[str],
        tag_values: Mapping[str, str],
        limit: int,
    ) -> list[UserEvent]:
        """The newest events carrying every tag in ``tags`` (any value) and exactly the values
        of ``tag_values``. Filtered in Python over the user's events, newest first: JSON
        containment is not portable between SQLite and PostgreSQL, and one user's timeline is
        small."""
        e = t.events.c
        found: list[UserEvent] = []
        batch, offset = 200, 0
        while len(found) < limit:
            with self.guard("searching events by tag"), self._read() as conn:
                rows = conn.execute(
                    sa.select(t.events)
                    .where(e.user_id == user_id)
                    .order_by(e.created_at.desc(), e.id)
                    .offset(offset)
                    .limit(batch)
                ).all()
            for r in rows:
                event = _event_model(r)
                present = {tag.tag: tag.value for tag in event.event_data.event_tags or ()}
                if all(name in present for name in tags) and all(
                    present.get(name) == value for name, value in tag_values.items()
                ):
                    found.append(event)
                    if len(found) >= limit:
                        break
            if len(rows) < batch:
                break
            offset += batch
        return found

    def update_event_data(
        self, user_id: uuid.UUID, event_id: uuid.UUID, patch: Mapping[str, Any]
    ) -> None:
        """Merge ``patch`` (keys of :class:`EventData`) into the event's data, in one
        transaction. Raises :class:`NotFoundError` when the event is not the user's."""
        e = t.events.c
        with self.guard("updating an event"), self._write() as conn:
            current = conn.execute(
                sa.select(e.event_data).where(e.user_id == user_id, e.id == event_id)
            ).scalar_one_or_none()
            if current is None:
                raise NotFoundError(f"Event {event_id} of user {user_id} does not exist.")
            merged = EventData.model_validate({**dict(current), **patch})
            conn.execute(
                sa.update(t.events)
                .where(e.user_id == user_id, e.id == event_id)
                .values(event_data=merged.model_dump(mode="json"), updated_at=utcnow())
            )
            fts.reindex_event(conn, user_id, event_id, merged)  # its gists keep their text

    def add_usage(
        self,
        day: str,
        *,
        inserts: int = 0,
        successes: int = 0,
        input_tokens: int = 0,
        output_tokens: int = 0,
    ) -> None:
        """Add to the day's usage counters (created on first use), atomically."""
        u = t.usage
        values = {
            "total_insert": inserts,
            "total_success_insert": successes,
            "input_tokens": input_tokens,
            "output_tokens": output_tokens,
        }
        ins = self._insert_ignore(u).values(day=day, **values)
        upsert = ins.on_conflict_do_update(
            index_elements=["day"],
            set_={name: u.c[name] + ins.excluded[name] for name in values},
        )
        with self.guard("counting usage"), self._write() as conn:
            conn.execute(upsert)

    def usage_since(self, day: str) -> dict[str, tuple[int, int, int, int]]:
        """Usage per day from ``day`` (inclusive) on: (inserts, successful inserts, input
        tokens, output tokens)."""
        u = t.usage.c
        with self.guard("reading usage"), self._read() as conn:
            rows = conn.execute(sa.select(t.usage).where(u.day >= day)).all()
        return {
            r.day: (
                int(r.total_insert),
                int(r.total_success_insert),
                int(r.input_tokens),
                int(r.output_tokens),
            )
            for r in rows
        }


# --------------------------------------------------------------------------------------------
# helpers
# --------------------------------------------------------------------------------------------


class _FifoLock:
    """A ticket lock: waiters get it in arrival order.

    ``threading.Lock`` lets the releasing thread take it straight back, so a thread recording
    turns in a tight loop could starve the flush worker (and other recorders) for as long as
    the burst lasts; with tickets every waiter gets its turn.
    """

    def __init__(self) -> None:
        self._cond = threading.Condition(threading.Lock())
        self._next_ticket = 0
        self._serving = 0
        self._waiting = 0  # threads in wait(): none, and a release need not notify

    def __enter__(self) -> None:
        with self._cond:
            ticket = self._next_ticket
            self._next_ticket += 1
            if ticket != self._serving:
                self._waiting += 1
                try:
                    while ticket != self._serving:
                        self._cond.wait()
                finally:
                    self._waiting -= 1

    def __exit__(self, *exc: object) -> None:
        with self._cond:
            self._serving += 1
            if self._waiting:
                self._cond.notify_all()


def _missing_tables(present: set[str], version: int | None) -> set[str]:
    """The store's tables a database lacks, leaving out those an older store may lack
    (:data:`.schema.LATER_TABLES`): an open that does not migrate reads such a store as is."""
    missing = set(t.metadata.tables) - present
    if len(missing) == len(t.metadata.tables):
        return missing  # no store at all
    required = set()
    for name in missing:
        since = t.LATER_TABLES.get(name, 0)
        if name not in t.LATER_TABLES or (since is not None and (version or 0) >= since):
            required.add(name)
    return required


def _not_a_url(raw: object) -> str:
    """The error for an unparseable URL: what was given (any password masked) and, for what
    looks like a file name (``memobase.db``), the SQLite URL that was probably meant."""
    text = str(raw)
    shown = re.sub(r"(//[^:/@\s]*:)[^@\s]*@", r"\1***@", text)
    shown = shown if len(shown) <= 200 else shown[:200] + "..."
    if (
        isinstance(raw, str)
        and "://" not in text
        and text.strip()
        and not re.search(r"[\s@]", text.strip())
    ):
        path = text.strip()
        hint = f"For a SQLite file, use 'sqlite:///{path}'" + (
            " (four slashes for an absolute path)." if path.startswith("/") else "."
        )
    else:
        hint = "Use sqlite:///path/to/memobase.db or postgresql+psycopg://user:password@host/db."
    return f"{shown!r} is not a database URL. {hint}"


def _normalise_url(raw: str) -> sa.URL:
    try:
        url = sa.make_url(raw)
    except (sa.exc.ArgumentError, ValueError, TypeError) as exc:
        raise ConfigurationError(_not_a_url(raw)) from exc
    name = url.get_backend_name()
    if name in ("postgresql", "postgres"):
        # Bare postgresql:// means psycopg2 to SQLAlchemy; this package ships psycopg 3.
        if url.drivername in ("postgresql", "postgres"):
            url = url.set(drivername="postgresql+psycopg")
        return url
    if name == "sqlite":
        return url
    raise ConfigurationError(
        f"The embedded engine supports SQLite and PostgreSQL, not {name!r} "
        f"({redact_url(url)}). Use sqlite:///path/to/memobase.db or "
        "postgresql+psycopg://user:password@host/db."
    )


def _escape_like(text: str) -> str:
    """``text`` as a literal inside a LIKE pattern (escape character ``\\``)."""
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def _is_memory_sqlite(url: sa.URL) -> bool:
    db = url.database or ""
    return db in ("", ":memory:") or url.query.get("mode") == "memory"


def _short(exc: BaseException) -> str:
    text = str(getattr(exc, "orig", None) or exc).strip().splitlines()
    return text[0][:300] if text else type(exc).__name__


def _as_utc(value: Any) -> datetime:
    if isinstance(value, str):  # SQLite aggregates lose the column type
        value = datetime.fromisoformat(value)
    assert isinstance(value, datetime)
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


def _event_model(r: Any) -> UserEvent:
    return UserEvent(
        id=r.id,
        event_data=EventData.model_validate(r.event_data),
        created_at=r.created_at,
        updated_at=r.updated_at,
    )


def _gist_model(r: Any) -> EventGist:
    return EventGist(
        id=r.id,
        gist_data=EventGistData(content=r.content),
        created_at=r.created_at,
        updated_at=r.updated_at,
    )
