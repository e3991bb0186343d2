"""The context packer against the contexts a real Memobase server returned, byte for byte.

The recorded profiles and gists (tests/engine_text/data/recorded_02_context.json, copied from
the shared server fixtures) are rebuilt as models and packed with the recorded query parameters.
"""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from memobase_integrations.engine.context import (
    DEFAULT_TEMPLATES,
    event_section,
    pack_context,
    truncate_profiles,
    validate_template,
)
from memobase_integrations.errors import ValidationError
from memobase_integrations.models import EventGist, Profile
from memobase_integrations.tokens import count_tokens
from memobase_integrations.values import ContextOptions, ProfileOptions

DATA = json.loads(
    (Path(__file__).parent / "data" / "recorded_02_context.json").read_text(encoding="utf-8")
)
PROFILES = [Profile.model_validate(p) for p in DATA["profiles"]]
GISTS = [
    EventGist(id=uuid.uuid4(), gist_data={"content": line})
    for line in DATA["event_tip"].split("\n")
]


def _context_options(query: list[list[str]]) -> ContextOptions:
    """The server's query parameters as ContextOptions (only those the recordings use)."""
    kwargs: dict[str, Any] = {}
    for key, value in query:
        if key == "max_token_size":
            kwargs[key] = int(value)
        elif key in ("prefer_topics", "only_topics"):
            kwargs.setdefault(key, []).append(value)
        elif key == "max_subtopic_size":
            kwargs[key] = int(value)
        elif key == "profile_event_ratio":
            kwargs[key] = float(value)
        elif key == "fill_window_with_events":
            kwargs[key] = value == "true"
        elif key == "customize_context_prompt":
            kwargs[key] = value
        elif key in ("time_range_in_days", "chats_str"):
            pass  # they choose the gists, which the tests pass in explicitly
        else:  # pragma: no cover - a new recording would need mapping here
            raise AssertionError(f"unmapped query parameter {key}")
    return ContextOptions(**kwargs)


def _profile_options(query: list[list[str]]) -> ProfileOptions:
    kwargs: dict[str, Any] = {}
    for key, value in query:
        if key in ("max_token_size", "topk", "max_subtopic_size"):
            kwargs[key] = int(value)
        elif key in ("prefer_topics", "only_topics"):
            kwargs.setdefault(key, []).append(value)
        elif key == "topic_limits_json":
            kwargs["topic_limits"] = json.loads(value)
    return ProfileOptions(**kwargs)


PLAIN_CASES = [
    "context_default",
    "context_max_token_size_20",
    "context_max_token_size_60",
    "context_prefer_topics_interest",
    "context_only_topics_work",
    "context_max_subtopic_size_1",
    "context_profile_event_ratio_1",
    "context_fill_window_with_events",
    "context_customize_prompt",
]


@pytest.mark.parametrize("name", PLAIN_CASES)
def test_recorded_context_is_reproduced_byte_for_byte(name: str) -> None:
    case = DATA["contexts"][name]
    assert pack_context(PROFILES, GISTS, _context_options(case["query"]), "en") == case["context"]


def test_recorded_context_with_no_gists_in_window() -> None:
    # time_range_in_days=0: the store finds no gist; the section is empty but present.
    case = DATA["contexts"]["context_time_range_0_days"]
    assert pack_context(PROFILES, [], _context_options(case["query"]), "en") == case["context"]


def test_recorded_context_with_searched_gists_keeps_their_order() -> None:
    # With chats, the server searched the gists by embedding; the packer takes them in order.
    case = DATA["contexts"]["context_with_chats_default_event_search"]
    found = [g for g in GISTS if "Berlin" in g.gist_data.content or "hiking" in g.gist_data.content]
    found = [f for f in found if "works" not in f.gist_data.content]
    assert pack_context(PROFILES, found, _context_options(case["query"]), "en") == case["context"]


@pytest.mark.parametrize("name", sorted(DATA["profile_reads"]))
def test_recorded_profile_reads_select_the_same_profiles(name: str) -> None:
    case = DATA["profile_reads"][name]
    opts = _profile_options(case["query"])
    topk = next((int(v) for k, v in case["query"] if k == "topk"), None)
    got = [str(p.id) for p in truncate_profiles(PROFILES, opts, topk=topk)]
    assert got == case["ids"]


def test_ratio_outside_the_open_unit_interval_is_refused() -> None:
    recorded = DATA["context_profile_event_ratio_0_invalid"]
    assert "profile_event_ratio must be between 0 and 1" in recorded["errmsg"]
    for ratio in (0.0, -0.1, 1.5):
        with pytest.raises(ValidationError, match="profile_event_ratio"):
            pack_context(PROFILES, GISTS, ContextOptions(profile_event_ratio=ratio), "en")


# -- the algorithm's rules, one by one ---------------------------------------------------------


def _profile(topic: str, sub: str, content: str, minutes_ago: int) -> Profile:
    ts = datetime(2026, 1, 1, tzinfo=UTC) - timedelta(minutes=minutes_ago)
    return Profile(
        id=uuid.uuid4(),
        content=content,
        created_at=ts,
        updated_at=ts,
        attributes={"topic": topic, "sub_topic": sub},
    )


def test_newest_first_and_ties_keep_input_order() -> None:
    old = _profile("work", "title", "baker", 60)
    tie_a = _profile("basic_info", "name", "Gus", 5)
    tie_b = _profile("interest", "foods", "pizza", 5)
    newest = _profile("contact_info", "city", "Lisbon", 1)
    got = truncate_profiles([old, tie_a, tie_b, newest], ProfileOptions(), topk=None)
    assert got == [newest, tie_a, tie_b, old]
    got = truncate_profiles([old, tie_b, tie_a, newest], ProfileOptions(), topk=None)
    assert got == [newest, tie_b, tie_a, old]


def test_prefer_topics_follow_the_list_order_and_only_topics_filters() -> None:
    a = _profile("work", "title", "baker", 1)
    b = _profile("interest", "foods", "pizza", 2)
    c = _profile("basic_info", "name", "Gus", 3)
    opts = ProfileOptions(prefer_topics=["basic_info", "interest"])
    assert truncate_profiles([a, b, c], opts, topk=None) == [c, b, a]
    opts = ProfileOptions(prefer_topics=[" interest "], only_topics=["interest", "work"])
    assert truncate_profiles([a, b, c], opts, topk=None) == [b, a]


def test_topic_limits_override_max_subtopic_size() -> None:
    rows = [_profile("interest", f"s{i}", "x", i) for i in range(4)]
    rows += [_profile("work", f"w{i}", "y", 10 + i) for i in range(3)]
    opts = ProfileOptions(max_subtopic_size=2, topic_limits={"work": 1})
    got = truncate_profiles(rows, opts, topk=None)
    assert [p.sub_topic for p in got] == ["s0", "s1", "w0"]
    zero = ProfileOptions(topic_limits={"work": 0})
    assert all(p.topic != "work" for p in truncate_profiles(rows, zero, topk=None))


def test_first_profile_is_kept_even_when_it_alone_is_over_budget() -> None:
    big = _profile("work", "title", "word " * 50, 1)
    small = _profile("basic_info", "name", "Gus", 2)
    got = truncate_profiles([big, small], ProfileOptions(max_token_size=5), topk=None)
    assert got == [big]


def test_token_budget_stops_at_the_first_overflow() -> None:
    rows = [
        _profile("a", "one", "short", 1),
        _profile("b", "two", "a much longer memo that will not fit in the budget", 2),
        _profile("c", "three", "x", 3),
    ]
    budget = count_tokens(rows[0].describe()) + 2
    got = truncate_profiles(rows, ProfileOptions(max_token_size=budget), topk=None)
    assert got == rows[:1]  # the small third one is not picked up after the overflow


def test_no_profiles_still_gives_the_dash_and_a_zero_share_gives_nothing() -> None:
    opts = ContextOptions()
    assert "## User Current Profile:\n- \n\n## Past Events:" in pack_context([], [], opts, "en")
    tiny = ContextOptions(max_token_size=1, profile_event_ratio=0.5)  # int(0.5) == 0
    assert pack_context(PROFILES, [], tiny, "en").startswith(
        "---\n# Memory\nUnless the user has relevant queries, do not actively mention those "
        "memories in the conversation.\n## User Current Profile:\n\n\n## Past Events:"
    )


def test_fill_window_gives_events_the_unused_profile_budget() -> None:
    gists = [
        EventGist(id=uuid.uuid4(), gist_data={"content": f"- event number {i}"}) for i in range(40)
    ]
    small = [_profile("basic_info", "name", "Gus", 1)]

    def kept(opts: ContextOptions) -> list[str]:
        text = pack_context(small, gists, opts, "en")
        return text.split("## Past Events:\n")[1].removesuffix("\n---\n").split("\n")

    normal = kept(ContextOptions(max_token_size=200))
    filled = kept(ContextOptions(max_token_size=200, fill_window_with_events=True))
    per_gist = count_tokens(gists[0].gist_data.content)
    # Without filling, events get at most max_token_size - int(max_token_size * ratio) = 80.
    assert len(normal) == 80 // per_gist
    used = count_tokens("- basic_info::name: Gus")
    assert len(filled) == (200 - used) // per_gist
    assert filled[: len(normal)] == normal


def test_event_section_stops_at_first_overflow() -> None:
    gists = [
        EventGist(id=uuid.uuid4(), gist_data={"content": text})
        for text in ("- a", "- a much longer line that breaks the budget here", "- b")
    ]
    assert event_section(gists, count_tokens("- a") + 1) == "- a"
    assert event_section(gists, 0) == ""


def test_chinese_template() -> None:
    text = pack_context(PROFILES[:1], GISTS[:1], ContextOptions(), "zh")
    assert text == DEFAULT_TEMPLATES["zh"].format(
        profile_section="- basic_info::name: Alice Chen", event_section=GISTS[0].gist_data.content
    )
    assert (
        text.startswith("---\n# 记忆\n") and "## 用户当前状态：" in text and "## 过去事件：" in text
    )


@pytest.mark.parametrize(
    "template",
    [
        "{profile}",
        "{profile_section} {0}",
        "{profile_section",
        "literal { brace",
        "{event_section.x}",
    ],
)
def test_custom_templates_with_other_braces_are_refused(template: str) -> None:
    with pytest.raises(ValidationError, match=r"\{\{ and \}\}"):
        validate_template(template)
    with pytest.raises(ValidationError):
        pack_context(PROFILES, GISTS, ContextOptions(customize_context_prompt=template), "en")


def test_custom_template_with_escaped_braces_and_one_section() -> None:
    opts = ContextOptions(customize_context_prompt="{{json}} {event_section}")
    assert pack_context(PROFILES, GISTS[:1], opts, "en") == "{json} " + GISTS[0].gist_data.content
