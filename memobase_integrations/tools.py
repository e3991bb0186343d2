"""The agent tools' behaviour, once: names, descriptions, arguments, output text, failures.

``langchain_memobase.memobase_tools`` and ``llamaindex_memobase.memobase_tools`` only wrap
:class:`MemoryTools` in their framework's tool type, so a model sees the same tools with the
same words in both. The names follow LangMem (``search_memory``, ``manage_memory``), which
is what users of LangMem and mem0 look for.

* ``search_memory(query, limit)``: the user's past events closest to ``query`` (the
  embedded engine searches by words with embeddings off).
* ``read_profile(topics)``: what is known about the user, one ``topic::sub_topic`` line each.
* ``manage_memory(content)`` (only when the app enables it): a fact in natural language goes
  through the normal pipeline, as if the user had said it: it lands in the right
  ``topic::sub_topic`` and merges with what is there (saying it twice does not duplicate it).
  The call records one turn and asks for that user's processing in the background; it never
  waits for the LLM.
* ``add_profile_entry(topic, sub_topic, content)`` (only when the app asks for explicit
  profile writes): one row, as given, no merging. Meant for apps, so it is off by default.

Output is written for a model: compact lines, the date in front, and no ids (no tool takes
one). Failures follow a :class:`~memobase_integrations.failure_policy.FailurePolicy`: fail
open, the tool answers "Memory is unavailable right now: ..." (the model can go on without
it); ``strict=True`` raises.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Unpack

from .errors import ConfigurationError, MemobaseError
from .facade import Memobase, UserMemory
from .failure_policy import FailurePolicy
from .messages import Message
from .models import EventGist, Profile, UserEvent
from .values import ProfileKwargs, SearchKwargs

__all__ = [
    "ADD_PROFILE",
    "DEFAULT_SEARCH_LIMIT",
    "MANAGE_MEMORY",
    "MAX_SEARCH_LIMIT",
    "NOTHING_FOUND",
    "NOTHING_REMEMBERED",
    "READ_PROFILE",
    "SEARCH_MEMORY",
    "MemoryTools",
    "ToolSpec",
    "check_user_source",
    "enabled_tools",
    "event_summary",
    "mention_dates",
    "plain_memo",
    "render_events",
    "render_gists",
    "render_profile",
    "search_kwargs",
    "tool_target",
    "unavailable",
]

DEFAULT_SEARCH_LIMIT = 5
MAX_SEARCH_LIMIT = 50
NOTHING_REMEMBERED = "Nothing is remembered about this user yet."
NOTHING_FOUND = "No remembered events match this query."


@dataclass(frozen=True, slots=True)
class ToolSpec:
    """A tool's name, description and argument descriptions, as the model sees them."""

    name: str
    description: str
    args: dict[str, str]


SEARCH_MEMORY = ToolSpec(
    name="search_memory",
    description=(
        "Search what the current user did, said or planned in earlier conversations. "
        "Returns dated events, most relevant first. Use it when the answer may depend on "
        "something the user told you before."
    ),
    args={
        "query": "What to look for, in a few words (e.g. 'hiking trip', 'job interview').",
        "limit": f"How many events to return at most (1-{MAX_SEARCH_LIMIT}).",
    },
)
READ_PROFILE = ToolSpec(
    name="read_profile",
    description=(
        "Read what is known about the current user (name, job, interests, preferences...), "
        "one 'topic::sub_topic: fact' line each, with the date it was last updated. Use it "
        "when the answer depends on who the user is."
    ),
    args={"topics": "Only these topics (e.g. ['basic_info', 'work']). Omit for all."},
)
MANAGE_MEMORY = ToolSpec(
    name="manage_memory",
    description=(
        "Save a fact about the current user to long-term memory, when they ask you to "
        "remember something or state a lasting fact or preference. Write it as one short "
        "sentence in the user's voice (e.g. 'My favourite colour is teal'). To correct a "
        "fact, save the corrected sentence; it replaces what it contradicts. Do not save "
        "guesses or things said about other people."
    ),
    args={"content": "The fact to remember, as one short sentence."},
)
ADD_PROFILE = ToolSpec(
    name="add_profile_entry",
    description=(
        "Add one entry to the current user's profile exactly as given (topic, sub_topic, "
        "content). Only for facts the user stated explicitly."
    ),
    args={
        "topic": "Profile topic, e.g. 'interest' or 'work'.",
        "sub_topic": "Sub-topic, e.g. 'sports' or 'title'.",
        "content": "The fact, in a short sentence.",
    },
)

_SAVED = "Saved. It will be part of the user's memory in a moment."


# -- building the tools: what both adapters' memobase_tools() decide the same way ---------
def enabled_tools(allow_writes: bool, allow_profile_writes: bool) -> list[ToolSpec]:
    """The tools a model is given, in order: the reads always; ``manage_memory`` only with
    ``allow_writes``; ``add_profile_entry`` only with ``allow_profile_writes`` (writes are
    the app's choice, never the model's)."""
    specs = [SEARCH_MEMORY, READ_PROFILE]
    if allow_writes:
        specs.append(MANAGE_MEMORY)
    if allow_profile_writes:
        specs.append(ADD_PROFILE)
    return specs


def tool_target(
    memobase: Memobase | UserMemory, user_id: str | uuid.UUID | None
) -> tuple[Memobase, str | uuid.UUID | None]:
    """The facade and the fixed user id (``None``: resolved per run) of ``memobase_tools``'s
    first two arguments: a ``UserMemory`` stands for its facade and its user."""
    if isinstance(memobase, UserMemory):
        if user_id is not None:
            raise ConfigurationError("Pass a UserMemory or (memobase, user_id), not both.")
        user_id = memobase.external_id
        memobase = memobase.memobase
    if not isinstance(memobase, Memobase):
        raise ConfigurationError(
            f"memobase_tools() needs a Memobase or a UserMemory, got {type(memobase).__name__}."
        )
    return memobase, user_id


def check_user_source(user_id: object, user_id_from: object) -> None:
    """Whose memory comes from one place: a fixed id or a per-run resolver, not both (the
    one would silently win over the other)."""
    if user_id is not None and user_id_from is not None:
        raise ConfigurationError(
            "Pass either user_id= (one fixed user) or user_id_from= (resolved per run), not both."
        )


def search_kwargs(
    similarity_threshold: float | None, time_range_in_days: int | None
) -> SearchKwargs:
    """The search options the app set (an unset one keeps the backend's default)."""
    options: SearchKwargs = {}
    if similarity_threshold is not None:
        options["similarity_threshold"] = similarity_threshold
    if time_range_in_days is not None:
        options["time_range_in_days"] = time_range_in_days
    return options


def _day(value: datetime | None) -> str:
    return value.date().isoformat() if value else "undated"


def _one_line(text: str) -> str:
    return " ".join(text.split())


_MENTION = re.compile(r"\s*\[\s*mention\b\s*([^,\]]*)(?:,([^\]]*))?\]", re.IGNORECASE)
_MARKER = re.compile(r"\s*//\s*(?:info|event|schedule)\s*$", re.IGNORECASE)


def _unstamp(match: re.Match[str]) -> str:
    rest = (match.group(2) or "").strip()
    return f" ({rest})" if rest else ""  # "going to Japan in 2026/12/13" is content


def mention_dates(text: str) -> list[str]:
    """The dates of the ``[mention 2026/12/06]`` stamps in a memo, in order."""
    return [m.group(1).strip() for m in _MENTION.finditer(text) if m.group(1).strip()]


def plain_memo(text: str) -> str:
    """A profile memo or event line without Memobase's bookkeeping: the ``[mention
    2026/12/06]`` stamps (the date is shown on its own; an event date inside the stamp,
    ``[mention D, trip in D2]``, stays as ``(trip in D2)``) and ``// info`` markers."""
    lines = []
    for line in text.splitlines():
        line = _MARKER.sub("", _MENTION.sub(_unstamp, line)).strip()
        line = line[2:].strip() if line.startswith("- ") else line
        if line:
            lines.append(line)
    return "; ".join(lines)


def event_summary(event: UserEvent) -> str:
    """An event as text: its summary (``event_tip``), else the profile changes it carried."""
    data = event.event_data
    if data.event_tip and data.event_tip.strip():
        return data.event_tip.strip()
    lines = []
    for delta in data.profile_delta or []:
        topic = delta.attributes.get("topic", "")
        sub_topic = delta.attributes.get("sub_topic", "")
        lines.append(f"{topic}::{sub_topic}: {delta.content}")
    return "\n".join(lines)


def render_events(events: Sequence[UserEvent]) -> str:
    """``- 2026-12-06: <summary> (tags: k=v)`` per event; :data:`NOTHING_FOUND` if none."""
    lines = []
    for event in events:
        text = _one_line(plain_memo(event_summary(event)))
        if not text:
            continue
        tags = ", ".join(f"{t.tag}={t.value}" for t in (event.event_data.event_tags or []))
        lines.append(f"- {_day(event.created_at)}: {text}" + (f" (tags: {tags})" if tags else ""))
    return "\n".join(lines) if lines else NOTHING_FOUND


def render_gists(gists: Sequence[EventGist]) -> str:
    """``- 2026-12-06: <gist>`` per gist; :data:`NOTHING_FOUND` if none."""
    lines = [
        f"- {_day(g.created_at)}: {_one_line(plain_memo(g.gist_data.content))}"
        for g in gists
        if g.gist_data.content.strip()
    ]
    return "\n".join(lines) if lines else NOTHING_FOUND


def render_profile(profiles: Sequence[Profile]) -> str:
    """``- topic::sub_topic: fact (updated 2026-12-06)``; :data:`NOTHING_REMEMBERED` if none."""
    if not profiles:
        return NOTHING_REMEMBERED
    lines = []
    for p in profiles:
        when = p.updated_at or p.created_at
        suffix = f" (updated {_day(when)})" if when else ""
        lines.append(f"- {p.topic}::{p.sub_topic}: {_one_line(plain_memo(p.content))}{suffix}")
    return "\n".join(lines)


def unavailable(exc: Exception) -> str:
    """The tool answer when memory failed (fail open): short, and says why."""
    message = exc.message if isinstance(exc, MemobaseError) else f"{type(exc).__name__}: {exc}"
    return f"Memory is unavailable right now: {message}"


class MemoryTools:
    """The tools' operations for one resolved user, under one failure policy.

    Each returns the text the model sees. The adapters resolve the user (bound, or from the
    run's context) and call these; they add nothing but their framework's tool type.
    """

    __slots__ = ("policy", "search_options")

    # What the adapters need, on the one name the package root exports.
    SEARCH_MEMORY = SEARCH_MEMORY
    READ_PROFILE = READ_PROFILE
    MANAGE_MEMORY = MANAGE_MEMORY
    ADD_PROFILE = ADD_PROFILE
    DEFAULT_SEARCH_LIMIT = DEFAULT_SEARCH_LIMIT
    MAX_SEARCH_LIMIT = MAX_SEARCH_LIMIT
    event_summary = staticmethod(event_summary)
    enabled_tools = staticmethod(enabled_tools)
    tool_target = staticmethod(tool_target)
    check_user_source = staticmethod(check_user_source)
    search_kwargs = staticmethod(search_kwargs)

    def __init__(self, policy: FailurePolicy, **search_options: Unpack[SearchKwargs]) -> None:
        self.policy = policy
        self.search_options: SearchKwargs = search_options

    # -- search_memory ---------------------------------------------------------------------
    def search_memory(self, user: UserMemory, query: str, limit: int) -> str:
        return self.policy.call_or(
            "search memory",
            lambda: render_events(user.search_events(query, limit, **self.search_options)),
            unavailable,
        )

    async def asearch_memory(self, user: UserMemory, query: str, limit: int) -> str:
        async def op() -> str:
            return render_events(await user.asearch_events(query, limit, **self.search_options))

        return await self.policy.acall_or("search memory", op, unavailable)

    # -- read_profile ----------------------------------------------------------------------
    def read_profile(self, user: UserMemory, topics: Sequence[str] | None) -> str:
        options: ProfileKwargs = {"only_topics": list(topics)} if topics else {}
        return self.policy.call_or(
            "read the profile", lambda: render_profile(user.profile(**options)), unavailable
        )

    async def aread_profile(self, user: UserMemory, topics: Sequence[str] | None) -> str:
        options: ProfileKwargs = {"only_topics": list(topics)} if topics else {}

        async def op() -> str:
            return render_profile(await user.aprofile(**options))

        return await self.policy.acall_or("read the profile", op, unavailable)

    # -- manage_memory ---------------------------------------------------------------------
    def manage_memory(self, user: UserMemory, content: str) -> str:
        def op() -> str:
            user.record([Message.of("user", content)])
            user.flush(wait=False)  # a request to the background worker, never the LLM here
            return _SAVED

        return self.policy.call_or("save the memory", op, unavailable)

    async def amanage_memory(self, user: UserMemory, content: str) -> str:
        async def op() -> str:
            await user.arecord([Message.of("user", content)])
            await user.aflush(wait=False)
            return _SAVED

        return await self.policy.acall_or("save the memory", op, unavailable)

    # -- add_profile_entry -----------------------------------------------------------------
    def add_profile(self, user: UserMemory, topic: str, sub_topic: str, content: str) -> str:
        def op() -> str:
            user.add_profile(content, topic, sub_topic)
            return f"Saved {topic}::{sub_topic}."

        return self.policy.call_or("add a profile entry", op, unavailable)

    async def aadd_profile(self, user: UserMemory, topic: str, sub_topic: str, content: str) -> str:
        async def op() -> str:
            await user.aadd_profile(content, topic, sub_topic)
            return f"Saved {topic}::{sub_topic}."

        return await self.policy.acall_or("add a profile entry", op, unavailable)
