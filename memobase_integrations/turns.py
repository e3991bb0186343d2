"""What a recorded turn is: the one policy both framework adapters apply.

A framework transcript holds much more than what the user and the assistant said to each
other: tool calls and their results, system prompts, summaries, and text that the framework
itself writes when something goes wrong ("Model call failed after 3 attempts..."). Memobase
must learn only from the conversation. The adapters translate their framework's messages into
:class:`Said` (who spoke, the visible text, whether it asks for tools, the framework's message
id) and this module decides, for both of them alike:

* **which messages form a turn**: every user message since the previous turn ended (several
  user messages sent before one answer are one turn), plus the answer that ends it;
* **what the final answer is**: the last assistant message with text that asks for no tool
  and is not framework text; a run that ends on a tool result (a tool whose result goes
  straight to the user, LangChain's ``return_direct``) has that result as its answer, when the
  adapter says its framework works that way; a structured answer is recorded as its JSON;
* **what is never recorded**: tool steps, system/summary messages, blank text, and
  framework-synthetic messages (:data:`SYNTHETIC_PATTERNS`). A synthetic message still *ends*
  the turn (the user got no answer), so the next turn does not repeat its user messages;
* **the turn id**: derived from the messages only (:func:`turn_id`), so replaying the same
  turn (a client retry, a checkpoint replay, a repeated ``put``) records nothing new, while an
  edited user message (same id, new text) is a new turn.

Everything here is pure: no I/O, no clock, no framework import.
"""

from __future__ import annotations

import dataclasses
import json
import re
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

from .ids import MAX_TURN_ID_CHARS

__all__ = [
    "SYNTHETIC_PATTERNS",
    "Said",
    "Turn",
    "current_turn",
    "is_answer",
    "is_synthetic",
    "split_turns",
    "structured_text",
    "turn_id",
]

Kind = Literal["user", "assistant", "tool", "other"]

#: Text that frameworks put into the transcript as if the assistant had said it. Recording it
#: would teach long-term memory that "the assistant said the model call failed".
SYNTHETIC_PATTERNS: tuple[re.Pattern[str], ...] = (
    # langchain ModelRetryMiddleware(on_failure="continue") after its last attempt.
    re.compile(r"^Model call failed after \d+ attempts? with "),
    # langchain ModelCallLimitMiddleware(exit_behavior="end").
    re.compile(r"^Model call limits exceeded: "),
    # langchain ToolCallLimitMiddleware(exit_behavior="end"), old and new wording.
    re.compile(r"^(?:'[^'\n]*' tool|Tool) call limits? (?:reached|exceeded)\b"),
)

# The namespace of content-derived turn ids (a fixed, arbitrary uuid5 namespace).
_TURN_NAMESPACE = uuid.uuid5(uuid.NAMESPACE_URL, "https://memobase.io/integrations/turn")


@dataclass(frozen=True, slots=True)
class Said:
    """One transcript entry as the policy sees it.

    ``kind`` is ``user``, ``assistant``, ``tool`` (a tool's result) or ``other`` (system,
    summaries, anything the conversation did not say); ``text`` is its visible text;
    ``calls_tools`` marks an assistant step that asks for tools; ``key`` is the framework's id
    for the message when it has one (LangGraph message ids), used by :func:`turn_id`.
    """

    kind: Kind
    text: str
    calls_tools: bool = False
    key: str | None = None


@dataclass(frozen=True, slots=True)
class Turn:
    """Indices into the transcript: the turn's user messages and its answer (if any)."""

    users: tuple[int, ...]
    answer: int | None


def is_synthetic(text: str) -> bool:
    """True for text a framework wrote in the assistant's place (:data:`SYNTHETIC_PATTERNS`)."""
    stripped = text.strip()
    return any(p.match(stripped) for p in SYNTHETIC_PATTERNS)


def is_answer(item: Said) -> bool:
    """An assistant message that ends a turn with something the user was told."""
    return (
        item.kind == "assistant"
        and not item.calls_tools
        and bool(item.text.strip())
        and not is_synthetic(item.text)
    )


def _ends_without_answer(item: Said) -> bool:
    """An assistant message that ends the turn although it says nothing worth keeping."""
    return item.kind == "assistant" and not item.calls_tools and not is_answer(item)


def split_turns(
    items: Sequence[Said], *, tool_result_answers: bool = False, complete: bool = True
) -> tuple[list[Turn], tuple[int, ...]]:
    """Fold a transcript into its turns; returns ``(turns, pending user indices)``.

    * a user message with text joins the pending turn;
    * an answer (:func:`is_answer`) closes the pending turn with it;
    * an assistant message without a usable answer (synthetic, blank) closes the pending turn
      without an answer;
    * with ``tool_result_answers``, a tool result that nothing but a user message (or, when
      ``complete``, the end of the transcript) follows is the answer the user got;
    * tool steps and ``other`` entries never join a turn.

    A turn is only reported when it has user messages: an answer with nothing pending belongs
    to a turn already reported.
    """
    turns: list[Turn] = []
    pending: list[int] = []
    last = len(items) - 1
    for index, item in enumerate(items):
        if item.kind == "user":
            if item.text.strip():
                pending.append(index)
            continue
        if item.kind == "tool" and tool_result_answers and item.text.strip():
            nxt = items[index + 1] if index < last else None
            direct = (nxt is None and complete) or (nxt is not None and nxt.kind == "user")
            if not direct:
                continue
            answer: int | None = index
        elif is_answer(item):
            answer = index
        elif _ends_without_answer(item):
            answer = None
        else:
            continue
        if pending:
            turns.append(Turn(tuple(pending), answer))
            pending = []
    return turns, tuple(pending)


def current_turn(items: Sequence[Said], *, tool_result_answers: bool = False) -> Turn | None:
    """The turn a finished run just had: the last one, if nothing the user said follows it.

    User messages left pending at the end (the run ended before any answer) form a turn
    without an answer, so what the user said is still kept.
    """
    turns, pending = split_turns(items, tool_result_answers=tool_result_answers)
    if pending:
        return Turn(pending, None)
    return turns[-1] if turns else None


def structured_text(value: Any) -> str:
    """A structured answer (pydantic model, dataclass, mapping...) as the text to record.

    JSON with keys in the model's order, non-ASCII kept: deterministic for the same value.
    """
    dump = getattr(value, "model_dump", None)
    if callable(dump):
        data = dump(mode="json")
    elif dataclasses.is_dataclass(value) and not isinstance(value, type):
        data = dataclasses.asdict(value)
    else:
        data = value
    if isinstance(data, str):
        return data
    return json.dumps(data, ensure_ascii=False, default=str)


def turn_id(
    source: str,
    users: Sequence[Said],
    answer: str | None = None,
    *,
    scope: str = "",
) -> str:
    """The deterministic id of a turn: ``"<source>:<uuid5>"``, derived from its messages.

    * When every user message carries the framework's id (``key``), the turn is identified
      by those ids *and* their text: a replay (same ids, same text) gets the same id whatever
      the model answers this time, and an edited message (same id, new text) is a new turn.
    * Without ids (LlamaIndex messages have none), by ``scope`` (the session), the users'
      text and the answer's text: a repeated ``put`` of the same turn is the same turn; the
      same question answered differently is a different one. An identical exchange repeated
      word for word in one session cannot be told from a replay and is kept once.
    """
    keyed = bool(users) and all(u.key for u in users)
    identity: list[Any] = [scope, [[u.kind, u.key, u.text] for u in users]]
    if not keyed:
        identity.append(answer)
    digest = uuid.uuid5(_TURN_NAMESPACE, json.dumps(identity, ensure_ascii=False))
    result = f"{source}:{digest}"
    if len(result) > MAX_TURN_ID_CHARS:  # a very long source name: keep the digest
        result = str(digest)
    return result
