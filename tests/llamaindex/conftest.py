"""Fixtures for the LlamaIndex adapter tests: the in-memory engine behind a spy, and a
recording LLM."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from support.li_models import RecordingLLM
from support.spy import SpyBackend

from memobase_integrations.facade import Memobase


@pytest.fixture
def backend() -> Iterator[SpyBackend]:
    spy = SpyBackend()
    yield spy
    spy.close(0)


@pytest.fixture
def mb(backend: SpyBackend) -> Iterator[Memobase]:
    memobase = Memobase(backend)
    yield memobase
    memobase.close(0)  # ends its context refresher thread (and closes the backend)


@pytest.fixture
def llm() -> RecordingLLM:
    return RecordingLLM()
