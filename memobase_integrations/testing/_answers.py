"""The stand-in LLM's answers, one function per pipeline step: ``(system, user) -> text``.

Each reads the user message the :mod:`memobase_integrations.engine.prompts` builders write
(their section headers are shared constants) and answers in that step's line format.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterable
from datetime import date

from ..engine.parsing import NOTHING
from ..engine.prompts import HEADERS, MERGE_LABELS, Step
from ._dates import format_date, parse_stamp
from ._rules import Lang, Statement, recognize, single_valued_slots, slot_for

__all__ = ["ANSWERS", "answer", "fallback_answer", "garble", "half_format", "language_of"]


def language_of(system: str) -> Lang:
    """Our Chinese prompts are mostly CJK; everything else is answered in English."""
    cjk = len(re.findall(r"[\u4e00-\u9fff]", system))
    return "zh" if cjk > 20 else "en"


def _after(text: str, header: str) -> str:
    index = text.find(header)
    return text[index + len(header) :].lstrip("\n") if index >= 0 else text


def _between(text: str, start: str, end: str) -> str:
    body = _after(text, start)
    index = body.find(end)
    return body[:index] if index >= 0 else body


# -- entry summary -----------------------------------------------------------------------------

_CHAT_LINE = re.compile(r"^\[(?P<ts>[^\]]*)\]\s+(?P<who>[^:\n]{1,80}?):\s?(?P<text>.*)$")


def _chat_messages(chats: str) -> list[tuple[date | None, str, str]]:
    """``[ts] role: text`` lines (continuation lines belong to the previous message)."""
    messages: list[tuple[date | None, str, str]] = []
    for line in chats.split("\n"):
        match = _CHAT_LINE.match(line)
        if match:
            who = match.group("who").strip()
            role_match = re.search(r"\((user|assistant)\)\s*$", who)
            role = role_match.group(1) if role_match else who.lower()
            messages.append((parse_stamp(match.group("ts")), role, match.group("text")))
        elif messages and line.strip():
            when, role, text = messages[-1]
            messages[-1] = (when, role, f"{text}\n{line}")
    return messages


def _annotation(mention: str | None, st: Statement) -> str:
    event = f"{st.label or 'event'} in {st.when}" if st.when else ""
    if mention and event:
        return f" [mention {mention}, {event}]"
    if mention:
        return f" [mention {mention}]"
    return f" [{event}]" if event else ""


_MOOD_TAG = re.compile(r"^- (?:emotion|mood|feeling|sentiment)s?\b", re.I | re.M)


def _moods(text: str) -> list[str]:
    pattern = (
        r"\bI(?:'m|\s+am|\s+feel|\s+felt|\s+was)\s+(?:so\s+|very\s+|really\s+|a\s+bit\s+)?"
        rf"({'|'.join(_EMOTIONS)})\b"
    )
    return [m.group(1).lower() for m in re.finditer(pattern, text.replace("’", "'"), re.I)]


def entry_summary(system: str, user: str) -> str:
    """Log lines of the user's statements; when a mood-like event tag is configured (it is
    listed in the prompt), moods ("I'm so excited") are logged too. ``NONE`` (the prompt's
    explicit "nothing to keep") when the user revealed nothing."""
    lang = language_of(system)
    chats = _after(user, HEADERS[lang].chats)
    wants_moods = bool(_MOOD_TAG.search(system))
    lines: list[str] = []
    for when, role, text in _chat_messages(chats):
        if role != "user":
            continue
        mention = format_date(when) if when else None
        statements = recognize(text, when)
        if wants_moods:
            statements += [Statement(f"User feels {m}.", "event", ()) for m in _moods(text)]
        for st in statements:
            line = f"- {st.sentence}{_annotation(mention, st)} // {st.marker}"
            if line not in lines:
                lines.append(line)
    return "\n".join(lines) or NOTHING


# -- extraction --------------------------------------------------------------------------------

_MENTION = re.compile(r"\[\s*mention\s+([^,\]]+?)\s*(?:,\s*([^\]]*?)\s+in\s+([^\]]+?))?\s*\]", re.I)
_BRACKET = re.compile(r"\[[^\]]*\]")


def _memo_line(line: str) -> tuple[str, str | None, str | None, str | None]:
    """``(sentence, mention date, event label, event date)`` of one memo line."""
    text = re.sub(r"^\s*[-*•]\s*", "", line).strip()
    text = re.sub(r"\s*//\s*(?:info|event|schedule)\s*$", "", text, flags=re.I)
    mention = label = event = None
    match = _MENTION.search(text)
    if match:
        mention, label, event = match.group(1), match.group(2), match.group(3)
    else:
        bare = re.search(r"\[(\d{4}[/-]\d{1,2}[/-]\d{1,2})\]", text)  # a rendered summary blob
        if bare:
            mention = bare.group(1).replace("-", "/")
    return " ".join(_BRACKET.sub(" ", text).split()), mention, label, event


def _allowed_slots(system: str) -> set[tuple[str, str]]:
    """The ``- topic (..)`` / ``  - sub`` slot list of the system prompt."""
    allowed: set[tuple[str, str]] = set()
    topic = None
    for line in system.split("\n"):
        top = re.match(r"^- (\S+) \(.*\)$", line)
        sub = re.match(r"^  - ([^(]+?)(?:\(.*\))?$", line)
        if top:
            topic = top.group(1)
        elif sub and topic:
            allowed.add((topic, sub.group(1).strip()))
    return allowed


def extract(system: str, user: str) -> str:
    lang = language_of(system)
    h = HEADERS[lang]
    allowed = _allowed_slots(system) if user.startswith(h.strict) else None
    facts: list[str] = []
    for line in _after(user, h.memo).split("\n"):
        if not line.strip():
            continue
        sentence, mention, label, event = _memo_line(line)
        if event and re.fullmatch(r"\d{4}/\d{2}/\d{2}", event):
            sentence = f"{sentence.rstrip('.。')} on {event}"  # lets the date be read back
        mention_day = parse_stamp(mention) if mention else None
        for st in recognize(sentence, mention_day):
            for kind, value in st.slots:
                topic, sub_topic = slot_for(kind, lang)
                if allowed is not None and (topic, sub_topic) not in allowed:
                    continue
                parts = [f"mention {mention}"] if mention else []
                when = st.when or event
                if when and kind not in ("name", "age"):
                    parts.append(f"{label or st.label or 'event'} in {when}")
                note = f" [{', '.join(parts)}]" if parts and kind != "name" else ""
                fact = f"- {topic}::{sub_topic}::{value}{note}"
                if fact not in facts:
                    facts.append(fact)
    thinking = (
        f"备忘录里有 {len(facts)} 条关于用户的信息。"
        if lang == "zh"
        else f"The memo holds {len(facts)} fact(s) about the user."
    )
    return f"{thinking}\n---\n" + "\n".join(facts)


# -- merge -------------------------------------------------------------------------------------


def _core(text: str) -> str:
    text = _BRACKET.sub(" ", text)
    return " ".join(re.sub(r"[.,;!?。，；！？\"']", " ", text.lower()).split())


def _merge_items(user: str, lang: Lang) -> list[tuple[int, str, str, str, str]]:
    _, _, current_label, new_label, empty = MERGE_LABELS[lang]
    items: list[tuple[int, str, str, str, str]] = []
    for block in re.split(r"\n\s*\n", user.strip()):
        head = re.match(r"^\[(\d+)\]\s+(.+?)::(.+)$", block.split("\n")[0].strip())
        if not head:
            continue
        current = new = ""
        for line in block.split("\n")[1:]:
            if line.startswith(f"{current_label}: "):
                current = line[len(current_label) + 2 :].strip()
            elif line.startswith(f"{new_label}: "):
                new = line[len(new_label) + 2 :].strip()
        if current == empty:
            current = ""
        items.append((int(head.group(1)), head.group(2), head.group(3), current, new))
    return items


def merge(system: str, user: str) -> str:
    lang = language_of(system)
    single = single_valued_slots(lang)
    lines: list[str] = []
    for number, topic, sub_topic, current, new in _merge_items(user, lang):
        new_core, current_core = _core(new), _core(current)
        parts = [_core(p) for p in re.split(r"[;；]", current)]
        if not current_core:
            lines.append(f"{number}. APPEND::APPEND")
        elif not new_core or new_core == current_core or new_core in parts:
            lines.append(f"{number}. ABORT::ABORT")
        elif (topic, sub_topic) in single:
            lines.append(f"{number}. UPDATE::{new}")
        elif new_core in current_core:
            lines.append(f"{number}. ABORT::ABORT")
        else:
            lines.append(f"{number}. APPEND::APPEND")
    thinking = "逐条比较新旧内容。" if lang == "zh" else "Comparing each new fact with its slot."
    return f"{thinking}\n---\n" + "\n".join(lines)


# -- organize, summary, tagging, pick -----------------------------------------------------------


def organize(system: str, user: str) -> str:
    lang = language_of(system)
    limit_match = re.search(r"at most (\d+)|最多 ?(\d+)", system)
    limit = int(next(g for g in limit_match.groups() if g)) if limit_match else 8
    hint = re.search(r"(?:Prefer these names when they fit: |可以优先使用这些子主题：)(.+)", system)
    preferred = [p.strip() for p in hint.group(1).split(",")] if hint else []
    rows: dict[str, list[str]] = {}
    for line in user.split("\n"):
        match = re.match(r"^- (.+?)::(.*)$", line.strip())
        if match:
            rows.setdefault(match.group(1).strip(), []).append(match.group(2).strip())
    order = [s for s in preferred if s in rows] + [s for s in rows if s not in preferred]
    kept = order if len(order) <= limit else order[: max(limit - 1, 0)]
    out = [f"- {s}::{'; '.join(rows[s])}" for s in kept]
    rest = [c for s in order[len(kept) :] for c in rows[s]]
    if rest:
        out.append(f"- {'其他' if lang == 'zh' else 'others'}::{'; '.join(rest)}")
    return "\n".join(out)


def summary(system: str, user: str) -> str:
    parts: list[str] = []
    for part in re.split(r"[;；]", user):
        part = part.strip()
        if part and part.lower() not in (p.lower() for p in parts):
            parts.append(part)
    words = "; ".join(parts[:3]).split()
    return _before_open_bracket(" ".join(words[:40]))


_OPENERS = {"]": "[", ")": "(", "）": "（", "】": "【", "}": "{"}


def _before_open_bracket(text: str) -> str:
    """``text`` up to the first bracket it leaves open (a memo's ``[mention ...]`` cut by
    the word limit), without a separator left dangling: a model ends its summary before
    such a bracket, and the validator refuses one that does not (a cut answer)."""
    stack: list[int] = []
    for i, char in enumerate(text):
        if char in _OPENERS.values():
            stack.append(i)
        elif char in _OPENERS and stack and text[stack[-1]] == _OPENERS[char]:
            stack.pop()
    if stack:
        text = text[: stack[0]]
    return text.rstrip(" ;,:")


_EMOTIONS = (
    "happy",
    "excited",
    "thrilled",
    "sad",
    "stressed",
    "anxious",
    "tired",
    "angry",
    "nervous",
    "worried",
    "proud",
    "grateful",
    "frustrated",
    "lonely",
    "bored",
    "calm",
    "relaxed",
    "upset",
)
_STOPWORDS = frozenset(
    [
        "the",
        "a",
        "an",
        "and",
        "or",
        "of",
        "to",
        "in",
        "on",
        "at",
        "for",
        "with",
        "from",
        "by",
        "is",
        "are",
        "was",
        "were",
        "be",
        "been",
        "it",
        "this",
        "that",
        "user",
        "users",
        "their",
        "they",
        "them",
        "his",
        "her",
        "its",
        "about",
        "what",
        "which",
        "who",
        "how",
        "when",
        "where",
        "why",
        "can",
        "you",
        "your",
        "my",
        "me",
        "i",
        "we",
        "our",
        "do",
        "does",
        "did",
        "have",
        "has",
        "had",
        "not",
        "no",
        "yes",
        "just",
        "also",
        "very",
        "really",
        "will",
        "would",
        "should",
        "could",
        "any",
        "some",
        "all",
        "into",
        "over",
        "more",
        "most",
        "than",
        "then",
        "there",
        "here",
    ]
)


def _tag_value(name: str, description: str, memo: str) -> str | None:
    lower = memo.lower()
    words = set(re.findall(r"[a-z]+", f"{name.replace('_', ' ')} {description}".lower()))
    if words & {"emotion", "emotions", "mood", "feeling", "feelings", "sentiment"}:
        for emotion in _EMOTIONS:
            if re.search(rf"\b{emotion}\b", lower):
                return emotion
    if words & {"location", "city", "place", "where", "lives", "live"}:
        match = re.search(
            r"(?:lives in|moved to|going to|is from|based in) ([A-Z][\w .'-]*?)[.,\[]", memo
        )
        if match:
            return match.group(1).strip()
    keys = {w for w in words if len(w) >= 4 and w not in _STOPWORDS} | {name.lower()}
    for line in memo.split("\n"):
        line_lower = line.lower()
        if any(re.search(rf"\b{re.escape(k)}", line_lower) for k in keys):
            sentence, _, _, _ = _memo_line(line)
            return " ".join(sentence.split()[:12])
    return None


def tagging(system: str, user: str) -> str:
    """``- tag::value`` lines; ``NONE`` when no tag applies (as the prompt asks)."""
    lines: list[str] = []
    for line in system.split("\n"):
        match = re.match(r"^- ([^(\s]+)(?:\((.*)\))?\s*$", line.strip())
        if not match:
            continue
        value = _tag_value(match.group(1), match.group(2) or "", user)
        if value:
            lines.append(f"- {match.group(1)}::{value}")
    return "\n".join(lines) or NOTHING


def _words(text: str) -> set[str]:
    out = set()
    for word in re.findall(r"[a-z0-9]+|[\u4e00-\u9fff]", text.lower()):
        if len(word) < 3 and not re.match(r"[\u4e00-\u9fff]", word):
            continue
        if word in _STOPWORDS:
            continue
        out.add(re.sub(r"(?:ing|s)$", "", word) if len(word) > 4 else word)
    return out


def pick(system: str, user: str) -> str:
    limit_match = re.search(r"at most (\d+)|最多选 ?(\d+)", system)
    limit = int(next(g for g in limit_match.groups() if g)) if limit_match else 10
    chat_words = _words(_between(user, "<context>", "</context>"))
    scored: list[tuple[int, int]] = []
    for line in _between(user, "<memos>", "</memos>").split("\n"):
        match = re.match(r"^(\d+)\.\s*(.*)$", line.strip())
        if match:
            overlap = len(_words(match.group(2).replace(",", " ").replace("_", " ")) & chat_words)
            if overlap:
                scored.append((-overlap, int(match.group(1))))
    ids = [i for _, i in sorted(scored)[:limit]]
    reason = "memos sharing words with the conversation" if ids else "nothing relevant"
    return json.dumps({"reason": reason, "ids": ids}, ensure_ascii=False)


ANSWERS: dict[Step, Callable[[str, str], str]] = {
    Step.entry_summary: entry_summary,
    Step.extract_profile: extract,
    Step.merge_profile: merge,
    Step.organize_profile: organize,
    Step.summary_profile: summary,
    Step.event_tagging: tagging,
    Step.pick_related_profiles: pick,
}


# -- prompts from other tools (e.g. mem0 in the benchmarks) ------------------------------------


def _user_texts(user: str) -> Iterable[str]:
    """The user-authored text of a foreign prompt: a JSON message list, ``user:`` lines, or
    the whole message."""
    for match in re.finditer(r"\[\s*\{.*?\}\s*\]", user, re.DOTALL):
        try:
            data = json.loads(match.group(0))
        except json.JSONDecodeError:
            continue
        if isinstance(data, list) and all(isinstance(m, dict) for m in data):
            texts = [str(m.get("content", "")) for m in data if m.get("role") == "user"]
            if texts:
                yield from texts
                return
    lines = [m.group(1) for m in re.finditer(r"(?im)^\s*user\s*:\s*(.+)$", user)]
    if lines:
        yield from lines
        return
    yield user


def fallback_answer(system: str, user: str, *, wants_json: bool) -> str:
    """A sensible answer to a prompt we did not write: the recognised facts, as JSON when the
    caller asked for JSON (``{"facts": [...]}`` or mem0's ``{"memory": [...]}``), else as
    ``- `` lines."""
    sentences: list[str] = []
    for text in _user_texts(user):
        for st in recognize(text, None):
            if st.sentence not in sentences:
                sentences.append(st.sentence)
    if wants_json or "json" in system.lower():
        if re.search(r"\"facts\"|\bfacts\b", system) and "memory" not in system.lower():
            return json.dumps({"facts": sentences}, ensure_ascii=False)
        memory = [{"id": str(i), "text": s, "event": "ADD"} for i, s in enumerate(sentences)]
        return json.dumps({"memory": memory}, ensure_ascii=False)
    return "\n".join(f"- {s}" for s in sentences)


def answer(step: Step | None, system: str, user: str, *, wants_json: bool = False) -> str:
    if step is None:
        return fallback_answer(system, user, wants_json=wants_json)
    return ANSWERS[step](system, user)


# -- faults ------------------------------------------------------------------------------------

GARBAGE = (
    "I'm sorry, I can't quite follow. Perhaps:: the weather :: is nice today??\n"
    "Anyway, 42 — let me know if there is anything else."
)


def garble(_: str) -> str:
    """A fluent but useless answer (no line in any expected format)."""
    return GARBAGE


def half_format(text: str) -> str:
    """The real answer, damaged like a sloppy model would: every second item line loses its
    ``::`` separators, and the last line stops half-way, inside a word (as a reply cut off
    mid-stream does)."""
    lines = text.split("\n")
    out = []
    item = 0
    for line in lines:
        if "::" in line:
            item += 1
            if item % 2 == 0:
                line = line.replace("::", " - ")
        out.append(line)
    if out and len(out[-1]) > 8:
        out[-1] = _cut_inside_a_word(out[-1])
    return "\n".join(out)


def _cut_inside_a_word(line: str) -> str:
    """``line`` cut near its middle, after the first letter(s) of a word of 3+ letters."""
    middle = len(line) // 2
    words = list(re.finditer(r"[^\W_]{3,}", line))
    if not words:
        return line[:middle]
    word = min(words, key=lambda m: abs(m.start() - middle))
    return line[: word.start() + (word.end() - word.start()) // 2]
