"""Long-term user memory for LLM apps on the Memobase model.

Framework-free: this package never imports LangChain or LlamaIndex. Start with
:class:`Memobase` (``Memobase.from_env()``) and :meth:`Memobase.user`.
"""

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
