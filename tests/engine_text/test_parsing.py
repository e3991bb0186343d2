"""Parsers on a corpus of realistic messy LLM outputs (tests/engine_text/data/llm_outputs/).

Each ``<step>/<case>.txt`` is one raw answer; ``expected.json`` holds what the parser must make
of it (written by hand: what a careful reader would take from the answer, nothing more).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from memobase_integrations.engine.config import ProfileConfig, ResolvedConfig
from memobase_integrations.engine.parsing import (
    Fact,
    MergeDecision,
    answer_section,
    is_meaningless,
    parse_entry_summary,
    parse_event_tags,
    parse_extract,
    parse_merge,
    parse_organize,
    parse_pick_ids,
    parse_resummary,
)

CORPUS = Path(__file__).parent / "data" / "llm_outputs"
EXPECTED = json.loads((CORPUS / "expected.json").read_text(encoding="utf-8"))
DEFAULT = ProfileConfig().resolve()
TAGGED = ProfileConfig.from_yaml(
    "event_tags:\n  - emotion\n  - name: location\n    description: where the user is\n"
    "  - Travel Plan\n"
).resolve()


def _read(step: str, name: str) -> str:
    return (CORPUS / step / name).read_text(encoding="utf-8")


def _cases(step: str) -> list[str]:
    files = sorted(p.name for p in (CORPUS / step).glob("*.txt"))
    assert sorted(EXPECTED[step]) == files, f"expected.json and {step}/ disagree"
    return files


@pytest.mark.parametrize("name", _cases("extract"))
def test_extract_corpus(name: str) -> None:
    facts = parse_extract(_read("extract", name), DEFAULT)
    assert [[f.topic, f.sub_topic, f.memo] for f in facts] == EXPECTED["extract"][name]


@pytest.mark.parametrize("name", _cases("merge"))
def test_merge_corpus(name: str) -> None:
    case = EXPECTED["merge"][name]
    got = parse_merge(_read("merge", name), case["n"])
    want = {int(k): MergeDecision(v[0], v[1]) for k, v in case["decisions"].items()}
    assert got == want


@pytest.mark.parametrize("name", _cases("entry"))
def test_entry_summary_corpus(name: str) -> None:
    assert parse_entry_summary(_read("entry", name)) == EXPECTED["entry"][name]


@pytest.mark.parametrize("name", _cases("organize"))
def test_organize_corpus(name: str) -> None:
    got = parse_organize(_read("organize", name), 8)
    assert [list(pair) for pair in got] == EXPECTED["organize"][name]


@pytest.mark.parametrize("name", _cases("tags"))
def test_event_tags_corpus(name: str) -> None:
    got = parse_event_tags(_read("tags", name), TAGGED)
    assert [[t.tag, t.value] for t in got] == EXPECTED["tags"][name]


@pytest.mark.parametrize("name", _cases("pick"))
def test_pick_corpus(name: str) -> None:
    assert parse_pick_ids(_read("pick", name)) == EXPECTED["pick"][name]


# -- behaviours worth naming --------------------------------------------------------------------


def test_strict_mode_keeps_only_configured_slots() -> None:
    strict = ProfileConfig.from_yaml(
        "profile_strict_mode: true\noverwrite_user_profiles:\n  - topic: work\n"
        "    sub_topics: [title, company]\n  - topic: interest\n    sub_topics: [sports]\n"
    ).resolve()
    text = (
        "---\n- basic_info::name::Alice Chen\n- work::title::software engineer\n"
        "- Work::Company::Acme Corp\n- contact_info::city::Berlin\n- interest::sports::hiking\n"
        "- interest::foods::pizza\n"
    )
    facts = parse_extract(text, strict)
    assert facts == [
        Fact("work", "title", "software engineer"),
        Fact("work", "company", "Acme Corp"),
        Fact("interest", "sports", "hiking"),
    ]
    assert len(parse_extract(text, DEFAULT)) == 6  # not strict: everything stays


def test_organize_is_cut_to_the_limit() -> None:
    text = "\n".join(f"- s{i}::memo {i}" for i in range(12))
    got = parse_organize(text, 8)
    assert len(got) == 8
    assert got[0] == ("s0", "memo 0")
    assert parse_organize(text, 0) == []


def test_resummary() -> None:
    assert parse_resummary("Likes spicy food; hikes on weekends.") == (
        "Likes spicy food; hikes on weekends."
    )
    assert parse_resummary("Shorter:\n---\n```\n- Enjoys hiking and jazz\n```") == (
        "Enjoys hiking and jazz"
    )
    assert parse_resummary('"Loves tea" // info') == "Loves tea"
    assert parse_resummary("") == ""
    assert parse_resummary("N/A") == ""


def test_unknown_event_tags_are_dropped_without_tag_config() -> None:
    assert parse_event_tags("- emotion::happy", DEFAULT) == []


@pytest.mark.parametrize(
    ("value", "meaningless"),
    [
        ("none", True),
        ("None.", True),
        ("NULL", True),
        ("not mentioned", True),
        ("Not mentioned in the conversation", True),
        ("unknown [mention 2025/01/14]", True),
        ("n/a", True),
        ("", True),
        ("   ", True),
        ("未提及", True),
        ("不知道", True),
        ("无", True),
        ("Nona", False),  # a short real value is only dropped on an exact match
        ("no", False),  # e.g. smoking::no
        ("无业", False),
        ("unemployed", False),
        ("Tennis", False),
        ("novels", False),  # 0.6-close to "none": single words need 0.85
        ("Simone", False),
        ("phone", False),
        ("unkown", True),
        ("no information given", True),
        ("Berlin [mention 2026/11/24]", False),
    ],
)
def test_meaningless_values(value: str, meaningless: bool) -> None:
    assert is_meaningless(value) is meaningless


def test_answer_section_rules() -> None:
    assert answer_section("a\nb") == "a\nb"
    assert answer_section("think\n---\nanswer\n---\n") == "answer"
    assert answer_section("think\n---\n") == ""
    assert answer_section("think\n***\nx") == "x"
    assert answer_section("```\nx\n```") == "x"
    assert answer_section("<think>hidden</think>\nvisible") == "visible"
    assert answer_section("<think>never closed\n- a::b::c") == ""
    # with a predicate, a trailing note after the list does not hide the list
    assert (
        answer_section("think\n---\n- a::b::c\n---\nHope this helps", lambda s: "::" in s)
        == "- a::b::c"
    )


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=400))
def test_parsers_never_raise_on_arbitrary_text(text: str) -> None:
    cfg: ResolvedConfig = TAGGED
    assert isinstance(parse_entry_summary(text), str)
    for fact in parse_extract(text, cfg):
        assert fact.topic and fact.sub_topic and fact.memo
    for number, decision in parse_merge(text, 5).items():
        assert 1 <= number <= 5
        assert (decision.memo is not None) == (decision.action == "UPDATE")
    assert len(parse_organize(text, 3)) <= 3
    assert isinstance(parse_resummary(text), str)
    assert {t.tag for t in parse_event_tags(text, cfg)} <= cfg.event_tag_names()
    assert all(i >= 0 for i in parse_pick_ids(text))


@settings(max_examples=100, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.sampled_from(["basic_info", "work", "interest"]),
            st.sampled_from(["name", "title", "sports"]),
            st.text(
                alphabet=st.characters(blacklist_characters="\n\r:[]/"), min_size=6, max_size=30
            ),
        ),
        max_size=6,
    )
)
def test_well_formed_facts_round_trip(rows: list[tuple[str, str, str]]) -> None:
    text = "thinking\n---\n" + "\n".join(f"- {t}::{s}::{m}" for t, s, m in rows)
    facts = {(f.topic, f.sub_topic): f.memo for f in parse_extract(text, DEFAULT)}
    for topic, sub, memo in rows:
        core = " ".join(memo.replace("**", "").replace("`", "").split()).strip("\"'“”‘’ ")
        if is_meaningless(core) or not core:
            continue
        assert (topic, sub) in facts
