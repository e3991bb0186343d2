"""Backends: where memories live. One protocol (:class:`Backend`), two implementations."""

from .base import Backend, ContextOptions, MemoryStatus, ProfileOptions, RecordReceipt, UserStatus

__all__ = [
    "Backend",
    "ContextOptions",
    "MemoryStatus",
    "ProfileOptions",
    "RecordReceipt",
    "UserStatus",
]
