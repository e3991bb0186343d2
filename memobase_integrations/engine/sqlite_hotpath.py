"""The request path's SQL on a SQLite file, on the driver's cursor (issue 13: a lean hot path).

``Store.record_turn`` (the request path's only write) and ``Store.context_rows`` (a
``context()`` miss) each cost more Python through SQLAlchemy Core than SQLite's own work
(statement cache lookup, parameter and result processing, result set-up, the ``begin``
event), so on a SQLite file they run here instead, on DBAPI connections of the engine's pool:

* the SQL text is built once, at store construction, from the tables in :mod:`.schema`
  (the same columns, the same ``ON CONFLICT DO NOTHING``);
* values go through the very bind and result processors SQLAlchemy would apply (taken once
  from the dialect), so the rows are byte-for-byte what the Core path writes, and what is read
  is what the Core path returns;
* ``BEGIN IMMEDIATE`` / ``COMMIT`` are issued directly, as the engine's ``begin`` hook does,
  on one connection the recorder keeps (taken from the engine's pool once, so it has the
  engine's pragmas): record transactions of this process are serialized by the store's
  write lock anyway, and a pool checkout and its reset per record cost more than the insert;
* a driver error is re-raised as the SQLAlchemy exception the Core path would raise, so the
  store's handling (``guard``, the retry when the user row vanished) is the same.

PostgreSQL and in-memory SQLite keep the Core path (their costs are elsewhere: the network
round trip; a shared single connection).
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from . import schema as t

__all__ = ["SQLiteContextReader", "SQLiteRecorder"]

Processor = Callable[[Any], Any] | None


def _memo(proc: Processor) -> Processor:
    """``proc`` remembering its last argument (by identity): one record passes the same
    ``now`` and ids to several columns and rows, and each is converted once."""
    if proc is None:
        return None
    last: list[tuple[Any, Any]] = [(object(), None)]

    def process(value: Any) -> Any:
        seen, result = last[0]  # one tuple: a consistent pair even across threads
        if seen is not value:
            result = proc(value)
            last[0] = (value, result)
        return result

    return process


def _insert_sql(table: sa.Table, columns: Sequence[str], tail: str = "") -> str:
    names = ", ".join(columns)
    marks = ", ".join("?" for _ in columns)
    return f"INSERT INTO {table.name} ({names}) VALUES ({marks}){tail}"


class _Rows:
    """Dict rows to the driver's parameter tuples, through the dialect's bind processors."""

    def __init__(self, table: sa.Table, columns: Sequence[str], dialect: sa.Dialect) -> None:
        self.columns = tuple(columns)
        self.procs: tuple[Processor, ...] = tuple(
            _memo(table.c[name].type.dialect_impl(dialect).bind_processor(dialect))
            for name in columns
        )

    def __call__(self, row: dict[str, Any]) -> tuple[Any, ...]:
        return tuple(
            row[name] if proc is None else proc(row[name])
            for name, proc in zip(self.columns, self.procs, strict=True)
        )


class SQLiteRecorder:
    """The record transaction for one SQLite engine (built once per :class:`.store.Store`)."""

    _TURN = ("user_id", "turn_id", "blob_ids", "created_at")
    _BLOB = (
        "id",
        "user_id",
        "turn_id",
        "part",
        "blob_type",
        "blob_data",
        "fields",
        "created_at",
        "updated_at",
    )
    _BUFFER = (
        "user_id",
        "blob_id",
        "turn_id",
        "blob_type",
        "token_size",
        "status",
        "attempts",
        "created_at",
        "updated_at",
    )

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        dialect = engine.dialect
        self._dbapi_error = dialect.loaded_dbapi.Error
        self._user_sql = _insert_sql(
            t.users, ("id", "data", "created_at", "updated_at"), " ON CONFLICT (id) DO NOTHING"
        )
        self._turn_sql = _insert_sql(
            t.turns, self._TURN, " ON CONFLICT (user_id, turn_id) DO NOTHING"
        )
        self._blob_sql = _insert_sql(t.blobs, self._BLOB)
        self._buffer_sql = _insert_sql(t.buffer, self._BUFFER)
        self._stored_sql = "SELECT blob_ids FROM mb_turns WHERE user_id = ? AND turn_id = ?"
        self._users = _Rows(t.users, ("id", "data", "created_at", "updated_at"), dialect)
        self._turns = _Rows(t.turns, self._TURN, dialect)
        self._blobs = _Rows(t.blobs, self._BLOB, dialect)
        self._buffer = _Rows(t.buffer, self._BUFFER, dialect)
        uuid_proc = t.turns.c.user_id.type.dialect_impl(dialect).bind_processor(dialect)
        assert uuid_proc is not None
        self._uuid = uuid_proc
        self._raw: Any = None  # the kept pool connection (see the module doc)

    def close(self) -> None:
        """Give the kept connection back (before the engine is disposed)."""
        raw, self._raw = self._raw, None
        if raw is not None:
            raw.close()

    def record(
        self,
        user_id: uuid.UUID,
        turn_row: dict[str, Any],
        blob_rows: list[dict[str, Any]],
        buffer_rows: list[dict[str, Any]],
        now: datetime,
        *,
        ensure_user: bool,
    ) -> tuple[uuid.UUID, ...] | None:
        """Write the turn in one ``BEGIN IMMEDIATE`` transaction; returns the stored blob ids
        when the turn was recorded before (nothing is written then), else ``None``.

        The caller holds the store's write lock. Driver errors become SQLAlchemy's exceptions.
        """
        if self._raw is None:
            self._raw = self.engine.raw_connection()
        conn = self._raw.driver_connection
        cur = conn.cursor()
        statement = "BEGIN IMMEDIATE"
        params: Any = ()
        try:
            cur.execute(statement)
            try:
                if ensure_user:
                    statement = self._user_sql
                    params = self._users(
                        {"id": user_id, "data": None, "created_at": now, "updated_at": now}
                    )
                    cur.execute(statement, params)
                statement, params = self._turn_sql, self._turns(turn_row)
                cur.execute(statement, params)
                if cur.rowcount == 0:  # a replay: the ledger has the turn
                    statement = self._stored_sql
                    params = (self._uuid(user_id), turn_row["turn_id"])
                    stored = cur.execute(statement, params).fetchone()[0]
                    cur.execute("ROLLBACK")
                    return tuple(uuid.UUID(x) for x in json.loads(stored))
                if blob_rows:
                    statement = self._blob_sql
                    params = [self._blobs(r) for r in blob_rows]
                    cur.executemany(statement, params)
                    statement = self._buffer_sql
                    params = [self._buffer(r) for r in buffer_rows]
                    cur.executemany(statement, params)
                statement, params = "COMMIT", ()
                cur.execute(statement)
            except BaseException:
                if conn.in_transaction:
                    cur.execute("ROLLBACK")
                raise
        except self._dbapi_error as exc:
            raise sa.exc.DBAPIError.instance(statement, params, exc, self._dbapi_error) from exc
        finally:
            cur.close()
        return None


def _result(column: sa.Column[Any], dialect: sa.Dialect) -> Callable[[Any], Any]:
    proc = column.type.dialect_impl(dialect).result_processor(dialect, None)
    return proc if proc is not None else (lambda value: value)


def _utc_reader(fallback: Callable[[Any], Any]) -> Callable[[Any], Any]:
    """The stored text of a ``UTCDateTime`` as an aware UTC datetime, as ``fallback`` (the
    column's SQLAlchemy result processor) returns it, by ``datetime.fromisoformat``: the
    store writes ``YYYY-MM-DD HH:MM:SS.ffffff`` (naive UTC), which it parses exactly, at a
    fraction of the cost of SQLAlchemy's regular expression. Anything else goes to
    ``fallback``."""
    parse = datetime.fromisoformat

    def read(value: Any) -> Any:
        if type(value) is str and len(value) == 26:
            try:
                return parse(value).replace(tzinfo=UTC)
            except ValueError:
                pass
        return fallback(value)

    return read


class SQLiteContextReader:
    """The reads of a ``context()`` miss in one read transaction (see the module doc).

    Each call checks a connection out of the engine's pool (readers run in parallel in WAL
    mode); the SQL mirrors the statements of ``Store.context_rows``' Core path.
    """

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        dialect = engine.dialect
        self._dbapi_error = dialect.loaded_dbapi.Error
        self._stamp_sql = "SELECT updated_at FROM mb_project WHERE id = 1"
        self._config_sql = "SELECT updated_at, profile_config FROM mb_project WHERE id = 1"
        self._profiles_sql = (
            "SELECT id, topic, sub_topic, content, update_hits, created_at, updated_at "
            "FROM mb_profiles WHERE user_id = ? ORDER BY updated_at DESC, created_at DESC, id"
        )
        self._gists_sql = (
            "SELECT id, content, created_at, updated_at FROM mb_gists WHERE user_id = ? "
            "AND created_at >= ? ORDER BY created_at DESC, id LIMIT ?"
        )
        uuid_in = t.profiles.c.user_id.type.dialect_impl(dialect).bind_processor(dialect)
        time_in = t.gists.c.created_at.type.dialect_impl(dialect).bind_processor(dialect)
        assert uuid_in is not None and time_in is not None
        self._uuid_in, self._time_in = uuid_in, time_in
        self._uuid_out = _result(t.profiles.c.id, dialect)
        self._time_out = _utc_reader(_result(t.profiles.c.updated_at, dialect))

    def read(
        self, user_id: uuid.UUID, since: datetime, limit: int, config_stamp: object, missing: object
    ) -> tuple[tuple[object, str | None] | None, list[tuple[Any, ...]], list[tuple[Any, ...]]]:
        """``(config, profiles, gists)``: ``config`` is ``None`` when its version is
        ``config_stamp``, else ``(version, text)`` (``missing`` as the version when the store
        has no project row); rows as typed tuples in the Core path's column order."""
        raw: Any = self.engine.raw_connection()
        try:
            cur = raw.driver_connection.cursor()
            statement = "BEGIN"
            params: tuple[Any, ...] = ()
            try:
                cur.execute(statement)
                statement = self._stamp_sql
                row = cur.execute(statement).fetchone()
                stamp = None if row is None else self._time_out(row[0])
                config: tuple[object, str | None] | None = None
                if (missing if stamp is None else stamp) != config_stamp:
                    if stamp is None:
                        config = (missing, None)
                    else:
                        statement = self._config_sql
                        row = cur.execute(statement).fetchone()
                        config = (
                            (missing, None) if row is None else (self._time_out(row[0]), row[1])
                        )
                uid = self._uuid_in(user_id)
                statement, params = self._profiles_sql, (uid,)
                u_out, t_out = self._uuid_out, self._time_out
                profiles = [
                    (u_out(r[0]), r[1], r[2], r[3], int(r[4]), t_out(r[5]), t_out(r[6]))
                    for r in cur.execute(statement, params).fetchall()
                ]
                statement, params = self._gists_sql, (uid, self._time_in(since), limit)
                gists = [
                    (u_out(r[0]), r[1], t_out(r[2]), t_out(r[3]))
                    for r in cur.execute(statement, params).fetchall()
                ]
                cur.execute("COMMIT")
            except self._dbapi_error as exc:
                raise sa.exc.DBAPIError.instance(statement, params, exc, self._dbapi_error) from exc
            finally:
                cur.close()
        finally:
            raw.close()  # back to the pool, which rolls back anything left open
        return config, profiles, gists
