"""The rest of Memobase's surface on the embedded engine (issue 16.5), through the facade.

Users with data (create, read, replace; listing with search, order, limit, offset and the
total count), blob and buffer listings, search by event tags, event updates, and usage
metering - sync and async, on SQLite and PostgreSQL. The same facade methods on the remote
backend are exercised against ``serve`` in ``tests/server``.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from embedded.emb_support import MANUAL, BackendFactory, manual, turn

from memobase_integrations import Memobase, errors
from memobase_integrations.engine.store import new_row_id
from memobase_integrations.models import BlobType, ChatBlob, OpenAICompatibleMessage, SummaryBlob
from memobase_integrations.settings import LLMSettings
from memobase_integrations.testing import StandInLLM

TAGS = "event_tags:\n  - name: emotion\n    description: how the user feels\n"


@pytest.fixture
def stand_in() -> StandInLLM:
    return StandInLLM()


@pytest.fixture
def mb(make_backend: BackendFactory, stand_in: StandInLLM) -> Iterator[Memobase]:
    backend = make_backend(llm=stand_in.settings(), policy=MANUAL, profile_config=TAGS)
    yield Memobase(backend)


def chat(text: str) -> ChatBlob:
    return ChatBlob(messages=[OpenAICompatibleMessage(role="user", content=text)])


def test_row_ids_are_uuid4_and_time_ordered(mb: Memobase) -> None:
    """Memobase clients accept only v4/v5 ids (the official SDK validates profile and event
    ids, the server refuses others in paths); the engine's ids must also keep their order."""
    ids = [new_row_id() for _ in range(1000)]
    assert {i.version for i in ids} == {4} and ids == sorted(ids, key=lambda i: i.int)
    u = mb.user("kim")
    pid = u.add_profile("Oslo", "contact_info", "city")
    u.insert(chat("I work as a nurse."))
    (result,) = u.flush()
    assert pid.version == 4 and result.event_id is not None and result.event_id.version == 4
    assert {p.id.version for p in u.profile()} == {4}


def test_users_with_data(mb: Memobase) -> None:
    uid = mb.add_user({"name": "Ann"}, user_id="ann")
    ann = mb.user("ann")
    assert uid == ann.id
    info = ann.info()
    assert info.id == uid and info.data == {"name": "Ann"} and info.created_at is not None
    with pytest.raises(errors.ValidationError, match="already exists") as dup:
        mb.add_user(user_id="ann")
    assert dup.value.errno == 409
    ann.update_data({"plan": "pro"})  # replaces the data as a whole
    assert ann.info().data == {"plan": "pro"}
    fresh = mb.add_user()  # a new uuid4
    assert fresh.version == 4 and mb.user(fresh).info().data is None
    ghost = mb.user("ghost")
    with pytest.raises(errors.NotFoundError, match="not found"):
        ghost.info()
    with pytest.raises(errors.NotFoundError):
        ghost.update_data({"a": 1})
    ann.delete()
    with pytest.raises(errors.NotFoundError):
        ann.info()


def test_listing_users_searches_orders_and_counts(mb: Memobase) -> None:
    a = mb.add_user({"name": "Alice Liddell"}, user_id="alice")
    b = mb.add_user({"name": "Bob"}, user_id="bob")
    c = mb.add_user(None, user_id="carol")
    mb.user("bob").add_profile("Oslo", "contact_info", "city")
    mb.user("bob").add_profile("pilot", "work", "title")
    mb.user("carol").add_profile("Rome", "contact_info", "city")
    everyone = mb.get_all_users()
    assert everyone.count == 3 and {u.id for u in everyone.users} == {a, b, c}
    by_profiles = mb.get_all_users(order_by="profile_count")
    assert [u.id for u in by_profiles.users] == [b, c, a]
    assert [u.profile_count for u in by_profiles.users] == [2, 1, 0]
    ascending = mb.get_all_users(order_by="profile_count", order_desc=False)
    assert [u.id for u in ascending.users] == [a, c, b]
    page = mb.get_all_users(order_by="profile_count", limit=1, offset=1)
    assert [u.id for u in page.users] == [c] and page.count == 3  # count: all matches
    assert [u.id for u in mb.get_all_users(search="liddell").users] == [a]  # in the data
    assert mb.get_all_users(search=str(b)[:13].upper()).users[0].id == b  # in the id
    assert mb.get_all_users(search="50%_off").count == 0  # LIKE wildcards are literal
    row = mb.get_all_users(search="Bob").users[0]
    assert row.additional_fields == {"name": "Bob"} and row.project_id == "__root__"


def test_blob_and_buffer_listings(mb: Memobase) -> None:
    u = mb.user("dora")
    ids = [u.insert(chat(f"message {i}")).id for i in range(3)]
    assert u.list_blobs() == ids  # oldest first
    assert u.list_blobs(page=1, page_size=2) == ids[2:]
    assert u.list_blobs(BlobType.summary) == []
    with pytest.raises(errors.ValidationError, match="page"):
        u.list_blobs(page=-1)
    assert u.buffer() == ids and u.buffer(status="processing") == []
    u.delete_blob(ids[1])
    u.delete_blob(ids[1])  # a missing blob is not an error
    assert u.list_blobs() == [ids[0], ids[2]] and u.buffer() == [ids[0], ids[2]]
    summary = u.insert(SummaryBlob(summary="User enjoys chess.")).id
    u.flush(BlobType.summary)
    assert u.buffer(BlobType.summary, "done") == [summary]  # summary blobs are kept
    u.flush()
    assert u.list_blobs() == [] and u.buffer() == []  # processed chat blobs are deleted


def test_failed_turns_are_listed_as_failed(mb: Memobase, stand_in: StandInLLM) -> None:
    u = mb.user("erin")
    blob = u.insert(chat("I live in Lisbon.")).id
    stand_in.fail_next(kind="http500", times=None)
    with pytest.raises(errors.LLMError):
        u.flush()
    stand_in.clear_faults()
    assert u.buffer(status="failed") == [blob] and u.buffer() == []


def test_search_by_tags_and_update_event(mb: Memobase) -> None:
    u = mb.user("finn")
    u.insert(chat("I'm so happy today! I live in Berlin."))
    (first,) = u.flush()
    u.insert(chat("I work as a nurse."))
    (second,) = u.flush()
    assert first.event_id and second.event_id
    tagged = u.search_events_by_tags(tags=["emotion"])
    assert [e.id for e in tagged] == [first.event_id]
    value = tagged[0].event_data.event_tags[0].value  # type: ignore[index]
    assert u.search_events_by_tags(tag_values={"emotion": value})[0].id == first.event_id
    assert u.search_events_by_tags(tag_values={"emotion": value + "-not"}) == []
    assert u.search_events_by_tags(tags=["emotion", "location"], tag_values={}) == [
        e for e in tagged if {t.tag for t in e.event_data.event_tags or ()} >= {"location"}
    ]
    newest_first = u.search_events_by_tags()  # no filter: the newest events
    assert [e.id for e in newest_first] == [second.event_id, first.event_id]
    assert len(u.search_events_by_tags(topk=1)) == 1

    before = u.events()[1]
    u.update_event(first.event_id, {"event_tip": "- edited // info"})
    after = u.events()[1]
    assert after.event_data.event_tip == "- edited // info"
    assert after.event_data.profile_delta == before.event_data.profile_delta  # merged, kept
    u.update_event(first.event_id, {"event_tags": [{"tag": "emotion", "value": "calm"}]})
    assert u.search_events_by_tags(tag_values={"emotion": "calm"})[0].id == first.event_id
    with pytest.raises(errors.ValidationError, match="Invalid event data"):
        u.update_event(first.event_id, {"event_tags": [{"tag": "emotion"}]})
    with pytest.raises(errors.NotFoundError):
        u.update_event(uuid.uuid4(), {"event_tip": "x"})
    with pytest.raises(errors.NotFoundError):  # another user's event is not yours
        mb.user("gwen").update_event(first.event_id, {"event_tip": "x"})


def test_usage_counts_inserts_and_llm_tokens(mb: Memobase, stand_in: StandInLLM) -> None:
    assert mb.daily_usage(3)[0].total_insert == 0
    u = mb.user("hugo")
    u.insert(chat("I live in Paris."))
    u.insert(chat("I work as a chef."))
    u.flush()
    today, yesterday, _ = mb.daily_usage(3)
    assert today.date > yesterday.date
    assert (today.total_insert, today.total_success_insert) == (2, 2)
    assert today.total_input_token == stand_in.prompt_tokens + stand_in.embedding_tokens
    assert today.total_output_token == stand_in.completion_tokens > 0
    assert (yesterday.total_insert, yesterday.total_input_token) == (0, 0)
    billing = mb.usage()
    assert billing.token_left is None
    assert billing.project_token_cost_month is not None
    assert billing.project_token_cost_month >= today.total_input_token + today.total_output_token
    assert billing.next_refill_at is not None and billing.next_refill_at.day == 1
    with pytest.raises(errors.ValidationError):
        mb.daily_usage(0)


def test_tokens_spent_by_the_worker_process_are_counted(make_backend: BackendFactory) -> None:
    """With the worker in a child process, its LLM tokens reach the same usage rows."""
    stand_in = StandInLLM()
    with stand_in.serve() as url:
        llm = LLMSettings(base_url=url, api_key="stand-in", max_retries=0)
        backend = make_backend(llm=llm, policy=manual(idle_flush_seconds=0.2), worker="process")
        mb = Memobase(backend)
        assert backend.worker_mode == "process"
        mb.user("ines").record(turn("I live in Madrid."))
        deadline = time.monotonic() + 120
        while not mb.user("ines").profile():
            assert time.monotonic() < deadline, "the worker process did not process the turn"
            time.sleep(0.05)
        # The worker writes its tokens right after it commits the batch (a transaction of
        # their own), so they may land a moment after the profile.
        while not (today := mb.daily_usage(1)[0]).total_input_token:
            assert time.monotonic() < deadline, "the worker process's tokens were not counted"
            time.sleep(0.05)
        assert today.total_input_token == stand_in.prompt_tokens > 0
        assert today.total_output_token == stand_in.completion_tokens > 0


def test_async_twins(mb: Memobase) -> None:
    async def flow() -> dict[str, Any]:
        uid = await mb.aadd_user({"k": 1}, user_id="jane")
        jane = mb.user("jane")
        await jane.aupdate_data({"k": 2})
        blob = (await jane.ainsert(chat("I'm happy, I live in Oslo."))).id
        listed = await jane.alist_blobs()
        buffered = await jane.abuffer()
        (result,) = await jane.aflush()
        assert result.event_id is not None
        await jane.aupdate_event(result.event_id, {"event_tip": "- x // info"})
        other = (await jane.ainsert(chat("hello"))).id
        await jane.adelete_blob(other)
        return {
            "uid": uid,
            "info": (await jane.ainfo()).data,
            "listed": listed == [blob] and buffered == [blob],
            "left": await jane.alist_blobs(),
            "tags": [e.id for e in await jane.asearch_events_by_tags(tags=["emotion"])],
            "event": result.event_id,
            "tip": (await jane.aevents())[0].event_data.event_tip,
            "users": (await mb.aget_all_users(search=str(uid)[:8])).count,
            "usage": (await mb.ausage()).project_token_cost_month,
            "daily": (await mb.adaily_usage(1))[0].total_insert,
        }

    got = asyncio.run(flow())
    assert got["uid"] == mb.user("jane").id and got["info"] == {"k": 2} and got["listed"]
    assert got["left"] == [] and got["tags"] == [got["event"]] and got["tip"] == "- x // info"
    assert got["users"] == 1 and got["usage"] > 0 and got["daily"] == 2
