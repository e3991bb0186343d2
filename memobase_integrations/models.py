"""Wire models of the Memobase schema (pydantic v2).

Field names and shapes follow the exchanges recorded from a real Memobase server
(``memobase_server`` 0.0.42): these models are what goes over HTTP in remote mode and
what the embedded engine returns, so both backends speak one vocabulary.
"""

from __future__ import annotations

from datetime import datetime
from enum import IntEnum, StrEnum
from typing import Any, Generic, Literal, TypeVar
from uuid import UUID

from pydantic import BaseModel, ConfigDict, Field

__all__ = [
    "PROCESSED_BLOB_TYPES",
    "BlobData",
    "BlobInsertData",
    "BlobType",
    "ChatBlob",
    "ChatModalResponse",
    "CodeBlob",
    "DocBlob",
    "Envelope",
    "ErrorCode",
    "EventData",
    "EventGist",
    "EventGistData",
    "EventTag",
    "IdData",
    "IdsData",
    "ImageBlob",
    "OpenAICompatibleMessage",
    "Profile",
    "ProfileAttributes",
    "ProfileDelta",
    "SummaryBlob",
    "TranscriptBlob",
    "TranscriptStamp",
    "UserData",
    "UserEvent",
]


class BlobType(StrEnum):
    """The blob kinds Memobase knows. Only ``chat`` and ``summary`` are processed."""

    chat = "chat"
    summary = "summary"
    doc = "doc"
    image = "image"
    code = "code"
    transcript = "transcript"


#: Blob types the server (and the embedded engine) turn into profiles and events.
#: The others are accepted by the schema but the server refuses to process them.
PROCESSED_BLOB_TYPES: frozenset[BlobType] = frozenset({BlobType.chat, BlobType.summary})


class ErrorCode(IntEnum):
    """The ``errno`` values of the Memobase envelope (seed document, ``CODE``)."""

    SUCCESS = 0
    BAD_REQUEST = 400
    UNAUTHORIZED = 401
    FORBIDDEN = 403
    NOT_FOUND = 404
    METHOD_NOT_ALLOWED = 405
    CONFLICT = 409
    UNPROCESSABLE_ENTITY = 422
    INTERNAL_SERVER_ERROR = 500
    NOT_IMPLEMENTED = 501
    BAD_GATEWAY = 502
    SERVICE_UNAVAILABLE = 503
    GATEWAY_TIMEOUT = 504
    SERVER_PARSE_ERROR = 520


class _Model(BaseModel):
    # The server adds fields over time; ignoring unknown keys keeps old clients working.
    model_config = ConfigDict(extra="ignore", populate_by_name=True)


class OpenAICompatibleMessage(_Model):
    """One chat message as Memobase stores it.

    ``created_at`` is a free-form string shown to the LLM verbatim (``"2025-01-14"``,
    an ISO timestamp, ...): it is the only way a timestamp reaches processing, because the
    server ignores blob-level ``created_at``.
    """

    role: Literal["user", "assistant"]
    content: str
    alias: str | None = None
    created_at: str | None = None


class _BlobBase(_Model):
    fields: dict[str, Any] | None = None
    created_at: datetime | None = None

    def to_request(self) -> dict[str, Any]:
        """The ``BlobData`` JSON body for ``POST /blobs/insert`` (as the official SDK sends it)."""
        data = self.model_dump(mode="json", exclude={"type", "fields", "created_at"})
        return {"blob_type": str(self.type), "fields": self.fields, "blob_data": data}  # type: ignore[attr-defined]


class ChatBlob(_BlobBase):
    type: Literal[BlobType.chat] = BlobType.chat
    messages: list[OpenAICompatibleMessage]


class SummaryBlob(_BlobBase):
    type: Literal[BlobType.summary] = BlobType.summary
    summary: str


class DocBlob(_BlobBase):
    """Stored but not processed (the server answers errno 400 on flush)."""

    type: Literal[BlobType.doc] = BlobType.doc
    content: str


class CodeBlob(_BlobBase):
    """Not processed; the server refuses to insert it (errno 500)."""

    type: Literal[BlobType.code] = BlobType.code
    content: str
    language: str | None = None


class ImageBlob(_BlobBase):
    """Not processed; the server refuses to insert it (errno 500)."""

    type: Literal[BlobType.image] = BlobType.image
    url: str | None = None
    base64: str | None = None


class TranscriptStamp(_Model):
    content: str
    start_timestamp_in_seconds: float
    end_time_timestamp_in_seconds: float | None = None
    speaker: str | None = None


class TranscriptBlob(_BlobBase):
    """Not processed; the server refuses to insert it (errno 500)."""

    type: Literal[BlobType.transcript] = BlobType.transcript
    transcripts: list[TranscriptStamp]


Blob = ChatBlob | SummaryBlob | DocBlob | CodeBlob | ImageBlob | TranscriptBlob

_BLOB_CLASSES: dict[BlobType, type[_BlobBase]] = {
    BlobType.chat: ChatBlob,
    BlobType.summary: SummaryBlob,
    BlobType.doc: DocBlob,
    BlobType.code: CodeBlob,
    BlobType.image: ImageBlob,
    BlobType.transcript: TranscriptBlob,
}


class BlobData(_Model):
    """The stored form of a blob: ``GET /blobs/{uid}/{bid}`` and the insert request body."""

    blob_type: BlobType
    blob_data: dict[str, Any]
    fields: dict[str, Any] | None = None
    created_at: datetime | None = None
    updated_at: datetime | None = None

    def to_blob(self) -> Blob:
        """Parse ``blob_data`` into its typed blob (raises ``pydantic.ValidationError``)."""
        cls = _BLOB_CLASSES[self.blob_type]
        blob = cls.model_validate({**self.blob_data, "fields": self.fields})
        return blob  # type: ignore[return-value]


class ChatModalResponse(_Model):
    """What one processed buffer produced: the event and the profile rows it touched."""

    event_id: UUID | None = None
    add_profiles: list[UUID] = Field(default_factory=list)
    update_profiles: list[UUID] = Field(default_factory=list)
    delete_profiles: list[UUID] = Field(default_factory=list)


class BlobInsertData(_Model):
    id: UUID
    chat_results: list[ChatModalResponse] = Field(default_factory=list)


class IdData(_Model):
    id: UUID | None = None


class IdsData(_Model):
    ids: list[UUID] = Field(default_factory=list)


class UserData(_Model):
    """``GET /users/{id}``: the server always answers ``id: null``."""

    data: dict[str, Any] | None = None
    id: UUID | None = None
    created_at: datetime | None = None
    updated_at: datetime | None = None


class ProfileAttributes(_Model):
    model_config = ConfigDict(extra="allow", populate_by_name=True)

    topic: str
    sub_topic: str
    update_hits: int | None = None


class Profile(_Model):
    id: UUID
    content: str
    created_at: datetime | None = None
    updated_at: datetime | None = None
    attributes: ProfileAttributes

    @property
    def topic(self) -> str:
        return self.attributes.topic

    @property
    def sub_topic(self) -> str:
        return self.attributes.sub_topic

    def describe(self) -> str:
        """The ``topic::sub_topic: content`` line used in contexts."""
        return f"{self.topic}::{self.sub_topic}: {self.content}"


class ProfileDelta(_Model):
    content: str
    attributes: dict[str, Any]


class EventTag(_Model):
    tag: str
    value: str


class EventData(_Model):
    profile_delta: list[ProfileDelta] | None = None
    event_tip: str | None = None
    event_tags: list[EventTag] | None = None


class UserEvent(_Model):
    id: UUID
    event_data: EventData
    created_at: datetime | None = None
    updated_at: datetime | None = None
    similarity: float | None = None


class EventGistData(_Model):
    content: str


class EventGist(_Model):
    id: UUID
    gist_data: EventGistData
    created_at: datetime | None = None
    updated_at: datetime | None = None
    similarity: float | None = None


T = TypeVar("T")


class Envelope(_Model, Generic[T]):
    """The ``{data, errno, errmsg}`` wrapper around every Memobase answer."""

    data: T | None = None
    errno: int = 0
    errmsg: str = ""
