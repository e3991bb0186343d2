"""The CLI never writes to a database that is not a memobase store (issue 12, item 6).

Pointed at the wrong database - an app's own SQLite file, an empty PostgreSQL database -
every command must fail with exit 3 and one line saying what to do, and leave the database
exactly as it was: the same bytes for SQLite (no ``mb_*`` table, no WAL switch, no ``-wal`` /
``-shm`` files), the same catalog for PostgreSQL. Commands run in-process through
:func:`memobase_integrations.cli.app.run` (the exit code and stderr a user would see), so
the whole matrix stays quick.
"""

from __future__ import annotations

import hashlib
import sqlite3
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa

from memobase_integrations.cli.app import run

from .conftest import RunCLI, Store

#: Every command that opens a store, as a user would type it (``{url}`` is filled in).
COMMANDS = [
    ["status"],
    ["status", "alice"],
    ["profile", "alice"],
    ["events", "alice"],
    ["context", "alice"],
    ["export", "alice"],
    ["config", "show"],
    ["flush", "--stand-in"],
    ["forget", "alice", "--yes"],
    ["config", "reset"],
]


def _run(args: list[str], url: str, capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    code = run([*args, "--database-url", url])
    return code, capsys.readouterr().err


def _assert_refused(code: int, stderr: str) -> None:
    assert code == 3, stderr
    assert "Traceback" not in stderr
    lines = [line for line in stderr.splitlines() if line.startswith("memobase-integrations:")]
    assert len(lines) == 1, stderr  # (flush --stand-in prints its banner first)
    assert "has no memobase store" in lines[0] and "nothing was created" in lines[0], stderr
    assert "--database-url" in lines[0]  # what to do


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture
def foreign_sqlite(tmp_path: Path) -> Path:
    """An app's own SQLite database (rollback journal, one table, one row)."""
    path = tmp_path / "app.db"
    conn = sqlite3.connect(path)
    conn.execute("CREATE TABLE orders (id INTEGER PRIMARY KEY, item TEXT)")
    conn.execute("INSERT INTO orders (item) VALUES ('tea')")
    conn.commit()
    conn.close()
    return path


@pytest.mark.parametrize("args", COMMANDS, ids=" ".join)
def test_commands_leave_a_foreign_sqlite_file_byte_for_byte_unchanged(
    args: list[str], foreign_sqlite: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    before = _digest(foreign_sqlite)
    code, stderr = _run(args, f"sqlite:///{foreign_sqlite}", capsys)
    _assert_refused(code, stderr)
    assert _digest(foreign_sqlite) == before
    assert sorted(p.name for p in foreign_sqlite.parent.iterdir()) == ["app.db"]  # no -wal/-shm
    conn = sqlite3.connect(foreign_sqlite)
    try:
        assert conn.execute("PRAGMA journal_mode").fetchone() == ("delete",)
    finally:
        conn.close()


def test_an_incomplete_store_is_named_and_left_alone(
    store: Store, capsys: pytest.CaptureFixture[str]
) -> None:
    conn = sqlite3.connect(store.path)
    conn.execute("DROP TABLE mb_flushes")
    conn.commit()
    conn.close()
    before = _digest(store.path)
    code, stderr = _run(["status"], store.url, capsys)
    assert code == 3
    assert "incomplete memobase store (missing mb_flushes)" in stderr
    assert _digest(store.path) == before


def test_an_older_store_opens_read_only_as_it_is(
    store: Store, capsys: pytest.CaptureFixture[str]
) -> None:
    # A store from before the search index (schema version 1) and before mb_usage: an open
    # that does not migrate reads it as it is, without taking it for a broken store.
    conn = sqlite3.connect(store.path)
    names = [r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")]
    for name in sorted(n for n in names if n.startswith(("mb_search", "mb_usage"))):
        conn.execute(f'DROP TABLE IF EXISTS "{name}"')
    conn.execute("UPDATE mb_schema_version SET version = 1")
    conn.commit()
    conn.close()
    before = _digest(store.path)
    for args in (["status"], ["profile", "alice"], ["events", "alice"], ["context", "alice"]):
        code, stderr = _run(args, store.url, capsys)
        assert code == 0, (args, stderr)
    assert _digest(store.path) == before


def test_a_real_store_still_opens_read_only(
    store: Store, capsys: pytest.CaptureFixture[str]
) -> None:
    code, stderr = _run(["status", "bob", "--json"], store.url, capsys)
    assert code == 0, stderr


def test_the_worker_command_refuses_a_foreign_database_as_a_process(
    cli: RunCLI, foreign_sqlite: Path
) -> None:
    before = _digest(foreign_sqlite)
    result = cli("worker", "--stand-in", "--database-url", f"sqlite:///{foreign_sqlite}")
    _assert_refused(result.code, result.stderr)
    assert _digest(foreign_sqlite) == before


# -- PostgreSQL -------------------------------------------------------------------------------
@pytest.fixture
def empty_postgres_db(postgres_url: str) -> Iterator[str]:
    """A brand-new database of our own (created here, dropped afterwards)."""
    base = sa.make_url(postgres_url.replace("postgresql://", "postgresql+psycopg://", 1))
    name = f"mbt_ro_{uuid.uuid4().hex[:12]}"
    admin = sa.create_engine(base, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    try:
        yield base.set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as conn:
            conn.execute(
                sa.text(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = :n"
                ),
                {"n": name},
            )
            conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}"'))
        admin.dispose()


def _catalog(url: str) -> list[tuple[str, str, str]]:
    """Every relation, type and function outside the system schemas."""
    engine = sa.create_engine(url)
    try:
        with engine.connect() as conn:
            rows = conn.execute(
                sa.text(
                    "SELECT n.nspname, c.relname, c.relkind::text FROM pg_class c "
                    "JOIN pg_namespace n ON n.oid = c.relnamespace "
                    "WHERE n.nspname NOT IN ('pg_catalog', 'information_schema', 'pg_toast') "
                    "UNION ALL SELECT n.nspname, t.typname, 'type' FROM pg_type t "
                    "JOIN pg_namespace n ON n.oid = t.typnamespace "
                    "WHERE n.nspname NOT IN ('pg_catalog', 'information_schema', 'pg_toast') "
                    "ORDER BY 1, 2, 3"
                )
            ).all()
    finally:
        engine.dispose()
    return [(r[0], r[1], r[2]) for r in rows]


def test_commands_leave_an_empty_postgres_database_unchanged(
    empty_postgres_db: str, capsys: pytest.CaptureFixture[str]
) -> None:
    before = _catalog(empty_postgres_db)
    assert not [r for r in before if r[1].startswith("mb_")]
    for args in COMMANDS:
        code, stderr = _run(args, empty_postgres_db, capsys)
        _assert_refused(code, stderr)
        assert _catalog(empty_postgres_db) == before, args
