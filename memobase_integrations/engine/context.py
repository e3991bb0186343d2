"""Packing profiles and event gists into the context string (pure; Memobase's algorithm).

This reproduces ``GET /users/context`` byte for byte, quirks included, so an app sees the
same memory block whether it runs against a server or the embedded engine:

* the profile share is ``int(max_token_size * profile_event_ratio)`` tokens; profiles are
  ordered newest first, preferred topics moved to the front, filtered, capped per topic, and
  kept while the running token count of ``"topic::sub_topic: content"`` fits (the first
  profile is always kept, even when it alone is too big);
* the profile section is ``"- " + "\\n- ".join(...)`` (so no profiles still gives ``"- "``),
  or empty when the profile share is zero;
* events get what is left: at most ``max_token_size - profile_share`` unless
  ``fill_window_with_events``; gists are kept in order until the first one that overflows.

**Ordering ties.** Profiles written by one flush share their ``updated_at``. The sort is stable,
so ties keep the order the caller passes; the store returns rows in insertion order, which is
the order the pipeline wrote them (the order the recorded server exchanges show). Gists are
likewise taken in the order given (the caller sorts them newest first, or by similarity).
"""

from __future__ import annotations

import string
from collections.abc import Sequence
from datetime import UTC, datetime

from ..errors import ValidationError
from ..models import EventGist, Profile
from ..tokens import count_tokens, token_bound
from ..values import ContextOptions, ProfileOptions

__all__ = [
    "DEFAULT_TEMPLATES",
    "event_section",
    "pack_context",
    "profile_section",
    "render_template",
    "truncate_profiles",
    "validate_template",
]

#: The default context templates (the server's wording, so both backends match).
DEFAULT_TEMPLATES: dict[str, str] = {
    "en": (
        "---\n# Memory\nUnless the user has relevant queries, do not actively mention those "
        "memories in the conversation.\n## User Current Profile:\n{profile_section}\n\n"
        "## Past Events:\n{event_section}\n---\n"
    ),
    "zh": (
        "---\n# 记忆\n除非用户有相关的需求，否则不要主动在对话中提到这些记忆.\n"
        "## 用户当前状态：\n{profile_section}\n\n## 过去事件：\n{event_section}\n---\n"
    ),
}

_FIELDS = frozenset({"profile_section", "event_section"})
_OLDEST = datetime.min.replace(tzinfo=UTC)


def _when(p: Profile) -> datetime:
    ts = p.updated_at
    if ts is None:
        return _OLDEST
    return ts if ts.tzinfo is not None else ts.replace(tzinfo=UTC)


def _budget(opts: ProfileOptions | ContextOptions) -> int | None:
    if isinstance(opts, ContextOptions):
        return int(opts.max_token_size * opts.profile_event_ratio)
    return opts.max_token_size


def truncate_profiles(
    profiles: Sequence[Profile],
    opts: ProfileOptions | ContextOptions,
    *,
    topk: int | None,
) -> list[Profile]:
    """Memobase's ``truncate_profiles``: order, prefer, filter, cap, top-k, token budget.

    The token budget is ``opts.max_token_size`` for :class:`ProfileOptions` and the profile
    share ``int(max_token_size * profile_event_ratio)`` for :class:`ContextOptions`. Falsy
    limits (``None`` or ``0``) mean "no limit", like the server.
    """
    if not profiles:
        return []
    ordered = sorted(profiles, key=_when, reverse=True)  # stable: ties keep input order
    if opts.prefer_topics:
        weight = {t.strip(): i for i, t in enumerate(opts.prefer_topics)}
        preferred = [p for p in ordered if p.topic in weight]
        preferred.sort(key=lambda p: weight[p.topic])
        ordered = preferred + [p for p in ordered if p.topic not in weight]
    if opts.only_topics:
        only = {t.strip() for t in opts.only_topics}
        ordered = [p for p in ordered if p.topic.strip() in only]
    if opts.max_subtopic_size or opts.topic_limits:
        limits = opts.topic_limits or {}
        default = opts.max_subtopic_size or -1
        seen: dict[str, int] = {}
        capped = []
        for p in ordered:
            seen[p.topic] = seen.get(p.topic, 0) + 1
            limit = limits.get(p.topic, default)
            if limit >= 0 and seen[p.topic] > limit:
                continue
            capped.append(p)
        ordered = capped
    if topk:
        ordered = ordered[:topk]
    budget = _budget(opts)
    if budget and ordered:
        ordered = ordered[: _fitting([p.describe() for p in ordered], budget, keep_first=True)]
    return ordered


def _fitting(texts: Sequence[str], budget: int, *, keep_first: bool = False) -> int:
    """How many of ``texts``, in order, fit while their running o200k count stays within
    ``budget`` (the first one always, with ``keep_first``).

    Counting is the packing's main cost, so a text is counted only when it could matter:
    while the counted texts plus the UTF-8 lengths of the uncounted ones (an upper bound on
    their tokens) stay within the budget, they all fit whatever their exact counts; only
    when that bound would cross it are the uncounted texts counted. The answer is the one
    exact running counts give.
    """
    exact = 0  # tokens of texts[:counted]
    counted = 0
    bound = 0  # upper bound on tokens of texts[counted:i]
    for i, text in enumerate(texts):
        size = token_bound(text)
        if exact + bound + size <= budget:
            bound += size
            continue
        exact += sum(count_tokens(x) for x in texts[counted:i]) + count_tokens(text)
        counted, bound = i + 1, 0
        if exact > budget:
            return max(i, 1) if keep_first else i
    return len(texts)


def profile_section(profiles: Sequence[Profile]) -> str:
    """``- topic::sub_topic: content`` lines; ``"- "`` when there are none (server quirk)."""
    return "- " + "\n- ".join(p.describe() for p in profiles)


def event_section(gists: Sequence[EventGist], max_tokens: int) -> str:
    """Gist contents in the given order while their running token count fits."""
    if max_tokens <= 0:
        return ""
    texts = [g.gist_data.content for g in gists]
    return "\n".join(texts[: _fitting(texts, max_tokens)])


def validate_template(template: str) -> None:
    """Refuse a custom template that ``str.format`` could not fill with the two sections.

    Only ``{profile_section}`` and ``{event_section}`` may appear; literal braces are written
    ``{{`` and ``}}``. The server fails such templates with errno 500 at read time; we say why.
    """
    try:
        fields = [f for _, f, _, _ in string.Formatter().parse(template) if f is not None]
    except ValueError as exc:
        raise ValidationError(
            f"customize_context_prompt is not a valid template ({exc}). Use "
            "{profile_section} and {event_section} as placeholders and write literal braces "
            "as {{ and }}."
        ) from None
    unknown = sorted({f for f in fields if f not in _FIELDS})
    if unknown:
        shown = ", ".join("{" + f + "}" for f in unknown)
        raise ValidationError(
            f"customize_context_prompt uses placeholder(s) {shown}; only {{profile_section}} "
            "and {event_section} are filled. Write literal braces as {{ and }}."
        )


def render_template(
    profile_text: str, event_text: str, language: str, custom: str | None = None
) -> str:
    """Fill the custom template, or the language's default (``en`` for unknown languages)."""
    if custom is not None:
        validate_template(custom)
        return custom.format(profile_section=profile_text, event_section=event_text)
    template = DEFAULT_TEMPLATES.get(language, DEFAULT_TEMPLATES["en"])
    return template.format(profile_section=profile_text, event_section=event_text)


def pack_context(
    profiles: Sequence[Profile],
    gists: Sequence[EventGist],
    opts: ContextOptions,
    language: str,
) -> str:
    """The context string (``GET /users/context``) from a user's profiles and gists.

    ``profiles`` are all the user's profiles (already narrowed by the optional LLM picker);
    ``gists`` are the candidates in the order to use them (newest first, or by similarity),
    already limited to ``time_range_in_days``: this function does no I/O and reads no clock.
    """
    if not 0 < opts.profile_event_ratio <= 1:
        raise ValidationError(
            f"profile_event_ratio must be in (0, 1], got {opts.profile_event_ratio}. Use e.g. "
            "0.6 (the default) to give 60% of max_token_size to the profile."
        )
    if opts.customize_context_prompt is not None:
        validate_template(opts.customize_context_prompt)
    max_profile = int(opts.max_token_size * opts.profile_event_ratio)
    if max_profile > 0:
        profile_text = profile_section(truncate_profiles(profiles, opts, topk=None))
    else:
        profile_text = ""
    if opts.fill_window_with_events:
        event_budget = opts.max_token_size - count_tokens(profile_text)
    elif token_bound(profile_text) <= max_profile:
        # The profile section is within its share, so its share is what bounds the events
        # (the exact count would change nothing here and is not taken).
        event_budget = opts.max_token_size - max_profile
    else:
        used = count_tokens(profile_text)
        event_budget = min(opts.max_token_size - used, opts.max_token_size - max_profile)
    events = event_section(gists, event_budget)
    return render_template(profile_text, events, language, opts.customize_context_prompt)
