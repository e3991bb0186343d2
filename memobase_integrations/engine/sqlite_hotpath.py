"""The request path's SQL on a SQLite file, on the driver's cursor (issue 13: a lean hot path).

``Store.record_turn`` (the request path's only write) and ``Store.context_rows`` (a
``context()`` miss) each cost more Python through SQLAlchemy Core than SQLite's own work
(statement cache lookup, parameter and result processing, result set-up, the ``begin``
event), so on a SQLite file they run here instead, on DBAPI connections of the engine's pool:

* the SQL text is built once, at store construction, from the tables in :mod:`.schema`
  (the same columns, the same ``ON CONFLICT DO NOTHING``);
* values go through the very bind and result processors SQLAlchemy would apply (taken once
  from the dialect), so the rows are byte-for-byte what the Core path writes, and what is read
  is what the Core path returns. Two of them have a faster equivalent here (the UTC stamp of
  a timestamp, ``json.dumps`` on one prebuilt C encoder), used only when the store is built
  and they give exactly the processor's output on samples; a record converts each distinct
  value once (the user id, ``now`` and a blob id recur in several columns and rows) and
  builds its parameters before ``BEGIN IMMEDIATE``, so the write lock covers the statements
  alone;
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
from datetime import UTC, datetime, timedelta, timezone
from json.encoder import c_make_encoder, encode_basestring_ascii  # type: ignore[attr-defined]
from typing import Any, Final

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from ..models import ChatBlob
from . import schema as t

__all__ = ["SQLiteContextReader", "SQLiteRecorder"]

Processor = Callable[[Any], Any]

#: What a blob row's ``blob_data`` leaves out: kept in columns of their own (as the Core
#: path's ``Store._blob_row``).
BLOB_DATA_EXCLUDE: Final[set[str]] = {"type", "fields", "created_at"}


def _insert_sql(table: sa.Table, columns: Sequence[str], tail: str = "") -> str:
    names = ", ".join(columns)
    marks = ", ".join("?" for _ in columns)
    return f"INSERT INTO {table.name} ({names}) VALUES ({marks}){tail}"


def _bind(column: sa.Column[Any], dialect: sa.Dialect) -> Processor:
    """The bind processor SQLAlchemy applies to ``column`` (it must have one)."""
    proc = column.type.dialect_impl(dialect).bind_processor(dialect)
    if proc is None:
        raise AssertionError(f"{column} lost its bind processor: update the recorder")
    return proc


def _specialised(general: Processor, fast: Processor, samples: Sequence[Any]) -> Processor:
    """``fast`` when it gives exactly what ``general`` (SQLAlchemy's processor) gives on
    every sample, else ``general``: a shortcut is taken only where it is proven equal, once,
    when the store is built (a custom ``json_serializer``, another SQLAlchemy version)."""
    try:
        same = all(fast(v) == general(v) for v in samples)
    except Exception:
        same = False
    return fast if same else general


def _json_dumps() -> Processor:
    """``json.dumps`` with its defaults, on one C encoder built here: ``json.dumps`` builds
    a new one (and three Python frames around it) on every call, three times a record.
    The arguments are ``JSONEncoder``'s own for ``dumps``' defaults (no circular check:
    the recorder's values come from pydantic dumps and lists of strings)."""
    if c_make_encoder is None:  # no C accelerator: nothing to gain
        return json.dumps
    try:
        encode = c_make_encoder(
            None,  # markers (no circular check)
            json.JSONEncoder().default,  # raises the TypeError json.dumps raises
            encode_basestring_ascii,  # ensure_ascii=True
            None,  # indent
            ": ",
            ", ",
            False,  # sort_keys
            False,  # skipkeys
            True,  # allow_nan
        )
    except TypeError:  # another signature (a future Python): the plain function
        return json.dumps

    def dumps(value: Any) -> str:
        return "".join(encode(value, 0))

    return dumps


def _utc_stamp(value: datetime) -> str:
    """A ``UTCDateTime`` bound for SQLite: naive UTC text with microseconds (what the type's
    ``process_bind_param`` and SQLite's ``DATETIME`` storage format make of it together)."""
    if value.tzinfo is not UTC:
        value = value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
    return (
        f"{value.year:04d}-{value.month:02d}-{value.day:02d} "
        f"{value.hour:02d}:{value.minute:02d}:{value.second:02d}.{value.microsecond:06d}"
    )


_JSON_SAMPLES: tuple[Any, ...] = (
    None,
    {"messages": [{"role": "user", "content": 'caf\u00e9 \u2615 "q"\n', "alias": None}]},
    {"turn_id": "t", "n": 1, "x": 1.5, "ok": True, "tags": []},
    ["6f1e9a4c-0000-4000-8000-000000000000"],
)
_TIME_SAMPLES: tuple[datetime, ...] = (
    datetime(2026, 3, 4, 5, 6, 7, 890123, tzinfo=UTC),
    datetime(2026, 3, 4, 5, 6, 7),
    datetime(999, 12, 31, 23, 59, 59, 0, tzinfo=timezone(timedelta(hours=5, minutes=30))),
)


#: One part of a recorded turn, as :meth:`SQLiteRecorder.record` takes it: the blob's id,
#: the blob, and its buffer row's token size.
Part = tuple[uuid.UUID, ChatBlob, int]


class SQLiteRecorder:
    """The record transaction for one SQLite engine (built once per :class:`.store.Store`).

    Rows go straight from the turn's parts to the driver's parameter tuples, each distinct
    value converted once (the user id, ``now`` and each blob id appear in several columns
    and rows), with the bind processors SQLAlchemy itself would apply: the rows are
    byte-for-byte those of the Core path's ``Store._blob_row`` / ``_buffer_row``, which
    ``tests/embedded/test_emb_hotpath.py`` holds both paths to.
    """

    _USER = ("id", "data", "created_at", "updated_at")
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

    def __init__(self, engine: Engine, *, idle: str) -> None:
        self.engine = engine
        self._idle = idle  # the status of a buffer row waiting for its flush
        dialect = engine.dialect
        self._dbapi_error = dialect.loaded_dbapi.Error
        self._user_sql = _insert_sql(t.users, self._USER, " ON CONFLICT (id) DO NOTHING")
        self._turn_sql = _insert_sql(
            t.turns, self._TURN, " ON CONFLICT (user_id, turn_id) DO NOTHING"
        )
        self._blob_sql = _insert_sql(t.blobs, self._BLOB)
        self._buffer_sql = _insert_sql(t.buffer, self._BUFFER)
        self._stored_sql = "SELECT blob_ids FROM mb_turns WHERE user_id = ? AND turn_id = ?"
        # One processor per kind of value: every uuid column (and every timestamp column)
        # of these tables has the same type, so one conversion serves all of them.
        # Timestamps and JSON take a shortcut where it is proven equal (``_specialised``).
        self._uuid = _bind(t.turns.c.user_id, dialect)
        self._time = _specialised(_bind(t.turns.c.created_at, dialect), _utc_stamp, _TIME_SAMPLES)
        dumps = _json_dumps()
        self._user_data, self._blob_ids, self._blob_data, self._fields = (
            _specialised(_bind(column, dialect), dumps, _JSON_SAMPLES)
            for column in (
                t.users.c.data,
                t.turns.c.blob_ids,
                t.blobs.c.blob_data,
                t.blobs.c.fields,
            )
        )
        self._raw: Any = None  # the kept pool connection (see the module doc)
        self._conn: Any = None  # its driver connection
        self._cursor: Any = None  # and a cursor (one record at a time: the write lock)

    def close(self) -> None:
        """Give the kept connection back (before the engine is disposed)."""
        raw, self._raw = self._raw, None
        if raw is not None:
            self._cursor.close()
            raw.close()

    def record(
        self,
        user_id: uuid.UUID,
        turn_id: str,
        parts: Sequence[Part],
        now: datetime,
        *,
        ensure_user: bool,
    ) -> tuple[uuid.UUID, ...] | None:
        """Write the turn in one ``BEGIN IMMEDIATE`` transaction; returns the stored blob ids
        when the turn was recorded before (nothing is written then), else ``None``.

        The parameters are built before the transaction begins, so the write lock is held
        for the statements alone. The caller holds the store's write lock. Driver errors
        become SQLAlchemy's exceptions.
        """
        uid, stamp, idle = self._uuid(user_id), self._time(now), self._idle
        turn = (uid, turn_id, self._blob_ids([str(p[0]) for p in parts]), stamp)
        blobs: list[tuple[Any, ...]] = []
        buffer: list[tuple[Any, ...]] = []
        for index, (blob_id, blob, size) in enumerate(parts):
            bid, kind, created = self._uuid(blob_id), str(blob.type), blob.created_at
            data = self._blob_data(blob.model_dump(mode="json", exclude=BLOB_DATA_EXCLUDE))
            created_stamp = stamp if created is None else self._time(created)
            blobs.append(
                (
                    bid,
                    uid,
                    turn_id,
                    index,
                    kind,
                    data,
                    self._fields(blob.fields),
                    created_stamp,
                    stamp,
                )
            )
            buffer.append((uid, bid, turn_id, kind, size, idle, 0, stamp, stamp))
        if self._raw is None:
            self._raw = self.engine.raw_connection()
            self._conn = self._raw.driver_connection
            self._cursor = self._conn.cursor()
        conn, cur = self._conn, self._cursor
        statement = "BEGIN IMMEDIATE"
        params: Any = ()
        try:
            cur.execute(statement)
            try:
                if ensure_user:
                    statement = self._user_sql
                    params = (uid, self._user_data(None), stamp, stamp)
                    cur.execute(statement, params)
                statement, params = self._turn_sql, turn
                cur.execute(statement, params)
                if cur.rowcount == 0:  # a replay: the ledger has the turn
                    statement, params = self._stored_sql, (uid, turn_id)
                    stored = cur.execute(statement, params).fetchone()[0]
                    cur.execute("ROLLBACK")
                    return tuple(uuid.UUID(x) for x in json.loads(stored))
                if blobs:
                    statement, params = self._blob_sql, blobs
                    cur.executemany(statement, params)
                    statement, params = self._buffer_sql, buffer
                    cur.executemany(statement, params)
                statement, params = "COMMIT", ()
                cur.execute(statement)
            except BaseException:
                if conn.in_transaction:
                    cur.execute("ROLLBACK")
                raise
        except self._dbapi_error as exc:
            raise sa.exc.DBAPIError.instance(statement, params, exc, self._dbapi_error) from exc
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
