"""LlamaIndex ``FunctionTool``s over the current user's memory: the core's tools, wrapped.

Names, descriptions, arguments, output text and failure behaviour come from
:mod:`memobase_integrations.tools`, so ``langchain_memobase.memobase_tools`` gives a model
the same tools: ``search_memory``, ``read_profile``, and, when the app enables them,
``manage_memory`` (a fact through the normal pipeline) and ``add_profile_entry``.

Whose memory: never a tool argument. Either bound at construction
(``memobase_tools(mb, "alice")`` or ``memobase_tools(mb.user("alice"))``), or resolved per
run from the agent workflow's ``Context`` (``memobase_tools(mb)``: ``await
ctx.store.get("user_id")``, set by the app with ``await ctx.store.set("user_id", ...)``), or
by ``user_id_from=`` (``ctx -> user id``, sync or async). Context-resolved tools need an
agent that passes its ``Context`` to tools (``FunctionAgent``, ``ReActAgent``,
``AgentWorkflow``); no user id raises :class:`~memobase_integrations.errors.ConfigurationError`.

Failures: fail open by default (the tool answers "Memory is unavailable right now: ..." and
the failure is logged on ``llamaindex_memobase`` and passed to ``on_error``);
``strict=True`` raises.
"""

# No ``from __future__ import annotations``: LlamaIndex finds the ``ctx: Context`` parameter
# by comparing the real annotation object.

import inspect
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

from llama_index.core.tools import FunctionTool
from llama_index.core.workflow import Context
from pydantic import Field
from pydantic.fields import FieldInfo

from memobase_integrations import (
    ConfigurationError,
    ErrorHandler,
    FailurePolicy,
    Memobase,
    MemoryTools,
    UserMemory,
)

from ._env import logger

__all__ = ["ContextUserIdResolver", "memobase_tools"]

#: Maps the workflow ``Context`` of the run to the app's user id (sync or async).
ContextUserIdResolver = Callable[
    [Context], str | uuid.UUID | Awaitable[str | uuid.UUID | None] | None
]

_LIMIT = Field(
    default=MemoryTools.DEFAULT_SEARCH_LIMIT,
    ge=1,
    le=MemoryTools.MAX_SEARCH_LIMIT,
    description=MemoryTools.SEARCH_MEMORY.args["limit"],
)
_QUERY = Field(description=MemoryTools.SEARCH_MEMORY.args["query"])
_TOPICS = Field(default=None, description=MemoryTools.READ_PROFILE.args["topics"])
_CONTENT = Field(min_length=1, description=MemoryTools.MANAGE_MEMORY.args["content"])
_TOPIC = Field(description=MemoryTools.ADD_PROFILE.args["topic"])
_SUB_TOPIC = Field(description=MemoryTools.ADD_PROFILE.args["sub_topic"])
_ENTRY = Field(description=MemoryTools.ADD_PROFILE.args["content"])


def _given(value: Any, field: Any) -> Any:
    """The argument, or the field's default when the framework passed the ``Field`` itself.

    Older llama-index-core (0.14.15, this package's floor) calls the function with the
    ``Field(...)`` default object when the model omits an optional argument; newer
    versions substitute the default. Both must give the same answer."""
    assert isinstance(field, FieldInfo)  # typed as its default by pydantic's mypy plugin
    return field.default if isinstance(value, FieldInfo) else value


async def _default_user_id(ctx: Context) -> str | uuid.UUID | None:
    value = await ctx.store.get("user_id", default=None)
    return value if isinstance(value, uuid.UUID) or value is None else str(value)


_Fns = tuple[Callable[..., Any] | None, Callable[..., Any]]


def _tools(fns: dict[str, _Fns], writes: bool, rows: bool) -> list[Any]:
    """A ``FunctionTool`` (sync and async function) per tool the core enables."""
    tools = []
    for spec in MemoryTools.enabled_tools(writes, rows):
        fn, afn = fns[spec.name]
        tools.append(
            FunctionTool.from_defaults(
                fn=fn, async_fn=afn, name=spec.name, description=spec.description
            )
        )
    return tools


def _bound_tools(user: UserMemory, ops: MemoryTools, writes: bool, rows: bool) -> list[Any]:
    def search_memory(query: str = _QUERY, limit: int = _LIMIT) -> str:
        return ops.search_memory(user, query, _given(limit, _LIMIT))

    async def asearch_memory(query: str = _QUERY, limit: int = _LIMIT) -> str:
        return await ops.asearch_memory(user, query, _given(limit, _LIMIT))

    def read_profile(topics: list[str] | None = _TOPICS) -> str:
        return ops.read_profile(user, _given(topics, _TOPICS))

    async def aread_profile(topics: list[str] | None = _TOPICS) -> str:
        return await ops.aread_profile(user, _given(topics, _TOPICS))

    def manage_memory(content: str = _CONTENT) -> str:
        return ops.manage_memory(user, content)

    async def amanage_memory(content: str = _CONTENT) -> str:
        return await ops.amanage_memory(user, content)

    def add_profile_entry(
        topic: str = _TOPIC, sub_topic: str = _SUB_TOPIC, content: str = _ENTRY
    ) -> str:
        return ops.add_profile(user, topic, sub_topic, content)

    async def aadd_profile_entry(
        topic: str = _TOPIC, sub_topic: str = _SUB_TOPIC, content: str = _ENTRY
    ) -> str:
        return await ops.aadd_profile(user, topic, sub_topic, content)

    return _tools(
        {
            MemoryTools.SEARCH_MEMORY.name: (search_memory, asearch_memory),
            MemoryTools.READ_PROFILE.name: (read_profile, aread_profile),
            MemoryTools.MANAGE_MEMORY.name: (manage_memory, amanage_memory),
            MemoryTools.ADD_PROFILE.name: (add_profile_entry, aadd_profile_entry),
        },
        writes,
        rows,
    )


def _context_tools(
    memobase: Memobase,
    resolve: ContextUserIdResolver,
    ops: MemoryTools,
    writes: bool,
    rows: bool,
) -> list[Any]:
    async def user_of(ctx: Context, tool: str) -> UserMemory:
        value = resolve(ctx)
        user_id = await value if inspect.isawaitable(value) else value
        if user_id is None or user_id == "":
            raise ConfigurationError(
                f"The {tool!r} tool could not tell whose memory to use: the run's Context has "
                "no user id. Set it before the run (`await ctx.store.set('user_id', ...)`), "
                "pass user_id_from=, or bind the tools with memobase_tools(memobase, user_id). "
                "There is deliberately no shared default user."
            )
        return memobase.user(user_id)

    async def search_memory(ctx: Context, query: str = _QUERY, limit: int = _LIMIT) -> str:
        return await ops.asearch_memory(
            await user_of(ctx, "search_memory"), query, _given(limit, _LIMIT)
        )

    async def read_profile(ctx: Context, topics: list[str] | None = _TOPICS) -> str:
        return await ops.aread_profile(await user_of(ctx, "read_profile"), _given(topics, _TOPICS))

    async def manage_memory(ctx: Context, content: str = _CONTENT) -> str:
        return await ops.amanage_memory(await user_of(ctx, "manage_memory"), content)

    async def add_profile_entry(
        ctx: Context, topic: str = _TOPIC, sub_topic: str = _SUB_TOPIC, content: str = _ENTRY
    ) -> str:
        user = await user_of(ctx, "add_profile_entry")
        return await ops.aadd_profile(user, topic, sub_topic, content)

    return _tools(
        {
            MemoryTools.SEARCH_MEMORY.name: (None, search_memory),
            MemoryTools.READ_PROFILE.name: (None, read_profile),
            MemoryTools.MANAGE_MEMORY.name: (None, manage_memory),
            MemoryTools.ADD_PROFILE.name: (None, add_profile_entry),
        },
        writes,
        rows,
    )


def memobase_tools(
    memobase: Memobase | UserMemory,
    user_id: str | uuid.UUID | None = None,
    *,
    user_id_from: ContextUserIdResolver | None = None,
    allow_writes: bool = False,
    allow_profile_writes: bool = False,
    strict: bool = False,
    timeout: float | None = None,
    on_error: ErrorHandler | None = None,
    similarity_threshold: float | None = None,
    time_range_in_days: int | None = None,
) -> list[FunctionTool]:
    """The memory tools: ``search_memory`` and ``read_profile``; ``manage_memory`` with
    ``allow_writes=True``; ``add_profile_entry`` with ``allow_profile_writes=True``.

    ``memobase`` may be a ``UserMemory`` (bound to that user; ``MemobaseMemory.tools()``
    passes its own). Without ``user_id`` the user comes from the run's ``Context`` (see the
    module docstring). The same signature as ``langchain_memobase.memobase_tools``.
    """
    facade, user_id = MemoryTools.tool_target(memobase, user_id)
    MemoryTools.check_user_source(user_id, user_id_from)
    policy = FailurePolicy(strict=strict, timeout=timeout, on_error=on_error, logger=logger)
    ops = MemoryTools(policy, **MemoryTools.search_kwargs(similarity_threshold, time_range_in_days))
    if user_id is not None:
        return _bound_tools(facade.user(user_id), ops, allow_writes, allow_profile_writes)
    resolve = user_id_from or _default_user_id
    return _context_tools(facade, resolve, ops, allow_writes, allow_profile_writes)
