"""Every pipeline step x every fault of the stand-in: a failed flush writes nothing, keeps the
turn (buffered, visibly failed) and a later good answer processes it exactly once.

SQLite and PostgreSQL. The scenario makes every step run in one flush:

* a first turn is processed, so there is an event and a profile to keep intact;
* ``interest`` then holds 16 sub-topics (over ``max_profile_subtopics``): organize runs;
* ``psychological::goals`` holds a long memo the new turn appends to: the re-summary runs;
* ``work::title`` and ``contact_info::city`` change: the merge answer has UPDATE lines;
* event tags are configured and the turn mentions a mood and a place: tagging runs;
* embeddings are on: one embedding call per flush.

Where a fault is injected at a step, every call of that step fails the same way until the
test clears it, so no retry inside the flush can mask it.
"""

from __future__ import annotations

import json
import uuid
from typing import Any, get_args

import httpx
import pytest
from embedded.emb_support import MANUAL, BackendFactory, Tap, tapped_settings, turn

from memobase_integrations.backends.embedded import EmbeddedBackend
from memobase_integrations.engine.store import FAILED
from memobase_integrations.errors import LLMError
from memobase_integrations.messages import Message, turn_to_blobs
from memobase_integrations.testing import FaultKind, StandInLLM
from memobase_integrations.values import ContextOptions, ProfileOptions

STEPS = [
    "entry_summary",
    "extract_profile",
    "merge_profile",
    "organize_profile",
    "summary_profile",
    "event_tagging",
    "embedding",
]
KINDS: list[str] = list(get_args(FaultKind))

CONFIG = "event_tags:\n  - name: emotion\n  - name: location\n"
HOBBIES = [
    "chess",
    "pottery",
    "gardening",
    "birdwatching",
    "knitting",
    "origami",
    "baking",
    "fishing",
    "surfing",
    "climbing",
    "painting",
    "juggling",
    "archery",
    "fencing",
    "rowing",
    "cycling",
]
MUSEUMS = [
    ("science", "Paris"),
    ("art", "Rome"),
    ("history", "Berlin"),
    ("design", "Vienna"),
    ("music", "Oslo"),
    ("film", "Madrid"),
    ("toy", "Prague"),
    ("war", "Warsaw"),
    ("sea", "Lisbon"),
    ("space", "Houston"),
    ("train", "York"),
    ("glass", "Venice"),
]
LONG_GOALS = "; ".join(
    f"wants to visit the {kind} museum in {city} one day" for kind, city in MUSEUMS
)
FIRST = turn("My name is Gus.", "Hi Gus!", "2025/01/14")
TURN = turn(
    "I want to learn the violin. I work as a pilot now. I moved to Lisbon last week and "
    "I'm so happy.",
    "Congratulations!",
    "2025/02/01",
)

Snapshot = list[tuple[str, str, str, str, int | None]]


def snapshot(backend: EmbeddedBackend, user: uuid.UUID) -> Snapshot:
    return sorted(
        (str(p.id), p.topic, p.sub_topic, p.content, p.attributes.update_hits)
        for p in backend.profile(user, ProfileOptions())
    )


def prepared(
    make_backend: BackendFactory,
) -> tuple[EmbeddedBackend, StandInLLM, uuid.UUID, Tap]:
    settings, tap, standin = tapped_settings(enable_embeddings=True, embedding_dim=32)
    # No worker: a failed turn's retry is due after retry_base_seconds, and a worker that took
    # it before the test's own flush() (a loaded machine) would leave that flush nothing.
    backend = make_backend(llm=settings, policy=MANUAL, start_worker=False)
    backend.set_profile_config(CONFIG)
    user = uuid.uuid4()
    backend.record(user, turn_to_blobs(FIRST), "first")
    backend.flush(user)
    for i, hobby in enumerate(HOBBIES):
        backend.add_profile(
            user, f"enjoys {hobby} [mention 2025/01/{i + 1:02d}]", "interest", hobby
        )
    backend.add_profile(user, LONG_GOALS, "psychological", "goals")
    backend.add_profile(user, "nurse [mention 2025/01/02]", "work", "title")
    backend.add_profile(user, "Porto [mention 2025/01/02]", "contact_info", "city")
    standin.reset()
    return backend, standin, user, tap


def reached(standin: StandInLLM, step: str) -> bool:
    """The faulted step was really called, and its fault really triggered."""
    calls = standin.embedding_calls if step == "embedding" else standin.calls_by_step[step]
    return calls >= 1 and standin.faults_triggered >= 1


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("step", STEPS)
def test_a_failed_step_writes_nothing_and_the_turn_is_processed_once_later(
    make_backend: BackendFactory, step: str, kind: str
) -> None:
    backend, standin, user, _ = prepared(make_backend)
    profile_before = snapshot(backend, user)
    events_before = backend.events(user)
    assert len(events_before) == 1 and len(profile_before) == 20

    backend.record(user, turn_to_blobs(TURN), "turn")
    standin.fail_next(step, kind, times=None)  # type: ignore[arg-type]
    with pytest.raises(LLMError) as info:
        backend.flush(user)
    assert reached(standin, step), standin.stats()
    assert step in str(info.value)

    # Nothing written: the profile (every row, every memo) and the events are as they were.
    assert snapshot(backend, user) == profile_before
    assert backend.events(user) == events_before
    # The turn is still buffered, visibly failed, with the step in the error.
    status = backend.status(user).users[0]
    assert (status.pending_turns, status.failed) == (1, 1)
    assert status.last_error is not None and step in status.last_error
    exported = backend.export_user(user)
    assert [b["status"] for b in exported["blobs"]] == [FAILED]
    assert [f["turn_ids"] for f in exported["flushes"]] == [["first"]]

    # A good answer later: the turn is processed, exactly once.
    standin.clear_faults()
    (result,) = backend.flush(user)
    assert result.event_id is not None
    assert backend.flush(user) == []
    assert backend.status(user).pending_turns == 0
    flushes = [f["turn_ids"] for f in backend.export_user(user)["flushes"]]
    assert flushes == [["first"], ["turn"]]
    events = backend.events(user)
    assert len(events) == 2 and events[1] == events_before[0]
    slots = {(p.topic, p.sub_topic): p.content for p in backend.profile(user, ProfileOptions())}
    assert slots[("work", "title")].startswith("pilot")
    assert slots[("contact_info", "city")].startswith("Lisbon")
    assert len([t for t, _ in slots if t == "interest"]) <= 8  # organized
    tags = {t.tag: t.value for t in events[0].event_data.event_tags or []}
    assert tags == {"emotion": "happy", "location": "Lisbon"}


@pytest.mark.parametrize("kind", KINDS)
def test_a_failing_profile_picker_falls_back_to_all_profiles_and_writes_nothing(
    make_backend: BackendFactory, kind: str
) -> None:
    """The one tolerated failure: the optional LLM profile filter runs on the read path, where
    a failure must not fail the read. Any fault gives the unfiltered profile (as the server
    does), and nothing is written or consumed."""
    backend, standin, user, _ = prepared(make_backend)
    backend.record(user, turn_to_blobs(TURN), "turn")
    chats = [Message("user", "Do I still enjoy chess?")]
    unfiltered = backend.profile(user, ProfileOptions(topk=50))
    before = snapshot(backend, user)

    standin.fail_next("pick_related_profiles", kind, times=None)  # type: ignore[arg-type]
    picked = backend.profile(user, ProfileOptions(chats=chats, topk=50))
    context = backend.context(
        user, ContextOptions(chats=chats, full_profile_and_only_search_event=False)
    )
    assert standin.calls_by_step["pick_related_profiles"] == 2 and standin.faults_triggered == 2
    assert [p.id for p in picked] == [p.id for p in unfiltered]
    assert "- interest::chess: enjoys chess" in context
    assert snapshot(backend, user) == before
    assert backend.status(user).users[0].pending_turns == 1  # the buffered turn is untouched

    standin.clear_faults()  # the picker working narrows the list
    narrowed = backend.profile(user, ProfileOptions(chats=chats, topk=50))
    assert 0 < len(narrowed) < len(unfiltered)


def unfinished(tap: Tap, finish_reason: str) -> Any:
    """The stand-in's real, complete-looking answer, but reported as not finished."""

    def inject(request: httpx.Request) -> httpx.Response:
        body = json.loads(tap.inner.handle_request(request).read())
        body["choices"][0]["finish_reason"] = finish_reason
        return httpx.Response(200, json=body)

    return inject


@pytest.mark.parametrize("finish_reason", ["length", "content_filter"])
@pytest.mark.parametrize("step", ["entry_summary", "summary_profile"])
def test_an_answer_the_endpoint_did_not_finish_is_a_failed_flush(
    make_backend: BackendFactory, step: str, finish_reason: str
) -> None:
    """A cut answer can look complete: ``finish_reason`` is what says it is not."""
    backend, _, user, tap = prepared(make_backend)
    before = snapshot(backend, user)
    backend.record(user, turn_to_blobs(TURN), "turn")
    tap.faults[step] = unfinished(tap, finish_reason)
    with pytest.raises(LLMError, match=f"finish_reason={finish_reason}"):
        backend.flush(user)
    assert any(c.step == step for c in tap.calls)
    assert snapshot(backend, user) == before and len(backend.events(user)) == 1
    assert backend.status(user).users[0].failed == 1
    tap.faults.clear()
    assert len(backend.flush(user)) == 1
    assert [f["turn_ids"] for f in backend.export_user(user)["flushes"]] == [["first"], ["turn"]]
