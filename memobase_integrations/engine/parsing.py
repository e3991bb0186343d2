"""Parsers for the LLM answers of every pipeline step (pure, and forgiving).

Real models do not follow a format exactly. Each parser accepts the habits seen in practice:

* thinking before the ``---`` separator (or no separator at all), ``<think>`` blocks;
* code fences, blank lines, extra spaces around ``::``, full-width ``：：``;
* bullets as ``-``, ``*``, ``•``, ``+`` or numbering ``1.`` / ``1)`` / ``(1)``, bold ``**`` and
  backticks around names;
* a trailing ``// info`` marker copied into a fact, duplicated facts (joined with ``"; "``);
* meaningless values ("none", "not mentioned", "未提及"...), dropped like Memobase does.

Lines that cannot be read are skipped, never guessed: a half-formatted answer yields the
items that are readable and nothing else.
"""

from __future__ import annotations

import difflib
import json
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Literal

from ..models import EventTag
from .config import ResolvedConfig, attribute_unify

__all__ = [
    "NOTHING",
    "Fact",
    "MergeAction",
    "MergeDecision",
    "answer_section",
    "bullet_items",
    "is_meaningless",
    "parse_entry_summary",
    "parse_event_tags",
    "parse_extract",
    "parse_merge",
    "parse_organize",
    "parse_pick_ids",
    "parse_resummary",
    "says_nothing",
]

MergeAction = Literal["APPEND", "UPDATE", "ABORT"]
_ACTIONS: frozenset[str] = frozenset({"APPEND", "UPDATE", "ABORT"})


@dataclass(frozen=True, slots=True)
class Fact:
    """One extracted profile fact, names normalised."""

    topic: str
    sub_topic: str
    memo: str


@dataclass(frozen=True, slots=True)
class MergeDecision:
    """``memo`` is the rewritten memo for UPDATE, ``None`` for APPEND and ABORT."""

    action: MergeAction
    memo: str | None = None


# -- meaningless values ------------------------------------------------------------------------

#: Values that carry no information. Compared with difflib (cutoff 0.6), as Memobase does.
_MEANINGLESS = (
    "none",
    "null",
    "unknown",
    "not mentioned",
    "not mentioned by user",
    "not mentioned in the conversation",
    "not provided",
    "not specified",
    "not stated",
    "not determined",
    "unspecified",
    "unclear",
    "no information",
    "no related content",
    "no related information",
    "no matched information",
    "not applicable",
    "无",
    "未提及",
    "不清楚",
    "用户未提及",
    "对话未提及",
    "未知",
    "不详",
    "不知道",
    "没有提到",
    "没有说明",
    "无法确定",
    "无相关内容",
    "未明确提及",
    "无明确信息",
    "无符合信息",
    "暂无",
)
#: Short values are only dropped on an exact match: difflib would otherwise throw away real
#: short values such as a name ("Nona" is 0.75 close to "none") or "无业" (unemployed).
_EXACT_MEANINGLESS = frozenset(
    {*_MEANINGLESS, "n/a", "na", "n.a.", "nil", "nothing", "-", "--", "?"}
)
_SHORT = 4
#: Memobase's cutoff (0.6) is kept for multi-word values ("not mentioned by the user"); a single
#: word needs 0.85, because at 0.6 "novels", "phone" and "Simone" all match "none".
_CUTOFF_PHRASE = 0.6
_CUTOFF_WORD = 0.85

_ANNOTATION = re.compile(r"\[[^\]]*\]")
_TRAILING_MARKER = re.compile(r"\s*//\s*(?:info|event|schedule)\s*$", re.IGNORECASE)


def is_meaningless(value: str) -> bool:
    """True for empty values and "none"/"not mentioned"-like placeholders (any language)."""
    core = _ANNOTATION.sub(" ", _TRAILING_MARKER.sub("", value))
    core = " ".join(core.split()).strip(" .。!！,，;；:：\"'").lower()
    if not core:
        return True
    if core in _EXACT_MEANINGLESS:
        return True
    if len(core) <= _SHORT:
        return False
    cutoff = _CUTOFF_PHRASE if " " in core else _CUTOFF_WORD
    return bool(difflib.get_close_matches(core, _MEANINGLESS, n=1, cutoff=cutoff))


# -- line handling shared by every parser -------------------------------------------------------

_THINK = re.compile(r"<think(?:ing)?>.*?</think(?:ing)?>", re.IGNORECASE | re.DOTALL)
_SEPARATOR = re.compile(r"^\s*(?:-{3,}|\*{3,}|_{3,}|—{2,}|={3,})\s*$")
_FENCE = re.compile(r"^\s*(?:```|~~~)")
_BULLET = re.compile(r"^\s*(?:[-*•+·–—]|\d{1,3}[.)、]|\(\d{1,3}\)|[（(]\d{1,3}[）)])\s*")
_DOUBLE_COLON = re.compile(r"[:：]\s*[:：]")


def _colons(line: str) -> str:
    """Full-width and spaced double colons (``：：``, ``: :``) become ``::``."""
    return _DOUBLE_COLON.sub("::", line.replace("\u3000", " "))


def _normalise(text: str) -> str:
    text = _THINK.sub("", text).replace("\r\n", "\n").replace("\r", "\n")
    # An unterminated <think> means the model never got to the answer.
    lower = text.lower()
    for tag in ("<think>", "<thinking>"):
        if tag in lower:
            text = text[: lower.index(tag)]
            lower = text.lower()
    return text


def answer_section(text: str, accept: Callable[[str], bool] | None = None) -> str:
    """The part of an answer that holds the result, code-fence lines dropped.

    Without a ``---`` separator that is the whole text. With separators, it is the last
    section after a separator that ``accept`` takes (default: any non-blank section): models
    think first and answer after the separator, and some close the answer with another
    ``---``. The text before the first separator is thinking and never the answer, so "thinking,
    ``---``, nothing" correctly means "no result".
    """
    lines = [ln for ln in _normalise(text).split("\n") if not _FENCE.match(ln)]
    sections: list[list[str]] = [[]]
    for line in lines:
        if _SEPARATOR.match(line):
            sections.append([])
        else:
            sections[-1].append(line)
    if len(sections) == 1:
        return "\n".join(sections[0]).strip()
    check = accept or (lambda s: bool(s.strip()))
    for section in reversed(sections[1:]):
        joined = "\n".join(section).strip()
        if joined and check(joined):
            return joined
    return ""


def _strip_marks(text: str) -> str:
    """Remove markdown emphasis and wrapping quotes/backticks from a name or value."""
    text = text.replace("**", "").replace("__", "").replace("`", "")
    return text.strip().strip("\"'“”‘’").strip()


def _bullet_lines(section: str, *, require_bullet: bool) -> Iterable[tuple[bool, str]]:
    """Each non-empty line as ``(had_bullet, text_without_bullet)``."""
    for raw in section.split("\n"):
        line = _colons(raw).strip()
        if not line:
            continue
        line = line.replace("**", "")
        match = _BULLET.match(line)
        had = bool(match)
        if match:
            line = line[match.end() :]
        if require_bullet and not had:
            continue
        yield had, line.strip()


def bullet_items(section: str) -> list[tuple[bool, str]]:
    """Each non-empty line of an answer section as ``(had_bullet, text)``: the bullet, bold
    marks and spacing normalised, full-width ``：：`` read as ``::``."""
    return list(_bullet_lines(section, require_bullet=False))


#: The explicit "nothing here" answer the prompts ask for (entry summary, event tagging), so
#: that an empty answer - which a real endpoint also returns for transient reasons (a
#: filter, a cut) - is never mistaken for it.
NOTHING = "NONE"

#: Short statements of "nothing": "Nothing to log.", "No tags apply.", "没有值得记录的内容".
#: They must name what there is none of, so a fact such as "No allergies" is not one.
_NOTHING_PHRASE = re.compile(
    r"^(?:there\s+(?:is|are|was|were)\s+|i\s+(?:found|see)\s+|(?:the\s+)?(?:chat|"
    r"conversation|log|memo)\s+(?:has|contains|reveals|mentions)\s+)?"
    r"(?:none|nothing|no)\b.{0,40}?\b(?:log|logs|logged|keep|keeping|record|note|worth|"
    r"apply|applies|applicable|tag|tags|info|information|facts?|new|relevant|here|found)\b"
    r"|^(?:没有|无|暂无).{0,12}(?:记录|内容|信息|标签|事件|适用)",
    re.IGNORECASE,
)
_MARKED = re.compile(r"//\s*(?:info|event|schedule)\s*$|\[\s*mention\b", re.IGNORECASE)
#: A "nothing" statement is one short line; longer prose starting with "No..." may well say
#: something, and is not taken as "nothing to keep".
_NOTHING_MAX_CHARS = 60


def says_nothing(text: str) -> bool:
    """Whether the answer explicitly says there is nothing: :data:`NOTHING`, or a short
    one-line equivalent real models write ("- none", "Nothing to log.", "没有值得记录的内容。").

    An empty or blank answer is *not* "nothing": the step failed to answer. A log line (with
    its ``// info`` marker or ``[mention ...]``) is never "nothing", whatever it says.
    """
    lines = [line for _, line in _bullet_lines(answer_section(text), require_bullet=False)]
    if len(lines) != 1 or _MARKED.search(lines[0]):
        return False
    line = lines[0].strip(" .。!！")
    if not line or len(line) > _NOTHING_MAX_CHARS:
        return False
    return is_meaningless(line) or bool(_NOTHING_PHRASE.match(line))


def _split_parts(line: str) -> list[str]:
    return [p.strip() for p in re.split(r"\s*::\s*", line)]


def _clean_memo(memo: str) -> str:
    memo = _TRAILING_MARKER.sub("", memo)
    return " ".join(_strip_marks(memo).split())


def _join(values: dict[tuple[str, ...], list[str]], key: tuple[str, ...], memo: str) -> None:
    bucket = values.setdefault(key, [])
    if memo.lower() not in (m.lower() for m in bucket):
        bucket.append(memo)


def _name(text: str) -> str:
    return attribute_unify(_strip_marks(text))


def _has_pairs(section: str) -> bool:
    return "::" in _colons(section)


def _has_bullet(section: str) -> bool:
    return any(had for had, _ in _bullet_lines(section, require_bullet=False))


def _has_merge_line(section: str) -> bool:
    return any(_MERGE_LINE.match(_colons(ln).replace("**", "")) for ln in section.split("\n"))


def _plausible_name(raw: str, had_bullet: bool) -> bool:
    # A slot name is a short label. Without a bullet, a long "name" is a thinking sentence
    # that happens to contain "::", not a fact.
    words = len(_strip_marks(raw).split())
    return 0 < words <= (5 if had_bullet else 3) and len(raw) <= 64


# -- parsers -----------------------------------------------------------------------------------


def parse_entry_summary(text: str) -> str:
    """The event memo: ``- ...`` lines, bullets normalised; ``""`` when nothing is worth keeping.

    Lines are kept verbatim apart from the bullet (they become gists, ``// info`` included).
    Without any bullet line, each remaining line becomes one item unless the whole answer is a
    "nothing to log" placeholder.
    """
    section = answer_section(text, _has_bullet)
    if not section or says_nothing(text):
        return ""
    items = [line for had, line in _bullet_lines(section, require_bullet=False) if had and line]
    if not items:
        plain = [line for _, line in _bullet_lines(section, require_bullet=False) if line]
        joined = " ".join(plain)
        if is_meaningless(joined) or re.match(
            r"^(?:no|nothing)\b|^(?:没有|无)(?:值得|需要|可)?记录", joined, re.IGNORECASE
        ):
            return ""
        items = plain
    out = []
    for item in items:
        item = " ".join(item.split())
        item = re.sub(
            r"\s*//\s*(info|event|schedule)\s*$",
            lambda m: f" // {m.group(1).lower()}",
            item,
            flags=re.IGNORECASE,
        )
        if not is_meaningless(item):
            out.append(f"- {item}")
    return "\n".join(out)


def parse_extract(text: str, cfg: ResolvedConfig) -> list[Fact]:
    """``- topic::sub_topic::memo`` lines -> facts (normalised, de-duplicated, filtered).

    Facts repeating a slot are joined with ``"; "``; meaningless memos are dropped; in strict
    mode only configured slots survive. A line missing its bullet is still read when it has
    the three parts and short names; ``- topic::sub_topic: memo`` (one colon short) too.
    """
    values: dict[tuple[str, ...], list[str]] = {}
    for had, line in _bullet_lines(answer_section(text, _has_pairs), require_bullet=False):
        parts = _split_parts(line)
        if len(parts) == 2:
            sub, sep, memo = parts[1].replace("：", ":").partition(":")
            if sep:
                parts = [parts[0], sub, memo]
        if len(parts) < 3:
            continue
        if not (_plausible_name(parts[0], had) and _plausible_name(parts[1], had)):
            continue
        topic, sub_topic = _name(parts[0]), _name(parts[1])
        memo = _clean_memo("::".join(parts[2:]))
        if is_meaningless(memo) or not cfg.allows(topic, sub_topic):
            continue
        _join(values, (topic, sub_topic), memo)
    return [Fact(k[0], k[1], "; ".join(v)) for k, v in values.items()]


_MERGE_LINE = re.compile(r"^\s*(?:[-*•]\s*)?[(\[]?(\d{1,4})\s*[.)\]:：、]\s*(.*)$")


def parse_merge(text: str, n_items: int) -> dict[int, MergeDecision]:
    """``N. ACTION::payload`` lines -> decisions for items ``1..n_items``.

    The action is case-insensitive and may be bold; ``N. UPDATE: memo`` (one colon) and a bare
    ``N. APPEND`` are read too. Lines without a known action are skipped (the pipeline then
    leaves that fact out). An UPDATE needs a memo: ``UPDATE::UPDATE`` or an empty payload is
    skipped. A later line for the same number wins.
    """
    decisions: dict[int, MergeDecision] = {}
    for raw in answer_section(text, _has_merge_line).split("\n"):
        match = _MERGE_LINE.match(_colons(raw).replace("**", "").strip())
        if not match:
            continue
        number = int(match.group(1))
        if not 1 <= number <= n_items:
            continue
        decision = _merge_decision(match.group(2))
        if decision is not None:
            decisions[number] = decision
    return decisions


def _merge_decision(body: str) -> MergeDecision | None:
    parts = _split_parts(body)
    parts[0] = _strip_marks(parts[0]).strip("*_ ")
    action = parts[0].upper()
    payload = "::".join(parts[1:])
    if action not in _ACTIONS:
        head, sep, rest = _strip_marks(parts[0]).replace("：", ":").partition(":")
        first = head.split()[0].upper().strip(".,;") if head.split() else ""
        if sep and head.strip().upper() in _ACTIONS:
            action, payload = head.strip().upper(), rest
        elif first in ("APPEND", "ABORT"):
            action = first
        else:
            return None
    if action == "UPDATE":
        memo = _clean_memo(payload)
        if not memo or memo.upper() == "UPDATE":
            return None
        return MergeDecision("UPDATE", memo)
    return MergeDecision("APPEND" if action == "APPEND" else "ABORT")


def parse_organize(text: str, max_subtopics: int) -> list[tuple[str, str]]:
    """``- sub_topic::memo`` lines -> at most ``max_subtopics`` (sub_topic, memo) pairs.

    A ``topic::sub_topic::memo`` line is read as its last two parts.
    """
    values: dict[tuple[str, ...], list[str]] = {}
    for _, line in _bullet_lines(answer_section(text, _has_pairs), require_bullet=False):
        parts = _split_parts(line)
        if len(parts) < 2:
            continue
        if len(parts) >= 3:
            parts = parts[-2:]
        sub_topic, memo = _name(parts[0]), _clean_memo(parts[1])
        if not sub_topic or len(sub_topic) > 64 or is_meaningless(memo):
            continue
        _join(values, (sub_topic,), memo)
    return [(k[0], "; ".join(v)) for k, v in values.items()][: max(0, max_subtopics)]


def parse_resummary(text: str) -> str:
    """The shortened memo: the answer text, one line, without a bullet or quotes."""
    lines = [line for _, line in _bullet_lines(answer_section(text), require_bullet=False)]
    memo = _clean_memo(" ".join(lines))
    return "" if is_meaningless(memo) else memo


def parse_event_tags(text: str, cfg: ResolvedConfig) -> list[EventTag]:
    """``- tag::value`` lines -> tags; names normalised, unknown tags and empty values dropped."""
    known = cfg.event_tag_names()
    found: dict[str, str] = {}
    for _, line in _bullet_lines(answer_section(text, _has_pairs), require_bullet=False):
        parts = _split_parts(line)
        if len(parts) < 2:
            continue
        tag, value = _name(parts[0]), _clean_memo("::".join(parts[1:]))
        if tag not in known or tag in found or is_meaningless(value):
            continue
        found[tag] = value
    return [EventTag(tag=t, value=v) for t, v in found.items()]


_JSON_OBJECT = re.compile(r"\{.*\}", re.DOTALL)
_INT_LIST = re.compile(r"\[\s*(-?\d+(?:\s*,\s*-?\d+)*)?\s*,?\s*\]")


def parse_pick_ids(text: str) -> list[int]:
    """The ``ids`` of ``{"reason": ..., "ids": [...]}``; else the first ``[ints]`` list.

    Order is kept, duplicates and negatives dropped; nothing readable gives ``[]``.
    """
    body = _normalise(text)
    ids: list[int] = []
    match = _JSON_OBJECT.search(body)
    if match:
        try:
            data = json.loads(match.group(0))
        except json.JSONDecodeError:
            data = None
        if isinstance(data, dict) and isinstance(data.get("ids"), list):
            ids = [
                int(i) for i in data["ids"] if isinstance(i, int | str) and str(i).strip().isdigit()
            ]
            return list(dict.fromkeys(ids))
    listed = _INT_LIST.search(body)
    if listed and listed.group(1):
        ids = [int(x) for x in re.findall(r"-?\d+", listed.group(1)) if int(x) >= 0]
    return list(dict.fromkeys(ids))
