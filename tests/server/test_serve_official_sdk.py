"""The official Memobase SDK from PyPI (``memobase==0.0.27``) against ``serve``.

The flow is the one recorded against the real server in ``12_official_sdk_flow.json``
(every public method of ``MemoBaseClient`` / ``User``), with the same inputs; each return
value must have the recorded shape (``data/12_sdk_call_results.json``), and where the
memory itself is concerned, the same slots: the stand-in LLM reads the same conversation
the recorder's scripted LLM read. Ids, dates and LLM-written wording may differ. The async
client (``AsyncMemoBaseClient``) runs the same flow. Embeddings are on (the stand-in's), so
the searches answer.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from pathlib import Path
from typing import Any

import pytest
from memobase import AsyncMemoBaseClient, ChatBlob, MemoBaseClient, SummaryBlob
from memobase.core.blob import BlobType
from memobase.error import ServerError
from support.serving import Served, Store, serving

RECORDED: dict[str, Any] = json.loads(
    (Path(__file__).parent / "data" / "12_sdk_call_results.json").read_text()
)["results"]


def _chat(*lines: str) -> list[dict[str, str]]:
    return [{"role": ("user", "assistant")[i % 2], "content": t} for i, t in enumerate(lines)]


INTRO = _chat(
    "Hi! My name is Alice Chen and I'm a software engineer at Acme Corp.",
    "Nice to meet you, Alice! What do you like to do outside of work?",
    "I love hiking in the mountains on weekends. I live in Berlin.",
    "Berlin is a great base for weekend trips to the Alps.",
)
JOB_CHANGE = _chat(
    "Big news: I quit Acme last week. I now work as a data scientist at DeepMind.",
    "Congratulations on the new role!",
)
MISSING = "0f0f0f0f-0000-4000-8000-000000000000"


def slot(line: str) -> tuple[str, str]:
    """``"work: title - data scientist"`` (``UserProfile.describe``) -> ``("work", "title")``."""
    topic, rest = line.split(": ", 1)
    return topic, rest.split(" - ", 1)[0]


def profile_lines(context: str) -> list[str]:
    section = context.split("## User Current Profile:\n", 1)[1].split("\n\n", 1)[0]
    return section.splitlines()


def _is_uuid(value: Any) -> bool:
    try:
        uuid.UUID(str(value))
    except ValueError:
        return False
    return True


def check_results(got: dict[str, Any]) -> None:
    """The SDK's return values against what it returned from the real server."""
    assert got["ping"] is RECORDED["ping"]["sdk_return"] is True
    for key in ("add_user", "insert_chat_sync_true", "insert_job_change_sync_false"):
        assert isinstance(got[key], str) and _is_uuid(got[key]), key
    assert len(got["buffer_idle"]) == len(RECORDED["buffer_idle"]["sdk_return"]) == 1
    assert got["flush_sync_true"] is got["flush_sync_true_2"] is True

    recorded_slots = {slot(line) for line in RECORDED["profile_default"]["sdk_return"]}
    profile = got["profile_default"]
    assert {slot(line) for line in profile} == recorded_slots
    assert any("DeepMind" in line for line in profile)  # the job change reached the profile
    assert not any("Acme" in line for line in profile)
    # need_json: {topic: {sub_topic: {id, content, created_at, updated_at}}}
    as_json = got["profile_need_json"]
    recorded_json = RECORDED["profile_need_json"]["sdk_return"]
    assert as_json.keys() == recorded_json.keys()
    for topic, subs in as_json.items():
        assert subs.keys() == recorded_json[topic].keys()
        for entry in subs.values():
            assert entry.keys() == {"id", "content", "created_at", "updated_at"}
    # prefer_topics moves interest first; only_topics keeps work and contact_info; a limit
    # of one work row; chats keep the related row only - as recorded.
    for key in ("profile_prefer_topics_two", "profile_only_topics_two", "profile_topic_limits"):
        assert [slot(x)[0] for x in got[key]] == [
            slot(x)[0] for x in RECORDED[key]["sdk_return"]
        ] or {slot(x) for x in got[key]} == {slot(x) for x in RECORDED[key]["sdk_return"]}, key
    assert slot(got["profile_prefer_topics_two"][0])[0] == "interest"
    assert {slot(x)[0] for x in got["profile_only_topics_two"]} == {"work", "contact_info"}
    assert [slot(x)[0] for x in got["profile_topic_limits"]].count("work") == 1
    assert [slot(x) for x in got["profile_chats"]] == [
        slot(x) for x in RECORDED["profile_chats"]["sdk_return"]
    ]

    default = got["context_default"]
    assert default.startswith("---\n# Memory\n") and default.endswith("---\n")
    assert {slot(x[2:].replace("::", ": ", 1).replace(": ", " - ", 2).replace(" - ", ": ", 1))
            for x in profile_lines(default)} == recorded_slots  # fmt: skip
    narrowed = profile_lines(got["context_prefer_only_topics"])
    assert narrowed[0].startswith("- interest::")
    assert all(x.startswith(("- interest::", "- work::")) for x in narrowed)
    # The stand-in's embeddings (words and a small concept lexicon) score short queries
    # against long gists lower than a model's: at 0.1 the hiking and Berlin events are picked.
    assert "## Past Events:\n" in got["context_chats"]
    searched = got["context_chats_low_threshold"].split("## Past Events:\n", 1)[1]
    assert "Berlin" in searched and "hiking" in searched and "DeepMind" not in searched
    custom = got["context_custom_prompt"]
    assert custom.startswith("P:- ") and "|E:- " in custom and "# Memory" not in custom

    events = got["event"]
    assert len(events) == len(RECORDED["event"]["sdk_return"]) == 2
    for event, recorded in zip(events, RECORDED["event"]["sdk_return"], strict=True):
        assert event.keys() == recorded.keys()
        assert event["event_data"].keys() == recorded["event_data"].keys()
        assert event["similarity"] is None
    assert "DeepMind" in events[0]["event_data"]["event_tip"]  # newest first
    hits = got["search_event"]
    assert hits and all(isinstance(h["similarity"], float) for h in hits)
    assert "hiking" in hits[0]["event_data"]["event_tip"]
    gists = got["search_event_gist"]
    assert gists and gists[0].keys() == RECORDED["search_event_gist"]["sdk_return"][0].keys()
    assert "data scientist" in gists[0]["gist_data"]["content"]
    assert got["search_event_by_tags"] == RECORDED["search_event_by_tags"]["sdk_return"] == []

    assert _is_uuid(got["insert_summary"])
    assert got["get_all_summary"] == [got["insert_summary"]]
    assert got["flush_summary_sync"] is True
    usage = got["get_usage"]
    assert usage.keys() == RECORDED["get_usage"]["sdk_return"].keys()
    assert usage["token_left"] is None and usage["project_token_cost_month"] > 0
    assert 1 <= got["get_all_users"] <= 5
    daily = got["get_daily_usage"]
    assert [d.keys() for d in daily] == [
        d.keys() for d in RECORDED["get_daily_usage"]["sdk_return"]
    ]
    assert daily[0]["total_insert"] >= 3 and daily[0]["total_input_token"] > 0
    assert got["get_missing_user_raises"] == f"User {MISSING} not found"
    assert got["delete_user"] is True


def sync_flow(served: Served) -> dict[str, Any]:
    client = MemoBaseClient(project_url=served.url, api_key=served.token)
    got: dict[str, Any] = {"ping": client.ping()}
    uid = got["add_user"] = client.add_user({"name": "sdk-user"})
    user = client.get_user(uid)
    assert user.fields["data"] == {"name": "sdk-user"}
    got["insert_chat_sync_true"] = user.insert(ChatBlob(messages=INTRO), sync=True)
    got["buffer_idle"] = user.buffer(BlobType.chat)
    got["flush_sync_true"] = user.flush(sync=True)
    got["insert_job_change_sync_false"] = user.insert(ChatBlob(messages=JOB_CHANGE))
    got["flush_sync_true_2"] = user.flush(sync=True)
    got["profile_default"] = [p.describe for p in user.profile()]
    got["profile_need_json"] = user.profile(need_json=True)
    got["profile_prefer_topics_two"] = [
        p.describe for p in user.profile(prefer_topics=["interest", "work"])
    ]
    got["profile_only_topics_two"] = [
        p.describe for p in user.profile(only_topics=["work", "contact_info"])
    ]
    got["profile_topic_limits"] = [p.describe for p in user.profile(topic_limits={"work": 1})]
    hiking = [{"role": "user", "content": "Which hiking trail should I try?"}]
    got["profile_chats"] = [p.describe for p in user.profile(chats=hiking)]
    got["context_default"] = user.context()
    got["context_prefer_only_topics"] = user.context(
        max_token_size=200, prefer_topics=["interest"], only_topics=["interest", "work"]
    )
    got["context_chats"] = user.context(
        chats=[{"role": "user", "content": "Any hiking trail near Berlin?"}]
    )
    got["context_chats_low_threshold"] = user.context(
        chats=[{"role": "user", "content": "Any hiking trail near Berlin?"}],
        event_similarity_threshold=0.1,
    )
    got["context_custom_prompt"] = user.context(
        customize_context_prompt="P:{profile_section}|E:{event_section}"
    )
    # Every other context parameter, too: each must be accepted and shape the answer.
    bare = user.context(
        max_token_size=500,
        max_subtopic_size=1,
        topic_limits={"work": 1},
        profile_event_ratio=1.0,
        require_event_summary=True,
        event_similarity_threshold=0.3,
        time_range_in_days=30,
        full_profile_and_only_search_event=False,
        fill_window_with_events=True,
        chats=hiking,
    )
    assert "## User Current Profile:" in bare and "::" in bare
    got["event"] = [e.model_dump(mode="json") for e in user.event(topk=5)]
    # Threshold 0.1: the stand-in's embeddings score lower than a model's (see above).
    hits = user.search_event("hiking mountains", similarity_threshold=0.1)
    got["search_event"] = [e.model_dump(mode="json") for e in hits]
    gists = user.search_event_gist("data scientist", similarity_threshold=0.1)
    got["search_event_gist"] = [g.model_dump(mode="json") for g in gists]
    got["search_event_by_tags"] = user.search_event_by_tags(tags=["emotion"])
    got["insert_summary"] = user.insert(SummaryBlob(summary="User enjoys reading mystery novels."))
    got["get_all_summary"] = user.get_all(BlobType.summary)
    got["flush_summary_sync"] = user.flush(BlobType.summary, sync=True)
    got["get_usage"] = client.get_usage()
    got["get_all_users"] = len(client.get_all_users(limit=5))
    got["get_daily_usage"] = client.get_daily_usage(2)
    with pytest.raises(ServerError) as missing:
        client.get_user(MISSING)
    got["get_missing_user_raises"] = str(missing.value)
    got["delete_user"] = client.delete_user(uid)
    return got


async def async_flow(served: Served) -> dict[str, Any]:
    async with AsyncMemoBaseClient(project_url=served.url, api_key=served.token) as client:
        got: dict[str, Any] = {"ping": await client.ping()}
        uid = got["add_user"] = await client.add_user({"name": "sdk-user"})
        user = await client.get_user(uid)
        got["insert_chat_sync_true"] = await user.insert(ChatBlob(messages=INTRO), sync=True)
        got["buffer_idle"] = await user.buffer(BlobType.chat)
        got["flush_sync_true"] = await user.flush(sync=True)
        got["insert_job_change_sync_false"] = await user.insert(ChatBlob(messages=JOB_CHANGE))
        got["flush_sync_true_2"] = await user.flush(sync=True)
        got["profile_default"] = [p.describe for p in await user.profile()]
        got["profile_need_json"] = await user.profile(need_json=True)
        got["profile_prefer_topics_two"] = [
            p.describe for p in await user.profile(prefer_topics=["interest", "work"])
        ]
        got["profile_only_topics_two"] = [
            p.describe for p in await user.profile(only_topics=["work", "contact_info"])
        ]
        got["profile_topic_limits"] = [
            p.describe for p in await user.profile(topic_limits={"work": 1})
        ]
        hiking = [{"role": "user", "content": "Which hiking trail should I try?"}]
        got["profile_chats"] = [p.describe for p in await user.profile(chats=hiking)]
        got["context_default"] = await user.context()
        got["context_prefer_only_topics"] = await user.context(
            max_token_size=200, prefer_topics=["interest"], only_topics=["interest", "work"]
        )
        got["context_chats"] = await user.context(
            chats=[{"role": "user", "content": "Any hiking trail near Berlin?"}]
        )
        got["context_chats_low_threshold"] = await user.context(
            chats=[{"role": "user", "content": "Any hiking trail near Berlin?"}],
            event_similarity_threshold=0.1,
        )
        got["context_custom_prompt"] = await user.context(
            customize_context_prompt="P:{profile_section}|E:{event_section}"
        )
        got["event"] = [e.model_dump(mode="json") for e in await user.event(topk=5)]
        # 0.1, as in the sync flow (the async SDK's own default is 0.5, an SDK quirk).
        hits = await user.search_event("hiking mountains", similarity_threshold=0.1)
        got["search_event"] = [e.model_dump(mode="json") for e in hits]
        gists = await user.search_event_gist("data scientist", similarity_threshold=0.1)
        got["search_event_gist"] = [g.model_dump(mode="json") for g in gists]
        got["search_event_by_tags"] = []  # the async client has no tag search
        got["insert_summary"] = await user.insert(
            SummaryBlob(summary="User enjoys reading mystery novels.")
        )
        got["get_all_summary"] = await user.get_all(BlobType.summary)
        got["flush_summary_sync"] = await user.flush(BlobType.summary, sync=True)
        got["get_usage"] = await client.get_usage()
        got["get_all_users"] = len(await client.get_all_users(limit=5))
        got["get_daily_usage"] = await client.get_daily_usage(2)
        with pytest.raises(ServerError) as missing:
            await client.get_user(MISSING)
        got["get_missing_user_raises"] = str(missing.value)
        got["delete_user"] = await client.delete_user(uid)
        return got


def test_the_sync_sdk_flow_matches_the_recording(store: Store) -> None:
    with serving(store) as served:
        check_results(sync_flow(served))


def test_the_async_sdk_flow_matches_the_recording(sqlite: Store) -> None:
    with serving(sqlite) as served:
        check_results(asyncio.run(async_flow(served)))


def test_sdk_user_crud_and_profile_edits(served: Served) -> None:
    """The SDK's remaining methods: update_user (nested, as the SDK sends it), blobs,
    profile add/update/delete, event update/delete, get_or_create_user, config."""
    client = MemoBaseClient(project_url=served.url, api_key=served.token)
    uid = client.add_user(id=str(uuid.uuid4()))
    assert client.update_user(uid, {"tier": 2}) == uid
    assert client.get_user(uid).fields["data"] == {"data": {"tier": 2}}  # the SDK's nesting
    user = client.get_user(uid, no_get=True)
    blob_id = user.insert(ChatBlob(messages=INTRO[:1]))
    assert user.get(blob_id).messages[0].content == INTRO[0]["content"]
    assert user.get_all(BlobType.chat) == [blob_id]
    assert user.delete(blob_id) is True
    with pytest.raises(ServerError, match="not found"):
        user.get(blob_id)
    pid = user.add_profile("Lisbon", "contact_info", "city")
    assert user.update_profile(pid, "Porto", "contact_info", "city") is True
    assert [p.content for p in user.profile()] == ["Porto"]
    assert user.delete_profile(pid) is True
    assert user.profile() == []
    user.insert(ChatBlob(messages=JOB_CHANGE))
    user.flush(sync=True)
    (event,) = user.event()
    assert user.update_event(str(event.id), {"event_tip": "- edited // info"}) is True
    assert user.event()[0].event_data.event_tip == "- edited // info"
    assert user.delete_event(str(event.id)) is True
    assert user.event() == []
    same = client.get_or_create_user(str(uuid.UUID(int=7, version=4)))
    assert client.get_user(same.user_id).fields["data"] is None
    assert client.get_config() == ""
    assert client.update_config("language: zh\n") is True
    assert client.get_config() == "language: zh\n"
