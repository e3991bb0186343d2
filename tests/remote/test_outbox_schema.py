"""The outbox file's schema version (``PRAGMA user_version``) and the shared backoff.

``data/outbox-v0.sqlite`` was written by the code of commit 363d919 (before versions): three
recorded turns of two users (``ann-1``, ``ann-2``, ``bob-1``) that could not be delivered
(the server was down), under the key ``sk-proj-outbox-test`` at ``http://memobase.test``.
"""

from __future__ import annotations

import shutil
import sqlite3
from pathlib import Path
from uuid import UUID, uuid4

import httpx
import pytest
from support import wait_until

from memobase_integrations import errors
from memobase_integrations.backends.outbox_store import (
    SCHEMA_VERSION,
    OutboxStore,
    OutboxVersionError,
)
from memobase_integrations.backends.remote import RemoteBackend

from .test_outbox import Env, env, policy, processed_keys, turn

__all__ = ["env"]  # the fixture, re-exported for pytest

V0 = Path(__file__).parent / "data" / "outbox-v0.sqlite"
ANN = UUID("6f1c2a8e-6b7e-4c7a-9a55-3f1d1e0b6a01")
BOB = UUID("0b2f4a9c-1d3e-4f5a-8b6c-7d8e9f0a1b02")


def user_version(path: Path) -> int:
    with sqlite3.connect(path) as conn:
        return int(conn.execute("PRAGMA user_version").fetchone()[0])


def test_a_new_outbox_file_carries_the_schema_version(tmp_path: Path) -> None:
    store = OutboxStore(tmp_path / "o.db")
    store.close()
    assert user_version(tmp_path / "o.db") == SCHEMA_VERSION == 1


def test_an_unversioned_file_of_the_previous_release_is_migrated_and_delivered(env: Env) -> None:
    shutil.copy(V0, env.path)
    assert user_version(env.path) == 0
    with sqlite3.connect(env.path) as conn:
        rows = conn.execute("SELECT turn_id, state FROM outbox_turns ORDER BY seq").fetchall()
    assert rows == [("ann-1", "pending"), ("ann-2", "pending"), ("bob-1", "pending")]
    backend = env.backend()  # the worker may start delivering the old rows at once
    assert user_version(env.path) == SCHEMA_VERSION
    backend.flush(ANN)
    backend.flush(BOB)
    assert backend.status().pending_turns == 0
    assert sorted(processed_keys(env, ANN)) == [("ann-1", 0), ("ann-2", 0)]
    assert processed_keys(env, BOB) == [("bob-1", 0)]
    # recording on the migrated file works, and a replayed old turn id is still known
    assert backend.record(ANN, turn("I moved to Bergen."), "ann-3").duplicate is False
    assert backend.record(ANN, turn("My name is Ann."), "ann-1").duplicate is True


def _bytes(path: Path) -> bytes:
    return b"".join(
        Path(str(path) + s).read_bytes() for s in ("", "-wal") if Path(str(path) + s).exists()
    )


def test_a_file_of_a_newer_version_is_refused_with_a_typed_error_and_left_alone(
    tmp_path: Path,
) -> None:
    path = tmp_path / "o.db"
    shutil.copy(V0, path)
    with sqlite3.connect(path) as conn:
        conn.execute("PRAGMA user_version=7")
    before = _bytes(path)
    with pytest.raises(OutboxVersionError, match=r"schema version 7.*up to 1") as info:
        OutboxStore(path)
    assert isinstance(info.value, errors.ConfigurationError)
    assert "upgrade memobase-integrations" in str(info.value)
    with pytest.raises(OutboxVersionError):
        RemoteBackend("http://memobase.test", "sk-proj-x", outbox_path=path)
    assert _bytes(path) == before


def test_a_sqlite_file_that_is_not_an_outbox_is_refused_and_left_alone(tmp_path: Path) -> None:
    path = tmp_path / "app.db"
    with sqlite3.connect(path) as conn:
        conn.execute("CREATE TABLE orders (id INTEGER PRIMARY KEY)")
    before = path.read_bytes()
    with pytest.raises(OutboxVersionError, match=r"not a Memobase outbox.*orders"):
        OutboxStore(path)
    assert path.read_bytes() == before


def test_outbox_retry_waits_never_exceed_retry_max_seconds(tmp_path: Path) -> None:
    """The outbox's retry delay is the shared backoff: never past ``retry_max_seconds``."""

    def down(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("down", request=request)

    backend = RemoteBackend(
        "http://memobase.test",
        "sk-proj-x",
        outbox_path=tmp_path / "o.db",
        transport=httpx.MockTransport(down),
        max_retries=0,
        policy=policy(retry_base_seconds=100.0, retry_max_seconds=100.0),
    )
    try:
        user = uuid4()
        backend.record(user, turn("hello"), "t1")
        wait_until(lambda: bool(backend.failures(user)), "the first failed attempt")
        with sqlite3.connect(tmp_path / "o.db") as conn:
            [(delay,)] = conn.execute(
                "SELECT next_attempt_at - updated_at FROM outbox_turns WHERE turn_id='t1'"
            ).fetchall()
        # computed from one clock reading apart from the failure's own commit: the capped
        # value (the jitter comes before the cap), never past it
        assert 100.0 - 1.0 <= delay <= 100.0
    finally:
        backend.close(timeout=1)
