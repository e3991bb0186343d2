"""Test doubles for the LlamaIndex adapter tests.

* :class:`FakeBackend`: an in-memory implementation of the core's ``Backend`` protocol (only
  what the adapter uses: record, context, events, delete, listeners). Tests script the context
  text per user and "process" a user to fire the listeners like a real backend does.
* :class:`CountingBackend`: wraps any backend (the embedded one in end-to-end tests) and counts
  the calls the adapter makes, so tests can say "exactly one record per turn" and "at most one
  context read per run".
* :class:`RecordingLLM`: a chat LLM that remembers every message list it was sent.
* :class:`StaticRetriever`: a retriever for the context chat engines.
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import uuid
from collections import Counter
from collections.abc import AsyncGenerator, Generator, Sequence
from datetime import UTC, datetime
from typing import Any

from llama_index.core.base.base_retriever import BaseRetriever
from llama_index.core.base.llms.types import (
    ChatMessage,
    ChatResponse,
    ChatResponseAsyncGen,
    ChatResponseGen,
    CompletionResponse,
    CompletionResponseGen,
    LLMMetadata,
    MessageRole,
    ToolCallBlock,
)
from llama_index.core.llms import CustomLLM
from llama_index.core.llms.mock import MockFunctionCallingLLM
from llama_index.core.schema import NodeWithScore, QueryBundle, TextNode
from pydantic import Field, PrivateAttr

from memobase_integrations.backends.base import ProcessedListener
from memobase_integrations.errors import NotFoundError, UnsupportedError
from memobase_integrations.models import (
    ChatBlob,
    EventData,
    UserEvent,
)
from memobase_integrations.values import ContextOptions, MemoryStatus, RecordReceipt

EMPTY_PACK = (
    "---\n# Memory\nUnless the user has relevant queries, do not actively mention those "
    "memories in the conversation.\n## User Current Profile:\n- \n\n## Past Events:\n\n---\n"
)


def pack(profile: Sequence[str], events: Sequence[str] = ()) -> str:
    """A context string in Memobase's default English layout (as the server renders it)."""
    profile_section = "- " + "\n- ".join(profile) if profile else "- "
    event_section = "\n".join(f"- {e}" for e in events)
    return (
        "---\n# Memory\nUnless the user has relevant queries, do not actively mention those "
        "memories in the conversation.\n## User Current Profile:\n"
        f"{profile_section}\n\n## Past Events:\n{event_section}\n---\n"
    )


class FakeBackend:
    """In-memory Backend: scripted contexts, recorded turns, listener-driven invalidation."""

    kind = "fake"

    def __init__(self) -> None:
        self.turns: dict[uuid.UUID, list[tuple[str, list[ChatBlob]]]] = {}
        self.contexts: dict[uuid.UUID, str] = {}
        self.events_by_user: dict[uuid.UUID, list[UserEvent]] = {}
        self.calls: Counter[str] = Counter()
        self.context_options: list[ContextOptions] = []
        self.deleted: list[uuid.UUID] = []
        self.read_error: Exception | None = None
        self.record_error: Exception | None = None
        self.search_supported = True
        self._listeners: list[ProcessedListener] = []
        self.loops: set[int] = set()

    # -- scripting ---------------------------------------------------------------------------
    def set_context(self, user_id: uuid.UUID, text: str) -> None:
        self.contexts[user_id] = text

    def process(self, user_id: uuid.UUID) -> None:
        """Pretend the user's buffer was processed: tell the listeners, as backends do."""
        for listener in self._listeners:
            listener(user_id, [])

    def recorded(self, user_id: uuid.UUID) -> list[list[tuple[str, str]]]:
        """Each recorded turn as ``[(role, content), ...]``."""
        return [
            [(m.role, m.content) for blob in blobs for m in blob.messages]
            for _turn, blobs in self.turns.get(user_id, [])
        ]

    def _note_loop(self) -> None:
        with contextlib.suppress(RuntimeError):
            self.loops.add(id(asyncio.get_running_loop()))

    # -- protocol ----------------------------------------------------------------------------
    def add_listener(self, listener: ProcessedListener) -> None:
        self._listeners.append(listener)

    def record(self, user_id: uuid.UUID, blobs: Sequence[ChatBlob], turn_id: str) -> RecordReceipt:
        self.calls["record"] += 1
        if self.record_error is not None:
            raise self.record_error
        known = {t for t, _ in self.turns.get(user_id, [])}
        if turn_id in known:
            return RecordReceipt(turn_id, (), duplicate=True)
        self.turns.setdefault(user_id, []).append((turn_id, list(blobs)))
        return RecordReceipt(turn_id, tuple(uuid.uuid4() for _ in blobs))

    async def arecord(
        self, user_id: uuid.UUID, blobs: Sequence[ChatBlob], turn_id: str
    ) -> RecordReceipt:
        self._note_loop()
        self.calls["arecord"] += 1
        self.calls["record"] -= 1  # counted once, under "arecord"
        return self.record(user_id, blobs, turn_id)

    def context(self, user_id: uuid.UUID, options: ContextOptions) -> str:
        self.calls["context"] += 1
        self.context_options.append(options)
        if self.read_error is not None:
            raise self.read_error
        return self.contexts.get(user_id, EMPTY_PACK)

    async def acontext(self, user_id: uuid.UUID, options: ContextOptions) -> str:
        self._note_loop()
        self.calls["acontext"] += 1
        self.calls["context"] -= 1
        return self.context(user_id, options)

    def events(
        self, user_id: uuid.UUID, topk: int = 10, max_token_size: int | None = None
    ) -> list[UserEvent]:
        self.calls["events"] += 1
        return self.events_by_user.get(user_id, [])[:topk]

    async def aevents(
        self, user_id: uuid.UUID, topk: int = 10, max_token_size: int | None = None
    ) -> list[UserEvent]:
        return self.events(user_id, topk, max_token_size)

    def search_events(
        self,
        user_id: uuid.UUID,
        query: str,
        topk: int = 10,
        similarity_threshold: float = 0.2,
        time_range_in_days: int = 180,
    ) -> list[UserEvent]:
        self.calls["search_events"] += 1
        if not self.search_supported:
            raise UnsupportedError("Event search needs embeddings; enable them to search.")
        words = query.lower().split()
        hits = [
            e
            for e in self.events_by_user.get(user_id, [])
            if any(w in (e.event_data.event_tip or "").lower() for w in words)
        ]
        return hits[:topk]

    async def asearch_events(
        self,
        user_id: uuid.UUID,
        query: str,
        topk: int = 10,
        similarity_threshold: float = 0.2,
        time_range_in_days: int = 180,
    ) -> list[UserEvent]:
        return self.search_events(user_id, query, topk)

    def delete_user(self, user_id: uuid.UUID) -> None:
        self.calls["delete_user"] += 1
        if user_id not in self.turns and user_id not in self.contexts:
            raise NotFoundError(f"User {user_id} does not exist.")
        self.turns.pop(user_id, None)
        self.contexts.pop(user_id, None)
        self.deleted.append(user_id)

    async def adelete_user(self, user_id: uuid.UUID) -> None:
        self.delete_user(user_id)

    def status(self, user_id: uuid.UUID | None = None) -> MemoryStatus:
        return MemoryStatus(backend=self.kind)

    async def astatus(self, user_id: uuid.UUID | None = None) -> MemoryStatus:
        return self.status(user_id)

    def close(self, timeout: float | None = None) -> None:
        return None

    async def aclose(self, timeout: float | None = None) -> None:
        return None

    def __getattr__(self, name: str) -> Any:
        raise AttributeError(f"FakeBackend does not implement {name!r} (not used by the adapter)")


def make_event(tip: str, when: datetime | None = None) -> UserEvent:
    return UserEvent(
        id=uuid.uuid4(),
        event_data=EventData(event_tip=tip),
        created_at=when or datetime(2026, 1, 2, tzinfo=UTC),
    )


class CountingBackend:
    """Delegates to a real backend and counts the adapter-relevant calls."""

    COUNTED = frozenset({"record", "arecord", "context", "acontext"})

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.calls: Counter[str] = Counter()

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self.inner, name)
        if name not in self.COUNTED:
            return attr
        self.calls[name] += 1
        return attr

    @property
    def kind(self) -> str:
        return str(self.inner.kind)

    @property
    def records(self) -> int:
        return self.calls["record"] + self.calls["arecord"]

    @property
    def context_reads(self) -> int:
        return self.calls["context"] + self.calls["acontext"]


def _text_of(messages: Sequence[ChatMessage]) -> str:
    return "\n".join(f"{m.role.value}: {m.content or ''}" for m in messages)


class RecordingLLM(CustomLLM):
    """A chat model that answers with a fixed text and records every input it receives.

    ``calls`` holds deep copies of each message list (what a real provider would have been
    sent); ``prompts`` holds completion prompts (CondensePlusContext's condense step).
    """

    answer: str = "Nice to meet you."
    script: list[str] = Field(default_factory=list, description="Answers used first, in order.")
    calls: list[list[ChatMessage]] = Field(default_factory=list, exclude=True)
    prompts: list[str] = Field(default_factory=list, exclude=True)

    @property
    def metadata(self) -> LLMMetadata:
        return LLMMetadata(is_chat_model=True, context_window=16000, num_output=256)

    @property
    def last_text(self) -> str:
        """The last chat input flattened to ``role: text`` lines."""
        return _text_of(self.calls[-1])

    def _remember(self, messages: Sequence[ChatMessage]) -> str:
        self.calls.append([copy.deepcopy(m) for m in messages])
        return self.script.pop(0) if self.script else self.answer

    def chat(self, messages: Sequence[ChatMessage], **kwargs: Any) -> ChatResponse:
        answer = self._remember(messages)
        return ChatResponse(message=ChatMessage(role=MessageRole.ASSISTANT, content=answer))

    async def achat(self, messages: Sequence[ChatMessage], **kwargs: Any) -> ChatResponse:
        return self.chat(messages, **kwargs)

    def stream_chat(self, messages: Sequence[ChatMessage], **kwargs: Any) -> ChatResponseGen:
        words = self._remember(messages).split(" ")

        def gen() -> Generator[ChatResponse, None, None]:
            text = ""
            for i, word in enumerate(words):
                delta = word if i == 0 else " " + word
                text += delta
                yield ChatResponse(
                    message=ChatMessage(role=MessageRole.ASSISTANT, content=text), delta=delta
                )

        return gen()

    async def astream_chat(
        self, messages: Sequence[ChatMessage], **kwargs: Any
    ) -> ChatResponseAsyncGen:
        sync_gen = self.stream_chat(messages, **kwargs)

        async def gen() -> AsyncGenerator[ChatResponse, None]:
            for item in sync_gen:
                yield item

        return gen()

    def complete(self, prompt: str, formatted: bool = False, **kwargs: Any) -> CompletionResponse:
        self.prompts.append(prompt)
        return CompletionResponse(text="standalone question")

    def stream_complete(
        self, prompt: str, formatted: bool = False, **kwargs: Any
    ) -> CompletionResponseGen:
        self.prompts.append(prompt)

        def gen() -> Generator[CompletionResponse, None, None]:
            yield CompletionResponse(text="standalone question", delta="standalone question")

        return gen()


def tool_then_answer(messages: Sequence[ChatMessage], **kwargs: Any) -> ChatMessage:
    """Per user message: call every tool once (with default arguments), then answer.

    LlamaIndex's default mock generator answers as soon as *any* tool result is in the
    history, so a second run with the same memory would never call a tool again.
    """
    users = [i for i, m in enumerate(messages) if m.role == MessageRole.USER]
    since_user = messages[users[-1] :] if users else messages
    tools = kwargs.get("tools") or []
    if not tools or any(m.role == MessageRole.TOOL for m in since_user):
        return ChatMessage(role=MessageRole.ASSISTANT, content="Tool calls complete.")
    calls = []
    for tool in tools:
        schema = tool.metadata.fn_schema
        defaults = {
            name: info.get_default(call_default_factory=True)
            for name, info in (schema.model_fields.items() if schema else [])
            if not info.is_required()
        }
        calls.append(
            ToolCallBlock(
                tool_call_id=f"call-{uuid.uuid4().hex[:8]}",
                tool_name=tool.metadata.name or "",
                tool_kwargs=defaults,
            )
        )
    return ChatMessage(role=MessageRole.ASSISTANT, blocks=calls)


class RecordingFunctionLLM(MockFunctionCallingLLM):
    """LlamaIndex's mock function-calling LLM driven by :func:`tool_then_answer`, keeping
    every message list it was sent, not just the last."""

    calls: list[list[ChatMessage]] = Field(default_factory=list, exclude=True)
    _offered_tools: list[Any] = PrivateAttr(default_factory=list)

    def __init__(self, **kwargs: Any) -> None:
        # Older llama-index-core mocks call the generator with the messages only (no
        # ``tools=``): hand it the tools of the last ``*_with_tools`` call ourselves.
        kwargs.setdefault(
            "response_generator",
            lambda messages, **kw: tool_then_answer(
                messages, **{"tools": self._offered_tools, **kw}
            ),
        )
        super().__init__(**kwargs)

    def _prepare_chat_with_tools(self, tools: Sequence[Any], *args: Any, **kwargs: Any) -> dict:  # type: ignore[type-arg]
        self._offered_tools = list(tools)
        return super()._prepare_chat_with_tools(tools, *args, **kwargs)  # type: ignore[no-any-return]

    @property
    def all_text(self) -> list[str]:
        return [_text_of(call) for call in self.calls]

    def chat(self, messages: Sequence[ChatMessage], **kwargs: Any) -> ChatResponse:
        self.calls.append([copy.deepcopy(m) for m in messages])
        return super().chat(messages, **kwargs)

    async def achat(self, messages: Sequence[ChatMessage], **kwargs: Any) -> ChatResponse:
        return self.chat(messages, **kwargs)

    def stream_chat(self, messages: Sequence[ChatMessage], **kwargs: Any) -> ChatResponseGen:
        self.calls.append([copy.deepcopy(m) for m in messages])
        return super().stream_chat(messages, **kwargs)

    async def astream_chat(
        self, messages: Sequence[ChatMessage], **kwargs: Any
    ) -> ChatResponseAsyncGen:
        self.calls.append([copy.deepcopy(m) for m in messages])
        return await super().astream_chat(messages, **kwargs)


class StaticRetriever(BaseRetriever):
    """Always retrieves the same small document."""

    def _retrieve(self, query_bundle: QueryBundle) -> list[NodeWithScore]:
        return [NodeWithScore(node=TextNode(text="Opening hours are 9 to 5."), score=1.0)]
