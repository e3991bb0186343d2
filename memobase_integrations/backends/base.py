"""The one backend protocol. ``RemoteBackend`` (httpx) and ``EmbeddedBackend`` (SQLAlchemy +
openai) implement it; the facade and the adapters only ever talk to this.

Every method takes the already-mapped user UUID (see :mod:`memobase_integrations.ids`), and
every method has a native ``a``-prefixed async twin.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable
from uuid import UUID

from ..models import (
    Blob,
    BlobData,
    BlobInsertData,
    BlobType,
    ChatBlob,
    ChatModalResponse,
    EventData,
    EventGist,
    Profile,
    UserData,
    UserEvent,
)
from ..values import (
    BufferStatus,
    ContextOptions,
    FailedTurn,
    MemoryStatus,
    ProfileOptions,
    RecordReceipt,
    UserOrder,
)

if TYPE_CHECKING:
    from .remote_models import DailyUsage, ProjectBilling, ProjectUsers

__all__ = ["Backend", "ProcessedListener"]

#: Called (from a worker thread) after a user's buffer was processed.
ProcessedListener = Callable[[UUID, Sequence[ChatModalResponse]], None]


@runtime_checkable
class Backend(Protocol):
    """What a place that keeps Memobase memories must offer."""

    kind: str  # "remote" | "embedded" | "memory"

    # -- hot path ---------------------------------------------------------------------------
    def record(self, user_id: UUID, blobs: Sequence[ChatBlob], turn_id: str) -> RecordReceipt:
        """Durably store a finished turn. No network, no LLM, on the caller's thread."""
        ...

    async def arecord(
        self, user_id: UUID, blobs: Sequence[ChatBlob], turn_id: str
    ) -> RecordReceipt: ...

    def add_listener(self, listener: ProcessedListener) -> None:
        """Be told when a user's buffer has been processed (to invalidate caches)."""
        ...

    # -- users ------------------------------------------------------------------------------
    def ensure_user(self, user_id: UUID, data: dict[str, Any] | None = None) -> None: ...
    async def aensure_user(self, user_id: UUID, data: dict[str, Any] | None = None) -> None: ...
    def delete_user(self, user_id: UUID) -> bool:
        """Forget a user: profile, events, gists, blobs and still-buffered/undelivered turns.
        Idempotent; ``False`` when nothing was stored for the user."""
        ...

    async def adelete_user(self, user_id: UUID) -> bool: ...

    # -- blobs and buffer -------------------------------------------------------------------
    def insert(self, user_id: UUID, blob: Blob, *, wait_process: bool = False) -> BlobInsertData:
        """The seed endpoint: store, buffer, and process inline if over the threshold."""
        ...

    async def ainsert(
        self, user_id: UUID, blob: Blob, *, wait_process: bool = False
    ) -> BlobInsertData: ...
    def get_blob(self, user_id: UUID, blob_id: UUID) -> BlobData: ...
    async def aget_blob(self, user_id: UUID, blob_id: UUID) -> BlobData: ...
    def flush(
        self, user_id: UUID, blob_type: BlobType = BlobType.chat, *, wait: bool = True
    ) -> list[ChatModalResponse]: ...
    async def aflush(
        self, user_id: UUID, blob_type: BlobType = BlobType.chat, *, wait: bool = True
    ) -> list[ChatModalResponse]: ...

    # -- reads ------------------------------------------------------------------------------
    def context(self, user_id: UUID, options: ContextOptions) -> str: ...
    async def acontext(self, user_id: UUID, options: ContextOptions) -> str: ...
    def profile(self, user_id: UUID, options: ProfileOptions) -> list[Profile]: ...
    async def aprofile(self, user_id: UUID, options: ProfileOptions) -> list[Profile]: ...
    def events(
        self, user_id: UUID, topk: int = 10, max_token_size: int | None = None
    ) -> list[UserEvent]: ...
    async def aevents(
        self, user_id: UUID, topk: int = 10, max_token_size: int | None = None
    ) -> list[UserEvent]: ...
    def search_events(
        self,
        user_id: UUID,
        query: str,
        topk: int = 10,
        similarity_threshold: float = 0.2,
        time_range_in_days: int = 180,
    ) -> list[UserEvent]: ...
    async def asearch_events(
        self,
        user_id: UUID,
        query: str,
        topk: int = 10,
        similarity_threshold: float = 0.2,
        time_range_in_days: int = 180,
    ) -> list[UserEvent]: ...
    def search_gists(
        self,
        user_id: UUID,
        query: str,
        topk: int = 10,
        similarity_threshold: float = 0.2,
        time_range_in_days: int = 180,
    ) -> list[EventGist]: ...
    async def asearch_gists(
        self,
        user_id: UUID,
        query: str,
        topk: int = 10,
        similarity_threshold: float = 0.2,
        time_range_in_days: int = 180,
    ) -> list[EventGist]: ...

    # -- profile writes ---------------------------------------------------------------------
    def add_profile(self, user_id: UUID, content: str, topic: str, sub_topic: str) -> UUID: ...
    async def aadd_profile(
        self, user_id: UUID, content: str, topic: str, sub_topic: str
    ) -> UUID: ...
    def update_profile(
        self,
        user_id: UUID,
        profile_id: UUID,
        content: str,
        topic: str | None = None,
        sub_topic: str | None = None,
    ) -> None: ...
    async def aupdate_profile(
        self,
        user_id: UUID,
        profile_id: UUID,
        content: str,
        topic: str | None = None,
        sub_topic: str | None = None,
    ) -> None: ...
    def delete_profile(self, user_id: UUID, profile_id: UUID) -> None: ...
    async def adelete_profile(self, user_id: UUID, profile_id: UUID) -> None: ...
    def delete_event(self, user_id: UUID, event_id: UUID) -> None: ...
    async def adelete_event(self, user_id: UUID, event_id: UUID) -> None: ...

    # -- project ----------------------------------------------------------------------------
    def get_profile_config(self) -> str: ...
    async def aget_profile_config(self) -> str: ...
    def set_profile_config(self, config_yaml: str | None) -> None: ...
    async def aset_profile_config(self, config_yaml: str | None) -> None: ...

    # -- the rest of Memobase's surface: users, listings, tags, usage ------------------------
    def create_user(self, user_id: UUID | None = None, data: dict[str, Any] | None = None) -> UUID:
        """Create a user (the backend picks a uuid4 when ``user_id`` is None)."""
        ...

    async def acreate_user(
        self, user_id: UUID | None = None, data: dict[str, Any] | None = None
    ) -> UUID: ...
    def get_user(self, user_id: UUID) -> UserData:
        """The user's data and timestamps; ``NotFoundError`` for an unknown user."""
        ...

    async def aget_user(self, user_id: UUID) -> UserData: ...
    def update_user(self, user_id: UUID, data: dict[str, Any]) -> UUID:
        """Replace the user's data as a whole."""
        ...

    async def aupdate_user(self, user_id: UUID, data: dict[str, Any]) -> UUID: ...
    def project_users(
        self,
        search: str | None = None,
        order_by: UserOrder | None = None,
        order_desc: bool | None = None,
        limit: int | None = None,
        offset: int | None = None,
    ) -> ProjectUsers: ...
    async def aproject_users(
        self,
        search: str | None = None,
        order_by: UserOrder | None = None,
        order_desc: bool | None = None,
        limit: int | None = None,
        offset: int | None = None,
    ) -> ProjectUsers: ...
    def list_blobs(
        self,
        user_id: UUID,
        blob_type: BlobType = BlobType.chat,
        *,
        page: int = 0,
        page_size: int = 10,
    ) -> list[UUID]: ...
    async def alist_blobs(
        self,
        user_id: UUID,
        blob_type: BlobType = BlobType.chat,
        *,
        page: int = 0,
        page_size: int = 10,
    ) -> list[UUID]: ...
    def delete_blob(self, user_id: UUID, blob_id: UUID) -> None: ...
    async def adelete_blob(self, user_id: UUID, blob_id: UUID) -> None: ...
    def buffer_capacity(
        self,
        user_id: UUID,
        blob_type: BlobType = BlobType.chat,
        status: BufferStatus | None = "idle",
    ) -> list[UUID]: ...
    async def abuffer_capacity(
        self,
        user_id: UUID,
        blob_type: BlobType = BlobType.chat,
        status: BufferStatus | None = "idle",
    ) -> list[UUID]: ...
    def search_events_by_tags(
        self,
        user_id: UUID,
        tags: Sequence[str] | None = None,
        tag_values: dict[str, str] | None = None,
        topk: int = 10,
    ) -> list[UserEvent]: ...
    async def asearch_events_by_tags(
        self,
        user_id: UUID,
        tags: Sequence[str] | None = None,
        tag_values: dict[str, str] | None = None,
        topk: int = 10,
    ) -> list[UserEvent]: ...
    def update_event(
        self, user_id: UUID, event_id: UUID, data: EventData | dict[str, Any]
    ) -> None: ...
    async def aupdate_event(
        self, user_id: UUID, event_id: UUID, data: EventData | dict[str, Any]
    ) -> None: ...
    def usage(self) -> ProjectBilling: ...
    async def ausage(self) -> ProjectBilling: ...
    def daily_usage(self, last_days: int = 7) -> list[DailyUsage]: ...
    async def adaily_usage(self, last_days: int = 7) -> list[DailyUsage]: ...

    # -- operations -------------------------------------------------------------------------
    def status(self, user_id: UUID | None = None) -> MemoryStatus: ...
    async def astatus(self, user_id: UUID | None = None) -> MemoryStatus: ...
    def failures(self, user_id: UUID | None = None) -> list[FailedTurn]:
        """Every kept turn whose last attempt failed (one user's, or all), oldest first."""
        ...

    async def afailures(self, user_id: UUID | None = None) -> list[FailedTurn]: ...
    def retry_failed(self, user_id: UUID | None = None) -> int:
        """Make failed turns (parked ones too) due now; returns how many turns."""
        ...

    async def aretry_failed(self, user_id: UUID | None = None) -> int: ...
    def discard_failed(self, user_id: UUID | None = None) -> int:
        """Drop failed turns for good (the only way a recorded turn is dropped unprocessed);
        returns how many turns."""
        ...

    async def adiscard_failed(self, user_id: UUID | None = None) -> int: ...
    def export_user(self, user_id: UUID) -> dict[str, Any]: ...
    async def aexport_user(self, user_id: UUID) -> dict[str, Any]: ...
    def close(self, timeout: float | None = None) -> None:
        """Drain pending work (bounded by ``timeout``), flush, stop workers, release I/O."""
        ...

    async def aclose(self, timeout: float | None = None) -> None: ...
