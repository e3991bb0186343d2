"""LangChain tools over the current user's memory: a thin wrapper of the core's tools.

Names, descriptions, arguments, output text and failure behaviour come from
:mod:`memobase_integrations.tools`, so ``llamaindex_memobase.memobase_tools`` gives a model
the same tools: ``search_memory``, ``read_profile``, and, when the app enables them,
``manage_memory`` (a fact through the normal pipeline) and ``add_profile_entry`` (one
explicit profile row).

Whose memory: never a tool argument, so the model cannot pick it. Either bound at
construction (``memobase_tools(mb, "alice")``) or resolved per run like
:class:`~langchain_memobase.MemobaseMiddleware` does (``memobase_tools(mb)``: the runtime
context's ``user_id``, then ``config["configurable"]["user_id"]``, then the LangGraph Server
user; or ``user_id_from=lambda runtime: ...``), so one compiled agent can serve many users.
No user id raises :class:`~langchain_memobase.errors.MissingUserIdError`.

Failures: fail open by default (the tool answers "Memory is unavailable right now: ..." and
the failure is logged on ``langchain_memobase`` and passed to ``on_error``); ``strict=True``
raises a :class:`~memobase_integrations.errors.MemobaseError`.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable
from typing import Any

from langchain_core.callbacks import AsyncCallbackManagerForToolRun, CallbackManagerForToolRun
from langchain_core.tools import BaseTool
from pydantic import BaseModel, Field, PrivateAttr

from memobase_integrations import (
    ErrorHandler,
    FailurePolicy,
    Memobase,
    MemoryTools,
    UserMemory,
)

from .errors import MissingUserIdError

__all__ = [
    "AddProfileInput",
    "ManageMemoryInput",
    "MemobaseAddProfileTool",
    "MemobaseManageMemoryTool",
    "MemobaseProfileTool",
    "MemobaseSearchEventsTool",
    "ReadProfileInput",
    "SearchEventsInput",
    "memobase_tools",
]

logger = logging.getLogger(__name__)

#: Maps the agent's runtime (``langgraph.runtime.Runtime``) to the app's user id.
UserIdResolver = Callable[[Any], "str | uuid.UUID | None"]


class SearchEventsInput(BaseModel):
    """Input of ``search_memory``."""

    query: str = Field(description=MemoryTools.SEARCH_MEMORY.args["query"])
    limit: int = Field(
        default=MemoryTools.DEFAULT_SEARCH_LIMIT,
        ge=1,
        le=MemoryTools.MAX_SEARCH_LIMIT,
        description=MemoryTools.SEARCH_MEMORY.args["limit"],
    )


class ReadProfileInput(BaseModel):
    """Input of ``read_profile``."""

    topics: list[str] | None = Field(
        default=None, description=MemoryTools.READ_PROFILE.args["topics"]
    )


class ManageMemoryInput(BaseModel):
    """Input of ``manage_memory``."""

    content: str = Field(min_length=1, description=MemoryTools.MANAGE_MEMORY.args["content"])


class AddProfileInput(BaseModel):
    """Input of ``add_profile_entry``."""

    topic: str = Field(description=MemoryTools.ADD_PROFILE.args["topic"])
    sub_topic: str = Field(description=MemoryTools.ADD_PROFILE.args["sub_topic"])
    content: str = Field(description=MemoryTools.ADD_PROFILE.args["content"])


def _runtime() -> Any:
    """The running graph's ``Runtime``, or an empty one outside a graph (a direct
    ``tool.invoke(..., config)`` still resolves from ``configurable``)."""
    from langgraph.runtime import Runtime, get_runtime

    try:
        runtime = get_runtime()
    except RuntimeError:  # not inside a runnable context at all
        runtime = None
    return runtime if runtime is not None else Runtime()


class _MemoryTool(BaseTool):
    memobase: Memobase
    """The facade (embedded or remote)."""
    user_id: str | uuid.UUID | None = None
    """Whose memory, fixed; ``None`` resolves it per run (never from the model)."""
    user_id_from: UserIdResolver | None = Field(default=None, exclude=True)
    """``runtime -> user id``, for shared agents; default as ``MemobaseMiddleware``."""
    strict: bool = False
    timeout: float | None = None
    on_error: ErrorHandler | None = Field(default=None, exclude=True)
    search_options: dict[str, Any] = Field(default_factory=dict)
    _ops: MemoryTools = PrivateAttr()

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        # Outside pydantic validation so our typed errors escape as themselves.
        MemoryTools.check_user_source(self.user_id, self.user_id_from)
        if self.user_id is not None:
            self.memobase.user(self.user_id)
        policy = FailurePolicy(
            strict=self.strict, timeout=self.timeout, on_error=self.on_error, logger=logger
        )
        self._ops = MemoryTools(policy, **self.search_options)

    def _user(self) -> UserMemory:
        if self.user_id is not None:
            return self.memobase.user(self.user_id)
        runtime = _runtime()
        if self.user_id_from is not None:
            user_id = self.user_id_from(runtime)
        else:
            from .middleware import default_user_id

            user_id = default_user_id(runtime)
        if user_id is None or user_id == "":
            raise MissingUserIdError(
                f"The {self.name!r} tool could not tell whose memory to use. Run the agent "
                "with context=Ctx(user_id=...) or config={'configurable': {'user_id': ...}}, "
                "or build the tools with memobase_tools(memobase, user_id) or "
                "user_id_from=lambda runtime: .... There is deliberately no shared default "
                "user."
            )
        return self.memobase.user(user_id)


class MemobaseSearchEventsTool(_MemoryTool):
    """``search_memory``: the user's past events closest to a query."""

    name: str = MemoryTools.SEARCH_MEMORY.name
    description: str = MemoryTools.SEARCH_MEMORY.description
    args_schema: type[BaseModel] = SearchEventsInput

    def _run(
        self,
        query: str,
        limit: int = MemoryTools.DEFAULT_SEARCH_LIMIT,
        run_manager: CallbackManagerForToolRun | None = None,
    ) -> str:
        return self._ops.search_memory(self._user(), query, limit)

    async def _arun(
        self,
        query: str,
        limit: int = MemoryTools.DEFAULT_SEARCH_LIMIT,
        run_manager: AsyncCallbackManagerForToolRun | None = None,
    ) -> str:
        return await self._ops.asearch_memory(self._user(), query, limit)


class MemobaseProfileTool(_MemoryTool):
    """``read_profile``: what is known about the user."""

    name: str = MemoryTools.READ_PROFILE.name
    description: str = MemoryTools.READ_PROFILE.description
    args_schema: type[BaseModel] = ReadProfileInput

    def _run(
        self,
        topics: list[str] | None = None,
        run_manager: CallbackManagerForToolRun | None = None,
    ) -> str:
        return self._ops.read_profile(self._user(), topics)

    async def _arun(
        self,
        topics: list[str] | None = None,
        run_manager: AsyncCallbackManagerForToolRun | None = None,
    ) -> str:
        return await self._ops.aread_profile(self._user(), topics)


class MemobaseManageMemoryTool(_MemoryTool):
    """``manage_memory``: save a fact through the normal pipeline (off unless enabled)."""

    name: str = MemoryTools.MANAGE_MEMORY.name
    description: str = MemoryTools.MANAGE_MEMORY.description
    args_schema: type[BaseModel] = ManageMemoryInput

    def _run(self, content: str, run_manager: CallbackManagerForToolRun | None = None) -> str:
        return self._ops.manage_memory(self._user(), content)

    async def _arun(
        self, content: str, run_manager: AsyncCallbackManagerForToolRun | None = None
    ) -> str:
        return await self._ops.amanage_memory(self._user(), content)


class MemobaseAddProfileTool(_MemoryTool):
    """``add_profile_entry``: one explicit profile row (for apps; off unless asked)."""

    name: str = MemoryTools.ADD_PROFILE.name
    description: str = MemoryTools.ADD_PROFILE.description
    args_schema: type[BaseModel] = AddProfileInput

    def _run(
        self,
        topic: str,
        sub_topic: str,
        content: str,
        run_manager: CallbackManagerForToolRun | None = None,
    ) -> str:
        return self._ops.add_profile(self._user(), topic, sub_topic, content)

    async def _arun(
        self,
        topic: str,
        sub_topic: str,
        content: str,
        run_manager: AsyncCallbackManagerForToolRun | None = None,
    ) -> str:
        return await self._ops.aadd_profile(self._user(), topic, sub_topic, content)


def memobase_tools(
    memobase: Memobase | UserMemory,
    user_id: str | uuid.UUID | None = None,
    *,
    user_id_from: UserIdResolver | None = None,
    allow_writes: bool = False,
    allow_profile_writes: bool = False,
    strict: bool = False,
    timeout: float | None = None,
    on_error: ErrorHandler | None = None,
    similarity_threshold: float | None = None,
    time_range_in_days: int | None = None,
) -> list[BaseTool]:
    """The memory tools: ``search_memory`` and ``read_profile``; ``manage_memory`` with
    ``allow_writes=True``; ``add_profile_entry`` with ``allow_profile_writes=True``.

    ``memobase`` may be a ``UserMemory`` (bound to that user). Without ``user_id`` the user
    is resolved per run (see the module docstring). The same signature as
    ``llamaindex_memobase.memobase_tools``.
    """
    facade, user_id = MemoryTools.tool_target(memobase, user_id)
    shared: dict[str, Any] = {
        "memobase": facade,
        "user_id": user_id,
        "user_id_from": user_id_from,
        "strict": strict,
        "timeout": timeout,
        "on_error": on_error,
        "search_options": MemoryTools.search_kwargs(similarity_threshold, time_range_in_days),
    }
    return [
        _TOOL_TYPES[spec.name](**shared)
        for spec in MemoryTools.enabled_tools(allow_writes, allow_profile_writes)
    ]


#: The LangChain tool type of each of the core's tools.
_TOOL_TYPES: dict[str, type[_MemoryTool]] = {
    MemoryTools.SEARCH_MEMORY.name: MemobaseSearchEventsTool,
    MemoryTools.READ_PROFILE.name: MemobaseProfileTool,
    MemoryTools.MANAGE_MEMORY.name: MemobaseManageMemoryTool,
    MemoryTools.ADD_PROFILE.name: MemobaseAddProfileTool,
}
