"""The full-text index of events and gists: per-dialect DDL, index rows and candidate queries.

Rows of ``mb_search`` (:data:`.schema.search_docs`) hold each item's analysed terms
(:func:`.search.analyze`); they are written in the transaction that writes the event and its
gists and go with the event by cascade. Over them, per dialect:

* **SQLite: FTS5.** ``mb_search_fts`` (a regular FTS5 table, ``unicode61`` tokenizer) keyed by
  ``mb_search.seq``, kept in step by triggers on ``mb_search``, so inserts, updates and every
  cascading delete (an event, a user) reach it inside the same transaction. Its ``scope``
  column holds one token per user and kind (``gist`` + the user id's hex), so a query reads
  only the user's postings. SQLite builds without FTS5 exist (rare): such a process gets the
  bounded scan below, and refuses to write to a store whose index was built with FTS5 (its
  triggers would fail every flush).
* **PostgreSQL: ``tsvector`` + GIN.** A stored generated column ``tsv`` made with
  ``array_to_tsvector`` from the terms, and a GIN index on it. The terms are already
  analysed, so no text search configuration is involved: ``english`` would stem a second
  time and drop stopwords at index time, ``simple`` would re-parse the terms; the lexemes
  are exactly :func:`.search.analyze`'s, which is what keeps PostgreSQL, SQLite and the scan
  ranking alike. Chinese is handled by that analysis (character pairs), which no built-in
  configuration does.
* **Scan** (no index: SQLite without FTS5, or a store still at schema version 1 opened
  without migrating it, e.g. read-only): the user's newest :data:`SCAN_LIMIT` events or gists
  in the time window are analysed in Python. Same scorer, so the same results as long as the
  user has fewer items than that in the window; older ones are not searched.

The index only finds candidates (items of the user sharing a term with the query, the newest
:data:`CANDIDATE_LIMIT`); :mod:`.search` ranks them.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final, Literal

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from ..models import EventData
from . import schema as t
from .search import Doc, analyze, event_text

__all__ = [
    "CANDIDATE_LIMIT",
    "FTS_TABLE",
    "SCAN_LIMIT",
    "Corpus",
    "Kind",
    "Mode",
    "backfill",
    "candidates",
    "detect_mode",
    "doc_row",
    "install",
    "reindex_event",
    "sqlite_has_fts5",
]

Kind = Literal["event", "gist"]
#: How a store's search finds candidates (see the module doc).
Mode = Literal["fts5", "tsvector", "scan"]

FTS_TABLE: Final = "mb_search_fts"
#: Candidates read per search from an index (the newest matching items of the user).
CANDIDATE_LIMIT: Final = 2000
#: Items analysed per search without an index (the user's newest in the window).
SCAN_LIMIT: Final = 5000
_BATCH: Final = 500

_SQLITE_DDL: Final = (
    f"CREATE VIRTUAL TABLE IF NOT EXISTS {FTS_TABLE} USING fts5("
    "scope, terms, tokenize = 'unicode61 remove_diacritics 0')",
    f"""CREATE TRIGGER IF NOT EXISTS mb_search_fts_ai AFTER INSERT ON mb_search BEGIN
        INSERT INTO {FTS_TABLE}(rowid, scope, terms)
        VALUES (new.seq, new.kind || new.user_id, new.terms);
    END""",
    f"""CREATE TRIGGER IF NOT EXISTS mb_search_fts_ad AFTER DELETE ON mb_search BEGIN
        DELETE FROM {FTS_TABLE} WHERE rowid = old.seq;
    END""",
    f"""CREATE TRIGGER IF NOT EXISTS mb_search_fts_au AFTER UPDATE ON mb_search BEGIN
        DELETE FROM {FTS_TABLE} WHERE rowid = old.seq;
        INSERT INTO {FTS_TABLE}(rowid, scope, terms)
        VALUES (new.seq, new.kind || new.user_id, new.terms);
    END""",
)
_SQLITE_FILL: Final = (
    f"INSERT INTO {FTS_TABLE}(rowid, scope, terms) SELECT seq, kind || user_id, terms "
    "FROM mb_search"
)
_POSTGRES_DDL: Final = (
    "ALTER TABLE mb_search ADD COLUMN IF NOT EXISTS tsv tsvector GENERATED ALWAYS AS "
    "(array_to_tsvector(string_to_array(terms, ' '))) STORED",
    "CREATE INDEX IF NOT EXISTS ix_mb_search_tsv ON mb_search USING gin (tsv)",
)


@dataclass(frozen=True, slots=True)
class Corpus:
    """What a lexical search scores: the candidates and the collection's size and mean
    length (the user's items of one kind in the window)."""

    docs: list[Doc]
    n_docs: int
    avg_len: float


# -- detection and DDL -------------------------------------------------------------------------


def sqlite_has_fts5(conn: Connection) -> bool:
    """Whether this process's SQLite library has FTS5 (a probe table in ``temp``)."""
    try:
        conn.exec_driver_sql("CREATE VIRTUAL TABLE temp.mb_fts5_probe USING fts5(x)")
    except sa.exc.OperationalError:
        return False
    conn.exec_driver_sql("DROP TABLE temp.mb_fts5_probe")
    return True


def _exists(conn: Connection, query: str) -> bool:
    return conn.execute(sa.text(query)).first() is not None


def _has_fts_table(conn: Connection) -> bool:
    return _exists(
        conn, f"SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = '{FTS_TABLE}'"
    )


def _has_tsv(conn: Connection) -> bool:
    return _exists(
        conn,
        "SELECT 1 FROM information_schema.columns WHERE table_schema = current_schema() "
        "AND table_name = 'mb_search' AND column_name = 'tsv'",
    )


def _has_gin(conn: Connection) -> bool:
    return _exists(
        conn,
        "SELECT 1 FROM pg_indexes WHERE schemaname = current_schema() "
        "AND indexname = 'ix_mb_search_tsv'",
    )


def install(conn: Connection, dialect: str, *, fts5: bool) -> None:
    """Create the dialect's index over ``mb_search`` if it is missing (idempotent).

    An FTS5 table created here is filled from ``mb_search`` (which a process without FTS5
    keeps up to date). Without FTS5 nothing is created: searches scan.
    """
    if dialect == "postgresql":
        # Only when missing: ALTER TABLE takes an exclusive lock even when it has nothing to do.
        if not (_has_tsv(conn) and _has_gin(conn)):
            for ddl in _POSTGRES_DDL:
                conn.execute(sa.text(ddl))
        return
    if not fts5:
        return
    existed = _has_fts_table(conn)
    for ddl in _SQLITE_DDL:
        conn.exec_driver_sql(ddl)
    if not existed:
        conn.exec_driver_sql(_SQLITE_FILL)


def detect_mode(conn: Connection, dialect: str, version: int | None) -> Mode:
    """How this store can be searched by this process. Reads only (an FTS5 table this
    SQLite cannot read, for want of FTS5, means a scan)."""
    if version is None or version < 2:
        return "scan"
    if dialect == "postgresql":
        return "tsvector" if _has_tsv(conn) else "scan"
    if not _has_fts_table(conn):
        return "scan"
    try:
        conn.exec_driver_sql(f"SELECT rowid FROM {FTS_TABLE} LIMIT 0")
    except sa.exc.OperationalError:  # no such module: fts5
        return "scan"
    return "fts5"


def fts5_index_without_fts5(conn: Connection, dialect: str, *, fts5: bool) -> bool:
    """True when the store has an FTS5 index this process cannot maintain."""
    return dialect == "sqlite" and not fts5 and _has_fts_table(conn)


# -- index rows --------------------------------------------------------------------------------


def doc_row(
    user_id: uuid.UUID,
    doc_id: uuid.UUID,
    kind: Kind,
    event_id: uuid.UUID,
    text: str,
    created_at: datetime,
) -> dict[str, Any]:
    """The ``mb_search`` row of one event or gist (analysed here, outside any transaction
    when the caller prepares it ahead)."""
    return {
        "doc_id": doc_id,
        "user_id": user_id,
        "kind": kind,
        "event_id": event_id,
        **_terms(text),
        "created_at": created_at,
    }


def _terms(text: str) -> dict[str, Any]:
    terms = analyze(text)
    return {"terms": " ".join(terms), "n_terms": len(terms)}


def reindex_event(
    conn: Connection, user_id: uuid.UUID, event_id: uuid.UUID, event: EventData
) -> None:
    """Refresh an event's terms after its data changed (call it in the updating
    transaction). Its gists are separate rows with their own text and stay as they are."""
    s = t.search_docs.c
    text = event_text(event)
    changed = conn.execute(
        sa.update(t.search_docs)
        .where(s.doc_id == event_id, s.user_id == user_id)
        .values(_terms(text))
    ).rowcount
    if not changed:  # written before the index existed and missed by the backfill
        created = conn.execute(
            sa.select(t.events.c.created_at).where(t.events.c.id == event_id)
        ).scalar_one()
        conn.execute(
            sa.insert(t.search_docs).values(
                doc_row(user_id, event_id, "event", event_id, text, created)
            )
        )


def backfill(conn: Connection) -> int:
    """Index every event and gist that has no ``mb_search`` row yet (the migration from
    schema version 1), in batches. Returns how many rows were written."""
    e, g, s = t.events.c, t.gists.c, t.search_docs.c
    written = 0
    events = sa.select(e.id, e.user_id, e.event_data, e.created_at).where(
        ~sa.select(s.seq).where(s.doc_id == e.id).exists()
    )
    for rows in _batches(conn, events, e.id):
        docs = [
            doc_row(
                r.user_id,
                r.id,
                "event",
                r.id,
                event_text(EventData.model_validate(r.event_data)),
                r.created_at,
            )
            for r in rows
        ]
        conn.execute(sa.insert(t.search_docs), docs)
        written += len(docs)
    gists = sa.select(g.id, g.user_id, g.event_id, g.content, g.created_at).where(
        ~sa.select(s.seq).where(s.doc_id == g.id).exists()
    )
    for rows in _batches(conn, gists, g.id):
        docs = [doc_row(r.user_id, r.id, "gist", r.event_id, r.content, r.created_at) for r in rows]
        conn.execute(sa.insert(t.search_docs), docs)
        written += len(docs)
    return written


def _batches(
    conn: Connection, stmt: sa.Select[Any], key: sa.ColumnElement[Any]
) -> Iterator[Sequence[sa.Row[Any]]]:
    """``stmt``'s rows in pages of :data:`_BATCH`, in ``key`` order (keyset pagination)."""
    after: Any = None
    while True:
        page = stmt if after is None else stmt.where(key > after)
        rows = conn.execute(page.order_by(key).limit(_BATCH)).all()
        if not rows:
            return
        yield rows
        after = rows[-1][0]


# -- candidates --------------------------------------------------------------------------------


def candidates(
    conn: Connection,
    mode: Mode,
    user_id: uuid.UUID,
    kind: Kind,
    terms: Sequence[str],
    since: datetime,
) -> Corpus:
    """The user's items of ``kind`` since ``since`` that contain a query term (all of them
    for the scan), with the collection's statistics."""
    if mode == "scan":
        return _scan(conn, user_id, kind, since)
    s = t.search_docs.c
    scope = (s.user_id == user_id, s.kind == kind, s.created_at >= since)
    count, length = conn.execute(
        sa.select(sa.func.count(), sa.func.coalesce(sa.func.sum(s.n_terms), 0)).where(*scope)
    ).one()
    if not count or not terms:
        return Corpus([], int(count), 0.0)
    if mode == "tsvector":
        stmt = sa.select(s.doc_id, s.terms, s.created_at).where(
            *scope, sa.literal_column("tsv").op("@@")(sa.cast(_tsquery(terms), _TSQUERY))
        )
    else:
        # The FTS5 match as a subquery: joined instead, SQLite walks the user's rows and
        # evaluates the match once per row (200 ms instead of 1 ms for 2,000 gists).
        fts = sa.table(FTS_TABLE, sa.column("rowid"))
        matching = sa.select(fts.c.rowid).where(
            sa.literal_column(FTS_TABLE).op("MATCH")(_fts5_match(user_id, kind, terms))
        )
        stmt = sa.select(s.doc_id, s.terms, s.created_at).where(s.seq.in_(matching), *scope)
    rows = conn.execute(stmt.order_by(s.created_at.desc(), s.doc_id).limit(CANDIDATE_LIMIT))
    docs = [Doc(r.doc_id, r.terms.split(), r.created_at) for r in rows]
    return Corpus(docs, int(count), int(length) / int(count))


class _TsQuery(sa.types.UserDefinedType[str]):
    cache_ok = True

    def get_col_spec(self, **kw: Any) -> str:
        return "tsquery"


_TSQUERY: Final = _TsQuery()


def _tsquery(terms: Sequence[str]) -> str:
    """``'a' | 'b'``: lexemes quoted as they are (no configuration re-analyses them)."""
    quoted = ("'" + term.replace("\\", "\\\\").replace("'", "''") + "'" for term in terms)
    return " | ".join(quoted)


def _fts5_match(user_id: uuid.UUID, kind: Kind, terms: Sequence[str]) -> str:
    """The user's scope token AND any of the terms, each a quoted FTS5 string."""
    phrases = " OR ".join('"' + term.replace('"', '""') + '"' for term in terms)
    return f'scope : "{kind}{user_id.hex}" AND terms : ({phrases})'


def _scan(conn: Connection, user_id: uuid.UUID, kind: Kind, since: datetime) -> Corpus:
    table = t.events if kind == "event" else t.gists
    c = table.c
    text = c.event_data if kind == "event" else c.content
    rows = conn.execute(
        sa.select(c.id, text.label("text"), c.created_at)
        .where(c.user_id == user_id, c.created_at >= since)
        .order_by(c.created_at.desc(), c.id)
        .limit(SCAN_LIMIT)
    ).all()
    docs = [
        Doc(
            r.id,
            analyze(event_text(EventData.model_validate(r.text)) if kind == "event" else r.text),
            r.created_at,
        )
        for r in rows
    ]
    total = sum(len(d.terms) for d in docs)
    return Corpus(docs, len(docs), total / len(docs) if docs else 0.0)
