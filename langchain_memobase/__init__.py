"""LangChain integration for Memobase memory: middleware, chat history, retrievers, tools.

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
        MemobaseProfileTool,
        MemobaseSearchEventsTool,
        memobase_tools,
    )

__all__ = [
    "MemobaseAddProfileTool",
    "MemobaseChatMessageHistory",
    "MemobaseEventRetriever",
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
