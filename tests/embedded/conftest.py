"""Fixtures of the embedded-engine tests. Every store test runs on SQLite and PostgreSQL.

PostgreSQL tests get a schema of their own (created and dropped around the test) through the
``search_path`` connection option, so they never see each other's rows.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from embedded.emb_support import BackendFactory, DbTarget, pg_schema

from memobase_integrations.backends.embedded import EmbeddedBackend


@pytest.fixture(params=["sqlite", "postgres"])
def db(request: pytest.FixtureRequest, tmp_path: Any) -> Iterator[DbTarget]:
    if request.param == "sqlite":
        yield DbTarget("sqlite", f"sqlite:///{tmp_path / 'memobase.db'}")
        return
    base = request.getfixturevalue("postgres_url")
    with pg_schema(base) as target:
        yield target


@pytest.fixture
def make_backend(db: DbTarget) -> Iterator[BackendFactory]:
    """Build backends on the test's store; all are closed afterwards (flushing only if the
    test's policy says so)."""
    made: list[EmbeddedBackend] = []

    def factory(**kwargs: Any) -> EmbeddedBackend:
        options = {**db.backend_kwargs(), **kwargs}
        backend = EmbeddedBackend(**options)
        made.append(backend)
        return backend

    yield factory
    for backend in made:
        backend.close(timeout=10)


# -- vcrpy (pytest-recording) ---------------------------------------------------------------


def _same_step(r1: Any, r2: Any) -> None:
    """Match LLM requests by their pipeline step header (bodies carry dates and ids)."""
    step1, step2 = r1.headers.get("X-Memobase-Step"), r2.headers.get("X-Memobase-Step")
    assert step1 == step2, f"step {step1!r} != {step2!r}"


def pytest_recording_configure(config: pytest.Config, vcr: Any) -> None:
    vcr.register_matcher("memobase_step", _same_step)
