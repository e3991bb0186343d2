"""The store's connection to its database: the URL, the engine with each dialect's settings,
and the transactions every query runs in.

Dialect differences live here and in :mod:`.opening`: the ``INSERT ... ON CONFLICT DO
NOTHING`` construct (:meth:`StoreConnection._insert_ignore`), how a write transaction starts
(SQLite: ``BEGIN IMMEDIATE``; PostgreSQL: row locks, taken by the queries themselves) and the
connection pragmas. Every other part of the store is written once for both dialects.
"""

from __future__ import annotations

import re
import threading
import uuid
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from datetime import datetime
from typing import Any, Final

import sqlalchemy as sa
from sqlalchemy import event as sa_event
from sqlalchemy.dialects import postgresql as pg_dialect
from sqlalchemy.dialects import sqlite as sqlite_dialect
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.pool import StaticPool

from ...errors import ConfigurationError, MemobaseConnectionError, MemobaseError, StoreError

__all__ = ["DEFAULT_DATABASE_URL", "FifoLock", "StoreConnection", "normalise_url", "redact_url"]

DEFAULT_DATABASE_URL: Final = "sqlite:///memobase.db"


def redact_url(url: sa.URL | str) -> str:
    """A database URL safe for messages and logs (password hidden)."""
    try:
        parsed = sa.make_url(url) if isinstance(url, str) else url
    except Exception:
        return "<unparseable database URL>"
    return parsed.render_as_string(hide_password=True)


class StoreConnection:
    """The engine and the transactions of one store (see :class:`~.Store`).

    Thread-safe: an in-memory SQLite database (one connection shared by all threads) is
    used under a lock, a SQLite file's writers queue on a FIFO lock, PostgreSQL needs
    neither.
    """

    def __init__(
        self,
        database_url: str | None = None,
        *,
        engine_options: Mapping[str, Any] | None = None,
        busy_timeout_seconds: float = 30.0,
        create: bool = True,
    ) -> None:
        self.url = normalise_url(database_url or DEFAULT_DATABASE_URL)
        self.safe_url = redact_url(self.url)
        self.dialect = self.url.get_backend_name()
        self._create = create
        self._memory = self.dialect == "sqlite" and is_memory_sqlite(self.url)
        # A single in-memory SQLite connection is shared by all threads: serialize its use
        # (closing it included: see StoreSetup.close()).
        self._serial: threading.RLock | None = threading.RLock() if self._memory else None
        self._closed = False
        # SQLite has one writer at a time. Threads of this process queue on a FIFO lock
        # (woken at once, in arrival order) instead of SQLite's busy handler, which sleeps
        # 10-100 ms between retries; other processes still wait through busy_timeout.
        self._write_lock: FifoLock | None = (
            FifoLock() if self.dialect == "sqlite" and not self._memory else None
        )
        self.engine = self._create_engine(dict(engine_options or {}), busy_timeout_seconds)

    @property
    def in_memory(self) -> bool:
        """True for an in-memory SQLite database, which no other process can open."""
        return self._memory

    # -- engine and dialect settings ------------------------------------------------------------
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
                f"The database {self.safe_url} failed while {action}: {short_error(exc)}. "
                "Check that it is reachable and not locked by a long transaction; retry."
            ) from exc
        except sa.exc.SQLAlchemyError as exc:
            raise StoreError(
                f"The database {self.safe_url} failed while {action}: {short_error(exc)}."
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


class FifoLock:
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


def not_a_url(raw: object) -> str:
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


def normalise_url(raw: str) -> sa.URL:
    try:
        url = sa.make_url(raw)
    except (sa.exc.ArgumentError, ValueError, TypeError) as exc:
        raise ConfigurationError(not_a_url(raw)) from exc
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


def is_memory_sqlite(url: sa.URL) -> bool:
    db = url.database or ""
    return db in ("", ":memory:") or url.query.get("mode") == "memory"


def short_error(exc: BaseException) -> str:
    text = str(getattr(exc, "orig", None) or exc).strip().splitlines()
    return text[0][:300] if text else type(exc).__name__
