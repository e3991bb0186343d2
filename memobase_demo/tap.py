"""A see-through wrapper around a backend, so the demo can show what was really recorded.

The adapters call the facade, the facade calls the backend's ``record``; wrapping the backend
is the one place where the demo sees the exact ChatBlobs an app would store, without
touching the adapters. Everything else passes straight through.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, cast
from uuid import UUID

from memobase_integrations import ChatBlob, RecordReceipt
from memobase_integrations.backends.base import Backend

__all__ = ["RecordTap"]

RecordListener = Callable[[UUID, Sequence[ChatBlob], RecordReceipt], None]


class RecordTap:
    """Delegates to ``inner``; reports each ``record``/``arecord`` to ``on_record``."""

    def __init__(self, inner: Backend, on_record: RecordListener) -> None:
        self._inner = inner
        self._on_record = on_record
        self.kind = inner.kind

    def record(self, user_id: UUID, blobs: Sequence[ChatBlob], turn_id: str) -> RecordReceipt:
        receipt = self._inner.record(user_id, blobs, turn_id)
        self._on_record(user_id, blobs, receipt)
        return receipt

    async def arecord(
        self, user_id: UUID, blobs: Sequence[ChatBlob], turn_id: str
    ) -> RecordReceipt:
        receipt = await self._inner.arecord(user_id, blobs, turn_id)
        self._on_record(user_id, blobs, receipt)
        return receipt

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)

    def as_backend(self) -> Backend:
        """This wrapper, typed as the protocol it forwards."""
        return cast(Backend, self)
