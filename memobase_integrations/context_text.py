"""Pure helpers over the context text Memobase returns (framework-free, no I/O).

Memobase's default context pack (English and Chinese alike) is::

    ---
    # Memory
    <one line of instructions>
    ## User Current Profile:
    - topic::sub_topic: memo
    ...

    ## Past Events:
    - event
    ...
    ---

These helpers find the two ``## `` sections so the memory block can tell an empty pack from a
useful one and can shorten it the way a reader would want: oldest events first, then the
least relevant profile lines (Memobase lists the most relevant first). A custom template
(``customize_context_prompt``) has no such structure; it is passed through untouched and is
never partially cut.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from dataclasses import dataclass, field

from memobase_integrations.tokens import count_tokens

__all__ = ["ContextPack", "is_empty_context", "neutralize_placeholders", "truncate_context"]

# What LlamaIndex's SafeFormatter substitutes: ``{name}`` (also dotted) with no spaces inside.
_PLACEHOLDER = re.compile(r"\{([A-Za-z_][A-Za-z0-9_.]*)\}")


def neutralize_placeholders(text: str) -> str:
    """Make ``{name}`` unsubstitutable by prompt templates: it becomes ``{ name }``.

    LlamaIndex formats chat history through ``SafeFormatter`` in ``ContextChatEngine`` and
    ``CondensePlusContextChatEngine``; it replaces ``{query_str}``/``{context_str}`` anywhere in
    the text, memory included. A key with spaces is never provided, so ``{ name }`` survives
    verbatim, and a reader (or an LLM) still sees the same braces and word.
    """
    return _PLACEHOLDER.sub(r"{ \1 }", text)


def _is_item(line: str) -> bool:
    """A real entry: not blank and not Memobase's lone ``-`` for an empty profile."""
    stripped = line.strip()
    return bool(stripped) and stripped != "-"


@dataclass
class ContextPack:
    """A parsed default-template pack: text around and between the two sections."""

    header: list[str]
    profile_heading: str
    profile: list[str] = field(default_factory=list)
    events_heading: str = ""
    events: list[str] = field(default_factory=list)
    footer: list[str] = field(default_factory=list)

    @classmethod
    def parse(cls, text: str) -> ContextPack | None:
        """The pack's parts, or ``None`` when ``text`` is not Memobase's default layout."""
        lines = text.splitlines()
        headings = [i for i, line in enumerate(lines) if line.startswith("## ")]
        if len(headings) != 2:
            return None
        first, second = headings
        end = len(lines)
        while end > second + 1 and not lines[end - 1].strip():
            end -= 1
        if end > second + 1 and lines[end - 1].strip() == "---":
            end -= 1
        return cls(
            header=lines[:first],
            profile_heading=lines[first],
            profile=[line for line in lines[first + 1 : second] if _is_item(line)],
            events_heading=lines[second],
            events=[line for line in lines[second + 1 : end] if _is_item(line)],
            footer=lines[end:],
        )

    @property
    def empty(self) -> bool:
        return not self.profile and not self.events

    def render(self) -> str:
        body = [
            *self.header,
            self.profile_heading,
            *self.profile,
            "",
            self.events_heading,
            *self.events,
            *self.footer,
        ]
        return "\n".join(body) + "\n"


def is_empty_context(text: str) -> bool:
    """True when there is nothing worth injecting (blank, or a pack with no entries)."""
    if not text.strip():
        return True
    pack = ContextPack.parse(text)
    return pack is not None and pack.empty


#: Extra share cut beyond the request. The caller measures with its own tokenizer; cutting
#: slightly too little would make LlamaIndex drop the whole block, too much costs one line.
TRUNCATION_MARGIN = 0.1


def truncate_context(
    text: str, tokens_to_truncate: int, count: Callable[[str], int] = count_tokens
) -> str | None:
    """``text`` shortened by at least ``tokens_to_truncate`` tokens (as ``count`` measures
    them, plus :data:`TRUNCATION_MARGIN`), or ``None`` if nothing useful is left (LlamaIndex
    then drops the block).

    Events go first, oldest (last listed) first; then profile lines from the bottom. A text
    that is not the default pack cannot be cut safely and yields ``None``.
    """
    if tokens_to_truncate <= 0:
        return text
    pack = ContextPack.parse(text)
    if pack is None:
        return None
    target = math.ceil(tokens_to_truncate * (1 + TRUNCATION_MARGIN))
    saved = 0
    for section in (pack.events, pack.profile):
        while section and saved < target:
            saved += count(section.pop()) + 1  # the line and its newline
    if pack.empty:
        return None
    return pack.render()
