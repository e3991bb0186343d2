"""The pipeline on its own (no database): merge actions, organize, re-summary, validate mode,
tags, gists, embeddings, and answers it must refuse."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

import pytest
from embedded.emb_support import Tap, fault, tapped_settings

from memobase_integrations.engine.config import ProfileConfig
from memobase_integrations.engine.llm import LLMClient
from memobase_integrations.engine.pipeline import Pipeline, UnusableAnswerError, gists_of
from memobase_integrations.engine.plan import ClaimedBlob, StoredProfile
from memobase_integrations.models import BlobType, ChatBlob, OpenAICompatibleMessage
from memobase_integrations.tokens import count_tokens

NOW = datetime(2025, 3, 1, tzinfo=UTC)


def blob(text: str) -> ClaimedBlob:
    chat = ChatBlob(
        messages=[
            OpenAICompatibleMessage(role="user", content=text, created_at="2025/03/01"),
            OpenAICompatibleMessage(role="assistant", content="Noted.", created_at="2025/03/01"),
        ]
    )
    return ClaimedBlob(uuid.uuid4(), "t", chat, NOW, 20)


def profile(topic: str, sub_topic: str, content: str, hits: int = 0) -> StoredProfile:
    return StoredProfile(uuid.uuid4(), topic, sub_topic, content, hits, NOW, NOW)


def pipeline(**settings: Any) -> tuple[Pipeline, Tap]:
    llm_settings, tap, _ = tapped_settings(**settings)
    return Pipeline(LLMClient(llm_settings)), tap


DEFAULT = ProfileConfig().resolve()


def test_update_append_and_add() -> None:
    pipe, _ = pipeline()
    title = profile("work", "title", "nurse", hits=2)
    music = profile("interest", "music", "jazz")
    plan = pipe.run(
        [blob("I work as a pilot. I love rock music. My name is Ines.")],
        BlobType.chat,
        [title, music],
        DEFAULT,
    )
    updates = {u.id: u for u in plan.update}
    assert "pilot" in updates[title.id].content and updates[title.id].update_hits == 3
    assert updates[music.id].content.startswith("jazz;")  # APPEND keeps the old memo first
    assert [(a.topic, a.sub_topic) for a in plan.add] == [("basic_info", "name")]
    assert plan.event is not None and plan.event.event_tip
    delta = {
        (d.attributes["topic"], d.attributes["sub_topic"]) for d in plan.event.profile_delta or []
    }
    assert delta == {("work", "title"), ("interest", "music"), ("basic_info", "name")}
    assert [g for g, _ in plan.gists] == gists_of(plan.event.event_tip)


def test_validate_mode_off_adds_new_slots_without_the_merge_call() -> None:
    pipe, tap = pipeline()
    cfg = ProfileConfig(profile_validate_mode=False).resolve()
    plan = pipe.run([blob("My name is Ines.")], BlobType.chat, [], cfg)
    assert [(a.topic, a.sub_topic) for a in plan.add] == [("basic_info", "name")]
    assert "merge_profile" not in tap.steps()


def test_organize_replaces_a_crowded_topic() -> None:
    pipe, tap = pipeline()
    crowded = [profile("interest", f"thing_{i}", f"likes thing {i}") for i in range(16)]
    other = profile("basic_info", "name", "Ines")
    plan = pipe.run([blob("I love chess.")], BlobType.chat, [*crowded, other], DEFAULT)
    assert tap.steps()["organize_profile"] == 1
    assert set(plan.delete) == {p.id for p in crowded}
    organized = [a for a in plan.add if a.topic == "interest"]
    assert 1 <= len(organized) <= DEFAULT.organize_target
    assert not [u for u in plan.update if u.id in set(plan.delete)]
    assert "chess" in " ".join(a.content for a in organized)  # this flush's fact survived
    assert other.id not in plan.delete


def test_resummary_shortens_long_memos() -> None:
    pipe, tap = pipeline()
    long_memo = "; ".join(
        f"enjoys the album number {i} of a band from the seventies" for i in range(20)
    )
    music = profile("interest", "music", long_memo)
    assert count_tokens(long_memo) > DEFAULT.max_pre_profile_token_size
    plan = pipe.run([blob("I love jazz music.")], BlobType.chat, [music], DEFAULT)
    assert tap.steps()["summary_profile"] == 1
    (update,) = plan.update
    assert count_tokens(update.content) <= DEFAULT.resummary_max_tokens + 2  # "..." at most


def test_event_tags_and_embeddings() -> None:
    pipe, tap = pipeline(enable_embeddings=True, embedding_dim=32)
    cfg = ProfileConfig.from_yaml("event_tags:\n  - name: location\n  - name: emotion\n").resolve()
    plan = pipe.run([blob("I moved to Lisbon last week and I'm so happy.")], BlobType.chat, [], cfg)
    assert plan.event is not None and plan.event.event_tags is not None
    assert {t.tag for t in plan.event.event_tags} <= {"location", "emotion"}
    assert plan.event_embedding is not None and len(plan.event_embedding) == 32
    assert plan.gists and all(v is not None and len(v) == 32 for _, v in plan.gists)
    assert tap.steps()["embedding"] == 1


@pytest.mark.parametrize(
    ("step", "answer"),
    [
        ("entry_summary", "Sure! The user seems nice and chatty overall."),
        ("extract_profile", "- basic_info name Ines"),
        ("extract_profile", "thinking\n---\n- basic_info::name::Ines\n- work - title - pilot"),
        ("merge_profile", "---\n1. MAYBE::whatever"),
        # Empty is never "nothing to keep": a real endpoint also answers empty by accident.
        ("entry_summary", ""),
        # A reply that stopped mid-line stores half a fact.
        ("entry_summary", "- User's name is Ines. // info\n- User works as a pil"),
        (
            "extract_profile",
            "Facts.\n---\n- basic_info::name::Ines\n- work::company::Air\n- work::title::pil",
        ),
        # Every item decided (item 2 is the new title), but item 1's UPDATE is unusable.
        ("merge_profile", "---\n1. UPDATE::Ines [mention 2025/0\n2. APPEND::APPEND"),
        ("merge_profile", "---\n1. UPDATE::I'm sorry, I can't help with that.\n2. APPEND::APPEND"),
    ],
)
def test_unusable_answers_are_refused(step: str, answer: str) -> None:
    pipe, tap = pipeline()
    tap.faults[step] = fault("text", answer)
    with pytest.raises(UnusableAnswerError, match=step):
        pipe.run(
            [blob("My name is Ines and I work as a pilot.")],
            BlobType.chat,
            [profile("basic_info", "name", "Ine")],
            DEFAULT,
        )


@pytest.mark.parametrize(
    "answer",
    [
        "The memo has no facts about the user.\n---\n",
        "Nothing new.\n---\n- none",
        "```\nthinking\n---\n- basic_info::name::Ines\n```",
    ],
)
def test_legitimate_extraction_answers_are_accepted(answer: str) -> None:
    pipe, tap = pipeline()
    tap.faults["extract_profile"] = fault("text", answer)
    plan = pipe.run([blob("My name is Ines.")], BlobType.chat, [], DEFAULT)
    assert plan.event is not None
    assert [a.content for a in plan.add] in ([], ["Ines"])


@pytest.mark.parametrize("answer", ["NONE", "- nothing to keep", "Nothing to log."])
def test_an_explicit_nothing_to_keep_consumes_the_turn_without_an_event(answer: str) -> None:
    pipe, tap = pipeline()
    tap.faults["entry_summary"] = fault("text", answer)
    plan = pipe.run([blob("Hi there!")], BlobType.chat, [], DEFAULT)
    assert plan.event is None and not plan.add and not plan.update
    assert tap.steps() == {"entry_summary": 1}


def test_crowded_topic_organize_garbage_and_partial_answers_are_refused() -> None:
    crowded = [profile("interest", f"hobby_{i}", f"enjoys hobby {i}") for i in range(16)]
    for answer in (
        "I'm sorry, I can't quite follow. Perhaps:: the weather :: is nice today??",
        "\n".join(f"- hobby_{i}::enjoys hobby {i}" for i in range(4)),  # 12 rows dropped
    ):
        pipe, tap = pipeline()
        tap.faults["organize_profile"] = fault("text", answer)
        with pytest.raises(UnusableAnswerError, match="organize_profile"):
            pipe.run([blob("I love chess.")], BlobType.chat, crowded, DEFAULT)


def test_summary_that_is_not_the_memo_is_refused() -> None:
    long_memo = "; ".join(
        f"enjoys the album number {i} of a band from the seventies" for i in range(20)
    )
    music = profile("interest", "music", long_memo)
    for answer in ("I'm sorry, I can't quite follow that request.", "enjoys the album numb"):
        pipe, tap = pipeline()
        tap.faults["summary_profile"] = fault("text", answer)
        with pytest.raises(UnusableAnswerError, match="summary_profile"):
            pipe.run([blob("I love jazz music.")], BlobType.chat, [music], DEFAULT)
