"""Backends: where memories live. One protocol (:class:`Backend`), two implementations."""

from ..values import ContextOptions, MemoryStatus, ProfileOptions, RecordReceipt, UserStatus
from .base import Backend

__all__ = [
    "Backend",
    "ContextOptions",
    "MemoryStatus",
    "ProfileOptions",
    "RecordReceipt",
    "UserStatus",
]
