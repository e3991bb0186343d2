"""An in-memory Backend for the LangChain adapter tests.

It implements the ``Backend`` protocol with plain dicts, counts every call, can be made slow
(``delay``: ``asyncio.sleep`` in async methods, ``time.sleep`` in sync ones) and can be told
to fail. It also notes every *sync* call made while an event loop is running in the calling
thread: that is a blocking call inside ``ainvoke``, which fail-open code would otherwise hide.
"""

from __future__ import annotations

import asyncio
import threading
import time
import uuid
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from langchain_core.language_models.fake_chat_models import GenericFakeChatModel
from langchain_core.messages import AIMessage, BaseMessage, SystemMessage
from langchain_core.outputs import ChatResult
from pydantic import Field

from memobase_integrations.backends.base import ProcessedListener
from memobase_integrations.errors import NotFoundError
from memobase_integrations.models import (
    Blob,
    BlobData,
    BlobInsertData,
    BlobType,
    ChatBlob,
    ChatModalResponse,
    EventData,
    EventGist,
    EventGistData,
    EventTag,
    Profile,
    ProfileAttributes,
    UserEvent,
)
from memobase_integrations.values import ContextOptions, MemoryStatus, ProfileOptions, RecordReceipt


@dataclass
class RecordedTurn:
    user_id: uuid.UUID
    turn_id: str
    blobs: list[ChatBlob]

    @property
    def lines(self) -> list[tuple[str, str]]:
        return [(m.role, m.content) for b in self.blobs for m in b.messages]


@dataclass
class FakeBackend:
    """Backend protocol over dicts. ``delay`` seconds per call; ``fail[method] = exc``."""

    delay: float = 0.0
    kind: str = "fake"
    fail: dict[str, Exception] = field(default_factory=dict)
    calls: Counter[str] = field(default_factory=Counter)
    turns: list[RecordedTurn] = field(default_factory=list)
    profiles: dict[uuid.UUID, list[Profile]] = field(default_factory=dict)
    event_rows: dict[uuid.UUID, list[UserEvent]] = field(default_factory=dict)
    context_requests: list[tuple[uuid.UUID, ContextOptions]] = field(default_factory=list)
    sync_on_loop: list[str] = field(default_factory=list)
    in_flight: int = 0
    max_in_flight: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _listeners: list[ProcessedListener] = field(default_factory=list)

    # -- test helpers ---------------------------------------------------------------------
    def add_fact(self, user_id: uuid.UUID, topic: str, sub_topic: str, content: str) -> Profile:
        now = datetime.now(UTC)
        profile = Profile(
            id=uuid.uuid4(),
            content=content,
            created_at=now,
            updated_at=now,
            attributes=ProfileAttributes(topic=topic, sub_topic=sub_topic),
        )
        self.profiles.setdefault(user_id, []).append(profile)
        return profile

    def add_event(
        self, user_id: uuid.UUID, tip: str, tags: dict[str, str] | None = None
    ) -> UserEvent:
        event = UserEvent(
            id=uuid.uuid4(),
            event_data=EventData(
                event_tip=tip,
                event_tags=[EventTag(tag=k, value=v) for k, v in (tags or {}).items()],
            ),
            created_at=datetime.now(UTC),
        )
        self.event_rows.setdefault(user_id, []).append(event)
        return event

    def turns_of(self, user_id: uuid.UUID) -> list[RecordedTurn]:
        return [t for t in self.turns if t.user_id == user_id]

    # -- instrumentation ------------------------------------------------------------------
    def _enter(self, name: str) -> None:
        with self._lock:
            self.calls[name] += 1
            self.in_flight += 1
            self.max_in_flight = max(self.max_in_flight, self.in_flight)

    def _leave(self) -> None:
        with self._lock:
            self.in_flight -= 1

    def _sync(self, name: str) -> None:
        try:
            asyncio.get_running_loop()
        except RuntimeError:
            pass
        else:
            self.sync_on_loop.append(name)
        self._enter(name)
        try:
            if self.delay:
                time.sleep(self.delay)
            if name in self.fail:
                raise self.fail[name]
        finally:
            self._leave()

    async def _async(self, name: str) -> None:
        self._enter(name)
        try:
            if self.delay:
                await asyncio.sleep(self.delay)
            if name in self.fail:
                raise self.fail[name]
        finally:
            self._leave()

    # -- pure implementations -------------------------------------------------------------
    def _record(self, user_id: uuid.UUID, blobs: Sequence[ChatBlob], turn_id: str) -> RecordReceipt:
        with self._lock:
            if any(t.turn_id == turn_id and t.user_id == user_id for t in self.turns):
                return RecordReceipt(turn_id=turn_id, blob_ids=(), duplicate=True)
            self.turns.append(RecordedTurn(user_id, turn_id, list(blobs)))
        return RecordReceipt(turn_id=turn_id, blob_ids=tuple(uuid.uuid4() for _ in blobs))

    def _context(self, user_id: uuid.UUID, options: ContextOptions) -> str:
        self.context_requests.append((user_id, options))
        rows = self._profile(user_id, ProfileOptions(only_topics=options.only_topics))
        if not rows:
            return ""
        lines = "\n".join(f"- {p.describe()}" for p in rows)
        return f"# Memory\n## User Current Profile:\n{lines}"

    def _profile(self, user_id: uuid.UUID, options: ProfileOptions) -> list[Profile]:
        rows = list(self.profiles.get(user_id, []))
        if options.only_topics:
            rows = [p for p in rows if p.topic in options.only_topics]
        return rows[: options.topk] if options.topk else rows

    def _search(self, user_id: uuid.UUID, query: str, topk: int) -> list[UserEvent]:
        words = set(query.lower().split())
        found = [
            e.model_copy(update={"similarity": 0.9})
            for e in self.event_rows.get(user_id, [])
            if words & set((e.event_data.event_tip or "").lower().split()) or not words
        ]
        return found[:topk]

    # -- hot path -------------------------------------------------------------------------
    def record(self, user_id: uuid.UUID, blobs: Sequence[ChatBlob], turn_id: str) -> RecordReceipt:
        self._sync("record")
        return self._record(user_id, blobs, turn_id)

    async def arecord(
        self, user_id: uuid.UUID, blobs: Sequence[ChatBlob], turn_id: str
    ) -> RecordReceipt:
        await self._async("record")
        return self._record(user_id, blobs, turn_id)

    def add_listener(self, listener: ProcessedListener) -> None:
        self._listeners.append(listener)

    # -- users ----------------------------------------------------------------------------
    def ensure_user(self, user_id: uuid.UUID, data: dict[str, Any] | None = None) -> None:
        self._sync("ensure_user")

    async def aensure_user(self, user_id: uuid.UUID, data: dict[str, Any] | None = None) -> None:
        await self._async("ensure_user")

    def delete_user(self, user_id: uuid.UUID) -> None:
        self._sync("delete_user")
        self.profiles.pop(user_id, None)
        self.event_rows.pop(user_id, None)

    async def adelete_user(self, user_id: uuid.UUID) -> None:
        await self._async("delete_user")
        self.profiles.pop(user_id, None)
        self.event_rows.pop(user_id, None)

    # -- blobs ----------------------------------------------------------------------------
    def insert(
        self, user_id: uuid.UUID, blob: Blob, *, wait_process: bool = False
    ) -> BlobInsertData:
        self._sync("insert")
        return BlobInsertData(id=uuid.uuid4())

    async def ainsert(
        self, user_id: uuid.UUID, blob: Blob, *, wait_process: bool = False
    ) -> BlobInsertData:
        await self._async("insert")
        return BlobInsertData(id=uuid.uuid4())

    def get_blob(self, user_id: uuid.UUID, blob_id: uuid.UUID) -> BlobData:
        self._sync("get_blob")
        raise NotFoundError(f"blob {blob_id} not found", errno=404)

    async def aget_blob(self, user_id: uuid.UUID, blob_id: uuid.UUID) -> BlobData:
        await self._async("get_blob")
        raise NotFoundError(f"blob {blob_id} not found", errno=404)

    def flush(
        self, user_id: uuid.UUID, blob_type: BlobType = BlobType.chat, *, wait: bool = True
    ) -> list[ChatModalResponse]:
        self._sync("flush")
        return []

    async def aflush(
        self, user_id: uuid.UUID, blob_type: BlobType = BlobType.chat, *, wait: bool = True
    ) -> list[ChatModalResponse]:
        await self._async("flush")
        return []

    # -- reads ----------------------------------------------------------------------------
    def context(self, user_id: uuid.UUID, options: ContextOptions) -> str:
        self._sync("context")
        return self._context(user_id, options)

    async def acontext(self, user_id: uuid.UUID, options: ContextOptions) -> str:
        await self._async("context")
        return self._context(user_id, options)

    def profile(self, user_id: uuid.UUID, options: ProfileOptions) -> list[Profile]:
        self._sync("profile")
        return self._profile(user_id, options)

    async def aprofile(self, user_id: uuid.UUID, options: ProfileOptions) -> list[Profile]:
        await self._async("profile")
        return self._profile(user_id, options)

    def events(
        self, user_id: uuid.UUID, topk: int = 10, max_token_size: int | None = None
    ) -> list[UserEvent]:
        self._sync("events")
        return list(self.event_rows.get(user_id, []))[:topk]

    async def aevents(
        self, user_id: uuid.UUID, topk: int = 10, max_token_size: int | None = None
    ) -> list[UserEvent]:
        await self._async("events")
        return list(self.event_rows.get(user_id, []))[:topk]

    def search_events(
        self,
        user_id: uuid.UUID,
        query: str,
        topk: int = 10,
        similarity_threshold: float = 0.2,
        time_range_in_days: int = 180,
    ) -> list[UserEvent]:
        self._sync("search_events")
        return self._search(user_id, query, topk)

    async def asearch_events(
        self,
        user_id: uuid.UUID,
        query: str,
        topk: int = 10,
        similarity_threshold: float = 0.2,
        time_range_in_days: int = 180,
    ) -> list[UserEvent]:
        await self._async("search_events")
        return self._search(user_id, query, topk)

    def search_gists(
        self,
        user_id: uuid.UUID,
        query: str,
        topk: int = 10,
        similarity_threshold: float = 0.2,
        time_range_in_days: int = 180,
    ) -> list[EventGist]:
        self._sync("search_gists")
        return [EventGist(id=uuid.uuid4(), gist_data=EventGistData(content=query))][:topk]

    async def asearch_gists(
        self,
        user_id: uuid.UUID,
        query: str,
        topk: int = 10,
        similarity_threshold: float = 0.2,
        time_range_in_days: int = 180,
    ) -> list[EventGist]:
        await self._async("search_gists")
        return [EventGist(id=uuid.uuid4(), gist_data=EventGistData(content=query))][:topk]

    # -- profile writes -------------------------------------------------------------------
    def add_profile(
        self, user_id: uuid.UUID, content: str, topic: str, sub_topic: str
    ) -> uuid.UUID:
        self._sync("add_profile")
        return self.add_fact(user_id, topic, sub_topic, content).id

    async def aadd_profile(
        self, user_id: uuid.UUID, content: str, topic: str, sub_topic: str
    ) -> uuid.UUID:
        await self._async("add_profile")
        return self.add_fact(user_id, topic, sub_topic, content).id

    def update_profile(
        self,
        user_id: uuid.UUID,
        profile_id: uuid.UUID,
        content: str,
        topic: str | None = None,
        sub_topic: str | None = None,
    ) -> None:
        self._sync("update_profile")

    async def aupdate_profile(
        self,
        user_id: uuid.UUID,
        profile_id: uuid.UUID,
        content: str,
        topic: str | None = None,
        sub_topic: str | None = None,
    ) -> None:
        await self._async("update_profile")

    def delete_profile(self, user_id: uuid.UUID, profile_id: uuid.UUID) -> None:
        self._sync("delete_profile")

    async def adelete_profile(self, user_id: uuid.UUID, profile_id: uuid.UUID) -> None:
        await self._async("delete_profile")

    def delete_event(self, user_id: uuid.UUID, event_id: uuid.UUID) -> None:
        self._sync("delete_event")

    async def adelete_event(self, user_id: uuid.UUID, event_id: uuid.UUID) -> None:
        await self._async("delete_event")

    # -- project --------------------------------------------------------------------------
    def get_profile_config(self) -> str:
        return ""

    async def aget_profile_config(self) -> str:
        return ""

    def set_profile_config(self, config_yaml: str | None) -> None:
        return None

    async def aset_profile_config(self, config_yaml: str | None) -> None:
        return None

    # -- operations -----------------------------------------------------------------------
    def status(self, user_id: uuid.UUID | None = None) -> MemoryStatus:
        return MemoryStatus(backend=self.kind)

    async def astatus(self, user_id: uuid.UUID | None = None) -> MemoryStatus:
        return MemoryStatus(backend=self.kind)

    def export_user(self, user_id: uuid.UUID) -> dict[str, Any]:
        return {"profiles": [p.model_dump(mode="json") for p in self.profiles.get(user_id, [])]}

    async def aexport_user(self, user_id: uuid.UUID) -> dict[str, Any]:
        return self.export_user(user_id)

    def close(self, timeout: float | None = None) -> None:
        return None

    async def aclose(self, timeout: float | None = None) -> None:
        return None


class ToolCallingFakeModel(GenericFakeChatModel):
    """GenericFakeChatModel that accepts tools (a no-op) and remembers what it was sent."""

    seen: list[list[BaseMessage]] = Field(default_factory=list)

    def bind_tools(self, tools: Sequence[Any], **kwargs: Any) -> ToolCallingFakeModel:
        return self

    def _generate(self, messages: list[BaseMessage], *args: Any, **kwargs: Any) -> ChatResult:
        self.seen.append(list(messages))
        return super()._generate(messages, *args, **kwargs)

    def system_messages(self, call: int = -1) -> list[SystemMessage]:
        return [m for m in self.seen[call] if isinstance(m, SystemMessage)]


def tool_call(name: str, args: dict[str, Any], call_id: str) -> AIMessage:
    return AIMessage(
        content="", tool_calls=[{"name": name, "args": args, "id": call_id, "type": "tool_call"}]
    )


class FacadeSpy:
    """Counts the middleware's calls into the facade (the facade caches contexts, so the
    backend alone cannot tell how often the middleware asked)."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, str]] = []

    def count(self, name: str) -> int:
        return sum(1 for n, _ in self.calls if n == name)
