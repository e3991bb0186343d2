"""Opening a store: creating its tables, migrating an older store, and refusing a database
that is not a store when opened for reading only (``create=False``).

Everything the writing open does happens in one transaction, so processes starting
together on a new PostgreSQL database serialize on an advisory lock and a failed migration
leaves the store as it was. The statements the hot paths reuse are built here too, once per
store.
"""

from __future__ import annotations

import contextlib
import logging
import uuid
from collections.abc import Mapping
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from ...errors import ConfigurationError, MemobaseError, StoreNotFoundError
from .. import fts
from .. import schema as t
from ..sqlite_hotpath import SQLiteContextReader, SQLiteRecorder
from . import clock
from .connection import StoreConnection, short_error
from .rows import IDLE

__all__ = ["StoreSetup", "missing_tables"]

logger = logging.getLogger(__name__)


class StoreSetup(StoreConnection):
    """A store opened (and, with ``create=True``, created or migrated): the base every part
    of :class:`~.Store` builds on."""

    def __init__(
        self,
        database_url: str | None = None,
        *,
        engine_options: Mapping[str, Any] | None = None,
        busy_timeout_seconds: float = 30.0,
        create: bool = True,
    ) -> None:
        super().__init__(
            database_url,
            engine_options=engine_options,
            busy_timeout_seconds=busy_timeout_seconds,
            create=create,
        )
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
                            id=1, version=t.SCHEMA_VERSION, updated_at=clock.utcnow()
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
                f"Cannot open the database {self.safe_url}: {short_error(exc)}. Check that the "
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
            .values(version=t.SCHEMA_VERSION, updated_at=clock.utcnow())
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
                missing = sorted(missing_tables(present, version))
        except sa.exc.SQLAlchemyError as exc:
            self.engine.dispose()
            raise ConfigurationError(
                f"Cannot open the database {self.safe_url}: {short_error(exc)}. Check that the "
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


def missing_tables(present: set[str], version: int | None) -> set[str]:
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
