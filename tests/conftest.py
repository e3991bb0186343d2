"""Shared fixtures. Tests touch no network except loopback."""

from __future__ import annotations

import os

import pytest

POSTGRES_URL = os.environ.get("MEMOBASE_TEST_POSTGRES_URL")


@pytest.fixture
def postgres_url() -> str:
    """The PostgreSQL URL CI provides; tests that need it skip visibly when it is unset."""
    if not POSTGRES_URL:
        pytest.skip("MEMOBASE_TEST_POSTGRES_URL is not set: PostgreSQL tests need a real server")
    return POSTGRES_URL
