"""A store written by the release before search (schema version 1) opens, is migrated, gets
its search index and searches; SQLite and PostgreSQL.

The SQLite store is ``data/store_v1.db``, made by that release's code (``data/
make_store_v1.py`` says how). The PostgreSQL one is built with that release's schema
(``data/schema_v1.py``, its ``engine/schema.py`` verbatim) and filled with the same rows.
"""

from __future__ import annotations

import importlib.util
import shutil
import sys
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
import sqlalchemy as sa
from embedded.emb_support import MANUAL, BackendFactory, DbTarget, turn

from memobase_integrations.engine import fts
from memobase_integrations.engine import schema as t
from memobase_integrations.engine.store import Store
from memobase_integrations.ids import to_user_uuid
from memobase_integrations.messages import turn_to_blobs
from memobase_integrations.testing import StandInLLM

DATA = Path(__file__).parent / "data"
ALICE, BOB = to_user_uuid("alice"), to_user_uuid("bob")
#: The fixture's events are dated when it was made: search far enough back.
ALL_TIME = 100_000


def _schema_v1() -> ModuleType:
    spec = importlib.util.spec_from_file_location("schema_v1", DATA / "schema_v1.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules.setdefault("schema_v1", module)
    spec.loader.exec_module(module)
    return module


@pytest.fixture
def v1_store(db: DbTarget, tmp_path: Path) -> Iterator[DbTarget]:
    """The test's database holding the version-1 store."""
    if db.kind == "sqlite":
        path = tmp_path / "store_v1.db"
        shutil.copyfile(DATA / "store_v1.db", path)
        yield DbTarget("sqlite", f"sqlite:///{path}")
        return
    old = _schema_v1()
    source = sa.create_engine(f"sqlite:///{DATA / 'store_v1.db'}")
    target = sa.create_engine(db.url, **db.engine_options)
    with source.connect() as src, target.begin() as dst:
        old.metadata.create_all(dst)
        for table in old.metadata.sorted_tables:
            rows = [dict(r._mapping) for r in src.execute(sa.select(table))]
            if rows:
                dst.execute(sa.insert(table), rows)
        if dst.dialect.name == "postgresql":
            for table in ("mb_buffer", "mb_flushes"):  # identity columns after explicit ids
                dst.execute(
                    sa.text(
                        f"SELECT setval(pg_get_serial_sequence('{table}', 'seq'), "
                        f"(SELECT coalesce(max(seq), 1) FROM {table}))"
                    )
                )
    source.dispose()
    target.dispose()
    yield db


def _version_and_tables(target: DbTarget) -> tuple[int, set[str]]:
    engine = sa.create_engine(target.url, **target.engine_options)
    try:
        with engine.connect() as conn:
            version = conn.execute(sa.select(t.schema_version.c.version)).scalar_one()
            tables = set(sa.inspect(conn).get_table_names())
    finally:
        engine.dispose()
    return version, tables


def _rows(backend: Any, table: sa.Table) -> int:
    with backend.store.engine.connect() as conn:
        return int(conn.execute(sa.select(sa.func.count()).select_from(table)).scalar_one())


def test_a_version_1_store_is_migrated_and_searches(
    v1_store: DbTarget, make_backend: BackendFactory
) -> None:
    version, tables = _version_and_tables(v1_store)
    assert version == 1 and "mb_search" not in tables
    backend = make_backend(
        **v1_store.backend_kwargs(),
        llm=StandInLLM().settings(enable_embeddings=True, embedding_dim=64),
        policy=MANUAL,
    )
    assert _version_and_tables(v1_store)[0] == t.SCHEMA_VERSION
    expected = "fts5" if v1_store.kind == "sqlite" else "tsvector"
    assert backend.store.search_mode == expected
    # Every old event and gist was indexed (7 events of one gist each).
    assert _rows(backend, t.search_docs) == _rows(backend, t.events) + _rows(backend, t.gists)
    assert _rows(backend, t.search_docs) == 14

    (event,) = backend.search_events(ALICE, "Dolomites", time_range_in_days=ALL_TIME)
    assert "hiking in the Dolomites" in (event.event_data.event_tip or "")
    ranked = backend.search_gists(ALICE, "hiking in the Dolomites", time_range_in_days=ALL_TIME)
    assert len(ranked) == 2 and "Dolomites" in ranked[0].gist_data.content
    # bob's old events carry vectors: the hybrid search uses both lists.
    (cello,) = backend.search_gists(BOB, "cello", time_range_in_days=ALL_TIME)
    assert cello.similarity == 1.0 and "cello" in cello.gist_data.content
    # New memory is indexed as before.
    backend.record(ALICE, turn_to_blobs(turn("I love the Dolomites in winter.")), "new")
    backend.flush(ALICE)
    assert len(backend.search_events(ALICE, "Dolomites", time_range_in_days=ALL_TIME)) == 2


def test_a_failed_migration_changes_nothing(
    v1_store: DbTarget, make_backend: BackendFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(conn: Any) -> int:
        conn.execute(sa.text("SELECT 1"))
        raise sa.exc.OperationalError("backfill", {}, Exception("disk I/O error"))

    with monkeypatch.context() as patch:
        patch.setattr(fts, "backfill", broken)
        with pytest.raises(Exception, match="disk I/O error"):
            make_backend(**v1_store.backend_kwargs(), llm=StandInLLM().settings())
    version, tables = _version_and_tables(v1_store)
    assert version == 1 and "mb_search" not in tables  # all or nothing
    backend = make_backend(**v1_store.backend_kwargs(), llm=StandInLLM().settings())
    assert len(backend.search_events(ALICE, "Dolomites", time_range_in_days=ALL_TIME)) == 1


def test_an_open_that_does_not_migrate_still_searches_by_scanning(
    v1_store: DbTarget, monkeypatch: pytest.MonkeyPatch
) -> None:
    """What a read-only open relies on: a version-1 store is searched without an index
    (and without writing to it)."""
    monkeypatch.setattr(Store, "_open_schema", lambda self: None)
    store = Store(v1_store.url, engine_options=dict(v1_store.engine_options))
    try:
        assert store.search_mode == "scan"
        corpus = store.lexical_corpus(
            ALICE, "event", ["dolomit"], since=datetime(2000, 1, 1, tzinfo=UTC)
        )
        assert len(corpus.docs) == 5 and corpus.n_docs == 5
        assert any("dolomit" in d.terms for d in corpus.docs)
    finally:
        store.close()
    version, tables = _version_and_tables(v1_store)
    assert version == 1 and "mb_search" not in tables


def test_the_tables_added_since_version_1_are_the_ones_the_old_store_lacks() -> None:
    old = _schema_v1()
    added = set(t.metadata.tables) - set(old.metadata.tables)
    assert added == set(t.LATER_TABLES)
