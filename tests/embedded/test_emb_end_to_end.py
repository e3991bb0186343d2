"""End to end on the offline stand-in LLM (SQLite and PostgreSQL): record -> flush -> profile,
events, gists and context; a later job change is an UPDATE of the same row."""

from __future__ import annotations

import uuid

from embedded.emb_support import MANUAL, BackendFactory, manual, tapped_settings, turn

from memobase_integrations.engine.context import DEFAULT_TEMPLATES
from memobase_integrations.facade import Memobase
from memobase_integrations.messages import turn_to_blobs
from memobase_integrations.models import BlobType, ChatBlob, OpenAICompatibleMessage, SummaryBlob
from memobase_integrations.values import ContextOptions, ProfileOptions

FIRST = [
    turn(
        "Hi, my name is Gus and I work as a software engineer.", "Nice to meet you!", "2025/01/14"
    ),
    turn("I love hiking on weekends.", "Sounds fun.", "2025/01/14"),
]
JOB_CHANGE = turn("Big news: I got a new job as a chef at Luigi's.", "Congrats!", "2025/02/01")


def slots(backend: object, user: uuid.UUID) -> dict[tuple[str, str], str]:
    rows = backend.profile(user, ProfileOptions())  # type: ignore[attr-defined]
    return {(p.topic, p.sub_topic): p.content for p in rows}


def test_profile_events_gists_and_context_end_to_end(make_backend: BackendFactory) -> None:
    settings, tap, standin = tapped_settings()
    backend = make_backend(llm=settings, policy=MANUAL)
    user = uuid.uuid4()
    for i, messages in enumerate(FIRST):
        backend.record(user, turn_to_blobs(messages), f"first-{i}")
    assert tap.calls == []  # recording alone never calls the LLM

    (first,) = backend.flush(user)
    profile = slots(backend, user)
    assert "Gus" in profile[("basic_info", "name")]
    assert "software engineer" in profile[("work", "title")]
    assert any(topic == "interest" and "hiking" in v for (topic, _), v in profile.items())
    assert len(first.add_profiles) == 3 and first.update_profiles == []
    assert first.event_id is not None
    assert standin.calls_by_step == {"entry_summary": 1, "extract_profile": 1, "merge_profile": 1}

    # Both turns were processed together, in order, and the buffer is empty.
    assert backend.status(user).pending_turns == 0
    (log,) = backend.export_user(user)["flushes"]
    assert log["turn_ids"] == ["first-0", "first-1"]

    title_id = next(p.id for p in backend.profile(user, ProfileOptions()) if p.sub_topic == "title")
    backend.record(user, turn_to_blobs(JOB_CHANGE), "later")
    (second,) = backend.flush(user)
    assert title_id in second.update_profiles
    after = {p.id: p for p in backend.profile(user, ProfileOptions())}
    assert "chef" in after[title_id].content and "engineer" not in after[title_id].content
    assert after[title_id].attributes.update_hits == 1

    events = backend.events(user)
    assert [e.id for e in events] == [second.event_id, first.event_id]  # newest first
    newest = events[0].event_data
    assert newest.event_tip and "chef" in newest.event_tip
    delta = {(d.attributes["topic"], d.attributes["sub_topic"]) for d in newest.profile_delta or []}
    assert ("work", "title") in delta
    assert all(e.created_at is not None for e in events)
    gists = backend.export_user(user)["gists"]
    assert gists and all(g["content"].startswith("- ") and g["created_at"] for g in gists)
    assert any("2025/01/14" in g["content"] for g in gists)  # the message dates reached the log
    assert any("2025/02/01" in g["content"] for g in gists)

    context = backend.context(user, ContextOptions())
    template = DEFAULT_TEMPLATES["en"]
    head, tail = template.split("{profile_section}")[0], template.split("{event_section}")[1]
    assert context.startswith(head) and context.endswith(tail)
    assert f"- work::title: {after[title_id].content}" in context
    assert "## Past Events:\n- " in context and "chef" in context.split("## Past Events:")[1]


def test_insert_seed_semantics_chat_results_only_over_threshold(
    make_backend: BackendFactory,
) -> None:
    settings, _, standin = tapped_settings()
    # No worker: it would race the inline processing for the user's buffer once it is over
    # the threshold, and a flush it won leaves chat_results empty (seen on a loaded machine).
    backend = make_backend(
        llm=settings, policy=manual(buffer_token_threshold=60), start_worker=False
    )
    user = uuid.uuid4()
    small = ChatBlob(messages=[OpenAICompatibleMessage(role="user", content="I love jazz music.")])
    assert backend.insert(user, small, wait_process=True).chat_results == []
    assert standin.calls == 0
    big = ChatBlob(
        messages=[
            OpenAICompatibleMessage(
                role="user", content="My name is Ada and I work as a pilot. " + "Truly. " * 30
            )
        ]
    )
    inserted = backend.insert(user, big, wait_process=True)
    (result,) = inserted.chat_results
    assert result.event_id is not None and len(result.add_profiles) >= 2
    assert ("work", "title") in slots(backend, user)
    # Both blobs were due (the whole idle buffer), processed together, then deleted.
    assert backend.status(user).pending_turns == 0


def test_summary_blobs_skip_the_entry_summary(make_backend: BackendFactory) -> None:
    settings, _, standin = tapped_settings()
    backend = make_backend(llm=settings, policy=MANUAL)
    user = uuid.uuid4()
    backend.insert(user, SummaryBlob(summary="User lives in Oslo."))
    (result,) = backend.flush(user, BlobType.summary)
    assert "entry_summary" not in standin.calls_by_step
    assert standin.calls_by_step["extract_profile"] == 1
    assert result.event_id is not None
    assert "Oslo" in slots(backend, user)[("contact_info", "city")]


def test_greeting_only_chat_gives_an_empty_response_and_clears_the_buffer(
    make_backend: BackendFactory,
) -> None:
    settings, _, standin = tapped_settings()
    backend = make_backend(llm=settings, policy=MANUAL)
    user = uuid.uuid4()
    backend.record(user, turn_to_blobs(turn("Hello!", "Hi, how can I help?")), "hello")
    (result,) = backend.flush(user)
    assert result.event_id is None and result.add_profiles == []
    assert standin.calls_by_step == {"entry_summary": 1}
    assert backend.status(user).pending_turns == 0 and backend.events(user) == []


def test_facade_embedded_and_from_env(db: object, tmp_path: object) -> None:
    from embedded.emb_support import DbTarget

    assert isinstance(db, DbTarget)
    settings, _, _ = tapped_settings()
    with Memobase.embedded(
        db.url, llm=settings, policy=MANUAL, engine_options=dict(db.engine_options)
    ) as mb:
        user = mb.user("gus@example.com")
        receipt = user.record(FIRST[0], turn_id="run-1")
        assert user.record(FIRST[0], turn_id="run-1").duplicate
        assert receipt.blob_ids
        user.flush()
        assert "Gus" in user.context()
        assert mb.backend.kind == "embedded"
    env = {"MEMOBASE_DATABASE_URL": f"sqlite:///{tmp_path}/env.db"}
    with Memobase.from_env(env, policy=MANUAL) as mb:
        assert mb.backend.kind == "embedded"
        assert not mb.backend.llm.configured  # type: ignore[attr-defined]
        mb.user("x").record(FIRST[0])
        assert mb.status().pending_turns == 1
