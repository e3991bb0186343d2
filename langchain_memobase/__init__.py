"""LangChain integration for Memobase memory: middleware, chat history, retrievers, tools.

Agents (``langchain.agents.create_agent``) -- the main integration::

    from dataclasses import dataclass
    from langchain.agents import create_agent
    from langchain_memobase import MemobaseMiddleware
    from memobase_integrations import Memobase

    @dataclass
    class Ctx:
        user_id: str

    memobase = Memobase.from_env()          # embedded SQLite by default, or a server
    agent = create_agent(model, tools, system_prompt="You are helpful.",
                         middleware=[MemobaseMiddleware(memobase)], context_schema=Ctx)
    agent.invoke({"messages": [("user", "Hi, I'm Gus")]}, context=Ctx(user_id="gus"))

* **Whose memory**: ``user_id=`` (fixed), ``user_id_from=lambda runtime: ...``, or by default
  ``runtime.context.user_id`` / ``config["configurable"]["user_id"]`` / the LangGraph Server
  user. No id raises :class:`MissingUserIdError`; there is never a shared default user. The
  thread id is not a user id.
* **Per invocation**: the context is read once (``before_agent``) and appended to the one
  existing system message of every model call, tool loops included; it is never written to
  the graph state or checkpoint. The finished turn (the user's message and the final answer;
  no tool calls, tool results, system or summary messages) is recorded once (``after_agent``)
  under ``turn_id = "langchain:<user message id>"``, so replays are no-ops.
* **Eventual consistency**: recorded turns are processed in the background (or on
  ``flush``), so the profile reflects earlier turns; an empty memory on turn one is normal.
* **Failures**: fail-open by default (logged on the ``langchain_memobase`` logger, the agent
  answers without memory, each call bounded by ``timeout``); ``strict=True`` raises.
* **Async**: every hook and method has a native async twin; nothing blocks the event loop.

Also here: :class:`MemobaseChatMessageHistory` for ``RunnableWithMessageHistory`` code
(upstream deprecated both; this keeps a lossless transcript and records turns),
:class:`MemobaseProfileRetriever` / :class:`MemobaseEventRetriever` (bound to one user), and
the tools from :func:`memobase_tools` (``search_memory``, ``read_profile``; ``manage_memory``
with ``allow_writes=True``; the same tools as ``llamaindex_memobase``), bound to one user or
resolved per run like the middleware. :func:`to_memobase_messages` is the conversion they
share.

Importing this package needs only ``langchain-core``; every name is loaded on first use, so
``MemobaseMiddleware`` (which needs ``langchain``, the ``[langchain]`` extra) costs nothing
until it is asked for, and then says which extra to install if it is missing.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from memobase_integrations import __version__

if TYPE_CHECKING:
    from .chat_message_histories import MemobaseChatMessageHistory
    from .errors import MissingUserIdError
    from .messages import to_memobase_messages
    from .middleware import MemobaseMiddleware, default_user_id
    from .retrievers import MemobaseEventRetriever, MemobaseProfileRetriever
    from .tools import (
        MemobaseAddProfileTool,
        MemobaseManageMemoryTool,
        MemobaseProfileTool,
        MemobaseSearchEventsTool,
        memobase_tools,
    )

__all__ = [
    "MemobaseAddProfileTool",
    "MemobaseChatMessageHistory",
    "MemobaseEventRetriever",
    "MemobaseManageMemoryTool",
    "MemobaseMiddleware",
    "MemobaseProfileRetriever",
    "MemobaseProfileTool",
    "MemobaseSearchEventsTool",
    "MissingUserIdError",
    "__version__",
    "default_user_id",
    "memobase_tools",
    "to_memobase_messages",
]

_LAZY: dict[str, str] = {
    "MemobaseAddProfileTool": "tools",
    "MemobaseChatMessageHistory": "chat_message_histories",
    "MemobaseEventRetriever": "retrievers",
    "MemobaseManageMemoryTool": "tools",
    "MemobaseMiddleware": "middleware",
    "MemobaseProfileRetriever": "retrievers",
    "MemobaseProfileTool": "tools",
    "MemobaseSearchEventsTool": "tools",
    "MissingUserIdError": "errors",
    "default_user_id": "middleware",
    "memobase_tools": "tools",
    "to_memobase_messages": "messages",
}


def __getattr__(name: str) -> Any:
    module_name = _LAZY.get(name)
    if module_name is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    module = importlib.import_module(f".{module_name}", __name__)
    value = getattr(module, name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(__all__)
