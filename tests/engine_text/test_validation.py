"""The answer checks (engine/validation.py): what may change memory and what is refused.

Two sides, both pinned: every messy-but-valid answer of the parser corpus
(tests/engine_text/data/llm_outputs) passes, and every way an answer would damage memory is
refused - the stand-in's own faults (garbage, half-formatted, empty) included.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from memobase_integrations.engine.config import ProfileConfig
from memobase_integrations.engine.parsing import (
    NOTHING,
    parse_entry_summary,
    parse_event_tags,
    parse_extract,
    parse_merge,
    parse_organize,
    parse_resummary,
    says_nothing,
)
from memobase_integrations.engine.pipeline import cap_tokens
from memobase_integrations.engine.prompts import (
    MergeItem,
    Step,
    entry_summary_prompt,
    event_tagging_prompt,
    extract_prompt,
    merge_prompt,
    organize_prompt,
    resummary_prompt,
)
from memobase_integrations.engine.validation import (
    entry_summary_problem,
    event_tags_problem,
    extract_problem,
    looks_cut,
    merge_problem,
    organize_problem,
    summary_problem,
)
from memobase_integrations.testing import StandInLLM
from memobase_integrations.testing._answers import garble, half_format
from memobase_integrations.tokens import count_tokens

CORPUS = Path(__file__).parent / "data" / "llm_outputs"
DEFAULT = ProfileConfig().resolve()
TAGGED = ProfileConfig.from_yaml(
    "event_tags:\n  - emotion\n  - name: location\n    description: where the user is\n"
    "  - Travel Plan\n"
).resolve()


def read(step: str, name: str) -> str:
    return (CORPUS / step / name).read_text(encoding="utf-8")


def entry_check(raw: str, chats: str = "") -> str | None:
    return entry_summary_problem(raw, parse_entry_summary(raw), chats)


# -- the corpus of real answer shapes ------------------------------------------------------

ENTRY_REFUSED = {
    # Prose with no list line: indistinguishable from an apology, which would become the
    # event as is (the pipeline refused it before these checks too).
    "plain_sentences.txt": "no '- ...' log line",
}
EXTRACT_REFUSED = {
    "half_formatted.txt": "cannot be read",
    "prose_only.txt": "no '---' and no fact",
}


@pytest.mark.parametrize("name", sorted(p.name for p in (CORPUS / "entry").glob("*.txt")))
def test_entry_corpus(name: str) -> None:
    problem = entry_check(read("entry", name))
    if name in ENTRY_REFUSED:
        assert problem is not None and ENTRY_REFUSED[name] in problem
    else:
        assert problem is None


@pytest.mark.parametrize("name", sorted(p.name for p in (CORPUS / "extract").glob("*.txt")))
def test_extract_corpus(name: str) -> None:
    raw = read("extract", name)
    problem = extract_problem(raw, parse_extract(raw, DEFAULT), raw, DEFAULT)
    if name in EXTRACT_REFUSED:
        assert problem is not None and EXTRACT_REFUSED[name] in problem
    else:
        assert problem is None


#: (number, current memo, new info) per merge case, as the merge prompt would have shown them.
MERGE_ITEMS: dict[str, list[tuple[int, str, str]]] = {
    "canned_spec.txt": [(1, "Gustavo", "Gus")],
    "canonical.txt": [
        (1, "hiking", "tennis"),
        (2, "baker", "product manager at Initech [mention 2025/02/01]"),
        (3, "Gus", "Gus"),
    ],
    "case_and_bold.txt": [(1, "Gus", "Gus Smith"), (2, "jazz", "rock"), (3, "Gus", "Gus")],
    "numbering_variants.txt": [
        (1, "hiking", "tennis"),
        (2, "Gus", "Gus"),
        (3, "lives in Lisbon", "moved to Porto in 2025"),
        (4, "baker", "senior baker"),
    ],
    "numbered_thinking.txt": [(1, "baker", "product manager"), (2, "Gus", "Gus")],
    "fenced_fullwidth.txt": [(1, "面包师", "产品经理 [mention 2025/02/01]"), (2, "爬山", "跑步")],
    "later_line_wins.txt": [(1, "baker", "pastry chef")],
    "unknown_and_out_of_range.txt": [(1, "a", "b"), (2, "c", "d"), (3, "e", "f")],
    "unusable_updates.txt": [(1, "a", "b"), (2, "c", "d"), (3, "e", "f")],
}


@pytest.mark.parametrize("name", sorted(p.name for p in (CORPUS / "merge").glob("*.txt")))
def test_merge_corpus(name: str) -> None:
    items = MERGE_ITEMS[name]
    problem = merge_problem(parse_merge(read("merge", name), len(items)), items)
    if name.startswith(("unknown", "unusable")):
        assert problem is not None and "no readable decision" in problem
    else:
        assert problem is None


ORGANIZE_ROWS = {
    "canonical.txt": [
        ("hiking", "hiking"),
        ("tennis", "tennis on Sundays"),
        ("sushi", "sushi"),
        ("ramen", "ramen"),
        ("jazz", "jazz"),
    ],
    "messy.txt": [
        ("hiking", "hiking"),
        ("tennis", "tennis"),
        ("movies", "sci-fi"),
        ("reading", "novels"),
        ("books", "novels"),
    ],
}


@pytest.mark.parametrize("name", sorted(ORGANIZE_ROWS))
def test_organize_corpus(name: str) -> None:
    raw = read("organize", name)
    rows = ORGANIZE_ROWS[name]
    assert organize_problem(raw, rows, parse_organize(raw, len(rows)), 15) is None


@pytest.mark.parametrize("name", sorted(p.name for p in (CORPUS / "tags").glob("*.txt")))
def test_tags_corpus(name: str) -> None:
    raw = read("tags", name)
    tags = [t.tag for t in parse_event_tags(raw, TAGGED)]
    assert event_tags_problem(raw, tags, "- User is happy in Berlin. // event") is None


# -- "nothing" must be said ------------------------------------------------------------------


@pytest.mark.parametrize(
    "answer",
    [
        NOTHING,
        "none",
        "- NONE",
        "Nothing to log.",
        "- nothing to keep",
        "There is nothing worth logging.",
        "No tags apply.",
        "没有值得记录的内容。",
    ],
)
def test_an_explicit_nothing_is_accepted(answer: str) -> None:
    assert says_nothing(answer)
    assert parse_entry_summary(answer) == ""
    assert entry_check(answer) is None
    assert event_tags_problem(answer, [], "- User feels fine.") is None


@pytest.mark.parametrize(
    "answer",
    [
        "",
        "  \n",
        "Let me think about it.\n---\n",
        "No, but the user said her name is Ana and that she lives in a small town by the sea.",
        "No allergies.",  # a fact, not "nothing": it names no "nothing to log"
    ],
)
def test_an_empty_or_unfinished_answer_is_not_nothing(answer: str) -> None:
    assert not says_nothing(answer)
    assert entry_check(answer) is not None
    assert event_tags_problem(answer, [], "- User feels fine.") is not None


# -- damage the checks must see --------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "source", "cut"),
    [
        ("chef at Lu", "I got a new job as a chef at Luigi's.", True),
        ("Acme C", "User works at Acme Corp.", True),
        ("nur", "I work as a nurse", True),
        ("Lisbon [mention 2025/0", "I moved to Lisbon", True),
        ("moved to Lisbon,", "I moved to Lisbon", True),
        ("Acme Corp", "User works at Acme Corp.", False),
        ("likes to run", "User enjoys running.", False),  # a rephrasing, not a cut
        ("run", "I run and I'm running", False),
        ("爬", "我喜欢爬山", False),  # CJK has no word to cut
        ("trip [mention 2025/01/14]", "", False),
        ("studies at Stanford Univ.", "I study at Stanford University", False),  # finished
        ("lives in the US", "I live in the USA", False),  # an acronym
    ],
)
def test_looks_cut(text: str, source: str, cut: bool) -> None:
    assert (looks_cut(text, source) is not None) is cut


def test_entry_summary_cut_off_lines_are_refused() -> None:
    chats = "[2025/02/01] user: I'm Gus. I got a new job as a chef at Luigi's."
    good = "- User's name is Gus. // info\n- User works as a chef at Luigi's. // event"
    assert entry_check(good, chats) is None
    for broken in (
        "- User's name is Gus. // info\n- User works as a chef at Lu",  # marker missing
        "- User works as a chef at Lu",  # one line, cut mid-word
        "- User works as a chef. // in",  # a partial marker
        "- User works as a chef [mention 2025/02/01 // event",  # unclosed bracket
    ):
        assert entry_check(broken, chats) is not None, broken


def test_extract_refuses_a_truncated_last_fact_but_not_a_rephrased_one() -> None:
    memo = (
        "- User is Alice Chen. // info\n- User works at Acme Corp. // info\n- User enjoys running."
    )
    three = "3 facts.\n---\n- basic_info::name::Alice Chen\n- work::company::Acme Corp\n"
    cut = three + "- interest::sports::runn"
    problem = extract_problem(cut, parse_extract(cut, DEFAULT), memo, DEFAULT)
    assert problem is not None and "cut off" in problem
    fine = three + "- interest::sports::likes to run"
    assert extract_problem(fine, parse_extract(fine, DEFAULT), memo, DEFAULT) is None


def test_merge_refuses_an_implausible_update() -> None:
    items = [(1, "nurse", "chef at Luigi's [mention 2025/02/01]")]
    for answer, why in (
        ("---\n1. UPDATE::chef at Lu", "cut off"),
        ("---\n1. UPDATE::I'm sorry, I can't help with that request", "not about its slot"),
    ):
        problem = merge_problem(parse_merge(answer, 1), items)
        assert problem is not None and why in problem
    assert merge_problem(parse_merge("---\n1. UPDATE::chef at Luigi's", 1), items) is None


def test_organize_must_account_for_every_row() -> None:
    rows = [(f"thing_{i}", f"likes thing {i} [mention 2025/01/0{i}]") for i in range(1, 10)]
    kept = "\n".join(f"- thing_{i}::likes thing {i} [mention 2025/01/0{i}]" for i in range(1, 10))
    merged = "- things::" + "; ".join(
        f"likes thing {i} [mention 2025/01/0{i}]" for i in range(1, 10)
    )
    assert organize_problem(merged, rows, parse_organize(merged, 9), 15) is None
    dropped = merged.rsplit(";", 1)[0]
    assert "missing" in str(organize_problem(dropped, rows, parse_organize(dropped, 9), 15))
    assert "regrouped" in str(organize_problem(kept, rows, parse_organize(kept, 9), 15))


def test_summary_must_be_shorter_and_about_the_memo() -> None:
    memo = "; ".join(f"enjoys the album number {i} of a band from the seventies" for i in range(9))
    good = "enjoys albums of seventies bands"
    assert summary_problem(memo, good) is None
    assert summary_problem(memo, memo + "; and more") is not None  # not shorter
    assert summary_problem(memo, "I'm sorry, I can't quite follow the request") is not None
    assert summary_problem(memo, "enjoys the album number 1 of a ba") is not None  # cut


def test_tags_must_name_a_configured_tag_and_be_whole() -> None:
    memo = "- User moved to Berlin and is happy. // event"
    assert event_tags_problem("- mood::great", [], memo) is not None
    broken = "- emotion::happy\n- location - Berlin"
    found = [t.tag for t in parse_event_tags(broken, TAGGED)]
    assert event_tags_problem(broken, found, memo) is not None
    cut = "- emotion::happy\n- location::Berl"
    assert event_tags_problem(cut, [t.tag for t in parse_event_tags(cut, TAGGED)], memo)


def test_a_capped_summary_is_cut_between_words() -> None:
    text = "enjoys extraordinarily complicated orchestral arrangements " * 20
    capped = cap_tokens(text, 10)
    assert capped.endswith("...") and count_tokens(capped) <= 12
    assert text.startswith(capped[:-3]) and text[len(capped) - 3] == " "
    assert cap_tokens("short memo", 10) == "short memo"


# -- the stand-in: its answers pass, its faults do not ---------------------------------------

CHATS = (
    "[2025/02/01] user: I want to learn the violin. I work as a pilot now. I moved to Lisbon "
    "last week and I'm so happy.\n[2025/02/01] assistant: Congratulations!"
)


def damaged(good: str) -> dict[str, str]:
    return {"garbage": garble(good), "half_formatted": half_format(good), "empty": ""}


@pytest.fixture
def standin() -> StandInLLM:
    return StandInLLM()


def test_standin_entry_summary(standin: StandInLLM) -> None:
    good = standin.complete(Step.entry_summary, *entry_summary_prompt(CHATS, "", TAGGED))
    assert good.count("\n") >= 2 and entry_check(good, CHATS) is None
    for kind, answer in damaged(good).items():
        assert entry_check(answer, CHATS) is not None, kind


def test_standin_extract(standin: StandInLLM) -> None:
    memo = parse_entry_summary(
        standin.complete(Step.entry_summary, *entry_summary_prompt(CHATS, "", DEFAULT))
    )
    good = standin.complete(Step.extract_profile, *extract_prompt(memo, "", DEFAULT))
    assert extract_problem(good, parse_extract(good, DEFAULT), memo, DEFAULT) is None
    for kind, answer in damaged(good).items():
        facts = parse_extract(answer, DEFAULT)
        assert extract_problem(answer, facts, memo, DEFAULT) is not None, kind
    # One fact less: the damage falls on the last line only (an odd number of facts).
    three = "\n".join(good.splitlines()[:-1])
    half = half_format(three)
    assert extract_problem(half, parse_extract(half, DEFAULT), memo, DEFAULT) is not None


def test_standin_merge(standin: StandInLLM) -> None:
    items = [
        MergeItem.for_slot(1, "psychological", "goals", "learn the violin", "travel", DEFAULT),
        MergeItem.for_slot(
            2, "contact_info", "city", "Lisbon [mention 2025/02/01]", "Porto", DEFAULT
        ),
        MergeItem.for_slot(3, "work", "title", "pilot [mention 2025/02/01]", "nurse", DEFAULT),
    ]
    checked = [(i.memo_id, i.current_memo, i.new_info) for i in items]
    good = standin.complete(Step.merge_profile, *merge_prompt(items, DEFAULT))
    assert merge_problem(parse_merge(good, 3), checked) is None
    for kind, answer in damaged(good).items():
        assert merge_problem(parse_merge(answer, 3), checked) is not None, kind


def test_standin_organize(standin: StandInLLM) -> None:
    rows = [(f"hobby_{i}", f"enjoys hobby number {i}") for i in range(16)]
    good = standin.complete(Step.organize_profile, *organize_prompt("interest", rows, DEFAULT))
    assert organize_problem(good, rows, parse_organize(good, 16), 15) is None
    for kind, answer in damaged(good).items():
        assert organize_problem(answer, rows, parse_organize(answer, 16), 15) is not None, kind


def test_standin_summary(standin: StandInLLM) -> None:
    memo = "; ".join(f"wants to visit the {c} museum one day" for c in "ABCDEFGHIJKLMNOP")
    good = standin.complete(Step.summary_profile, *resummary_prompt(memo, DEFAULT))
    assert summary_problem(memo, parse_resummary(good)) is None
    for kind, answer in damaged(good).items():
        assert summary_problem(memo, parse_resummary(answer)) is not None, kind


def test_standin_tagging(standin: StandInLLM) -> None:
    memo = "- User moved to Lisbon. // event\n- User feels happy. // event"
    good = standin.complete(Step.event_tagging, *event_tagging_prompt(memo, TAGGED))
    tags = [t.tag for t in parse_event_tags(good, TAGGED)]
    assert set(tags) == {"emotion", "location"}
    assert event_tags_problem(good, tags, memo) is None
    for kind, answer in damaged(good).items():
        found = [t.tag for t in parse_event_tags(answer, TAGGED)]
        assert event_tags_problem(answer, found, memo) is not None, kind
    nothing = standin.complete(Step.event_tagging, *event_tagging_prompt("- User sighs.", TAGGED))
    assert nothing == NOTHING and event_tags_problem(nothing, [], "- User sighs.") is None
