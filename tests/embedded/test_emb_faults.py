"""LLM faults never crash processing and never lose data (SQLite and PostgreSQL).

Each case: a first conversation is processed; a second one (a job change) meets a fault at
one step. The flush raises ``LLMError``; nothing is written (the profile is unchanged, no
event); the turn stays buffered as ``failed`` with the error text; once the LLM behaves again
the same turn is processed and the job is updated.
"""

from __future__ import annotations

import time
import uuid
from datetime import UTC, datetime

import pytest
import sqlalchemy as sa
from embedded.emb_support import MANUAL, BackendFactory, fault, manual, tapped_settings, turn

from memobase_integrations.engine import schema
from memobase_integrations.engine.store import FAILED
from memobase_integrations.errors import ConfigurationError, LLMError
from memobase_integrations.messages import turn_to_blobs
from memobase_integrations.settings import LLMSettings
from memobase_integrations.values import ProfileOptions

FIRST = turn("My name is Gus and I work as a software engineer.", "Hi Gus!", "2025/01/14")
CHANGE = turn("I got a new job as a chef at Luigi's.", "Congrats!", "2025/02/01")


def snapshot(backend: object, user: uuid.UUID) -> list[tuple[str, str, str, int | None]]:
    rows = backend.profile(user, ProfileOptions())  # type: ignore[attr-defined]
    return sorted((p.topic, p.sub_topic, p.content, p.attributes.update_hits) for p in rows)


# (step, stand-in fault kind) - each chosen where that fault is detectable. A "null" kind
# is injected by the test's tap: a 200 answer whose message content is null.
CASES = [
    ("entry_summary", "timeout"),
    ("merge_profile", "http500"),
    ("extract_profile", "http429"),
    ("extract_profile", "empty"),
    ("merge_profile", "empty"),
    ("entry_summary", "garbage"),
    ("extract_profile", "garbage"),
    ("merge_profile", "garbage"),
    ("extract_profile", "half_formatted"),
    ("entry_summary", "invalid_json"),
    ("entry_summary", "null"),
]


@pytest.mark.parametrize(("step", "kind"), CASES, ids=[f"{s}-{k}" for s, k in CASES])
def test_fault_keeps_the_turn_and_the_profile(
    make_backend: BackendFactory, step: str, kind: str
) -> None:
    settings, tap, standin = tapped_settings()
    backend = make_backend(llm=settings, policy=MANUAL)
    user = uuid.uuid4()
    backend.record(user, turn_to_blobs(FIRST), "first")
    backend.flush(user)
    before = snapshot(backend, user)
    events_before = backend.events(user)
    assert any(sub == "title" and "engineer" in content for _, sub, content, _ in before)

    receipt = backend.record(user, turn_to_blobs(CHANGE), "change")
    if kind == "null":
        tap.faults[step] = fault("null")
    else:
        standin.fail_next(step, kind, times=None)  # type: ignore[arg-type]
    with pytest.raises(LLMError) as info:
        backend.flush(user)
    assert step in str(info.value)

    # Nothing written, nothing lost.
    assert snapshot(backend, user) == before
    assert backend.events(user) == events_before
    status = backend.status(user).users[0]
    assert (status.pending_turns, status.failed) == (1, 1)
    assert status.last_error and step in status.last_error
    assert (
        backend.get_blob(user, receipt.blob_ids[0]).blob_data["messages"][0]["content"]
        == (CHANGE[0]["content"])
    )
    exported = backend.export_user(user)
    assert [b["status"] for b in exported["blobs"]] == [FAILED]
    assert [f["turn_ids"] for f in exported["flushes"]] == [["first"]]

    # The LLM recovers: the same turn is processed (an explicit flush retries it at once).
    standin.clear_faults()
    tap.faults.clear()
    (result,) = backend.flush(user)
    after = {(t, s): c for t, s, c, _ in snapshot(backend, user)}
    assert "chef" in after[("work", "title")]
    assert result.update_profiles
    assert backend.status(user).pending_turns == 0
    assert [f["turn_ids"] for f in backend.export_user(user)["flushes"]] == [["first"], ["change"]]


def test_worker_retries_failed_turns_with_backoff(make_backend: BackendFactory) -> None:
    settings, _, standin = tapped_settings()
    policy = MANUAL.model_copy(
        update={"buffer_token_threshold": 1, "retry_base_seconds": 0.2, "retry_max_seconds": 0.4}
    )
    backend = make_backend(llm=settings, policy=policy)
    user = uuid.uuid4()
    standin.fail_next("entry_summary", "http500", times=2)
    backend.record(user, turn_to_blobs(FIRST), "first")
    deadline = time.monotonic() + 20
    while backend.status(user).pending_turns and time.monotonic() < deadline:
        time.sleep(0.05)
    assert backend.status(user).pending_turns == 0
    assert standin.calls_by_step["entry_summary"] == 3  # two failures, then success
    assert any(sub == "title" for _, sub, _, _ in snapshot(backend, user))


def test_max_attempts_parks_the_turn_until_retry_failed(make_backend: BackendFactory) -> None:
    settings, _, standin = tapped_settings()
    policy = manual(max_attempts=1)
    backend = make_backend(llm=settings, policy=policy)
    user = uuid.uuid4()
    backend.record(user, turn_to_blobs(FIRST), "first")
    standin.fail_next("entry_summary", "http500")
    with pytest.raises(LLMError):
        backend.flush(user)
    assert backend.flush(user) == []  # parked: a plain flush does not take it
    assert backend.status(user).users[0].failed == 1
    assert backend.retry_failed(user) == 1
    # retry_failed also wakes the worker, which may take the turn first; flush then waits
    # for it and processes what is left, so either way the turn is processed exactly once.
    backend.flush(user)
    assert backend.status(user).pending_turns == 0
    assert [f["turn_ids"] for f in backend.export_user(user)["flushes"]] == [["first"]]


def test_discard_failed_is_the_only_way_to_drop_a_turn(make_backend: BackendFactory) -> None:
    settings, _, standin = tapped_settings()
    backend = make_backend(llm=settings, policy=MANUAL)
    user = uuid.uuid4()
    backend.record(user, turn_to_blobs(FIRST), "first")
    standin.fail_next("entry_summary", "timeout")
    with pytest.raises(LLMError):
        backend.flush(user)
    assert backend.discard_failed(user) == 1
    assert backend.status(user).pending_turns == 0
    assert backend.flush(user) == [] and snapshot(backend, user) == []


def test_without_an_llm_recording_works_and_processing_waits(
    make_backend: BackendFactory,
) -> None:
    backend = make_backend(llm=LLMSettings(), policy=MANUAL)
    user = uuid.uuid4()
    backend.record(user, turn_to_blobs(FIRST), "first")
    with pytest.raises(ConfigurationError, match="OPENAI_API_KEY") as info:
        backend.flush(user)
    assert "OPENAI_BASE_URL" in str(info.value) and "StandInLLM" in str(info.value)
    status = backend.status(user).users[0]
    assert status.pending_turns == 1 and status.failed == 0  # still buffered, not failed
    assert status.last_error and "OPENAI_API_KEY" in status.last_error


def test_a_failed_flush_waits_at_most_retry_max_seconds(make_backend: BackendFactory) -> None:
    """The retry delay is the shared backoff (``queue.backoff``): its jitter never pushes
    the wait past ``retry_max_seconds`` (the old formula added up to 10% after capping)."""
    settings, _, standin = tapped_settings()
    backend = make_backend(
        llm=settings, policy=manual(retry_base_seconds=100.0, retry_max_seconds=100.0)
    )
    user = uuid.uuid4()
    backend.record(user, turn_to_blobs(FIRST), "first")
    standin.fail_next("entry_summary", "http500")
    with pytest.raises(LLMError):
        backend.flush(user)
    after = datetime.now(UTC)
    b = schema.buffer.c
    with backend.store.engine.connect() as conn:
        rows = conn.execute(
            sa.select(b.next_attempt_at, b.updated_at).where(b.user_id == user)
        ).all()
    assert rows
    for retry_at, failed_at in rows:
        assert failed_at <= after
        delay = (retry_at - failed_at).total_seconds()
        assert 100.0 - 1.0 <= delay <= 100.0  # the capped value, jitter never past it
