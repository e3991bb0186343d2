"""Fixtures for the LlamaIndex adapter tests (fake backend; the embedded ones live in e2e)."""

from __future__ import annotations

import pytest
from li_fakes import FakeBackend, RecordingLLM

from memobase_integrations.facade import Memobase


@pytest.fixture
def backend() -> FakeBackend:
    return FakeBackend()


@pytest.fixture
def mb(backend: FakeBackend) -> Memobase:
    return Memobase(backend)  # type: ignore[arg-type]


@pytest.fixture
def llm() -> RecordingLLM:
    return RecordingLLM()
