"""Prompt builders: the layouts other modules (and the stand-in) rely on, and their size."""

from __future__ import annotations

import uuid

import pytest

from memobase_integrations.engine.config import ProfileConfig, ResolvedConfig
from memobase_integrations.engine.prompts import (
    HEADERS,
    MergeItem,
    Step,
    already_logged,
    entry_summary_prompt,
    event_tagging_prompt,
    extract_prompt,
    guess_step,
    merge_prompt,
    organize_prompt,
    pick_profiles_prompt,
    render_slots,
    resummary_prompt,
)
from memobase_integrations.models import OpenAICompatibleMessage, Profile
from memobase_integrations.tokens import count_tokens, truncate_tokens

EN = ProfileConfig().resolve()
ZH = ProfileConfig(language="zh").resolve()
SMALL = ProfileConfig.from_yaml(
    "overwrite_user_profiles:\n  - topic: work\n    description: job\n    sub_topics:\n"
    "      - title\n      - name: company\n        description: employer\n"
    "  - topic: interest\n    sub_topics: [sports]\n"
).resolve()
STRICT = ProfileConfig.from_yaml(
    "profile_strict_mode: true\noverwrite_user_profiles:\n  - topic: work\n"
    "    sub_topics: [title]\n"
).resolve()


def test_step_values_match_the_documented_header_values() -> None:
    assert [s.value for s in Step] == [
        "entry_summary",
        "extract_profile",
        "merge_profile",
        "organize_profile",
        "summary_profile",
        "event_tagging",
        "pick_related_profiles",
    ]


def test_slot_list_layout() -> None:
    assert render_slots(SMALL.topics) == (
        "- work (job)\n  - title\n  - company(employer)\n- interest ()\n  - sports\n..."
    )
    assert not render_slots(SMALL.topics, open_ended=False).endswith("...")


def test_already_logged_lines() -> None:
    rows = [
        ("work", "title", "senior software engineer at a large bank in Berlin"),
        ("basic_info", "name", "Gus"),
        ("Interest", "Sports", "first"),
        ("interest", "sports", "hiking\non weekends"),
    ]
    cut = truncate_tokens(rows[0][2], 5, "...")
    assert cut.endswith("...") and count_tokens(cut.removesuffix("...")) == 5
    assert already_logged(rows, EN) == (
        f"- basic_info::name::Gus\n- interest::sports::hiking on weekends\n- work::title::{cut}"
    )
    assert already_logged(rows, STRICT) == f"- work::title::{cut}"
    assert already_logged([], EN) == ""


def test_entry_summary_prompt() -> None:
    tagged = ProfileConfig.from_yaml(
        "event_tags:\n  - name: emotion\n    description: how the user feels\n"
        "event_theme_requirement: Only travel matters.\n"
    ).resolve()
    system, user = entry_summary_prompt("[2025/01/14] user: hi", "- a::b::c", tagged)
    assert "Only travel matters." in system
    assert "- emotion(how the user feels)" in system
    assert render_slots(tagged.topics) in system
    assert "// info|event|schedule" in system and "[mention" in system
    assert user == "## Already logged\n- a::b::c\n## Chats\n[2025/01/14] user: hi"
    plain_system, _ = entry_summary_prompt("x", "", EN)
    assert "emotion" not in plain_system


def test_extract_prompt_strict_and_persona() -> None:
    system, user = extract_prompt("- User is Gus. // info", "", STRICT)
    assert user.startswith(HEADERS["en"].strict + "\n")
    assert user.endswith("## Memo\n- User is Gus. // info")
    assert "- work ()\n  - title" in system and not system.rstrip().endswith("...")
    assert "snake_case" not in system  # no invitation to invent slots in strict mode
    custom = ProfileConfig(system_prompt="You are a travel agent's assistant.").resolve()
    system, user = extract_prompt("m", "- x::y::z", custom)
    assert system.startswith("You are a travel agent's assistant.")
    assert "snake_case" in system and system.rstrip().endswith("...")
    assert user == "## Already logged\n- x::y::z\n## Memo\nm"


def test_merge_prompt_blocks() -> None:
    items = [
        MergeItem.for_slot(1, "work", "company", "Initech", "Acme Corp", SMALL),
        MergeItem(2, "tennis", "", "interest", "sports"),
    ]
    system, user = merge_prompt(items, SMALL)
    assert "N. UPDATE::" in system and "APPEND" in system and "ABORT" in system
    assert user == (
        "[1] work::company\ndescription: employer\ncurrent: Acme Corp\nnew: Initech\n\n"
        "[2] interest::sports\ncurrent: (empty)\nnew: tennis"
    )
    with_rule = ProfileConfig.from_yaml(
        "overwrite_user_profiles:\n  - topic: t\n    sub_topics:\n      - name: s\n"
        "        update_description: keep the newest\n"
    ).resolve()
    item = MergeItem.for_slot(1, "t", "s", "new", "old", with_rule)
    assert item.update_instruction == "keep the newest"
    assert "update rule: keep the newest" in merge_prompt([item], with_rule)[1]


def test_organize_prompt() -> None:
    system, user = organize_prompt("interest", [("a", "x"), ("b", "y\nz")], EN)
    assert "at most 8" in system
    assert "books, movies, music, foods, sports" in system
    assert user == "topic: interest\n- a::x\n- b::y z"


def test_resummary_and_tagging_prompts() -> None:
    system, user = resummary_prompt("long memo", EN)
    assert user == "long memo" and "Shorten" in system
    tagged = ProfileConfig(event_tags=["mood", {"name": "place", "description": "where"}]).resolve()  # type: ignore[list-item]
    system, user = event_tagging_prompt("- memo // info", tagged)
    assert system.endswith("- mood\n- place(where)")
    assert user == "- memo // info"


def _profile(topic: str, sub: str, content: str) -> Profile:
    return Profile(id=uuid.uuid4(), content=content, attributes={"topic": topic, "sub_topic": sub})


def test_pick_prompt_indices_refer_to_the_input_order() -> None:
    profiles = [
        _profile("work", "title", "baker"),
        _profile("basic_info", "name", "Gus"),
        _profile("interest", "sports", " ".join(["hiking"] * 30)),
    ]
    chats = [OpenAICompatibleMessage(role="user", content=f"message {i}") for i in range(7)]
    chats.append(OpenAICompatibleMessage(role="assistant", content="answer"))
    system, user = pick_profiles_prompt(chats, profiles, EN, only_topics=["work", "interest"])
    assert "at most 10" in system and '"ids"' in system
    memos = user.split("<memos>\n")[1].split("\n</memos>")[0].split("\n")
    assert memos[0].startswith("2. interest,sports,hiking hiking") and memos[0].endswith("...")
    assert memos[1] == "0. work,title,baker"
    assert len(memos) == 2  # basic_info filtered out
    context = user.split("<context>\n")[1].split("\n</context>")[0].split("\n")
    assert context == ["Q: message 3", "Q: message 4", "Q: message 5", "Q: message 6", "A: answer"]


@pytest.mark.parametrize("cfg", [EN, ZH], ids=["en", "zh"])
def test_system_prompts_stay_lean_and_are_recognisable(cfg: ResolvedConfig) -> None:
    tagged = ProfileConfig(language=cfg.language, event_tags=["emotion"]).resolve()  # type: ignore[list-item]
    prompts = {
        Step.entry_summary: entry_summary_prompt("x", "", tagged)[0],
        Step.extract_profile: extract_prompt("x", "", cfg)[0],
        Step.merge_profile: merge_prompt([], cfg)[0],
        Step.organize_profile: organize_prompt("work", [], cfg)[0],
        Step.summary_profile: resummary_prompt("x", cfg)[0],
        Step.event_tagging: event_tagging_prompt("x", tagged)[0],
        Step.pick_related_profiles: pick_profiles_prompt([], [], cfg)[0],
    }
    for step, system in prompts.items():
        # The benchmark budget: fixed system prompts well under ~600 tokens each.
        assert count_tokens(system) < 600, step
        assert guess_step(system) is step
    assert guess_step("You are a helpful assistant.") is None
