"""Fixtures of the ``serve`` tests: a real server on loopback, on SQLite or PostgreSQL."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from support.serving import Served, Store, pg_store, serving, sqlite_store


@pytest.fixture(params=["sqlite", "postgres"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Store]:
    if request.param == "sqlite":
        yield sqlite_store(tmp_path)
        return
    with pg_store(request.getfixturevalue("postgres_url")) as target:
        yield target


@pytest.fixture
def sqlite(tmp_path: Path) -> Store:
    return sqlite_store(tmp_path)


@pytest.fixture
def served(sqlite: Store) -> Iterator[Served]:
    """A server on a SQLite store (most tests; the store-dependent ones use ``store``)."""
    with serving(sqlite) as s:
        yield s
