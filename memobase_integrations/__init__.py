"""Long-term user memory for LLM apps on the Memobase model.

Framework-free: this package never imports LangChain or LlamaIndex. Start with
:class:`Memobase` (``Memobase.from_env()``) and :meth:`Memobase.user`.
"""

import importlib
from typing import TYPE_CHECKING, Any

from .__about__ import __version__
from .errors import (
    DEPRECATED_ALIASES,
    AuthenticationError,
    ConfigurationError,
    InvalidMessageError,
    InvalidUserIdError,
    LLMError,
    MemobaseConnectionError,
    MemobaseError,
    MemobaseTimeoutError,
    NotFoundError,
    ServerError,
    ServiceUnavailableError,
    StoreError,
    StoreNotFoundError,
    UnsupportedError,
    ValidationError,
    deprecated_alias,
)

if TYPE_CHECKING:
    from . import testing as testing
    from .context_text import is_empty_context, neutralize_placeholders, truncate_context
    from .facade import Memobase, UserMemory
    from .failure_policy import ErrorHandler, FailurePolicy
    from .ids import string_to_uuid, to_user_uuid
    from .messages import Message, turn_to_blobs
    from .models import (
        BlobType,
        ChatBlob,
        ChatModalResponse,
        OpenAICompatibleMessage,
        Profile,
        SummaryBlob,
        UserEvent,
    )
    from .settings import FlushPolicy, LLMSettings
    from .tools import MemoryTools
    from .turns import (
        SYNTHETIC_PATTERNS,
        Said,
        Turn,
        current_turn,
        is_answer,
        is_synthetic,
        split_turns,
        structured_text,
        turn_id,
    )
    from .values import (
        ContextKwargs,
        ContextOptions,
        FailedTurn,
        MemoryStatus,
        ProfileKwargs,
        ProfileOptions,
        RecordReceipt,
        SearchKwargs,
        UserStatus,
    )

#: Public names and the module each lives in, imported on first access (PEP 562) so that
#: ``import memobase_integrations`` costs only the exception classes: pydantic, httpx,
#: tiktoken, SQLAlchemy and openai load when the code that needs them is first used.
_LAZY: dict[str, str] = {
    "is_empty_context": "context_text",
    "neutralize_placeholders": "context_text",
    "truncate_context": "context_text",
    "Memobase": "facade",
    "UserMemory": "facade",
    "ErrorHandler": "failure_policy",
    "FailurePolicy": "failure_policy",
    "string_to_uuid": "ids",
    "to_user_uuid": "ids",
    "Message": "messages",
    "turn_to_blobs": "messages",
    "BlobType": "models",
    "ChatBlob": "models",
    "ChatModalResponse": "models",
    "OpenAICompatibleMessage": "models",
    "Profile": "models",
    "SummaryBlob": "models",
    "UserEvent": "models",
    "FlushPolicy": "settings",
    "LLMSettings": "settings",
    "MemoryTools": "tools",
    "SYNTHETIC_PATTERNS": "turns",
    "Said": "turns",
    "Turn": "turns",
    "current_turn": "turns",
    "is_answer": "turns",
    "is_synthetic": "turns",
    "split_turns": "turns",
    "structured_text": "turns",
    "turn_id": "turns",
    "ContextKwargs": "values",
    "ContextOptions": "values",
    "FailedTurn": "values",
    "MemoryStatus": "values",
    "ProfileKwargs": "values",
    "ProfileOptions": "values",
    "RecordReceipt": "values",
    "SearchKwargs": "values",
    "UserStatus": "values",
}


__all__ = [
    "SYNTHETIC_PATTERNS",
    "AuthenticationError",
    "BlobType",
    "ChatBlob",
    "ChatModalResponse",
    "ConfigurationError",
    "ContextKwargs",
    "ContextOptions",
    "ErrorHandler",
    "FailedTurn",
    "FailurePolicy",
    "FlushPolicy",
    "InvalidMessageError",
    "InvalidUserIdError",
    "LLMError",
    "LLMSettings",
    "Memobase",
    "MemobaseConnectionError",
    "MemobaseError",
    "MemobaseTimeoutError",
    "MemoryStatus",
    "MemoryTools",
    "Message",
    "NotFoundError",
    "OpenAICompatibleMessage",
    "Profile",
    "ProfileKwargs",
    "ProfileOptions",
    "RecordReceipt",
    "Said",
    "SearchKwargs",
    "ServerError",
    "ServiceUnavailableError",
    "StoreError",
    "StoreNotFoundError",
    "SummaryBlob",
    "Turn",
    "UnsupportedError",
    "UserEvent",
    "UserMemory",
    "UserStatus",
    "ValidationError",
    "__version__",
    "current_turn",
    "is_answer",
    "is_empty_context",
    "is_synthetic",
    "neutralize_placeholders",
    "split_turns",
    "string_to_uuid",
    "structured_text",
    "to_user_uuid",
    "truncate_context",
    "turn_id",
    "turn_to_blobs",
]


def __getattr__(name: str) -> Any:
    """The public names of :data:`_LAZY`, ``memobase_integrations.testing`` (the offline
    stand-in LLM) and the deprecated aliases, resolved on first use; a public name is then
    cached in the module's namespace."""
    if name == "testing":
        return importlib.import_module(f"{__name__}.testing")
    if name in DEPRECATED_ALIASES:  # ConnectionError, TimeoutError (0.1.0 names)
        return deprecated_alias(__name__, name)
    where = _LAZY.get(name)
    if where is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{where}"), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
