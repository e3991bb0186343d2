"""The stand-in's documented self-statements and date rules, one row each.

Each statement is recognised from the chat AND from the stand-in's own memo line (the extract
step re-reads what the entry summary wrote), so the two steps cannot drift apart.
"""

from __future__ import annotations

from datetime import date

import pytest

from memobase_integrations.testing._dates import find_when, parse_stamp
from memobase_integrations.testing._rules import recognize, slot_for

TODAY = date(2025, 1, 14)  # a Tuesday

STATEMENTS: list[tuple[str, set[tuple[str, str]]]] = [
    ("My name is Alice Chen.", {("name", "Alice Chen")}),
    ("call me Bob", {("name", "Bob")}),
    ("I'm Gus, nice to meet you", {("name", "Gus")}),
    ("I am 34 years old", {("age", "34")}),
    ("I just turned 40", {("age", "40")}),
    ("I'm American", {("nationality", "American")}),
    ("I'm from Boston", {("hometown", "Boston")}),
    ("I was born on 1990-05-03", {("birth_date", "1990/05/03")}),
    ("I speak English and Spanish", {("language", "English and Spanish")}),
    ("I live in New York City", {("city", "New York City")}),
    ("I'm based in the Bay Area", {("city", "the Bay Area")}),
    ("I moved to Lisbon last week", {("city", "Lisbon"), ("relocation", "moved to Lisbon")}),
    ("I work as a nurse", {("title", "nurse")}),
    ("my job is accountant", {("title", "accountant")}),
    ("I'm a teacher.", {("title", "teacher")}),
    ("I work at Google", {("company", "Google")}),
    ("I work for St. Mary's Hospital", {("company", "St. Mary's Hospital")}),
    ("I'm a designer at Figma", {("title", "designer"), ("company", "Figma")}),
    ("I got a new job as a pilot at Delta", {("title", "pilot"), ("company", "Delta")}),
    ("I love hiking in the Alps", {("interest:sports", "hiking in the Alps")}),
    ("I enjoy reading novels", {("interest:books", "reading novels")}),
    ("I like horror movies", {("interest:movies", "horror movies")}),
    ("I'm a big fan of jazz", {("interest:music", "jazz")}),
    ("my favorite food is ramen", {("interest:foods", "ramen")}),
    ("I'm into woodworking", {("interest:hobbies", "woodworking")}),
    ("I hate cilantro", {("interest:foods", "dislikes cilantro")}),
    ("I don't like reality TV", {("interest:movies", "dislikes reality TV")}),
    ("my wife is named Sarah", {("marital_status", "married"), ("spouse", "wife Sarah")}),
    ("my daughter Emma", {("children", "daughter Emma")}),
    ("I have two kids", {("number_of_children", "2")}),
    ("I'm divorced", {("marital_status", "divorced")}),
    ("my dog Rex", {("pets", "dog Rex")}),
    ("I have a cat named Luna", {("pets", "cat Luna")}),
    ("I study biology at MIT", {("major", "biology"), ("school", "MIT")}),
    ("I'm learning Japanese", {("goals", "learning Japanese")}),
    ("I'm going to Paris next week", {("travel", "trip to Paris")}),
    ("I'm going to run a marathon on March 3rd", {("plans", "run a marathon")}),
    ("I have a dentist appointment on Friday", {("plans", "dentist appointment")}),
    ("我叫小林", {("name", "小林")}),
    ("我今年28岁", {("age", "28")}),
    ("我住在杭州", {("city", "杭州")}),
    ("我在阿里巴巴工作", {("company", "阿里巴巴")}),
    ("我是一名软件工程师", {("title", "软件工程师")}),
    ("我喜欢爬山", {("interest:sports", "爬山")}),
]


@pytest.mark.parametrize(("text", "expected"), STATEMENTS, ids=[s for s, _ in STATEMENTS])
def test_documented_statement(text: str, expected: set[tuple[str, str]]) -> None:
    found = recognize(text, TODAY)
    assert {slot for st in found for slot in st.slots} == expected
    # The memo line the entry summary writes is read back to the same slots.
    again = {
        slot for st in found for slot in (s for r in recognize(st.sentence, TODAY) for s in r.slots)
    }
    assert again == expected
    for kind, _ in expected:
        assert slot_for(kind, "en") and slot_for(kind, "zh")


@pytest.mark.parametrize(
    "text",
    [
        "Hi there!",
        "Can you recommend a book?",
        "I don't live in Paris anymore.",
        "I'm sorry, I'm tired today.",
        "I'd like to order a pizza.",
        "I love it!",
        "What do you think about jazz?",
        "我不喜欢下雨",
    ],
)
def test_non_statements_reveal_nothing(text: str) -> None:
    assert recognize(text, TODAY) == []


@pytest.mark.parametrize(
    ("text", "when"),
    [
        ("today", "2025/01/14"),
        ("tomorrow", "2025/01/15"),
        ("the day after tomorrow", "2025/01/16"),
        ("yesterday", "2025/01/13"),
        ("this weekend", "2025/01/18"),
        ("next weekend", "2025/01/25"),
        ("next week", "2025/01/21"),
        ("last week", "2025/01/07"),
        ("next month", "2025/02/14"),
        ("next year", "2026"),
        ("in 3 days", "2025/01/17"),
        ("in two weeks", "2025/01/28"),
        ("5 days ago", "2025/01/09"),
        ("on Friday", "2025/01/17"),
        ("on Tuesday", "2025/01/21"),  # strictly after the message date
        ("next Friday", "2025/01/24"),  # Friday of the following calendar week
        ("last Friday", "2025/01/10"),
        ("on March 3rd", "2025/03/03"),
        ("3 March 2026", "2026/03/03"),
        ("in March", "2025/03"),
        ("on 2025-02-01", "2025/02/01"),
    ],
)
def test_relative_dates(text: str, when: str) -> None:
    found, rest = find_when(f"see you {text}", TODAY)
    assert found == when
    assert rest == "see you"


def test_dates_without_a_reference_day() -> None:
    assert find_when("tomorrow", None) == (None, "")
    assert find_when("on 2025-02-01", None) == ("2025/02/01", "")
    assert parse_stamp("2025/1/4") == date(2025, 1, 4)
    assert parse_stamp("2025-01-14T10:00:00Z") == date(2025, 1, 14)
    assert parse_stamp("last Tuesday") is None


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        # A name followed by a new sentence must not swallow that sentence's first word.
        ("my name is Gus. I work as a chef.", {("name", "Gus"), ("title", "chef")}),
        ("User's name is Zoe. User lives in Oslo.", {("name", "Zoe"), ("city", "Oslo")}),
        # ...while a real abbreviation inside a proper name is kept.
        ("I live in St. Louis.", {("city", "St. Louis")}),
    ],
)
def test_sentence_end_after_a_name(text: str, expected: set[tuple[str, str]]) -> None:
    found = {pair for statement in recognize(text, date(2026, 1, 5)) for pair in statement.slots}
    assert expected <= found
