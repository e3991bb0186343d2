"""The core turn policy (``memobase_integrations.turns``), framework-free."""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from memobase_integrations.turns import (
    Said,
    Turn,
    current_turn,
    is_answer,
    is_synthetic,
    split_turns,
    structured_text,
    turn_id,
)


def U(text: str, key: str | None = None) -> Said:
    return Said("user", text, key=key)


def A(text: str) -> Said:
    return Said("assistant", text)


STEP = Said("assistant", "Let me check.", calls_tools=True)
TOOL = Said("tool", "22 degrees")


@pytest.mark.parametrize(
    "text",
    [
        "Model call failed after 2 attempts with RuntimeError: down",
        "Model call failed after 1 attempt with ValueError: x",
        "Model call limits exceeded: run limit (2/1)",
        "Tool call limit reached: run limit exceeded (3/2 calls).",
        "'search' tool call limit reached: thread limit exceeded (5/4 calls).",
    ],
)
def test_framework_text_is_synthetic_and_no_answer(text: str) -> None:
    assert is_synthetic(text)
    assert not is_answer(A(text))


def test_ordinary_answers_mentioning_failures_are_answers() -> None:
    assert is_answer(A("The model call failed after 2 attempts, you said?"))
    assert not is_answer(STEP) and not is_answer(A("  ")) and not is_answer(TOOL)


def test_several_user_messages_and_tool_steps_form_one_turn() -> None:
    items = [U("a"), A("1"), U("b"), U("c"), STEP, TOOL, A("2")]
    assert split_turns(items) == ([Turn((0,), 1), Turn((2, 3), 6)], ())
    assert current_turn(items) == Turn((2, 3), 6)


def test_a_synthetic_message_ends_the_turn_without_an_answer() -> None:
    items = [U("a"), A("Model call limits exceeded: run limit (2/1)"), U("b"), A("2")]
    assert split_turns(items)[0] == [Turn((0,), None), Turn((2,), 3)]


def test_unanswered_user_messages_stay_pending_and_join_the_next_turn() -> None:
    assert split_turns([U("a")]) == ([], (0,))
    assert current_turn([U("a")]) == Turn((0,), None)
    assert split_turns([U("a"), U("b"), A("x")])[0] == [Turn((0, 1), 2)]


def test_tool_results_answer_only_when_the_run_ends_on_them() -> None:
    items = [U("a"), STEP, TOOL]
    assert current_turn(items) == Turn((0,), None)
    assert current_turn(items, tool_result_answers=True) == Turn((0,), 2)
    looped = [U("a"), STEP, TOOL, A("done"), U("b"), STEP, TOOL, U("c"), A("x")]
    turns, _ = split_turns(looped, tool_result_answers=True)
    assert turns == [Turn((0,), 3), Turn((4,), 6), Turn((7,), 8)]
    assert split_turns(items, tool_result_answers=True, complete=False) == ([], (0,))


def test_other_entries_never_join() -> None:
    assert current_turn([Said("other", "summary"), U("a"), A("b")]) == Turn((1,), 2)
    assert current_turn([Said("other", "system")]) is None


def test_turn_ids_are_derived_from_the_messages() -> None:
    first = turn_id("lc", [U("I live in Paris", "m1")], "nice")
    assert first == turn_id("lc", [U("I live in Paris", "m1")], "another answer")  # replay
    assert first != turn_id("lc", [U("I live in Rome", "m1")])  # edited: a new turn
    assert first != turn_id("lc", [U("I live in Paris", "m2")])
    assert first.startswith("lc:")
    keyless = turn_id("li", [U("yes")], "OK", scope="s1")
    assert keyless == turn_id("li", [U("yes")], "OK", scope="s1")
    assert keyless != turn_id("li", [U("yes")], "No.", scope="s1")
    assert keyless != turn_id("li", [U("yes")], "OK", scope="s2")
    assert len(turn_id("x" * 300, [U("a")])) <= 255


@dataclass
class Point:
    x: int
    label: str


def test_structured_answers_are_json() -> None:
    assert structured_text(Point(1, "é")) == '{"x": 1, "label": "é"}'
    assert structured_text({"b": 1, "a": [2]}) == '{"b": 1, "a": [2]}'
    assert structured_text("plain") == "plain"
