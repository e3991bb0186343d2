"""Tools that let a model read (and, if allowed, add to) the current user's memory.

The user is bound at construction and is not part of any tool's input schema, so the model
can never pick whose memory it reads or writes. Writing is opt-in
(``memobase_tools(..., allow_profile_writes=True)``): a model that can store arbitrary
"facts" about a user is a prompt-injection target.

Memory errors become a ``ToolException`` with Memobase's explanation, which the agent shows
the model as the tool result instead of crashing the run.
"""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from langchain_core.callbacks import AsyncCallbackManagerForToolRun, CallbackManagerForToolRun
from langchain_core.tools import BaseTool, ToolException
from pydantic import BaseModel, Field

from memobase_integrations import (
    Memobase,
    MemobaseError,
    Profile,
    UserEvent,
    UserMemory,
)

from .retrievers import event_text

__all__ = [
    "AddProfileInput",
    "MemobaseAddProfileTool",
    "MemobaseProfileTool",
    "MemobaseSearchEventsTool",
    "ReadProfileInput",
    "SearchEventsInput",
    "memobase_tools",
]

T = TypeVar("T")

_EMPTY_PROFILE = "Nothing is remembered about this user yet."
_NO_EVENTS = "No remembered events match this query."


class ReadProfileInput(BaseModel):
    """Input of the profile tool."""

    topics: list[str] | None = Field(
        default=None,
        description="Only these profile topics (e.g. ['basic_info', 'work']). Omit for all.",
    )


class SearchEventsInput(BaseModel):
    """Input of the event search tool."""

    query: str = Field(description="What to look for in the user's past events.")
    k: int = Field(default=5, ge=1, le=50, description="How many events to return at most.")


class AddProfileInput(BaseModel):
    """Input of the add-profile tool."""

    topic: str = Field(description="Profile topic, e.g. 'interest' or 'work'.")
    sub_topic: str = Field(description="Sub-topic, e.g. 'sports' or 'title'.")
    content: str = Field(description="The fact to remember, in a short sentence.")


class _UserBoundTool(BaseTool):
    memobase: Memobase
    """The facade (embedded or remote)."""
    user_id: str | uuid.UUID
    """Whose memory the tool uses; fixed, never chosen by the model."""
    handle_tool_error: bool | str | Callable[[ToolException], str] | None = True

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        # Outside pydantic validation so InvalidUserIdError escapes as itself, not wrapped
        # in a pydantic ValidationError.
        self.memobase.user(self.user_id)

    @property
    def _user(self) -> UserMemory:
        return self.memobase.user(self.user_id)

    @staticmethod
    def _call(op: Callable[[], T]) -> T:
        try:
            return op()
        except MemobaseError as exc:
            raise ToolException(f"Memory is unavailable: {exc.message}") from exc

    @staticmethod
    async def _acall(op: Callable[[], Awaitable[T]]) -> T:
        try:
            return await op()
        except MemobaseError as exc:
            raise ToolException(f"Memory is unavailable: {exc.message}") from exc


def _format_profile(profiles: list[Profile]) -> str:
    if not profiles:
        return _EMPTY_PROFILE
    return "\n".join(f"- {p.describe()}" for p in profiles)


def _format_events(events: list[UserEvent]) -> str:
    lines = []
    for event in events:
        text = event_text(event).replace("\n", "; ")
        if not text:
            continue
        when = event.created_at.date().isoformat() if event.created_at else "unknown date"
        tags = ", ".join(f"{t.tag}={t.value}" for t in (event.event_data.event_tags or []))
        lines.append(f"- [{when}] {text}" + (f" (tags: {tags})" if tags else ""))
    return "\n".join(lines) if lines else _NO_EVENTS


class MemobaseProfileTool(_UserBoundTool):
    """Read the current user's remembered profile, optionally limited to some topics."""

    name: str = "memobase_read_profile"
    description: str = (
        "Read what is remembered about the current user: their profile as "
        "'topic::sub_topic: fact' lines (name, job, interests, preferences...). "
        "Use it when the answer depends on who the user is."
    )
    args_schema: type[BaseModel] = ReadProfileInput

    def _options(self, topics: list[str] | None) -> dict[str, Any]:
        return {"only_topics": list(topics)} if topics else {}

    def _run(
        self,
        topics: list[str] | None = None,
        run_manager: CallbackManagerForToolRun | None = None,
    ) -> str:
        options = self._options(topics)
        return _format_profile(self._call(lambda: self._user.profile(**options)))

    async def _arun(
        self,
        topics: list[str] | None = None,
        run_manager: AsyncCallbackManagerForToolRun | None = None,
    ) -> str:
        options = self._options(topics)
        return _format_profile(await self._acall(lambda: self._user.aprofile(**options)))


class MemobaseSearchEventsTool(_UserBoundTool):
    """Search the current user's past events (Memobase's event timeline)."""

    name: str = "memobase_search_events"
    description: str = (
        "Search the current user's past events and experiences remembered from earlier "
        "conversations. Input: a short description of what to look for."
    )
    args_schema: type[BaseModel] = SearchEventsInput
    similarity_threshold: float = Field(default=0.2, ge=0.0, le=1.0)
    time_range_in_days: int = Field(default=180, ge=1)

    def _run(
        self,
        query: str,
        k: int = 5,
        run_manager: CallbackManagerForToolRun | None = None,
    ) -> str:
        events = self._call(
            lambda: self._user.search_events(
                query,
                k,
                similarity_threshold=self.similarity_threshold,
                time_range_in_days=self.time_range_in_days,
            )
        )
        return _format_events(events[:k])

    async def _arun(
        self,
        query: str,
        k: int = 5,
        run_manager: AsyncCallbackManagerForToolRun | None = None,
    ) -> str:
        events = await self._acall(
            lambda: self._user.asearch_events(
                query,
                k,
                similarity_threshold=self.similarity_threshold,
                time_range_in_days=self.time_range_in_days,
            )
        )
        return _format_events(events[:k])


class MemobaseAddProfileTool(_UserBoundTool):
    """Store one fact in the current user's profile. Not given to agents unless asked for."""

    name: str = "memobase_add_profile"
    description: str = (
        "Remember a fact about the current user that they stated explicitly, as a profile "
        "entry (topic, sub_topic, content). Do not store guesses."
    )
    args_schema: type[BaseModel] = AddProfileInput

    def _run(
        self,
        topic: str,
        sub_topic: str,
        content: str,
        run_manager: CallbackManagerForToolRun | None = None,
    ) -> str:
        profile_id = self._call(lambda: self._user.add_profile(content, topic, sub_topic))
        return f"Remembered {topic}::{sub_topic} (id {profile_id})."

    async def _arun(
        self,
        topic: str,
        sub_topic: str,
        content: str,
        run_manager: AsyncCallbackManagerForToolRun | None = None,
    ) -> str:
        profile_id = await self._acall(lambda: self._user.aadd_profile(content, topic, sub_topic))
        return f"Remembered {topic}::{sub_topic} (id {profile_id})."


def memobase_tools(
    memobase: Memobase,
    user_id: str | uuid.UUID,
    *,
    allow_profile_writes: bool = False,
) -> list[BaseTool]:
    """The memory tools for one user: read profile and search events, plus add-profile only
    when ``allow_profile_writes`` is true."""
    tools: list[BaseTool] = [
        MemobaseProfileTool(memobase=memobase, user_id=user_id),
        MemobaseSearchEventsTool(memobase=memobase, user_id=user_id),
    ]
    if allow_profile_writes:
        tools.append(MemobaseAddProfileTool(memobase=memobase, user_id=user_id))
    return tools
