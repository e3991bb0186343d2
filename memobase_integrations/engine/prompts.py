"""Prompt builders for every LLM step of the pipeline (pure: strings in, strings out).

The prompts are our own; what they ask for are Memobase's line formats (``::`` separated), so
answers parse with :mod:`.parsing` and stay comparable with the server's. Each builder returns
``(system, user)``. The system prompts are kept lean on purpose: the engine pays them on every
flush, and the benchmark budget is a few prompt tokens per raw chat token.

The user-message section headers are module constants, so the offline stand-in LLM
(:mod:`memobase_integrations.testing`) reads exactly what the builders write.
"""

# Prompt texts are prose: their lines are as long as the sentences (E501 does not apply).
# ruff: noqa: E501

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum

from ..models import OpenAICompatibleMessage, Profile
from ..tokens import truncate_tokens
from .config import Language, ResolvedConfig, TopicSpec, attribute_unify

__all__ = [
    "HEADERS",
    "MERGE_LABELS",
    "STEP_HEADER",
    "MergeItem",
    "Step",
    "already_logged",
    "entry_summary_prompt",
    "event_tagging_prompt",
    "extract_prompt",
    "guess_step",
    "merge_prompt",
    "organize_prompt",
    "pick_profiles_prompt",
    "render_slots",
    "resummary_prompt",
]


class Step(StrEnum):
    """The pipeline steps; the value travels in the ``X-Memobase-Step`` request header."""

    entry_summary = "entry_summary"
    extract_profile = "extract_profile"
    merge_profile = "merge_profile"
    organize_profile = "organize_profile"
    summary_profile = "summary_profile"
    event_tagging = "event_tagging"
    pick_related_profiles = "pick_related_profiles"


#: Header name the pipeline sets on every request so logs and the stand-in know the step.
STEP_HEADER = "X-Memobase-Step"


@dataclass(frozen=True, slots=True)
class _Headers:
    already: str
    chats: str
    memo: str
    strict: str
    topic: str
    memos_open: str
    memos_close: str
    context_open: str
    context_close: str


#: Section headers of the user messages, per language.
HEADERS: Mapping[Language, _Headers] = {
    "en": _Headers(
        already="## Already logged",
        chats="## Chats",
        memo="## Memo",
        strict="Use only the listed topics and sub-topics; do not create new ones.",
        topic="topic:",
        memos_open="<memos>",
        memos_close="</memos>",
        context_open="<context>",
        context_close="</context>",
    ),
    "zh": _Headers(
        already="## 已记录",
        chats="## 对话",
        memo="## 备忘录",
        strict="只能使用列出的主题和子主题，不要创建新的。",
        topic="主题:",
        memos_open="<memos>",
        memos_close="</memos>",
        context_open="<context>",
        context_close="</context>",
    ),
}


@dataclass(frozen=True, slots=True)
class MergeItem:
    """One extracted fact to merge with the slot's current memo (``memo_id`` is 1-based)."""

    memo_id: int
    new_info: str
    current_memo: str
    topic: str
    sub_topic: str
    topic_description: str = ""
    update_instruction: str = ""

    @classmethod
    def for_slot(
        cls,
        memo_id: int,
        topic: str,
        sub_topic: str,
        new_info: str,
        current_memo: str,
        cfg: ResolvedConfig,
    ) -> MergeItem:
        """Fill the slot's description and update rule from the config."""
        slot = cfg.slot(topic, sub_topic)
        spec = cfg.topic(topic)
        description = (slot.description if slot else "") or (spec.description if spec else "")
        return cls(
            memo_id=memo_id,
            new_info=new_info,
            current_memo=current_memo,
            topic=topic,
            sub_topic=sub_topic,
            topic_description=description,
            update_instruction=slot.update_description if slot else "",
        )


# -- shared pieces -----------------------------------------------------------------------------


def _one_line(text: str) -> str:
    return " ".join(text.split())


def render_slots(topics: Sequence[TopicSpec], *, open_ended: bool = True) -> str:
    """The slot list as Memobase lays it out: ``- topic (description)`` then indented
    ``  - sub`` / ``  - sub(description)`` lines, ending in ``...`` when new slots are allowed."""
    lines: list[str] = []
    for topic in topics:
        lines.append(f"- {topic.name} ({topic.description})")
        for sub in topic.sub_topics:
            lines.append(
                f"  - {sub.name}({sub.description})" if sub.description else f"  - {sub.name}"
            )
    if open_ended:
        lines.append("...")
    return "\n".join(lines)


def already_logged(profiles: Sequence[tuple[str, str, str]], cfg: ResolvedConfig) -> str:
    """``- topic::sub_topic::<first 5 tokens>...`` per existing slot, sorted.

    ``profiles`` are ``(topic, sub_topic, content)``. In strict mode, slots outside the config
    are left out. "..." is added only when the content was cut.
    """
    values: dict[tuple[str, str], str] = {}
    for topic, sub_topic, content in profiles:
        key = (attribute_unify(topic), attribute_unify(sub_topic))
        if cfg.allows(*key):
            values[key] = content
    return "\n".join(
        f"- {t}::{s}::{truncate_tokens(_one_line(values[(t, s)]), 5, '...')}"
        for t, s in sorted(values)
    )


def _tags_block(cfg: ResolvedConfig) -> str:
    return "\n".join(
        f"- {t.name}({t.description})" if t.description else f"- {t.name}" for t in cfg.event_tags
    )


# -- entry summary -----------------------------------------------------------------------------

_ENTRY_EN = """You keep a log of what a user reveals about themselves in chats with an assistant.
{theme}
- One item per line: `- <log> [mention DATE, <event> in DATE] // info|event|schedule`, DATE as YYYY/MM/DD.
- Each chat line starts with its [time]: turn relative dates ("yesterday", "next Friday") into absolute ones with it. Leave out the event part when no event date is known.
- `// info` is a lasting fact (name, job, taste...), `// event` something that happened, `// schedule` a plan.
- Keep names, numbers and places exactly. Ignore the assistant's own statements unless the user confirms them.
- Skip what is already logged unless it changed.
- If nothing is worth keeping (greetings, small talk), answer with the single line NONE.
{tags}Facts worth noticing:
{slots}

Example:
[2025/01/14] user: I'm Sam. I moved to Lisbon last week.
- User's name is Sam. [mention 2025/01/14] // info
- User moved to Lisbon. [mention 2025/01/14, moved in 2025/01/07] // event"""

_ENTRY_ZH = """你负责记录用户在与助手的对话中透露的个人信息。
{theme}
- 每行一条：`- <记录> [mention 日期, <事件> in 日期] // info|event|schedule`，日期写作 YYYY/MM/DD。
- 每行对话以 [时间] 开头：据此把"昨天""下周五"等相对日期换算成具体日期；没有事件日期时省略事件部分。
- `// info` 是长期信息（姓名、工作、喜好等），`// event` 是已发生的事，`// schedule` 是计划。
- 人名、数字、地点保持原样。助手自己说的话除非用户确认，否则忽略。
- 已记录的内容除非有变化，否则不要重复。
- 没有值得记录的内容（问候、闲聊）时，只回答一行 NONE。
{tags}值得关注的信息：
{slots}

示例：
[2025/01/14] user: 我叫小林，上周搬到了杭州。
- 用户名叫小林。 [mention 2025/01/14] // info
- 用户搬到了杭州。 [mention 2025/01/14, 搬家 in 2025/01/07] // event"""


def entry_summary_prompt(
    chat_text: str, already_logged: str, cfg: ResolvedConfig
) -> tuple[str, str]:
    """Step 1: chat lines (``messages.render_blob``) -> a memo of the user's facts and events."""
    template = _ENTRY_ZH if cfg.language == "zh" else _ENTRY_EN
    tags = ""
    if cfg.event_tags:
        label = "还要留意：" if cfg.language == "zh" else "Also note, when mentioned:"
        tags = f"{label}\n{_tags_block(cfg)}\n"
    system = template.format(
        theme=cfg.event_theme_requirement.strip(),
        tags=tags,
        slots=render_slots(cfg.topics, open_ended=not cfg.strict_mode),
    )
    h = HEADERS[cfg.language]
    user = f"{h.already}\n{already_logged}\n{h.chats}\n{chat_text}"
    return system, user


# -- profile extraction ------------------------------------------------------------------------

_PERSONA_EN = "You build a user's profile from notes about them."
_PERSONA_ZH = "你根据关于用户的笔记整理用户画像。"

_EXTRACT_EN = """{persona}
Turn the memo into profile facts about the user.
- Fit each fact to a topic and sub-topic below; reuse a slot from "Already logged" for the same kind of fact.{invent}
- Only facts about the user (their family, pets and plans count); nothing about the assistant.
- Keep the dates: [mention DATE] and any event date.
- Several values for one slot: one line, separated by "; ".
Format: think briefly, then a line `---`, then one fact per line:
- topic::sub_topic::memo
Nothing after `---` when there are no facts.

Example memo: - User moved to Lisbon. [mention 2025/01/14, moved in 2025/01/07] // event
Answer:
A relocation, and the current city.
---
- contact_info::city::Lisbon [mention 2025/01/14]
- life_event::relocation::moved to Lisbon [in 2025/01/07]

Topics:
{slots}"""

_EXTRACT_ZH = """{persona}
把备忘录整理成关于用户的画像条目。
- 每条归入下面的主题和子主题；与"已记录"中同类的信息沿用原来的条目。{invent}
- 只记录用户本人的信息（家人、宠物、计划也算），不记录助手。
- 保留日期：[mention 日期] 和事件日期。
- 同一条目有多个值时写在一行，用 "; " 分隔。
格式：先简短思考，然后单独一行 `---`，之后每行一条：
- 主题::子主题::内容
没有信息时 `---` 之后什么都不写。

示例备忘录：- 用户搬到了杭州。 [mention 2025/01/14, 搬家 in 2025/01/07] // event
回答：
一次搬家，以及现在的城市。
---
- 联系信息::城市::杭州 [mention 2025/01/14]
- 人生大事::搬迁::搬到杭州 [in 2025/01/07]

主题：
{slots}"""


def extract_prompt(memo: str, already_logged: str, cfg: ResolvedConfig) -> tuple[str, str]:
    """Step 2: memo -> ``- topic::sub_topic::memo`` facts (after thinking and ``---``)."""
    zh = cfg.language == "zh"
    if cfg.strict_mode:
        invent = ""
    else:
        invent = (
            "都不合适时可以新建一个简短的子主题。"
            if zh
            else " Create a short snake_case sub-topic only when none fits."
        )
    persona = (
        cfg.system_prompt.strip() if cfg.system_prompt else (_PERSONA_ZH if zh else _PERSONA_EN)
    )
    system = (_EXTRACT_ZH if zh else _EXTRACT_EN).format(
        persona=persona,
        invent=invent,
        slots=render_slots(cfg.topics, open_ended=not cfg.strict_mode),
    )
    h = HEADERS[cfg.language]
    head = f"{h.strict}\n" if cfg.strict_mode else ""
    user = f"{head}{h.already}\n{already_logged}\n{h.memo}\n{memo}"
    return system, user


# -- merge -------------------------------------------------------------------------------------

_MERGE_EN = """You maintain a user's profile. For each numbered item, decide how the new info combines with the slot's current memo. First check that it fits the slot's description and update rule.
- APPEND: it adds something the current memo lacks, or the current memo is empty.
- UPDATE: it contradicts or replaces the current memo, or both must be rewritten together. Give the full new memo (at most 5 sentences), keeping time annotations.
- ABORT: it is already covered, worthless, or does not fit the slot.
Format: brief reasoning, a line `---`, then one line per item, in order:
N. APPEND::APPEND
N. UPDATE::<full new memo>
N. ABORT::ABORT"""

_MERGE_ZH = """你维护用户画像。对每个编号条目，判断新信息与该条目当前内容如何合并。先检查它是否符合条目的描述和更新规则。
- APPEND：新信息补充了当前内容没有的东西，或当前内容为空。
- UPDATE：新信息与当前内容矛盾或取代它，或两者需要一起改写。给出完整的新内容（不超过5句），保留时间标注。
- ABORT：已包含、没有价值，或不符合该条目。
格式：简短推理，单独一行 `---`，然后按顺序每个条目一行：
N. APPEND::APPEND
N. UPDATE::<完整的新内容>
N. ABORT::ABORT"""

MERGE_LABELS: Mapping[Language, tuple[str, str, str, str, str]] = {
    "en": ("description", "update rule", "current", "new", "(empty)"),
    "zh": ("描述", "更新规则", "当前", "新信息", "（空）"),
}


def merge_prompt(items: Sequence[MergeItem], cfg: ResolvedConfig) -> tuple[str, str]:
    """Step 3: all facts that need a decision, in one call (Memobase's "YOLO" merge).

    Each item is a block starting with ``[N] topic::sub_topic``; the answer's ``N.`` lines
    refer to these numbers.
    """
    zh = cfg.language == "zh"
    desc, rule, current, new, empty = MERGE_LABELS[cfg.language]
    blocks: list[str] = []
    for item in items:
        lines = [f"[{item.memo_id}] {item.topic}::{item.sub_topic}"]
        if item.topic_description:
            lines.append(f"{desc}: {_one_line(item.topic_description)}")
        if item.update_instruction:
            lines.append(f"{rule}: {_one_line(item.update_instruction)}")
        lines.append(f"{current}: {_one_line(item.current_memo) or empty}")
        lines.append(f"{new}: {_one_line(item.new_info)}")
        blocks.append("\n".join(lines))
    return (_MERGE_ZH if zh else _MERGE_EN), "\n\n".join(blocks)


# -- organize ----------------------------------------------------------------------------------

_ORGANIZE_EN = """A topic of a user's profile has too many sub-topics. Regroup its memos into at most {limit} sub-topics: merge related ones into one line. Keep every fact and its dates; say a repeated fact once.
{hint}Format: one line per sub-topic:
- sub_topic::memo"""

_ORGANIZE_ZH = """用户画像的一个主题下子主题太多。把这些内容重新归并为最多 {limit} 个子主题：相关的合并成一行。保留每条事实和日期；重复的只写一次。
{hint}格式：每个子主题一行：
- 子主题::内容"""


def organize_prompt(
    topic: str, rows: Sequence[tuple[str, str]], cfg: ResolvedConfig
) -> tuple[str, str]:
    """A topic with more than ``max_profile_subtopics`` rows -> ``- sub_topic::memo`` lines.

    ``rows`` are ``(sub_topic, content)``; the limit is ``cfg.organize_target``.
    """
    zh = cfg.language == "zh"
    suggestions = cfg.default_sub_topics.get(topic, ())
    hint = ""
    if suggestions:
        names = ", ".join(suggestions)
        hint = (
            f"可以优先使用这些子主题：{names}\n"
            if zh
            else f"Prefer these names when they fit: {names}\n"
        )
    system = (_ORGANIZE_ZH if zh else _ORGANIZE_EN).format(limit=cfg.organize_target, hint=hint)
    h = HEADERS[cfg.language]
    body = "\n".join(f"- {sub}::{_one_line(content)}" for sub, content in rows)
    return system, f"{h.topic} {topic}\n{body}"


# -- re-summary --------------------------------------------------------------------------------

_RESUMMARY_EN = """Shorten this memo about a user to what lasts: their preferences and facts, concise, in the memo's language, keeping key dates. Answer with the shortened memo only."""

_RESUMMARY_ZH = """把这条关于用户的记录压缩成长期有效的要点：偏好和事实，简洁，保留关键日期。只回答压缩后的内容。"""


def resummary_prompt(content: str, cfg: ResolvedConfig) -> tuple[str, str]:
    """A memo over ``max_pre_profile_token_size`` tokens -> a shorter memo (plain text)."""
    return (_RESUMMARY_ZH if cfg.language == "zh" else _RESUMMARY_EN), content


# -- event tagging -----------------------------------------------------------------------------

_TAGGING_EN = """Tag a log of a user's events. For each tag below that the log mentions, write one line `- tag::value`. Skip tags it does not mention; answer the single line NONE if none apply.
Tags:
{tags}"""

_TAGGING_ZH = """给用户的事件记录打标签。对下面每个在记录中提到的标签，写一行 `- 标签::值`。没提到的标签跳过；都不适用时只回答一行 NONE。
标签：
{tags}"""


def event_tagging_prompt(memo: str, cfg: ResolvedConfig) -> tuple[str, str]:
    """The event memo -> ``- tag::value`` lines for the configured tags."""
    template = _TAGGING_ZH if cfg.language == "zh" else _TAGGING_EN
    return template.format(tags=_tags_block(cfg)), memo


# -- profile picker ----------------------------------------------------------------------------

_PICK_EN = """Pick the memos about the user that would help the assistant answer the conversation. Choose at most {limit} ids, most useful first; none if nothing helps. Answer JSON only: {{"reason": "<short>", "ids": [<id>, ...]}}"""

_PICK_ZH = """挑出有助于助手回答这段对话的用户记录。最多选 {limit} 个编号，最有用的在前；都没用就不选。只回答 JSON：{{"reason": "<简短理由>", "ids": [<编号>, ...]}}"""


def pick_profiles_prompt(
    chats: Sequence[OpenAICompatibleMessage],
    profiles: Sequence[Profile],
    cfg: ResolvedConfig,
    *,
    only_topics: Sequence[str] | None = None,
    max_ids: int = 10,
    max_chats: int = 5,
    max_value_tokens: int = 10,
) -> tuple[str, str]:
    """The optional LLM profile filter (``GET profile`` / ``context`` with chats).

    Like the server: the last ``max_chats`` messages, profiles limited to ``only_topics``,
    contents cut to ``max_value_tokens`` tokens, listed sorted by (topic, sub_topic) as
    ``i. topic,sub_topic,content``. The ids in the answer are **indices into ``profiles``**.
    """
    allowed = {t.strip() for t in only_topics} if only_topics else None
    indexed = [
        (i, p) for i, p in enumerate(profiles) if allowed is None or p.topic.strip() in allowed
    ]
    indexed.sort(key=lambda ip: (ip[1].topic, ip[1].sub_topic))
    memos = "\n".join(
        f"{i}. {p.topic},{p.sub_topic},{truncate_tokens(_one_line(p.content), max_value_tokens, '...')}"
        for i, p in indexed
    )
    turns = "\n".join(
        f"{'Q' if m.role == 'user' else 'A'}: {_one_line(m.content)}" for m in chats[-max_chats:]
    )
    h = HEADERS[cfg.language]
    template = _PICK_ZH if cfg.language == "zh" else _PICK_EN
    user = f"{h.memos_open}\n{memos}\n{h.memos_close}\n{h.context_open}\n{turns}\n{h.context_close}"
    return template.format(limit=max_ids), user


# -- step guessing (for tools that cannot set the header) --------------------------------------

_MARKERS: tuple[tuple[Step, str], ...] = (
    (Step.entry_summary, "You keep a log of what a user reveals"),
    (Step.entry_summary, "你负责记录用户在与助手的对话中透露的个人信息"),
    (Step.extract_profile, "Turn the memo into profile facts"),
    (Step.extract_profile, "把备忘录整理成关于用户的画像条目"),
    (Step.merge_profile, "decide how the new info combines"),
    (Step.merge_profile, "判断新信息与该条目当前内容如何合并"),
    (Step.organize_profile, "has too many sub-topics"),
    (Step.organize_profile, "下子主题太多"),
    (Step.summary_profile, "Shorten this memo about a user"),
    (Step.summary_profile, "把这条关于用户的记录压缩"),
    (Step.event_tagging, "Tag a log of a user's events"),
    (Step.event_tagging, "给用户的事件记录打标签"),
    (Step.pick_related_profiles, "Pick the memos about the user"),
    (Step.pick_related_profiles, "挑出有助于助手回答这段对话的用户记录"),
)


def guess_step(system: str) -> Step | None:
    """Which step a system prompt built here belongs to (``None`` for foreign prompts)."""
    for step, marker in _MARKERS:
        if marker in system:
            return step
    return None
