"""``MemobaseMemory``: LlamaIndex's ``Memory`` plus Memobase long-term user memory.

It is a ``llama_index.core.memory.Memory`` (same short-term FIFO in a SQL chat store, same
``session_id``, ``insert_method``, template, persistence and sync wrappers) with two changes:

* a :class:`~llamaindex_memobase.block.MemobaseMemoryBlock` is always the first block, so every
  ``get``/``aget`` injects the user's profile and events;
* every ``put``/``aput``/``aput_messages`` is watched by a small turn tracker that records each
  *completed* turn (user text + the final assistant text) through the facade's ``record``,
  exactly once. Plain ``Memory`` only hands messages to blocks when ~21k tokens of history
  overflow (and loses them if a block fails), so long-term memory would almost never learn.
"""

from __future__ import annotations

import threading
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from llama_index.core.async_utils import asyncio_run
from llama_index.core.base.llms.types import ChatMessage, ContentBlock, TextBlock
from llama_index.core.bridge.pydantic import Field, PrivateAttr
from llama_index.core.memory import BaseMemoryBlock, InsertMethod, Memory
from llama_index.core.memory.memory import (
    DEFAULT_FLUSH_SIZE,
    DEFAULT_MEMORY_BLOCKS_TEMPLATE,
    DEFAULT_TOKEN_LIMIT,
)
from llama_index.core.prompts import RichPromptTemplate
from llama_index.core.storage.chat_store.base_db import AsyncDBChatStore, MessageStatus
from llama_index.core.storage.chat_store.sql import SQLAlchemyChatStore
from llama_index.core.tools import FunctionTool
from sqlalchemy.ext.asyncio import AsyncEngine

from memobase_integrations import (
    ChatModalResponse,
    ConfigurationError,
    ErrorHandler,
    FailurePolicy,
    Memobase,
    Message,
    Profile,
    RecordReceipt,
    Said,
    UserMemory,
    split_turns,
    turn_id,
)

from ._env import env_memobase, logger
from .block import MemobaseMemoryBlock
from .messages import to_memobase_message, to_said
from .tools import memobase_tools

__all__ = ["LiteralTextBlock", "MemobaseMemory"]

_TURN_SOURCE = "llamaindex"


class LiteralTextBlock(TextBlock):
    """Text that LlamaIndex prompt templates leave alone.

    ``ContextChatEngine`` and ``CondensePlusContextChatEngine`` pass the chat history (memory
    included) through ``ChatPromptTemplate``, which substitutes ``{query_str}`` and friends in
    every ``TextBlock``. A block with no templatable attributes is skipped by that formatting,
    so memory text reaches the LLM byte for byte. It serialises as an ordinary text block.
    """

    @property
    def templatable_attributes(self) -> list[str]:
        return []


@dataclass(frozen=True, slots=True)
class _Turn:
    """A completed turn: what to record and its deterministic id."""

    messages: list[Message]
    turn_id: str


class _TurnTracker:
    """Folds the messages put into memory into turns, by the core policy
    (:func:`memobase_integrations.turns.split_turns`).

    User messages with text open (or extend) the pending turn; an answer closes it; an
    assistant message that answers nothing (framework text) closes it without an answer.
    Tool calls, tool results, system messages and thinking never enter a turn. Guarded by a
    lock because ``stream_chat`` writes the answer from a worker thread.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._pending: list[ChatMessage] = []

    @property
    def pending(self) -> tuple[Message, ...]:
        with self._lock:
            converted = (to_memobase_message(m) for m in self._pending)
            return tuple(m for m in converted if m is not None)

    def observe(self, messages: Sequence[ChatMessage], scope: str) -> list[_Turn]:
        with self._lock:
            batch = [*self._pending, *messages]
            said = [to_said(m) for m in batch]
            spans, pending = split_turns(said, complete=False)
            self._pending = [batch[i] for i in pending]
        completed: list[_Turn] = []
        for span in spans:
            users = [to_memobase_message(batch[i]) for i in span.users]
            record = [m for m in users if m is not None]
            answer = to_memobase_message(batch[span.answer]) if span.answer is not None else None
            if answer is not None:
                record.append(answer)
            if not record:
                continue
            tid = turn_id(
                _TURN_SOURCE,
                [said[i] for i in span.users],
                answer.content if answer is not None else None,
                scope=scope,
            )
            completed.append(_Turn(record, tid))
        return completed

    def clear(self) -> None:
        with self._lock:
            self._pending = []


class MemobaseMemory(Memory):
    """Drop-in ``memory=`` for chat engines and agents with Memobase long-term user memory.

    Build it with :meth:`from_defaults` (``user_id`` plus a shared ``Memobase``; without one,
    a ``Memobase.from_env()`` shared by the process). ``reset()`` clears this session's
    short-term history only; forgetting the user in Memobase is the explicit :meth:`forget`.

    Failures of Memobase (context reads and turn recording) never fail the turn unless
    ``strict=True``; they are logged and passed to ``on_error(exc, action)``.
    """

    user_id: str = Field(description="The app's id for the user whose memory this is.")
    strict: bool = Field(
        default=False, description="Raise Memobase errors instead of failing open."
    )
    on_error: ErrorHandler | None = Field(default=None, exclude=True)

    _user: UserMemory = PrivateAttr()
    _block: MemobaseMemoryBlock = PrivateAttr()
    _tracker: _TurnTracker = PrivateAttr(default_factory=_TurnTracker)

    def __init__(
        self,
        *,
        user_id: str | uuid.UUID,
        memobase: Memobase | None = None,
        max_token_size: int = 1000,
        prefer_topics: list[str] | None = None,
        only_topics: list[str] | None = None,
        context_options: dict[str, Any] | None = None,
        recent_chats: int = 0,
        block_name: str = "memobase",
        block_priority: int = 1,
        strict: bool = False,
        on_error: ErrorHandler | None = None,
        **data: Any,
    ) -> None:
        # Check what we were given before resolving the default Memobase: building that one
        # opens (and may create) the environment's store, which a bad call must not do.
        extra_blocks = list(data.get("memory_blocks") or [])
        not_blocks = [b for b in extra_blocks if not isinstance(b, BaseMemoryBlock)]
        if not_blocks:
            raise ConfigurationError(
                f"memory_blocks must be memory block instances, got "
                f"{type(not_blocks[0]).__name__}. Serialized blocks cannot be rebuilt from a "
                "dict; build them again and pass memory_blocks=[...]."
            )
        memobase = memobase if memobase is not None else env_memobase()
        block = MemobaseMemoryBlock(
            user_id=user_id,
            memobase=memobase,
            name=block_name,
            priority=block_priority,
            max_token_size=max_token_size,
            prefer_topics=prefer_topics,
            only_topics=only_topics,
            context_options=dict(context_options or {}),
            recent_chats=recent_chats,
            strict=strict,
            on_error=on_error,
            # Turns are recorded by the tracker; overflow batches would record them twice.
            accept_short_term_memory=False,
            # The text is protected by LiteralTextBlock instead, so it stays unchanged.
            escape_placeholders=False,
        )
        data["memory_blocks"] = [block, *extra_blocks]
        data.setdefault("token_limit", DEFAULT_TOKEN_LIMIT)
        super().__init__(user_id=str(user_id), strict=strict, on_error=on_error, **data)
        self._block = block
        self._user = block.user

    @classmethod
    def class_name(cls) -> str:
        return "MemobaseMemory"

    @classmethod
    def from_dict(cls, data: dict[str, Any], **kwargs: Any) -> MemobaseMemory:  # type: ignore[override]
        """Rebuild from :meth:`to_dict` output (pass ``memobase=`` to choose the store).

        The Memobase block keeps its name and priority; other serialized blocks cannot be
        rebuilt (LlamaIndex serializes them without their type) and are refused with
        :class:`ConfigurationError` before any store is opened.
        """
        merged = {**data, **kwargs}
        merged.pop("class_name", None)
        if not merged.get("user_id"):
            raise ConfigurationError(
                "MemobaseMemory.from_dict needs 'user_id' (whose memory this is); the data "
                f"has keys {sorted(merged)}."
            )
        blocks: list[Any] = list(merged.pop("memory_blocks", None) or [])
        if blocks and isinstance(blocks[0], dict):
            # to_dict() writes the Memobase block first, as a bare BaseMemoryBlock dict (its
            # own options are not serialized: pass them again, e.g. max_token_size=...).
            ours = blocks.pop(0)
            merged.setdefault("block_name", ours.get("name", "memobase"))
            merged.setdefault("block_priority", ours.get("priority", 1))
        template = merged.get("memory_blocks_template")
        if isinstance(template, dict) and isinstance(template.get("template_str"), str):
            # Memory's own to_dict/from_dict does not round-trip the template (upstream).
            merged["memory_blocks_template"] = RichPromptTemplate(template["template_str"])
        return cls(memory_blocks=blocks, **merged)

    @classmethod
    def from_defaults(  # type: ignore[override]
        cls,
        user_id: str | uuid.UUID,
        memobase: Memobase | None = None,
        *,
        session_id: str | None = None,
        chat_history: list[ChatMessage] | None = None,
        token_limit: int = DEFAULT_TOKEN_LIMIT,
        memory_blocks: list[BaseMemoryBlock[Any]] | None = None,
        tokenizer_fn: Callable[[str], list[Any]] | None = None,
        chat_history_token_ratio: float = 0.7,
        token_flush_size: int = DEFAULT_FLUSH_SIZE,
        memory_blocks_template: RichPromptTemplate = DEFAULT_MEMORY_BLOCKS_TEMPLATE,
        insert_method: InsertMethod = InsertMethod.SYSTEM,
        image_token_size_estimate: int = 256,
        audio_token_size_estimate: int = 256,
        video_token_size_estimate: int = 256,
        chat_store: AsyncDBChatStore | None = None,
        table_name: str = "llama_index_memory",
        async_database_uri: str | None = None,
        async_engine: AsyncEngine | None = None,
        db_schema: str | None = None,
        max_token_size: int = 1000,
        prefer_topics: list[str] | None = None,
        only_topics: list[str] | None = None,
        context_options: dict[str, Any] | None = None,
        recent_chats: int = 0,
        block_name: str = "memobase",
        block_priority: int = 1,
        strict: bool = False,
        on_error: ErrorHandler | None = None,
    ) -> MemobaseMemory:
        """Like ``Memory.from_defaults`` plus the user and the Memobase options.

        Short-term history lives where ``Memory`` keeps it: an in-memory SQLite database by
        default, or ``async_database_uri`` (e.g. ``sqlite+aiosqlite:///chat.db``,
        ``postgresql+asyncpg://...``) / ``chat_store`` to keep it across restarts under the
        same ``session_id``. ``chat_history`` seeds short-term history; it is not recorded
        in Memobase (it was said before this memory existed).
        """
        session_id = session_id or str(uuid.uuid4())
        sql_store = chat_store or SQLAlchemyChatStore(
            table_name=table_name,
            async_database_uri=async_database_uri,
            async_engine=async_engine,
            db_schema=db_schema,
        )
        if chat_history is not None:
            asyncio_run(sql_store.set_messages(session_id, chat_history))
        if token_flush_size > token_limit:
            token_flush_size = int(token_limit * 0.7)
        return cls(
            user_id=user_id,
            memobase=memobase,
            max_token_size=max_token_size,
            prefer_topics=prefer_topics,
            only_topics=only_topics,
            context_options=context_options,
            recent_chats=recent_chats,
            block_name=block_name,
            block_priority=block_priority,
            strict=strict,
            on_error=on_error,
            session_id=session_id,
            token_limit=token_limit,
            memory_blocks=memory_blocks or [],
            tokenizer_fn=tokenizer_fn,
            chat_history_token_ratio=chat_history_token_ratio,
            token_flush_size=token_flush_size,
            memory_blocks_template=memory_blocks_template,
            insert_method=insert_method,
            image_token_size_estimate=image_token_size_estimate,
            audio_token_size_estimate=audio_token_size_estimate,
            video_token_size_estimate=video_token_size_estimate,
            sql_store=sql_store,
        )

    # -- accessors ----------------------------------------------------------------------------
    @property
    def user(self) -> UserMemory:
        """The facade's handle on this user (profile, events, flush, export...)."""
        return self._user

    @property
    def block(self) -> MemobaseMemoryBlock:
        """The injected Memobase block (always ``memory_blocks[0]``)."""
        return self._block

    @property
    def pending_turn(self) -> tuple[Message, ...]:
        """User messages put since the last answered turn (not recorded yet)."""
        return self._tracker.pending

    # -- writes: short-term history first, then the completed turn to Memobase ---------------
    async def aput(self, message: ChatMessage) -> None:
        try:
            await super().aput(message)
        finally:
            await self._record(self._tracker.observe([message], self.session_id))

    async def aput_messages(self, messages: list[ChatMessage]) -> None:
        try:
            await super().aput_messages(messages)
        finally:
            await self._record(self._tracker.observe(messages, self.session_id))

    async def aset(self, messages: list[ChatMessage]) -> None:
        """Replace short-term history. Nothing is recorded: these turns are not new."""
        await super().aset(messages)
        self._tracker.clear()

    async def areset(self, status: MessageStatus | None = None) -> None:
        """Clear this session's short-term history. Memobase keeps the user's memory; use
        :meth:`aforget` to delete that."""
        await super().areset(status=status)
        self._tracker.clear()

    async def _record(self, turns: list[_Turn]) -> None:
        for turn in turns:
            try:
                await self._user.arecord(turn.messages, turn_id=turn.turn_id)
            except Exception as exc:
                FailurePolicy(strict=self.strict, on_error=self.on_error, logger=logger).handle(
                    exc, "record the turn"
                )

    def _direct_turn_id(self, messages: Sequence[Message]) -> str:
        """Derived from the session and the messages, so recording the same ones twice is
        one turn (the core rule, :func:`memobase_integrations.turns.turn_id`)."""
        said = [Said(m.role, m.content) for m in messages]
        return turn_id(_TURN_SOURCE, said, scope=self.session_id)

    def record(self, messages: Sequence[ChatMessage]) -> RecordReceipt:
        """Record messages in Memobase directly (bypassing the tracker), e.g. an import."""
        converted = self._convert(messages)
        return self._user.record(converted, turn_id=self._direct_turn_id(converted))

    async def arecord(self, messages: Sequence[ChatMessage]) -> RecordReceipt:
        converted = self._convert(messages)
        return await self._user.arecord(converted, turn_id=self._direct_turn_id(converted))

    @staticmethod
    def _convert(messages: Sequence[ChatMessage]) -> list[Message]:
        return [m for m in map(to_memobase_message, messages) if m is not None]

    # -- reads: keep memory text out of the reach of prompt templates ------------------------
    def _insert_memory_content(
        self,
        chat_history: list[ChatMessage],
        memory_content: list[ContentBlock],
        chat_message_data: list[ChatMessage],
    ) -> list[ChatMessage]:
        literal: list[ContentBlock] = [
            LiteralTextBlock(text=block.text) if type(block) is TextBlock else block
            for block in memory_content
        ]
        return super()._insert_memory_content(chat_history, literal, chat_message_data)

    # -- Memobase operations ------------------------------------------------------------------
    def context(self) -> str:
        """The memory text that the next ``get`` injects ("" when there is none)."""
        return self._block.prepare(
            self._user.context(
                self._block.max_token_size,
                prefer_topics=self._block.prefer_topics,
                only_topics=self._block.only_topics,
                **self._block.context_options,
            )
        )

    async def acontext(self) -> str:
        return self._block.prepare(
            await self._user.acontext(
                self._block.max_token_size,
                prefer_topics=self._block.prefer_topics,
                only_topics=self._block.only_topics,
                **self._block.context_options,
            )
        )

    def profile(self) -> list[Profile]:
        return self._user.profile()

    async def aprofile(self) -> list[Profile]:
        return await self._user.aprofile()

    def flush(self, *, wait: bool = True) -> list[ChatModalResponse]:
        """Process the user's buffered turns now (the next read then sees the result)."""
        return self._user.flush(wait=wait)

    async def aflush(self, *, wait: bool = True) -> list[ChatModalResponse]:
        return await self._user.aflush(wait=wait)

    def forget(self, *, keep_history: bool = False) -> None:
        """Delete everything Memobase keeps about this user (profile, events, unprocessed
        turns) and, unless ``keep_history``, this session's short-term history too."""
        self._user.delete()
        self._tracker.clear()
        if not keep_history:
            self.reset()

    async def aforget(self, *, keep_history: bool = False) -> None:
        await self._user.adelete()
        self._tracker.clear()
        if not keep_history:
            await self.areset()

    def tools(self, **options: Any) -> list[FunctionTool]:
        """Recall/search tools bound to this user (see :func:`memobase_tools`)."""
        return memobase_tools(self._user, **options)
