"""``testing.InMemoryBackend``: its own rules (the shared behaviour is in tests/contract).

Deterministic: nothing is processed until asked, and what is asked is done before the call
returns (there is no worker). Nothing is written to disk.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from memobase_integrations import LLMError, Memobase
from memobase_integrations.models import ChatBlob, OpenAICompatibleMessage
from memobase_integrations.settings import FlushPolicy
from memobase_integrations.testing import InMemoryBackend

ANN = [{"role": "user", "content": "My name is Ann and I work as a nurse."}]


@pytest.fixture
def backend(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[InMemoryBackend]:
    monkeypatch.chdir(tmp_path)  # where a default store or outbox would land
    made = InMemoryBackend()
    yield made
    made.close(0)
    assert os.listdir(tmp_path) == []


def test_record_only_buffers_and_flush_without_waiting_still_processes_inline(
    backend: InMemoryBackend,
) -> None:
    user = Memobase(backend).user("ann")
    user.record(ANN)
    assert backend.stand_in.calls == 0
    assert user.status().pending_turns == 1
    assert user.flush(wait=False) == []
    # no wait, no polling: it was done before flush() returned
    assert user.status().pending_turns == 0
    assert {p.sub_topic for p in user.profile()} >= {"name", "title"}


def test_insert_over_the_threshold_is_processed_before_it_returns() -> None:
    backend = InMemoryBackend(policy=FlushPolicy(buffer_token_threshold=1, idle_flush_seconds=None))
    try:
        user = Memobase(backend).user("ann")
        blob = ChatBlob(messages=[OpenAICompatibleMessage(role="user", content=ANN[0]["content"])])
        user.insert(blob)
        assert user.status().pending_turns == 0 and user.profile()
    finally:
        backend.close(0)


def test_a_stand_in_fault_fails_the_flush_and_the_next_flush_retries_at_once(
    backend: InMemoryBackend,
) -> None:
    user = Memobase(backend).user("ann")
    user.record(ANN, turn_id="t1")
    backend.stand_in.fail_next("entry_summary", "http500", times=None)  # the client retries
    with pytest.raises(LLMError):
        user.flush()
    backend.stand_in.clear_faults()
    [failure] = user.failures()
    assert failure.turn_id == "t1" and not failure.parked and failure.next_attempt_at
    user.flush()  # no waiting out the backoff
    assert user.failures() == [] and user.profile()


def test_backends_are_isolated_from_each_other(backend: InMemoryBackend) -> None:
    Memobase(backend).user("ann").record(ANN)
    other = InMemoryBackend()
    try:
        assert other.status().pending_turns == 0
    finally:
        other.close(0)
