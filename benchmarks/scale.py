"""Scale: ``record`` throughput and ``context()`` latency as the number of users grows.

The store is seeded directly through the engine's tables (``engine/schema.py``) in bulk,
with a realistic profile and timeline per user (5-20 profile rows over the default topics,
3-10 events each with 1-2 gists), because processing 100k users through the LLM pipeline
would take hours and measure the LLM, not the store. Sizes grow cumulatively (1k, then 9k
more, then 90k more) and each size is measured in the same database:

* ``context_p95_ms``: ``user.context()`` for distinct random users (the facade's cache is
  cold for each of them, so every call reads the store and packs the context);
* ``record_per_s``: ``user.record(turn)`` for random existing users, one thread, with the
  default flush policy except the idle flush (off, so no LLM work starts during the run).
"""

from __future__ import annotations

import json
import logging
import os
import random
import re
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import sqlalchemy as sa

from benchmarks.stats import bootstrap_quantile, ms, percentile
from memobase_integrations.engine import schema as t
from memobase_integrations.facade import Memobase
from memobase_integrations.ids import to_user_uuid
from memobase_integrations.settings import FlushPolicy, LLMSettings

__all__ = ["ScalePoint", "drop_postgres", "prepare_postgres", "run_id", "run_scale"]

logger = logging.getLogger("benchmarks")

_TOPICS: list[tuple[str, list[str]]] = [
    ("basic_info", ["name", "age", "gender", "birth_date", "nationality"]),
    ("contact_info", ["email", "phone", "city", "country"]),
    ("education", ["school", "degree", "major"]),
    ("demographics", ["marital_status", "number_of_children", "household_income"]),
    ("work", ["company", "title", "working_industry", "previous_projects", "work_skills"]),
    ("interest", ["books", "movies", "music", "foods", "sports"]),
    ("psychological", ["personality", "values", "beliefs", "motivations", "goals"]),
    ("life_event", ["marriage", "relocation", "retirement"]),
]
_WORDS = (  # noqa: SIM905 - a word list reads better as a sentence
    "likes enjoys works lives plans weekend coffee hiking Berlin Lisbon jazz novels engineer "
    "nurse teacher family daughter sister dog cat garden marathon Spanish German travel"
).split()

SEED_USER_PREFIX = "scale-user-"
_POOL = 4096  # distinct texts / timestamps / event payloads drawn from (a power of two)
_COLUMNS: dict[str, list[str]] = {
    "mb_users": ["id", "data", "last_flush_at", "created_at", "updated_at"],
    "mb_profiles": [
        "id",
        "user_id",
        "topic",
        "sub_topic",
        "content",
        "update_hits",
        "created_at",
        "updated_at",
    ],
    "mb_events": ["id", "user_id", "event_data", "embedding", "created_at", "updated_at"],
    "mb_gists": ["id", "user_id", "event_id", "content", "embedding", "created_at", "updated_at"],
}
_SLOTS = [(topic, sub) for topic, subs in _TOPICS for sub in subs]


class _Values:
    """Python values as the driver wants them. SQLite gets the engine's own bind processors'
    output (UUID hex, naive UTC text; computed once per pooled timestamp), PostgreSQL (COPY)
    gets ``uuid.UUID`` and aware datetimes. JSON columns are pre-serialised text on both."""

    def __init__(self, dialect: sa.Dialect, rng: random.Random, now: datetime) -> None:
        sqlite = dialect.name == "sqlite"
        uuid_type, time_type = t.users.c.id.type, t.users.c.created_at.type
        uuid_proc = uuid_type.dialect_impl(dialect).bind_processor(dialect) if sqlite else None
        time_proc = time_type.dialect_impl(dialect).bind_processor(dialect) if sqlite else None
        self.rng = rng
        self._uuid = uuid_proc
        stamps = [now - timedelta(minutes=rng.randint(0, 60 * 24 * 150)) for _ in range(_POOL)]
        self.stamps: list[Any] = [time_proc(s) if time_proc else s for s in stamps]
        self.now: Any = time_proc(now) if time_proc else now
        self.texts = [
            " ".join(rng.choice(_WORDS) for _ in range(rng.randint(3, 14))) for _ in range(_POOL)
        ]
        self.events = [
            json.dumps(
                {
                    "profile_delta": [
                        {
                            "content": self.texts[rng.getrandbits(12)],
                            "attributes": {"topic": topic, "sub_topic": sub},
                        }
                        for topic, sub in rng.sample(_SLOTS, 2)
                    ],
                    "event_tip": self.texts[rng.getrandbits(12)],
                    "event_tags": [],
                }
            )
            for _ in range(_POOL)
        ]

    def uuid(self, value: uuid.UUID) -> Any:
        return self._uuid(value) if self._uuid else value

    def new_id(self) -> str:
        # 32 hex digits: SQLAlchemy's Uuid text form on SQLite, and valid uuid input for COPY.
        return f"{self.rng.getrandbits(128):032x}"

    def stamp(self) -> Any:
        return self.stamps[self.rng.getrandbits(12)]

    def text(self) -> str:
        return self.texts[self.rng.getrandbits(12)]


def _rows(values: _Values, start: int, stop: int) -> dict[str, list[tuple[Any, ...]]]:
    rng = values.rng
    out: dict[str, list[tuple[Any, ...]]] = {name: [] for name in _COLUMNS}
    users, profiles, events, gists = (out[n] for n in _COLUMNS)
    for i in range(start, stop):
        uid = values.uuid(to_user_uuid(f"{SEED_USER_PREFIX}{i}"))
        users.append((uid, None, values.now, values.now, values.now))
        for topic, sub in rng.sample(_SLOTS, rng.randint(5, 20)):
            stamp = values.stamp()
            profiles.append((values.new_id(), uid, topic, sub, values.text(), 0, stamp, stamp))
        for _ in range(rng.randint(3, 10)):
            stamp = values.stamp()
            event_id = values.new_id()
            events.append((event_id, uid, values.events[rng.getrandbits(12)], None, stamp, stamp))
            for _ in range(rng.randint(1, 2)):
                gists.append((values.new_id(), uid, event_id, values.text(), None, stamp, stamp))
    return out


def _write_sqlite(raw: Any, rows: dict[str, list[tuple[Any, ...]]]) -> None:
    cur = raw.cursor()
    for table, data in rows.items():
        cols = _COLUMNS[table]
        marks = ", ".join("?" for _ in cols)
        cur.executemany(f"INSERT INTO {table} ({', '.join(cols)}) VALUES ({marks})", data)
    cur.close()


def _pg_text(value: Any) -> str:
    """One value in COPY's text format (NULL, escaped backslash / tab / newline)."""
    if value is None:
        return "\\N"
    text = str(value)
    if "\\" in text or "\t" in text or "\n" in text or "\r" in text:
        text = (
            text.replace("\\", "\\\\")
            .replace("\t", "\\t")
            .replace("\n", "\\n")
            .replace("\r", "\\r")
        )
    return text


def _write_postgres(raw: Any, rows: dict[str, list[tuple[Any, ...]]]) -> None:
    # Rows are rendered as COPY text here: one write per table instead of one per row.
    with raw.cursor() as cur:
        cur.execute("SET synchronous_commit = off")  # the seed's own durability is moot
        for table, data in rows.items():
            with cur.copy(f"COPY {table} ({', '.join(_COLUMNS[table])}) FROM STDIN") as copy:
                copy.write("".join("\t".join(map(_pg_text, row)) + "\n" for row in data))


def seed(database_url: str, start: int, stop: int, *, seed_value: int = 8) -> float:
    """Insert users ``start..stop`` with their profiles, events and gists straight into the
    engine's tables (executemany on SQLite, COPY on PostgreSQL); returns the seconds taken."""
    rng = random.Random(seed_value * 1_000_003 + start)
    engine = sa.create_engine(database_url)
    began = time.perf_counter()
    try:
        values = _Values(engine.dialect, rng, datetime.now(UTC))
        sqlite = engine.dialect.name == "sqlite"
        raw: Any = engine.raw_connection()
        try:
            driver = raw.driver_connection
            if sqlite:
                driver.execute("PRAGMA synchronous=OFF")
                driver.execute("PRAGMA cache_size=-524288")  # 512 MiB while seeding
            for chunk in range(start, stop, 5000):
                rows = _rows(values, chunk, min(stop, chunk + 5000))
                (_write_sqlite if sqlite else _write_postgres)(driver, rows)
                raw.commit()
            if sqlite:
                # Fold the WAL back into the database so reads start from a clean state.
                driver.execute("PRAGMA wal_checkpoint(TRUNCATE)")
                driver.execute("ANALYZE")
                raw.commit()
        finally:
            raw.close()
        if not sqlite:
            with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
                conn.execute(sa.text("ANALYZE"))
    finally:
        engine.dispose()
    return time.perf_counter() - began


def _ci_ms(samples: Sequence[float], q: float) -> tuple[float, float] | None:
    if len(samples) < 2:
        return None
    low, high = bootstrap_quantile(samples, q)
    return ms(low), ms(high)


@dataclass(slots=True)
class ScalePoint:
    backend: str
    users: int
    context_s: list[float] = field(default_factory=list)
    floor_s: list[float] = field(default_factory=list)
    record_s: list[float] = field(default_factory=list)
    record_per_s: float = 0.0
    seed_s: float = 0.0
    rows: dict[str, int] = field(default_factory=dict)
    error: str | None = None
    what: str = "context()"

    @property
    def name(self) -> str:
        return f"{self.backend}: {self.what} at {self.users:,} users"

    def as_json(self) -> dict[str, Any]:
        """``latest.json``'s ``scale`` entry."""
        return {
            "name": self.name,
            "backend": self.backend,
            "users": self.users,
            "context_p95_ms": ms(percentile(self.context_s, 95)) if self.context_s else None,
            "context_p95_ci95_ms": _ci_ms(self.context_s, 95),
            "raw_sql_floor_p95_ms": ms(percentile(self.floor_s, 95)) if self.floor_s else None,
            "raw_sql_floor_p95_ci95_ms": _ci_ms(self.floor_s, 95),
            "record_per_s": round(self.record_per_s, 1) if self.record_s else None,
            "record_p95_ms": ms(percentile(self.record_s, 95)) if self.record_s else None,
            "record_p95_ci95_ms": _ci_ms(self.record_s, 95),
        }

    def details(self) -> dict[str, Any]:
        return {
            **self.as_json(),
            "context_p50_ms": ms(percentile(self.context_s, 50)),
            "context_p99_ms": ms(percentile(self.context_s, 99)),
            "context_samples": len(self.context_s),
            "raw_sql_floor_p50_ms": ms(percentile(self.floor_s, 50)),
            "record_p50_ms": ms(percentile(self.record_s, 50)),
            "record_samples": len(self.record_s),
            "seed_s": round(self.seed_s, 2),
            "rows": self.rows,
            "error": self.error,
        }


_SCALE_POLICY = FlushPolicy(idle_flush_seconds=None, flush_on_close=False)


class RawContextFloor:
    """The same rows ``context()`` reads (the user's profile rows in Memobase's order, and
    the newest 60 gists of the last 180 days), fetched with two plain SQL statements on a
    raw DBAPI connection: no ORM, no model building, no packing. What any store must pay."""

    def __init__(self, database_url: str) -> None:
        self.engine = sa.create_engine(database_url)
        dialect = self.engine.dialect
        self.sqlite = dialect.name == "sqlite"
        mark = "?" if self.sqlite else "%s"
        uuid_type, time_type = t.users.c.id.type, t.users.c.created_at.type
        self._uuid = (
            uuid_type.dialect_impl(dialect).bind_processor(dialect) if self.sqlite else None
        )
        self._time = (
            time_type.dialect_impl(dialect).bind_processor(dialect) if self.sqlite else None
        )
        self.profiles = (
            "SELECT topic, sub_topic, content, updated_at, created_at FROM mb_profiles "
            f"WHERE user_id = {mark} ORDER BY updated_at DESC, created_at DESC, topic, sub_topic"
        )
        self.gists = (
            "SELECT id, content, created_at, updated_at FROM mb_gists WHERE user_id = "
            f"{mark} AND created_at >= {mark} ORDER BY created_at DESC, id LIMIT 60"
        )
        self.raw: Any = self.engine.raw_connection()

    def read(self, user_id: uuid.UUID) -> int:
        since: Any = datetime.now(UTC) - timedelta(days=180)
        uid: Any = self._uuid(user_id) if self._uuid else user_id
        if self._time:
            since = self._time(since)
        cur = self.raw.cursor()
        try:
            cur.execute(self.profiles, (uid,))
            n = len(cur.fetchall())
            cur.execute(self.gists, (uid, since))
            n += len(cur.fetchall())
        finally:
            cur.close()
        self.raw.rollback()  # end the read transaction, as the engine's pool does
        return n

    def close(self) -> None:
        self.raw.close()
        self.engine.dispose()


def _measure(
    backend: str,
    database_url: str,
    users: int,
    llm: LLMSettings,
    *,
    context_samples: int,
    record_samples: int,
    rng: random.Random,
) -> ScalePoint:
    point = ScalePoint(backend=backend, users=users)
    memobase = Memobase.embedded(database_url, llm=llm, policy=_SCALE_POLICY)
    floor = RawContextFloor(database_url)
    try:
        picks = rng.sample(range(users), min(context_samples, users))
        for i in picks[:20]:  # warm the connection pool and code paths (not timed)
            uid = to_user_uuid(f"{SEED_USER_PREFIX}{i}")
            memobase.backend.context(uid, _default_context_options())
            floor.read(uid)
        for i in picks:
            user = memobase.user(f"{SEED_USER_PREFIX}{i}")
            floor_first = rng.random() < 0.5
            if floor_first:
                t0 = time.perf_counter()
                floor.read(user.id)
                point.floor_s.append(time.perf_counter() - t0)
            t0 = time.perf_counter()
            text = user.context()
            point.context_s.append(time.perf_counter() - t0)
            if not floor_first:
                t0 = time.perf_counter()
                floor.read(user.id)
                point.floor_s.append(time.perf_counter() - t0)
            if not text:
                raise RuntimeError(f"empty context for seeded user {i}: the seed did not land")
        began = time.perf_counter()
        for n in range(record_samples):
            user = memobase.user(f"{SEED_USER_PREFIX}{rng.randrange(users)}")
            messages = [
                {"role": "user", "content": f"I like {_WORDS[n % len(_WORDS)]}. Turn {n}."},
                {"role": "assistant", "content": "Noted, thanks for telling me."},
            ]
            t0 = time.perf_counter()
            user.record(messages)
            point.record_s.append(time.perf_counter() - t0)
        point.record_per_s = record_samples / (time.perf_counter() - began)
    finally:
        floor.close()
        memobase.close(timeout=5.0)
    return point


def _default_context_options() -> Any:
    from memobase_integrations.values import ContextOptions

    return ContextOptions()


def _count_rows(database_url: str) -> dict[str, int]:
    engine = sa.create_engine(database_url)
    try:
        with engine.connect() as conn:
            return {
                table.name: int(
                    conn.execute(sa.select(sa.func.count()).select_from(table)).scalar_one()
                )
                for table in (t.users, t.profiles, t.events, t.gists)
            }
    finally:
        engine.dispose()


def run_scale(
    backend: str,
    database_url: str,
    sizes: Sequence[int],
    llm: LLMSettings,
    *,
    context_samples: int = 400,
    record_samples: int = 1000,
) -> list[ScalePoint]:
    """Seed cumulatively to each size and measure there. The database must be empty."""
    rng = random.Random(80)
    Memobase.embedded(database_url, llm=llm, policy=_SCALE_POLICY).close(timeout=1.0)  # schema
    points: list[ScalePoint] = []
    seeded = 0
    for size in sorted(sizes):
        try:
            seed_s = seed(database_url, seeded, size)
            seeded = size
            logger.info("scale %s: seeded %d users in %.1fs", backend, size, seed_s)
            point = _measure(
                backend,
                database_url,
                size,
                llm,
                context_samples=context_samples,
                record_samples=record_samples,
                rng=rng,
            )
            point.seed_s = seed_s
            point.rows = _count_rows(database_url)
        except Exception as exc:
            logger.exception("scale %s at %d users failed", backend, size)
            point = ScalePoint(backend=backend, users=size, error=f"{type(exc).__name__}: {exc}")
        points.append(point)
        logger.info(
            "scale %s %d users: context p95 %.3f ms, record %.0f/s",
            backend,
            size,
            ms(percentile(point.context_s, 95)),
            point.record_per_s,
        )
    return points


#: Databases this process created (the only ones :func:`drop_postgres` will drop).
_CREATED: set[str] = set()
_NAME_OK = re.compile(r"^[a-z][a-z0-9_]{0,62}$")


def run_id() -> str:
    """A name part unique to this run (pid + random), for databases and work files."""
    return f"{os.getpid()}_{uuid.uuid4().hex[:8]}"


def prepare_postgres(url: str, database: str, template: str | None = None) -> tuple[str, str]:
    """Create a new, empty database named ``database`` next to the one in ``url`` (so a
    benchmark never touches the database other people's tests use); returns its URL and
    name. The name must be unique (include :func:`run_id`): an existing database is never
    reused or dropped, CREATE simply fails. ``template``: a copy of that database (one this
    run created), e.g. the same seeded store for several measurements."""
    if not _NAME_OK.match(database):
        raise ValueError(f"not a safe database name: {database!r}")
    if template is not None and template not in _CREATED:
        raise ValueError(f"refusing to copy {template!r}: this run did not create it")
    admin = sa.create_engine(url, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            copy = f' TEMPLATE "{template}"' if template else ""
            conn.execute(sa.text(f'CREATE DATABASE "{database}"{copy}'))
        _CREATED.add(database)
    finally:
        admin.dispose()
    target = sa.make_url(url).set(database=database).render_as_string(hide_password=False)
    return target, database


def drop_postgres(url: str, database: str, *, attempts: int = 20) -> bool:
    """Drop a database this process created, without ``FORCE``: if a session is still
    connected (ours, closing), wait and retry; never terminate anybody's sessions. Returns
    whether it is gone; refuses (``ValueError``) a database it did not create."""
    if database not in _CREATED:
        raise ValueError(f"refusing to drop {database!r}: this run did not create it")
    admin = sa.create_engine(url, isolation_level="AUTOCOMMIT")
    try:
        for attempt in range(attempts):
            try:
                with admin.connect() as conn:
                    conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{database}"'))
                _CREATED.discard(database)
                return True
            except sa.exc.OperationalError as exc:
                if "being accessed by other users" not in str(exc) or attempt == attempts - 1:
                    logger.warning("could not drop database %s: %s", database, exc)
                    return False
                time.sleep(0.5)
    finally:
        admin.dispose()
    return False
