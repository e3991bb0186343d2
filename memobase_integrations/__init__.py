"""Long-term user memory for LLM apps on the Memobase model.

Framework-free: this package never imports LangChain or LlamaIndex. Start with
:class:`Memobase` (``Memobase.from_env()``) and :meth:`Memobase.user`.
"""

import importlib
from typing import TYPE_CHECKING, Any

from .backends.base import ContextOptions, MemoryStatus, ProfileOptions, RecordReceipt, UserStatus
from .errors import (
    AuthenticationError,
    ConfigurationError,
    ConnectionError,
    InvalidMessageError,
    InvalidUserIdError,
    LLMError,
    MemobaseError,
    NotFoundError,
    ServerError,
    ServiceUnavailableError,
    StoreNotFoundError,
    TimeoutError,
    UnsupportedError,
    ValidationError,
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

if TYPE_CHECKING:
    from . import testing as testing

__version__ = "0.1.0"

__all__ = [
    "AuthenticationError",
    "BlobType",
    "ChatBlob",
    "ChatModalResponse",
    "ConfigurationError",
    "ConnectionError",
    "ContextOptions",
    "FlushPolicy",
    "InvalidMessageError",
    "InvalidUserIdError",
    "LLMError",
    "LLMSettings",
    "Memobase",
    "MemobaseError",
    "MemoryStatus",
    "Message",
    "NotFoundError",
    "OpenAICompatibleMessage",
    "Profile",
    "ProfileOptions",
    "RecordReceipt",
    "ServerError",
    "ServiceUnavailableError",
    "StoreNotFoundError",
    "SummaryBlob",
    "TimeoutError",
    "UnsupportedError",
    "UserEvent",
    "UserMemory",
    "UserStatus",
    "ValidationError",
    "string_to_uuid",
    "to_user_uuid",
    "turn_to_blobs",
]


def __getattr__(name: str) -> Any:
    """``memobase_integrations.testing`` (the offline stand-in LLM) is imported on first use,
    so ``import memobase_integrations`` stays light and the README's
    ``memobase_integrations.testing.StandInLLM()`` works as written."""
    if name == "testing":
        return importlib.import_module(f"{__name__}.testing")
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
