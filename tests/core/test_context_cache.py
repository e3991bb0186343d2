"""The facade's context cache: warm reads never touch the backend on the request path, and a
finished processing run refreshes the cache on the worker's thread, not the caller's."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from support import wait_until

from memobase_integrations import FlushPolicy, Memobase
from memobase_integrations.backends.embedded import EmbeddedBackend
from memobase_integrations.testing import StandInLLM
from memobase_integrations.values import ContextOptions


@pytest.fixture
def memobase(tmp_path: Path) -> Iterator[Memobase]:
    policy = FlushPolicy(
        buffer_token_threshold=20, idle_flush_seconds=None, worker_poll_seconds=0.05
    )
    mb = Memobase.embedded(
        f"sqlite:///{tmp_path / 'memobase.db'}", llm=StandInLLM().settings(), policy=policy
    )
    yield mb
    mb.close()


def _count_context_calls(mb: Memobase, monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Thread ids of every backend.context call."""
    threads: list[int] = []
    real = mb.backend.context

    def counted(user_id: Any, options: ContextOptions) -> str:
        threads.append(threading.get_ident())
        return real(user_id, options)

    monkeypatch.setattr(mb.backend, "context", counted)
    return threads


def test_warm_reads_are_served_from_the_cache(
    memobase: Memobase, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls = _count_context_calls(memobase, monkeypatch)
    user = memobase.user("alice")
    first = user.context(max_token_size=300)
    assert user.context(max_token_size=300) == first
    assert len(calls) == 1
    user.context(max_token_size=200)  # another variant is another read
    assert len(calls) == 2


def test_processing_refreshes_the_cache_off_the_request_thread(
    memobase: Memobase, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls = _count_context_calls(memobase, monkeypatch)
    me = threading.get_ident()
    user = memobase.user("gus")
    before = user.context(max_token_size=300)
    assert "Gus" not in before

    user.record(
        [
            {"role": "user", "content": "My name is Gus and I work as a nurse in Lisbon."},
            {"role": "assistant", "content": "Nice to meet you, Gus!"},
        ]
    )  # over the 20-token threshold: the background worker processes it
    key = ContextOptions(max_token_size=300).cache_key()
    # The worker re-reads the cached variant and stores it (peeking at the cache avoids a
    # race with the worker's store, which a call counter alone would have).
    wait_until(lambda: "Gus" in (memobase._cache.get(user.id, key) or ""), "the refreshed context")

    after = user.context(max_token_size=300)
    assert "basic_info::name: Gus" in after
    assert calls[0] == me  # the cold read was the caller's own
    assert all(t != me for t in calls[1:]), (me, calls)  # every later read was the worker's


def test_a_profile_edit_through_the_facade_drops_the_cached_context(
    memobase: Memobase, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls = _count_context_calls(memobase, monkeypatch)
    user = memobase.user("carol")
    user.context()
    user.add_profile("Carol", "basic_info", "name")
    assert "basic_info::name: Carol" in user.context()
    assert len(calls) == 2


def test_cached_context_peeks_without_io(
    memobase: Memobase, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls = _count_context_calls(memobase, monkeypatch)
    user = memobase.user("dora")
    assert user.cached_context(max_token_size=300) is None
    value = user.context(max_token_size=300)
    assert user.cached_context(max_token_size=300) == value
    assert (
        user.cached_context(max_token_size=300, chats=[{"role": "user", "content": "hi"}]) is None
    )
    user.add_profile("Dora", "basic_info", "name")  # a write through the facade drops it
    assert user.cached_context(max_token_size=300) is None
    assert len(calls) == 1


@pytest.fixture
def quiet(tmp_path: Path) -> Iterator[Memobase]:
    """No background worker: processing happens only in the test's explicit flush."""
    mb = Memobase.embedded(
        f"sqlite:///{tmp_path / 'quiet.db'}",
        llm=StandInLLM().settings(),
        policy=FlushPolicy(idle_flush_seconds=None),
        start_worker=False,
    )
    yield mb
    mb.close()


def _hold_context(mb: Memobase, monkeypatch: pytest.MonkeyPatch) -> threading.Event:
    """Make every backend.context call wait until the returned event is set."""
    gate = threading.Event()
    real = mb.backend.context

    def held(user_id: Any, options: ContextOptions) -> str:
        gate.wait(60)
        return real(user_id, options)

    monkeypatch.setattr(mb.backend, "context", held)
    return gate


GUS = [
    {"role": "user", "content": "My name is Gus and I work as a nurse in Lisbon."},
    {"role": "assistant", "content": "Nice to meet you, Gus!"},
]


def test_flush_returns_before_the_cache_refresh_finishes(
    quiet: Memobase, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The refresh after processing reads the backend; it must not run on the caller's
    thread (the flush would wait for it, and so would a request holding that thread)."""
    user = quiet.user("gus")
    key = ContextOptions(max_token_size=300).cache_key()
    user.context(max_token_size=300)
    user.record(GUS)
    gate = _hold_context(quiet, monkeypatch)
    opener = threading.Timer(30, gate.set)  # only a safety net if the refresh blocks us
    opener.start()
    try:
        user.flush()
        assert not gate.is_set(), "flush waited for the refresh"
    finally:
        gate.set()
        opener.cancel()
    wait_until(lambda: "Gus" in (quiet._cache.get(user.id, key) or ""), "the refreshed context")


async def test_aflush_returns_before_the_cache_refresh_finishes(
    quiet: Memobase, monkeypatch: pytest.MonkeyPatch
) -> None:
    user = quiet.user("gus")
    key = ContextOptions(max_token_size=300).cache_key()
    await user.acontext(max_token_size=300)
    await user.arecord(GUS)
    gate = _hold_context(quiet, monkeypatch)
    opener = threading.Timer(30, gate.set)
    opener.start()
    try:
        await user.aflush()
        assert not gate.is_set(), "aflush waited for the refresh"
    finally:
        gate.set()
        opener.cancel()
    await asyncio.to_thread(
        wait_until,
        lambda: "Gus" in (quiet._cache.get(user.id, key) or ""),
        "the refreshed context",
    )


def test_a_flush_makes_the_next_read_fresh_even_before_listeners_run(
    quiet: Memobase, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Listeners may hear of processing later, on another thread; the caller's own next
    read after flush() must still not come from before the flush."""
    user = quiet.user("gus")
    user.context(max_token_size=300)
    backend = quiet.backend
    assert isinstance(backend, EmbeddedBackend)
    monkeypatch.setattr(backend.processor, "notify", lambda *args: None)  # no listener
    user.record(GUS)
    user.flush()
    assert "basic_info::name: Gus" in user.context(max_token_size=300)
