"""One suite of behaviour checks, run over every backend (see ``conftest.py``) and through
both twins of every call (``sync`` and ``async``).

The checks go through the facade (``Memobase`` / ``UserMemory``), which is how apps and the
adapters use a backend. Where a backend legitimately behaves otherwise, the check says so
with :func:`differs` and the reason, and asserts that backend's own behaviour instead.
"""

from __future__ import annotations

from typing import Any
from uuid import uuid4

import pytest
from contract.contract_support import Subject, differs
from support import wait_until

from memobase_integrations import UserMemory
from memobase_integrations.errors import MemobaseError, NotFoundError

ANN = [
    {"role": "user", "content": "My name is Ann and I live in Oslo."},
    {"role": "assistant", "content": "Nice to meet you, Ann!"},
]
PARIS = [
    {"role": "user", "content": "I'm going to Paris next week."},
    {"role": "assistant", "content": "Have a great trip!"},
]


@pytest.fixture(params=["sync", "async"])
def twin(request: pytest.FixtureRequest) -> str:
    return str(request.param)


async def call(target: Any, twin: str, name: str, *args: Any, **kwargs: Any) -> Any:
    """``target.name(...)`` or ``await target.aname(...)``, as the test's twin says."""
    if twin == "sync":
        return getattr(target, name)(*args, **kwargs)
    return await getattr(target, f"a{name}")(*args, **kwargs)


def facts(rows: list[Any]) -> dict[tuple[str, str], str]:
    return {(p.topic, p.sub_topic): p.content for p in rows}


async def processed(user: UserMemory, twin: str) -> None:
    """Flush the user and check nothing is left waiting."""
    await call(user, twin, "flush")
    status = await call(user, twin, "status")
    assert status.pending_turns == 0 and status.failed == 0, status


async def failed_flush(subject: Subject, user: UserMemory, twin: str) -> None:
    """Flush a user whose turn cannot be processed (remote: delivered); wait until the
    failure is listed."""
    try:
        await call(user, twin, "flush")
    except MemobaseError:
        pass
    else:
        assert differs(
            subject,
            {"remote"},
            "a remote backend delivers on its outbox thread, which may meet the refusal "
            "before flush() does; the refused turn is then parked, and flush() leaves parked "
            "turns to retry_failed() on every backend. The embedded engine processes inside "
            "flush(), so its failure is raised there.",
        ), "flush() of a turn that cannot be processed must raise"
    wait_until(lambda: user.failures(), "the failure to be listed")


async def test_record_is_durable_and_idempotent_per_turn_id(subject: Subject, twin: str) -> None:
    user = subject.user()
    first = await call(user, twin, "record", ANN, turn_id="turn-1")
    again = await call(user, twin, "record", ANN, turn_id="turn-1")
    assert (first.turn_id, first.duplicate) == ("turn-1", False)
    if differs(subject, {"remote"}, "the server makes the blob ids when the turn is delivered"):
        assert first.blob_ids == ()
    else:
        assert len(first.blob_ids) == 1
    assert (again.turn_id, again.duplicate) == ("turn-1", True)
    status = await call(user, twin, "status")
    if differs(
        subject,
        {"remote"},
        "a remote status counts turns not yet delivered; a delivered turn waits in the "
        "server's buffer, where the outbox sees it as buffered tokens",
    ):
        wait_until(lambda: user.status().users[0].buffered_tokens > 0, "delivery")
    else:
        assert status.pending_turns == 1
    await processed(user, twin)
    assert subject.llm.calls_by_step["entry_summary"] == 1  # the replay was not processed


async def test_flush_builds_profile_events_and_context(subject: Subject, twin: str) -> None:
    user = subject.user()
    await call(user, twin, "record", ANN)
    await processed(user, twin)
    profile = facts(await call(user, twin, "profile"))
    assert "Ann" in profile[("basic_info", "name")]
    assert "Oslo" in profile[("contact_info", "city")]
    events = await call(user, twin, "events")
    assert len(events) == 1 and "Ann" in (events[0].event_data.event_tip or "")
    context = await call(user, twin, "context")
    assert "Ann" in context and "Oslo" in context
    only_work = await call(user, twin, "profile", only_topics=["work"])
    assert only_work == []


async def test_profile_rows_can_be_added_updated_and_deleted(subject: Subject, twin: str) -> None:
    user = subject.user()
    await call(user, twin, "record", ANN)  # the user exists on every backend
    await processed(user, twin)
    row = await call(user, twin, "add_profile", "likes tea", "interest", "drinks")
    assert facts(await call(user, twin, "profile"))[("interest", "drinks")] == "likes tea"
    await call(user, twin, "update_profile", row, "likes green tea")
    assert facts(await call(user, twin, "profile"))[("interest", "drinks")] == "likes green tea"
    assert "green tea" in await call(user, twin, "context")  # the cache saw the edit
    await call(user, twin, "delete_profile", row)
    assert ("interest", "drinks") not in facts(await call(user, twin, "profile"))

    missing = uuid4()
    with pytest.raises(NotFoundError):
        await call(user, twin, "delete_profile", missing)
    if differs(
        subject,
        {"remote"},
        "a Memobase server answers success for an update of a missing profile id and "
        "changes nothing (telling would cost a read per update)",
    ):
        await call(user, twin, "update_profile", missing, "x")
    else:
        with pytest.raises(NotFoundError):
            await call(user, twin, "update_profile", missing, "x")


async def test_events_can_be_updated_and_deleted(subject: Subject, twin: str) -> None:
    user = subject.user()
    await call(user, twin, "record", ANN)
    await processed(user, twin)
    [event] = await call(user, twin, "events")
    await call(user, twin, "update_event", event.id, {"event_tip": "Ann mentioned Oslo."})
    [updated] = await call(user, twin, "events")
    assert updated.id == event.id and updated.event_data.event_tip == "Ann mentioned Oslo."
    await call(user, twin, "delete_event", event.id)
    assert await call(user, twin, "events") == []


async def test_search_finds_events_and_gists_by_their_words(subject: Subject, twin: str) -> None:
    # Against a real Memobase server, search needs the server's embeddings (errno 501
    # without them); ``serve`` answers by words as the embedded engine does, so the check
    # holds for the remote backend here.
    user = subject.user()
    await call(user, twin, "record", ANN, turn_id="ann")
    await call(user, twin, "record", PARIS, turn_id="paris")
    await processed(user, twin)
    events = await call(user, twin, "search_events", "Paris trip")
    assert events and "Paris" in (events[0].event_data.event_tip or "")
    assert all(e.similarity is not None and e.similarity > 0.2 for e in events)
    gists = await call(user, twin, "search_gists", "Oslo")
    assert gists and "Oslo" in gists[0].gist_data.content
    assert await call(user, twin, "search_events", "zebra") == []


async def test_a_failed_turn_is_kept_listed_and_can_be_retried(subject: Subject, twin: str) -> None:
    user = subject.user()
    other = subject.user()
    subject.break_processing()
    await call(user, twin, "record", ANN, turn_id="broken")
    await failed_flush(subject, user, twin)
    [failure] = await call(user, twin, "failures")
    assert failure.user_id == user.id and failure.turn_id == "broken"
    assert failure.attempts >= 1 and failure.error
    assert (await call(user, twin, "status")).failed == 1
    assert [f.turn_id for f in await call(subject.mb, twin, "failures")] == ["broken"]
    assert await call(other, twin, "failures") == []

    subject.heal()
    assert await call(user, twin, "retry_failed") == 1
    await processed(user, twin)
    assert await call(user, twin, "failures") == []
    assert "Ann" in facts(await call(user, twin, "profile"))[("basic_info", "name")]
    assert await call(subject.mb, twin, "retry_failed") == 0


async def test_discarding_failed_turns_drops_them_for_good(subject: Subject, twin: str) -> None:
    user = subject.user()
    subject.break_processing()
    await call(user, twin, "record", ANN, turn_id="doomed")
    await failed_flush(subject, user, twin)
    assert await call(subject.mb, twin, "discard_failed") == 1
    assert await call(user, twin, "failures") == []
    subject.heal()
    await processed(user, twin)
    assert await call(user, twin, "profile") == []
    assert await call(user, twin, "discard_failed") == 0


async def test_delete_forgets_the_user_and_says_whether_there_was_anything(
    subject: Subject, twin: str
) -> None:
    user = subject.user()
    assert await call(user, twin, "delete") is False
    await call(user, twin, "record", ANN)
    await processed(user, twin)
    assert await call(user, twin, "context")
    assert await call(user, twin, "delete") is True
    assert await call(user, twin, "profile") == []
    assert await call(user, twin, "events") == []
    assert "Ann" not in await call(user, twin, "context")
    assert await call(user, twin, "delete") is False


async def test_user_data_round_trips(subject: Subject, twin: str) -> None:
    user_id = await call(subject.mb, twin, "add_user", {"plan": "free"})
    user = subject.mb.user(user_id)
    assert (await call(user, twin, "info")).data == {"plan": "free"}
    await call(user, twin, "update_data", {"plan": "pro"})
    assert (await call(user, twin, "info")).data == {"plan": "pro"}
    with pytest.raises(NotFoundError):
        await call(subject.mb.user(uuid4()), twin, "info")
