"""The embedded engine's tables (SQLAlchemy Core), portable between SQLite and PostgreSQL.

Every table carries ``user_id`` with ``ON DELETE CASCADE`` to ``mb_users``, so forgetting a user
is one ``DELETE`` and every query can be scoped by user in SQL. Table names start with ``mb_``
so the store can share a database with the application's own tables.

Why these tables beyond Memobase's own (``spec §6``):

* ``mb_turns`` is the idempotency ledger of :meth:`Backend.record`: processed chat blobs are
  deleted (as Memobase does), so the ledger is what makes a replayed turn a no-op forever.
* ``mb_buffer`` carries a lease (``lease_owner``/``lease_expires``) so that one flush per user
  runs at a time across threads and processes, and work left ``processing`` by a dead process
  is taken over once the lease expires; ``attempts``/``next_attempt_at``/``last_error`` make
  failures visible and retried with backoff instead of being dropped.
* ``mb_flushes`` logs every committed flush (which turns, which event), written in the same
  transaction as the flush's results: the proof that a turn was processed exactly once, and
  the source of ``last_flush_at`` in ``status()``.
* ``mb_search`` holds each event's and gist's analysed search terms (:mod:`.search`), the
  full-text index's source: written in the transactions that write events and gists, and
  gone with them by cascade. The dialect's index over it (an FTS5 table on SQLite, a
  ``tsvector`` column with a GIN index on PostgreSQL) is made by :mod:`.fts`.

Schema versions: 1, the first release; 2 adds ``mb_search`` and its index (a store at
version 1 is migrated, and its index built, the first time it is opened for writing).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import JSONB

__all__ = [
    "LATER_TABLES",
    "SCHEMA_VERSION",
    "UTCDateTime",
    "blobs",
    "buffer",
    "events",
    "flushes",
    "gists",
    "metadata",
    "profiles",
    "project",
    "schema_version",
    "search_docs",
    "turns",
    "usage",
    "users",
]

#: Bumped whenever the tables (or the search analysis) change; a database newer than this is
#: refused on open, an older one migrated (``Store._migrate``).
SCHEMA_VERSION = 2
#: Tables an existing store may lack, with the schema version from which every store has
#: them (``None``: made by the first writing open at any version, as ``mb_usage`` was added
#: without a bump). An open that does not migrate (a read-only one) must not take their
#: absence for a broken store.
LATER_TABLES: dict[str, int | None] = {"mb_search": 2, "mb_usage": None}


class UTCDateTime(sa.TypeDecorator[datetime]):
    """Timezone-aware UTC datetimes on every dialect.

    SQLite has no timezone type: values are stored as naive UTC text (which sorts and compares
    correctly in SQL) and given back their UTC tzinfo on the way out. PostgreSQL keeps
    ``timestamptz``.
    """

    impl = sa.DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: sa.Dialect) -> datetime | None:
        if value is None:
            return None
        value = value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: Any, dialect: sa.Dialect) -> datetime | None:
        if value is None:
            return None
        assert isinstance(value, datetime)
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


_JSON = sa.JSON().with_variant(JSONB(), "postgresql")
# INTEGER PRIMARY KEY is SQLite's rowid alias (autoincrement); PostgreSQL gets a BIGINT identity.
_SEQ = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def _fk_user() -> sa.ForeignKey:
    return sa.ForeignKey("mb_users.id", ondelete="CASCADE", onupdate="CASCADE")


def _timestamps() -> list[sa.Column[Any]]:
    return [
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("updated_at", UTCDateTime(), nullable=False),
    ]


metadata = sa.MetaData()

schema_version = sa.Table(
    "mb_schema_version",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
    sa.Column("version", sa.Integer, nullable=False),
    sa.Column("updated_at", UTCDateTime(), nullable=False),
)

project = sa.Table(
    "mb_project",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
    sa.Column("profile_config", sa.Text, nullable=True),
    sa.Column("updated_at", UTCDateTime(), nullable=False),
)

users = sa.Table(
    "mb_users",
    metadata,
    sa.Column("id", sa.Uuid, primary_key=True),
    sa.Column("data", _JSON, nullable=True),
    sa.Column("last_flush_at", UTCDateTime(), nullable=True),
    *_timestamps(),
)

turns = sa.Table(
    "mb_turns",
    metadata,
    sa.Column("user_id", sa.Uuid, _fk_user(), primary_key=True),
    sa.Column("turn_id", sa.String(255), primary_key=True),
    sa.Column("blob_ids", _JSON, nullable=False),
    sa.Column("created_at", UTCDateTime(), nullable=False),
)

blobs = sa.Table(
    "mb_blobs",
    metadata,
    sa.Column("id", sa.Uuid, primary_key=True),
    sa.Column("user_id", sa.Uuid, _fk_user(), nullable=False),
    sa.Column("turn_id", sa.String(255), nullable=True),
    sa.Column("part", sa.Integer, nullable=False, server_default="0"),
    sa.Column("blob_type", sa.String(16), nullable=False),
    sa.Column("blob_data", _JSON, nullable=False),
    sa.Column("fields", _JSON, nullable=True),
    *_timestamps(),
    # A replayed turn collides here (NULL turn ids, from ``insert``, never collide).
    sa.UniqueConstraint("user_id", "turn_id", "part", name="uq_mb_blobs_turn_part"),
    sa.Index("ix_mb_blobs_user_type", "user_id", "blob_type"),
)

buffer = sa.Table(
    "mb_buffer",
    metadata,
    # The sequence number orders a user's turns: batches are claimed oldest first.
    sa.Column("seq", _SEQ, primary_key=True, autoincrement=True),
    sa.Column("user_id", sa.Uuid, _fk_user(), nullable=False),
    sa.Column(
        "blob_id",
        sa.Uuid,
        sa.ForeignKey("mb_blobs.id", ondelete="CASCADE", onupdate="CASCADE"),
        nullable=False,
        unique=True,
    ),
    sa.Column("turn_id", sa.String(255), nullable=True),
    sa.Column("blob_type", sa.String(16), nullable=False),
    sa.Column("token_size", sa.Integer, nullable=False),
    sa.Column("status", sa.String(16), nullable=False),  # idle|processing|done|failed
    sa.Column("attempts", sa.Integer, nullable=False, server_default="0"),
    sa.Column("last_error", sa.Text, nullable=True),
    sa.Column("next_attempt_at", UTCDateTime(), nullable=True),  # NULL on failed = parked
    sa.Column("lease_owner", sa.String(128), nullable=True),
    sa.Column("lease_expires", UTCDateTime(), nullable=True),
    *_timestamps(),
    sa.Index("ix_mb_buffer_user_type_status", "user_id", "blob_type", "status"),
    sa.Index("ix_mb_buffer_status", "status"),
)

profiles = sa.Table(
    "mb_profiles",
    metadata,
    sa.Column("id", sa.Uuid, primary_key=True),
    sa.Column("user_id", sa.Uuid, _fk_user(), nullable=False),
    sa.Column("topic", sa.String(255), nullable=False),
    sa.Column("sub_topic", sa.String(255), nullable=False),
    sa.Column("content", sa.Text, nullable=False),
    sa.Column("update_hits", sa.Integer, nullable=False, server_default="0"),
    *_timestamps(),
    sa.Index("ix_mb_profiles_user", "user_id", "updated_at"),
)

events = sa.Table(
    "mb_events",
    metadata,
    sa.Column("id", sa.Uuid, primary_key=True),
    sa.Column("user_id", sa.Uuid, _fk_user(), nullable=False),
    sa.Column("event_data", _JSON, nullable=False),
    sa.Column("embedding", _JSON, nullable=True),  # list[float]; cosine is computed in Python
    *_timestamps(),
    sa.Index("ix_mb_events_user", "user_id", "created_at"),
)

gists = sa.Table(
    "mb_gists",
    metadata,
    sa.Column("id", sa.Uuid, primary_key=True),
    sa.Column("user_id", sa.Uuid, _fk_user(), nullable=False),
    sa.Column(
        "event_id",
        sa.Uuid,
        sa.ForeignKey("mb_events.id", ondelete="CASCADE", onupdate="CASCADE"),
        nullable=False,
    ),
    sa.Column("content", sa.Text, nullable=False),
    sa.Column("embedding", _JSON, nullable=True),
    *_timestamps(),
    sa.Index("ix_mb_gists_user", "user_id", "created_at"),
)

flushes = sa.Table(
    "mb_flushes",
    metadata,
    # Per user, flushes are serialized, so ``seq`` order is the order they committed in.
    sa.Column("seq", _SEQ, primary_key=True, autoincrement=True),
    sa.Column("id", sa.Uuid, nullable=False, unique=True),
    sa.Column("user_id", sa.Uuid, _fk_user(), nullable=False),
    sa.Column("blob_type", sa.String(16), nullable=False),
    sa.Column("turn_ids", _JSON, nullable=False),  # in processing order
    sa.Column("blob_ids", _JSON, nullable=False),
    sa.Column("token_size", sa.Integer, nullable=False),
    sa.Column("event_id", sa.Uuid, nullable=True),
    sa.Column("result", _JSON, nullable=False),  # the ChatModalResponse
    sa.Column("owner", sa.String(128), nullable=False),
    sa.Column("started_at", UTCDateTime(), nullable=False),
    sa.Column("created_at", UTCDateTime(), nullable=False),
    sa.Index("ix_mb_flushes_user", "user_id", "created_at"),
)

usage = sa.Table(
    "mb_usage",
    metadata,
    # One row per UTC day: what ``GET /project/usage`` and ``/project/billing`` report. Added
    # without a schema-version bump: ``create_all`` adds it to existing stores, and older code
    # never reads it. Counters are incremented in place (``x = x + n``), so every process
    # sharing the store adds to the same row.
    sa.Column("day", sa.String(10), primary_key=True),  # YYYY-MM-DD (UTC)
    sa.Column("total_insert", sa.BigInteger, nullable=False, server_default="0"),
    sa.Column("total_success_insert", sa.BigInteger, nullable=False, server_default="0"),
    sa.Column("input_tokens", sa.BigInteger, nullable=False, server_default="0"),
    sa.Column("output_tokens", sa.BigInteger, nullable=False, server_default="0"),
)

search_docs = sa.Table(
    "mb_search",
    metadata,
    # SQLite's rowid alias: the FTS5 table's rowid points here.
    sa.Column("seq", _SEQ, primary_key=True, autoincrement=True),
    sa.Column("doc_id", sa.Uuid, nullable=False, unique=True),  # the event's or gist's id
    sa.Column("user_id", sa.Uuid, _fk_user(), nullable=False),
    sa.Column("kind", sa.String(8), nullable=False),  # event|gist
    # The event, or the gist's event: deleting an event (or its user) deletes its rows here.
    # Gists are never deleted on their own.
    sa.Column(
        "event_id",
        sa.Uuid,
        sa.ForeignKey("mb_events.id", ondelete="CASCADE", onupdate="CASCADE"),
        nullable=False,
    ),
    sa.Column("terms", sa.Text, nullable=False),  # analysed terms, space-separated, repeats kept
    sa.Column("n_terms", sa.Integer, nullable=False),
    sa.Column("created_at", UTCDateTime(), nullable=False),
    sa.Index("ix_mb_search_user", "user_id", "kind", "created_at"),
    sa.Index("ix_mb_search_event", "event_id"),
)
