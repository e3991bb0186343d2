"""Long-term user memory for LLM apps on the Memobase model.

Framework-free: this package never imports LangChain or LlamaIndex. Start with
:class:`Memobase` (``Memobase.from_env()``) and :meth:`Memobase.user`.
"""

import importlib
from typing import TYPE_CHECKING, Any

from .__about__ import __version__
from .context_text import is_empty_context, neutralize_placeholders, truncate_context
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
from .facade import Memobase, UserMemory
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

if TYPE_CHECKING:
    from . import testing as testing


__all__ = [
    "SYNTHETIC_PATTERNS",
    "AuthenticationError",
    "BlobType",
    "ChatBlob",
    "ChatModalResponse",
    "ConfigurationError",
    "ContextKwargs",
    "ContextOptions",
    "FailedTurn",
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
    """``memobase_integrations.testing`` (the offline stand-in LLM) is imported on first use,
    so ``import memobase_integrations`` stays light and the README's
    ``memobase_integrations.testing.StandInLLM()`` works as written."""
    if name == "testing":
        return importlib.import_module(f"{__name__}.testing")
    if name in DEPRECATED_ALIASES:  # ConnectionError, TimeoutError (0.1.0 names)
        return deprecated_alias(__name__, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
