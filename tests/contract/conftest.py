"""The ``subject`` fixture: each contract check once per backend (see ``contract_support``)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from contract.contract_support import (
    KINDS,
    Subject,
    embedded_subject,
    memory_subject,
    remote_subject,
)
from support.serving import Store, pg_store


@pytest.fixture(params=KINDS)
def subject(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Subject]:
    kind = request.param
    if kind == "memory":
        yield from memory_subject()
    elif kind == "sqlite":
        yield from embedded_subject(kind, Store(f"sqlite:///{tmp_path / 'contract.db'}"))
    elif kind == "postgres":
        with pg_store(request.getfixturevalue("postgres_url")) as store:
            yield from embedded_subject(kind, store)
    else:
        yield from remote_subject(tmp_path)
