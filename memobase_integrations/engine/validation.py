"""Checks on each step's LLM answer before anything is written (pure functions).

The parsers (:mod:`.parsing`) read whatever they can out of an answer; these checks decide
whether what was read may change the user's memory. Each returns ``None`` when the answer
may be used and otherwise a short reason; the pipeline then raises ``UnusableAnswerError``,
the flush fails *before any write*, and the turns stay buffered (``failed``, retried with
backoff, visible in ``status()``).

Why a separate gate: a parser that skips what it cannot read is right for messy but valid
answers (thinking before ``---``, bold names, numbering styles...; the fixtures under
``tests/engine_text/data/llm_outputs`` all pass these checks), but fatal when the answer is
not an answer at all. An organize step that "regroups" 16 rows into one garbage row deletes
15 facts; a summary that is an apology replaces a memo with it; a reply cut off mid-line
stores half a fact. So every rule below guards a specific way a bad answer would damage
memory, and errs on the side of refusing: a refused answer costs one retry, a wrong write
costs the user's data.

What these checks cannot see: an answer cut cleanly at a word boundary that still looks
complete. A real endpoint reports such a cut with ``finish_reason="length"``, which
:class:`~.llm.LLMClient` already treats as a failure.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable, Sequence

from ..tokens import count_tokens
from .config import ResolvedConfig, attribute_unify
from .parsing import (
    Fact,
    MergeDecision,
    answer_section,
    bullet_items,
    is_meaningless,
    parse_extract,
    says_nothing,
)

__all__ = [
    "content_words",
    "entry_summary_problem",
    "event_tags_problem",
    "extract_problem",
    "looks_cut",
    "merge_problem",
    "organize_problem",
    "summary_problem",
]

# -- words ---------------------------------------------------------------------------------------

_CJK = "\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uac00-\ud7af"
#: One CJK character, or a run of other letters/digits: CJK text has no spaces, so its
#: characters are its words for the overlap checks.
_TOKEN = re.compile(rf"[{_CJK}]|[^\W_{_CJK}]+")
_STOPWORDS = frozenset(
    [
        "a",
        "an",
        "the",
        "and",
        "or",
        "but",
        "of",
        "to",
        "in",
        "on",
        "at",
        "for",
        "with",
        "from",
        "by",
        "as",
        "is",
        "are",
        "was",
        "were",
        "be",
        "been",
        "being",
        "it",
        "its",
        "this",
        "that",
        "these",
        "those",
        "he",
        "she",
        "they",
        "them",
        "his",
        "her",
        "their",
        "user",
        "users",
        "i",
        "me",
        "my",
        "we",
        "our",
        "you",
        "your",
        "not",
        "no",
        "yes",
        "do",
        "does",
        "did",
        "has",
        "have",
        "had",
        "will",
        "would",
        "can",
        "could",
        "should",
        "just",
        "also",
        "very",
        "really",
        "about",
        "into",
        "over",
        "than",
        "then",
        "there",
        "here",
        "some",
        "any",
        "all",
        "more",
        "most",
    ]
)
_SUFFIXES = ("ing", "ed", "es", "s", "ly")


def _tokens(text: str) -> list[str]:
    return _TOKEN.findall(text.lower())


def _stem(word: str) -> str:
    """A crude stem, enough to match "hiking"/"hikes" or "movies"/"movie" between texts."""
    if len(word) > 4:
        for suffix in _SUFFIXES:
            if word.endswith(suffix) and len(word) - len(suffix) >= 3:
                return word[: -len(suffix)]
    return word


def content_words(text: str) -> set[str]:
    """The stems of the words that carry meaning: no stop words, no one- or two-letter words
    (numbers and CJK characters always count)."""
    out = set()
    for token in _tokens(text):
        if token in _STOPWORDS:
            continue
        if len(token) < 3 and not token.isdigit() and not re.match(rf"[{_CJK}]", token):
            continue
        out.add(_stem(token))
    return out


def _overlap(part: set[str], whole: set[str]) -> float:
    return len(part & whole) / len(part) if part else 1.0


# -- damage that shows in the text ----------------------------------------------------------

_PAIRS = (("[", "]"), ("(", ")"), ("（", "）"), ("【", "】"), ("{", "}"))
_DANGLING = (":", ",", "，", "、", "[", "(", "（")
#: A text ending in one of these was written to its end (a cut does not leave a full stop).
_FINISHED = (".", "!", "?", ")", "]", '"', "'", "”", "’", "。", "！", "？", "）", "】", "…")
_ACRONYM = re.compile(r"\b[A-Z]{2,}$")


def _unbalanced(text: str) -> bool:
    """More brackets opened than closed: the rest of the line is missing."""
    return any(text.count(o) > text.count(c) for o, c in _PAIRS)


def looks_cut(text: str, source: str) -> str | None:
    """Why ``text`` - the last item of an answer - looks cut off, or ``None``.

    * a bracket opened and not closed (``[mention 2025/0``);
    * it ends on a separator (``::``, ``,``, ``[``);
    * its last word is not a word of ``source`` (the text the step was given) but the start
      of one, right after a word that is in ``source``: a verbatim copy that stopped
      mid-word ("chef at Lu" for "chef at Luigi's"). The word before must match too, so a
      rephrasing such as "likes to run" (from "enjoys running") is not taken for a cut;
      text ending in punctuation, and an all-capitals last word (an acronym), are not cut.

    The last rule can mistake an unpunctuated abbreviation of an input word ("Stanford
    Univ") for a cut: that answer is refused and retried, which costs a call, not memory.
    """
    stripped = text.strip()
    if not stripped:
        return None
    if _unbalanced(stripped):
        return f"an unclosed bracket in {stripped[-40:]!r}"
    if stripped.endswith(_DANGLING):
        return f"it ends on {stripped[-1]!r}: {stripped[-40:]!r}"
    if stripped.endswith(_FINISHED) or _ACRONYM.search(stripped):
        return None
    words = _tokens(stripped)
    last = words[-1]
    if re.match(rf"[{_CJK}]", last):
        return None  # CJK has no word boundaries to cut at
    known = set(_tokens(source))
    if last in known:
        return None
    if len(words) > 1 and words[-2] not in known:
        return None
    if any(w.startswith(last) and len(w) > len(last) for w in known):
        return f"its last word stops mid-word: {stripped[-40:]!r}"
    return None


# -- entry summary ------------------------------------------------------------------------

_MARKER = re.compile(r"//\s*(?:info|event|schedule)\s*$", re.IGNORECASE)
_PARTIAL_MARKER = re.compile(r"//\s*\w{0,8}$")
_LIST_LINE = re.compile(r"^\s*(?:[-*•+]|\d{1,3}[.)])\s*\S")


def entry_summary_problem(raw: str, memo: str, chat_text: str) -> str | None:
    """The entry summary ``raw`` (parsed to ``memo``; ``""`` for nothing) of ``chat_text``.

    * An empty answer is a failure, never "nothing to keep": real endpoints return empty
      content for transient reasons too. "Nothing" must be said (:data:`.parsing.NOTHING`).
    * Prose with no ``- `` log line is refused: it would become the event as is.
    * A line with an unclosed bracket is broken; the last line must look finished: it ends
      with its ``// info|event|schedule`` marker (or at least a full stop) when the other
      lines do, and otherwise it must not look cut (:func:`looks_cut`).
    """
    if not raw.strip():
        return "an empty answer (the prompt asks for NONE when nothing is worth keeping)"
    if not memo:
        if says_nothing(raw):
            return None
        return "neither '- ...' log lines nor an explicit NONE"
    section = answer_section(raw, lambda s: any(had for had, _ in bullet_items(s)))
    if not any(_LIST_LINE.match(line) for line in section.splitlines()):
        return "no '- ...' log line in the answer"
    lines = [line[2:] for line in memo.splitlines()]
    broken = [line for line in lines if _unbalanced(line)]
    if broken:
        return f"a log line with an unclosed bracket: {broken[0][:60]!r}"
    last = lines[-1]
    if _MARKER.search(last):
        return None  # the marker closes the line: it was written to the end
    if (
        len(lines) > 1
        and all(_MARKER.search(line) for line in lines[:-1])
        and not last.rstrip().endswith(_FINISHED)
    ):
        return f"the last log line lacks its '// info' marker (cut off?): {last[-40:]!r}"
    if _PARTIAL_MARKER.search(last):
        return f"the last log line ends in a partial marker: {last[-40:]!r}"
    cut = looks_cut(last, chat_text)
    return f"the last log line looks cut off ({cut})" if cut else None


# -- extraction -----------------------------------------------------------------------------

_LIST_PREFIX = re.compile(r"^\s*(?:[-*•+]|\d{1,3}[.)])\s*")
_SEPARATOR_LINE = re.compile(r"^\s*(?:-{3,}|\*{3,}|_{3,}|={3,})\s*$", re.MULTILINE)


def _is_fact_attempt(line: str, after_separator: bool) -> bool:
    """Whether a line of the extraction answer is meant as a fact: a list line with ``::``
    (after a ``---``, any list line), or a bare ``topic::...`` line. A sentence that merely
    contains ``::`` ("The memo says basic_info::name::Gus might...") is thinking."""
    text = line.strip()
    if not text or text.startswith(("```", "~~~")):
        return False
    if _LIST_LINE.match(text):
        return after_separator or "::" in text
    head, separator, _ = text.partition("::")
    return bool(separator) and len(head.split()) <= 3


def _fact_was_filtered(line: str, cfg: ResolvedConfig) -> bool:
    """A fact line dropped on purpose (a meaningless value such as "- none", or a slot outside
    strict mode's list) - as opposed to a line we could not read."""
    body = _LIST_PREFIX.sub("", line.strip())
    if is_meaningless(body):
        return True
    parts = [p.strip() for p in body.split("::")]
    if len(parts) < 3:
        return False
    if is_meaningless("::".join(parts[2:])):
        return True
    return not cfg.allows(attribute_unify(parts[0]), attribute_unify(parts[1]))


def extract_problem(
    raw: str, facts: Sequence[Fact], source: str, cfg: ResolvedConfig
) -> str | None:
    """The extraction answer ``raw`` (parsed to ``facts``) of the memo (``source`` also holds
    what was already logged).

    * Empty, or no ``---`` and no fact: not an answer.
    * A fact line we cannot read is a fact we would lose: the whole answer is refused (and
      retried) rather than keeping the readable half. Prose lines are thinking, not facts.
    * A fact with an unclosed bracket is broken, and the answer's last fact must not look
      cut off (:func:`looks_cut`): a truncated fact is a wrong fact.
    """
    if not raw.strip():
        return "an empty answer"
    has_separator = bool(_SEPARATOR_LINE.search(raw))
    if not facts and not has_separator:
        return "no '---' and no fact line"
    section = answer_section(raw, lambda s: "::" in s)
    attempts = [line for line in section.splitlines() if _is_fact_attempt(line, has_separator)]
    unreadable = [
        line
        for line in attempts
        if not parse_extract(line, cfg) and not _fact_was_filtered(line, cfg)
    ]
    if unreadable:
        return f"{len(unreadable)} fact line(s) that cannot be read, e.g. {unreadable[0][:60]!r}"
    broken = [f.memo for f in facts if _unbalanced(f.memo)]
    if broken:
        return f"a fact with an unclosed bracket: {broken[0][:60]!r}"
    if attempts and section.strip().splitlines()[-1].strip() == attempts[-1].strip():
        last = parse_extract(attempts[-1], cfg)
        cut = looks_cut(last[0].memo, source) if last else None
        if cut:
            return f"the last fact looks cut off ({cut})"
    return None


# -- merge ----------------------------------------------------------------------------------


def merge_problem(
    decisions: dict[int, MergeDecision], items: Sequence[tuple[int, str, str]]
) -> str | None:
    """The merge decisions for ``items`` (``(number, current memo, new info)``).

    * Every item needs a decision (Memobase silently skips missing ones: a lost fact).
    * An UPDATE replaces the slot's memo, so its memo must be plausible: about the same
      thing (it shares a word with the current memo or the new info), no unclosed bracket,
      not cut off mid-word.
    """
    missing = [n for n, _, _ in items if n not in decisions]
    if missing:
        return f"no readable decision for item(s) {missing}"
    for number, current, new in items:
        decision = decisions[number]
        if decision.action != "UPDATE" or decision.memo is None:
            continue
        source = f"{current}\n{new}"
        memo = decision.memo
        words = content_words(memo)
        if words and not words & content_words(source):
            return f"item {number}'s UPDATE is not about its slot: {memo[:60]!r}"
        cut = looks_cut(memo, source)
        if cut:
            return f"item {number}'s UPDATE looks cut off ({cut})"
    return None


# -- organize -------------------------------------------------------------------------------


def _unreadable_pairs(raw: str) -> list[str]:
    """List lines of the answer that should be ``name::value`` pairs and are not."""
    section = answer_section(raw, lambda s: "::" in s)
    return [line for had, line in bullet_items(section) if had and "::" not in line]


def organize_problem(
    raw: str,
    rows: Sequence[tuple[str, str]],
    organized: Sequence[tuple[str, str]],
    max_rows: int,
) -> str | None:
    """The organize answer ``raw`` (parsed to ``organized`` pairs) for a topic's ``rows``.

    Organize deletes every row of the topic and writes its answer instead, so the answer must
    keep what it was given:

    * every line readable (a ``- sub_topic::memo`` line that lost its ``::`` is a lost row);
    * fewer rows than it was given, and no more than ``max_rows`` (else nothing was organized
      and the next flush would ask again);
    * every input row accounted for: at least half (and at least one) of its *distinctive*
      words - those found in fewer than half of the rows, so not "enjoys" or the year of
      every ``[mention ...]`` - appear in the answer. Merging rows and rephrasing pass;
      dropping a fact or answering something else (16 rows "organized" into
      ``the_weather: is nice today??``) does not;
    * the last line not cut off.
    """
    if not organized:
        return "no '- sub_topic::memo' line"
    unreadable = _unreadable_pairs(raw)
    if unreadable:
        return f"{len(unreadable)} line(s) that cannot be read, e.g. {unreadable[0][:60]!r}"
    if len(organized) >= len(rows) or len(organized) > max_rows:
        return f"{len(organized)} sub-topics for {len(rows)} rows: nothing was regrouped"
    kept = content_words(" ".join(f"{sub} {memo}" for sub, memo in organized))
    per_row = [content_words(memo) or content_words(sub) for sub, memo in rows]
    frequency = Counter(word for words in per_row for word in words)
    for (sub, memo), words in zip(rows, per_row, strict=True):
        distinctive = {w for w in words if frequency[w] * 2 < len(rows)} or words
        if not distinctive:
            continue
        found = len(distinctive & kept)
        if found == 0 or found * 2 < len(distinctive):
            return f"the row {sub}::{memo[:40]!r} is missing from the answer"
    source = "\n".join(f"{sub} {memo}" for sub, memo in rows)
    cut = looks_cut(organized[-1][1], source)
    return f"the last row looks cut off ({cut})" if cut else None


# -- re-summary -----------------------------------------------------------------------------


def summary_problem(original: str, summary: str) -> str | None:
    """A re-summary of ``original``: it replaces the memo, so it must be that memo, shorter.

    * not empty or meaningless;
    * fewer tokens than the original (else it is not a summary, and would be asked again);
    * about the same memo: at least a third of its words come from the original (an apology
      or an answer about something else shares almost none; a summary may generalise, so
      not all of them);
    * not cut off mid-word.
    """
    if not summary or is_meaningless(summary):
        return "an empty or meaningless memo"
    if count_tokens(summary) >= count_tokens(original):
        return "the summary is not shorter than the memo"
    if _overlap(content_words(summary), content_words(original)) < 1 / 3:
        return f"the summary is not about the memo: {summary[:60]!r}"
    cut = looks_cut(summary, original)
    return f"the summary looks cut off ({cut})" if cut else None


# -- event tagging --------------------------------------------------------------------------


def event_tags_problem(raw: str, found: Iterable[str], memo: str) -> str | None:
    """The tagging answer ``raw`` (``found``: the configured tags read from it) for ``memo``.

    * An empty answer is a failure; "no tag applies" must be said (:data:`.parsing.NOTHING`).
    * A ``- tag::value`` line that lost its ``::`` is a tag we would lose.
    * Tag lines that name no configured tag at all answer another question (a tag outside the
      set is skipped when others are in it: models add extras).
    * The last value not cut off.
    """
    tags = list(found)
    if not raw.strip():
        return "an empty answer (the prompt asks for NONE when no tag applies)"
    if not tags and says_nothing(raw):
        return None
    unreadable = _unreadable_pairs(raw)
    if unreadable:
        return f"{len(unreadable)} line(s) that cannot be read, e.g. {unreadable[0][:60]!r}"
    if not tags:
        return "no line names a configured tag, and no explicit NONE"
    section = answer_section(raw, lambda s: "::" in s)
    last = [line for _, line in bullet_items(section)][-1]
    if "::" in last:
        cut = looks_cut(last.split("::", 1)[1], memo)
        if cut:
            return f"the last tag looks cut off ({cut})"
    return None
