"""``testing.InMemoryBackend``: its own rules (the shared behaviour is in tests/contract).

Deterministic: nothing is processed until asked, and what is asked is done before the call
returns (there is no worker). Nothing is written to disk.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from memobase_integrations import LLMError, Memobase, StoreError
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


#: Readers hammer one in-memory backend (through a facade, and directly) while the main
#: thread closes it, over and over. Closing the shared SQLite connection under a running
#: statement killed the interpreter (SIGSEGV) within the first 20 rounds; it runs in a child
#: process so that such a crash fails this test instead of ending the test session.
CLOSE_WHILE_READING = """
import json, threading
from memobase_integrations import ContextOptions, Memobase
from memobase_integrations.testing import InMemoryBackend

seen = set()
for _ in range(50):
    backend = InMemoryBackend()
    user = Memobase(backend).user("ann")
    user.add_profile("Ann", "basic_info", "name")
    started = threading.Barrier(3)

    def read():
        started.wait()
        while True:
            try:
                user.context()
                backend.context(user.id, ContextOptions(max_token_size=100))
            except Exception as exc:  # what a read after close raises, reported below
                seen.add(type(exc).__name__)
                return

    readers = [threading.Thread(target=read) for _ in range(2)]
    for thread in readers:
        thread.start()
    started.wait()
    backend.close(0)
    for thread in readers:
        thread.join()
print(json.dumps(sorted(seen)))
"""


def test_closing_while_other_threads_read_is_safe_and_later_reads_say_it_was_closed() -> None:
    out = subprocess.run(
        [sys.executable, "-c", CLOSE_WHILE_READING],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert out.returncode == 0, out.stderr[-2000:]
    # Every read that lost the race was told so, in the package's own error type (not a
    # driver error, and not an answer from an empty database).
    assert json.loads(out.stdout) == ["StoreError"]


def test_a_closed_in_memory_backend_refuses_reads_with_a_message(
    backend: InMemoryBackend,
) -> None:
    user = Memobase(backend).user("ann")
    user.add_profile("Ann", "basic_info", "name")
    backend.close(0)
    with pytest.raises(StoreError, match=r"was closed .* Build a new backend"):
        user.profile()
