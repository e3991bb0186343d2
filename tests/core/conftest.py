"""Fixtures of the core tests."""

from __future__ import annotations

import os
from pathlib import Path

import pytest


@pytest.fixture
def clean_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A scratch working directory and no MEMOBASE_* / OPENAI_* variables: what a default
    (``./memobase.db``, ``./memobase-outbox.db``, the LLM from the environment) would pick
    lands here, and nothing of the machine's setup leaks in."""
    monkeypatch.chdir(tmp_path)
    for name in list(os.environ):
        if name.startswith(("MEMOBASE_", "OPENAI_")):
            monkeypatch.delenv(name)
    return tmp_path
