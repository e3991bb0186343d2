"""EmbeddedBackend behaviour: the hot path, the worker's flush policy, close, listeners,
unsupported blob types, profile config, deletes during a flush, async twins, search."""

from __future__ import annotations

import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Sequence
from pathlib import Path

import pytest
from embedded.emb_support import MANUAL, BackendFactory, DbTarget, manual, tapped_settings, turn
from support import wait_until

from memobase_integrations.backends.base import Backend
from memobase_integrations.errors import NotFoundError, UnsupportedError, ValidationError
from memobase_integrations.messages import Message, turn_to_blobs
from memobase_integrations.models import BlobType, ChatModalResponse, DocBlob, ImageBlob
from memobase_integrations.values import ContextOptions, ProfileOptions

CHILD = Path(__file__).with_name("emb_child.py")
GUS = turn("My name is Gus and I work as a software engineer.", "Hi Gus!")


def test_record_never_calls_the_llm_on_the_callers_thread(make_backend: BackendFactory) -> None:
    """The LLM transport fails if called from the recording thread; the worker still
    processes everything on its own thread."""
    settings, tap, standin = tapped_settings()
    # Over-threshold batches go while recording; the last turns (under the threshold,
    # however the batches fell) go by the idle flush, also on the worker's thread.
    policy = manual(buffer_token_threshold=40, idle_flush_seconds=0.3)
    backend = make_backend(llm=settings, policy=policy)
    tap.forbidden_threads.add(threading.get_ident())
    user = uuid.uuid4()
    for i in range(12):
        receipt = backend.record(user, turn_to_blobs(turn(f"I love hiking trip {i}.")), f"t{i}")
        assert not receipt.duplicate
    wait_until(lambda: backend.status(user).pending_turns == 0, "processing")
    assert tap.violations == []
    assert standin.calls > 0 and threading.get_ident() not in {c.thread for c in tap.calls}


async def test_arecord_stays_off_the_event_loop_thread(make_backend: BackendFactory) -> None:
    settings, tap, _ = tapped_settings()
    backend = make_backend(llm=settings, policy=MANUAL)
    tap.forbidden_threads.add(threading.get_ident())
    user = uuid.uuid4()
    receipt = await backend.arecord(user, turn_to_blobs(GUS), "t1")
    assert (await backend.arecord(user, turn_to_blobs(GUS), "t1")).duplicate
    assert receipt.blob_ids and tap.calls == []
    results = await backend.aflush(user)  # runs in a worker thread, not on the loop
    assert len(results) == 1 and tap.violations == []
    assert "Gus" in await backend.acontext(user, ContextOptions())
    assert (await backend.astatus(user)).pending_turns == 0
    assert [
        p.sub_topic for p in await backend.aprofile(user, ProfileOptions(only_topics=["work"]))
    ] == ["title"]


def test_worker_flushes_over_threshold_and_notifies_listeners(
    make_backend: BackendFactory,
) -> None:
    settings, _, _ = tapped_settings()
    backend = make_backend(llm=settings, policy=manual(buffer_token_threshold=30))
    seen: list[tuple[uuid.UUID, Sequence[ChatModalResponse]]] = []
    backend.add_listener(lambda user, responses: seen.append((user, responses)))

    def broken(user: uuid.UUID, responses: Sequence[ChatModalResponse]) -> None:
        raise RuntimeError("a broken listener harms nobody")

    backend.add_listener(broken)
    user = uuid.uuid4()
    backend.record(user, turn_to_blobs(turn("Hi.")), "small")  # under the threshold
    time.sleep(0.3)
    assert backend.status(user).pending_turns == 1 and seen == []
    backend.record(user, turn_to_blobs(GUS), "big")
    wait_until(lambda: bool(seen), "the listener")
    assert seen[0][0] == user and seen[0][1][0].add_profiles
    assert backend.status(user).pending_turns == 0


def test_idle_flush(make_backend: BackendFactory) -> None:
    settings, _, _ = tapped_settings()
    backend = make_backend(llm=settings, policy=manual(idle_flush_seconds=0.3))
    user = uuid.uuid4()
    backend.record(user, turn_to_blobs(GUS), "t")
    assert backend.status(user).pending_turns == 1
    wait_until(lambda: backend.status(user).pending_turns == 0, "processing")
    assert backend.status(user).users[0].last_flush_at is not None


def test_flush_wait_false_is_done_by_the_worker(make_backend: BackendFactory) -> None:
    settings, _, _ = tapped_settings()
    backend = make_backend(llm=settings, policy=MANUAL)
    user = uuid.uuid4()
    backend.record(user, turn_to_blobs(GUS), "t")
    assert backend.flush(user, wait=False) == []
    wait_until(lambda: backend.status(user).pending_turns == 0, "processing")


def test_close_drains_the_buffer_within_its_budget(make_backend: BackendFactory) -> None:
    settings, _, _ = tapped_settings()
    policy = manual(flush_on_close=True)
    backend = make_backend(llm=settings, policy=policy)
    users = [uuid.uuid4() for _ in range(3)]
    for user in users:
        backend.record(user, turn_to_blobs(GUS), "t")
    backend.close(timeout=30)
    reopened = make_backend(llm=settings, policy=MANUAL)
    assert reopened.status().pending_turns == 0
    assert all(reopened.profile(u, ProfileOptions()) for u in users)


def test_close_without_worker_drains_inline_and_zero_budget_keeps_turns(
    make_backend: BackendFactory,
) -> None:
    settings, _, _ = tapped_settings()
    policy = manual(flush_on_close=True)
    keep = make_backend(llm=settings, policy=policy, start_worker=False)
    user = uuid.uuid4()
    keep.record(user, turn_to_blobs(GUS), "t")
    keep.close(timeout=0)
    again = make_backend(llm=settings, policy=policy, start_worker=False)
    assert again.status(user).pending_turns == 1  # not processed, not lost
    again.close(timeout=30)
    assert make_backend(llm=settings, policy=MANUAL).status(user).pending_turns == 0


def test_interpreter_exit_drains_and_flushes(db: DbTarget, make_backend: BackendFactory) -> None:
    child = subprocess.run(
        [sys.executable, str(CHILD), "exit", *db.argv(), "12"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert child.returncode == 0, child.stderr
    assert "RECORDED" in child.stdout
    settings, _, _ = tapped_settings()
    store = make_backend(llm=settings, policy=MANUAL, start_worker=False)
    user = uuid.uuid5(uuid.NAMESPACE_URL, "crash-user-0")
    assert store.status(user).pending_turns == 0
    processed = [turn for f in store.export_user(user)["flushes"] for turn in f["turn_ids"]]
    assert processed == [f"mk-0-{n}" for n in range(12)]


def test_other_blob_types_are_stored_but_not_processed(make_backend: BackendFactory) -> None:
    settings, _, standin = tapped_settings()
    backend = make_backend(llm=settings, policy=manual(buffer_token_threshold=1))
    user = uuid.uuid4()
    doc = backend.insert(user, DocBlob(content="My name is Gus. " * 50), wait_process=True)
    image = backend.insert(user, ImageBlob(url="https://example.com/a.png"), wait_process=True)
    assert doc.chat_results == [] and image.chat_results == []
    assert backend.get_blob(user, doc.id).blob_data["content"].startswith("My name is Gus.")
    assert backend.get_blob(user, image.id).blob_type == BlobType.image
    for blob_type in (BlobType.doc, BlobType.image, BlobType.code, BlobType.transcript):
        with pytest.raises(UnsupportedError, match="not processed"):
            backend.flush(user, blob_type)
    assert standin.calls == 0 and backend.status(user).pending_turns == 0


def test_profile_config_is_validated_saved_and_used(make_backend: BackendFactory) -> None:
    settings, _, _ = tapped_settings()
    config = "language: en\nevent_tags:\n  - name: emotion\n    description: how the user feels\n"
    backend = make_backend(llm=settings, policy=MANUAL, profile_config=config)
    assert backend.get_profile_config() == config
    with pytest.raises(ValidationError):
        backend.set_profile_config("language: [unclosed")
    assert backend.get_profile_config() == config
    user = uuid.uuid4()
    backend.record(user, turn_to_blobs(turn("I feel happy today, my name is Gus.")), "t")
    backend.flush(user)
    (event,) = backend.events(user)
    assert event.event_data.event_tags is not None  # tagging ran because tags are configured
    backend.set_profile_config(None)
    assert backend.get_profile_config() == ""


def test_strict_mode_config_limits_the_slots(make_backend: BackendFactory) -> None:
    settings, _, _ = tapped_settings()
    config = (
        "profile_strict_mode: true\n"
        "overwrite_user_profiles:\n"
        "  - topic: work\n"
        "    sub_topics: [title]\n"
    )
    backend = make_backend(llm=settings, policy=MANUAL, profile_config=config)
    user = uuid.uuid4()
    backend.record(user, turn_to_blobs(GUS), "t")
    backend.flush(user)
    assert {(p.topic, p.sub_topic) for p in backend.profile(user, ProfileOptions())} == {
        ("work", "title")
    }


def test_delete_user_while_its_flush_runs_writes_nothing(make_backend: BackendFactory) -> None:
    settings, tap, _ = tapped_settings()
    backend = make_backend(llm=settings, policy=MANUAL)
    user = uuid.uuid4()
    backend.record(user, turn_to_blobs(GUS), "t")
    entered, release = threading.Event(), threading.Event()
    inner = tap.inner

    class Gate:
        def handle_request(self, request):  # type: ignore[no-untyped-def]
            entered.set()
            release.wait(10)
            return inner.handle_request(request)

    tap.inner = Gate()  # type: ignore[assignment]
    results: list[object] = []
    worker = threading.Thread(target=lambda: results.append(backend.flush(user)))
    worker.start()
    assert entered.wait(10)
    backend.delete_user(user)
    release.set()
    worker.join(10)
    assert results == [[]]  # the flush lost its rows: nothing committed, nothing raised
    assert backend.export_user(user)["exists"] is False
    assert backend.profile(user, ProfileOptions()) == [] and backend.events(user) == []


def test_profile_crud_and_not_found(make_backend: BackendFactory) -> None:
    settings, _, _ = tapped_settings()
    backend = make_backend(llm=settings, policy=MANUAL)
    user, other = uuid.uuid4(), uuid.uuid4()
    pid = backend.add_profile(user, "Gus", "basic_info", "name")
    backend.update_profile(user, pid, "Gustav")
    assert [p.content for p in backend.profile(user, ProfileOptions())] == ["Gustav"]
    with pytest.raises(NotFoundError):
        backend.delete_profile(other, pid)
    with pytest.raises(ValidationError):
        backend.add_profile(user, "x", " ", "name")
    with pytest.raises(NotFoundError):
        backend.delete_event(user, uuid.uuid4())
    backend.delete_profile(user, pid)
    assert backend.profile(user, ProfileOptions()) == []


def test_search_and_context_use_embeddings(make_backend: BackendFactory) -> None:
    settings, tap, _ = tapped_settings(enable_embeddings=True, embedding_dim=64)
    backend = make_backend(llm=settings, policy=MANUAL)
    user = uuid.uuid4()
    backend.record(user, turn_to_blobs(turn("I love hiking in the mountains.")), "a")
    backend.flush(user)
    backend.record(user, turn_to_blobs(turn("I work as a baker.")), "b")
    backend.flush(user)
    assert tap.steps()["embedding"] == 2  # one batched call per flush (event + gists)
    (hit, *_) = backend.search_gists(user, "mountains hiking", similarity_threshold=0.0)
    assert "hiking" in hit.gist_data.content and hit.similarity is not None
    (event, *_) = backend.search_events(user, "baker", similarity_threshold=0.0)
    assert event.event_data.event_tip and "baker" in event.event_data.event_tip
    chats = [Message.of("user", "Any mountain hiking tips?")]
    ranked = backend.context(user, ContextOptions(chats=chats, event_similarity_threshold=0.0))
    events = ranked.split("## Past Events:")[1]
    assert "hiking" in events  # the similar gist comes first (or alone, above the threshold)
    assert "baker" not in events or events.index("hiking") < events.index("baker")
    # Newest-first without chats.
    plain = backend.context(user, ContextOptions()).split("## Past Events:")[1]
    assert plain.index("baker") < plain.index("hiking")


def test_events_topk_and_token_budget(make_backend: BackendFactory) -> None:
    settings, _, _ = tapped_settings()
    backend = make_backend(llm=settings, policy=MANUAL)
    user = uuid.uuid4()
    for i, text in enumerate(["I love jazz.", "I love sushi.", "I love chess."]):
        backend.record(user, turn_to_blobs(turn(text)), f"t{i}")
        backend.flush(user)
    events = backend.events(user, topk=2)
    assert len(events) == 2 and "chess" in (events[0].event_data.event_tip or "")
    assert len(backend.events(user, topk=10, max_token_size=1)) == 0
    assert len(backend.events(user, topk=10, max_token_size=10_000)) == 3


def test_backend_satisfies_the_protocol(make_backend: BackendFactory) -> None:
    settings, _, _ = tapped_settings()
    assert isinstance(make_backend(llm=settings, policy=MANUAL), Backend)
