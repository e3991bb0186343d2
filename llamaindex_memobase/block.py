"""``MemobaseMemoryBlock``: a user's Memobase memory as a LlamaIndex memory block.

Put it in any ``llama_index.core.memory.Memory`` (or use :class:`MemobaseMemory`, which does
that for you and also records every turn). On each read it returns the user's context pack
(profile + past events) from the facade, which caches it per user until that user's next
processing finishes, so agents that read memory several times per run cost one backend read.
"""

from __future__ import annotations

import uuid
from typing import Any

from llama_index.core.base.llms.types import ChatMessage
from llama_index.core.bridge.pydantic import Field, PrivateAttr
from llama_index.core.memory import BaseMemoryBlock
from llama_index.core.utils import get_tokenizer

from memobase_integrations import (
    ErrorHandler,
    FailurePolicy,
    Memobase,
    UserMemory,
    is_empty_context,
    neutralize_placeholders,
    truncate_context,
)

from ._env import env_memobase, logger
from .messages import to_memobase_messages

__all__ = ["MemobaseMemoryBlock"]


class MemobaseMemoryBlock(BaseMemoryBlock[str]):
    """The profile and events Memobase keeps about one user, for injection into prompts.

    One block serves exactly one user: LlamaIndex gives blocks only a ``session_id``, so a
    block shared between users would leak one user's memory into another's prompt. Build one
    block (or one :class:`MemobaseMemory`) per user; they can all share one ``Memobase``.

    * Reads never fail a turn unless ``strict=True``: an unreachable server or a broken store
      gives an empty memory, a log line and a call to ``on_error(exc, action)``.
    * ``{name}`` placeholders in the memory text are rewritten to ``{ name }`` so LlamaIndex's
      prompt templates cannot substitute into them (``escape_placeholders``;
      :class:`MemobaseMemory` turns this off because it protects the text without changing it).
    * With a non-zero ``priority`` (1 by default) LlamaIndex may ask the block to shrink when
      the history is long: events are dropped first (oldest first), then profile lines.
    * Writes (``_aput``) record what LlamaIndex hands over, user and assistant text only. A
      plain ``Memory`` hands blocks only the messages that overflow its short-term history;
      :class:`MemobaseMemory` records every turn instead and sets
      ``accept_short_term_memory=False`` here so nothing is recorded twice.
    """

    name: str = Field(default="memobase", description="Block name; becomes the XML tag.")
    description: str | None = Field(
        default="The user's long-term memory kept by Memobase: profile and past events."
    )
    priority: int = Field(
        default=1,
        description="LlamaIndex truncation priority; 0 = never shrink this block.",
    )
    user_id: str = Field(description="The app's id for the user this block serves.")
    max_token_size: int = Field(default=1000, gt=0, description="Budget of the context pack.")
    prefer_topics: list[str] | None = Field(default=None)
    only_topics: list[str] | None = Field(default=None)
    context_options: dict[str, Any] = Field(
        default_factory=dict,
        description="Further ContextOptions (profile_event_ratio, customize_context_prompt...).",
    )
    recent_chats: int = Field(
        default=0,
        ge=0,
        description=(
            "Send the last N user/assistant messages so events relevant to them are chosen. "
            "Contexts that depend on the chat are not cached: each read hits the backend."
        ),
    )
    strict: bool = Field(
        default=False, description="Raise Memobase errors instead of failing open."
    )
    on_error: ErrorHandler | None = Field(default=None, exclude=True)
    escape_placeholders: bool = Field(default=True)

    _user: UserMemory = PrivateAttr()

    def __init__(
        self,
        *,
        user_id: str | uuid.UUID,
        memobase: Memobase | None = None,
        **data: Any,
    ) -> None:
        """``memobase`` defaults to one ``Memobase.from_env()`` shared by the process; pass your
        own instance (shared by all users: one backend, one worker, one context cache)."""
        super().__init__(user_id=str(user_id), **data)
        self._user = (memobase if memobase is not None else env_memobase()).user(user_id)

    @property
    def user(self) -> UserMemory:
        """The facade's handle on this block's user."""
        return self._user

    # -- reading ------------------------------------------------------------------------------
    async def _aget(self, messages: list[ChatMessage] | None = None, **block_kwargs: Any) -> str:
        chats = (
            to_memobase_messages(messages or [])[-self.recent_chats :] if self.recent_chats else []
        )
        try:
            text = await self._user.acontext(
                self.max_token_size,
                chats=chats or None,
                prefer_topics=self.prefer_topics,
                only_topics=self.only_topics,
                **self.context_options,
            )
        except Exception as exc:
            FailurePolicy(strict=self.strict, on_error=self.on_error, logger=logger).handle(
                exc, "read the user's memory"
            )
            return ""
        return self.prepare(text)

    def prepare(self, text: str) -> str:
        """The context as injected: ``""`` when there is nothing to say, placeholders
        neutralised when ``escape_placeholders`` is on."""
        if is_empty_context(text):
            return ""
        text = text.strip("\n")
        return neutralize_placeholders(text) if self.escape_placeholders else text

    async def atruncate(self, content: Any, tokens_to_truncate: int) -> str | None:
        """Drop events before profile lines; ``None`` when nothing useful is left.

        ``Memory`` asks every block with a priority to shrink under token pressure, also a
        block that gave nothing this time: it then passes ``[]`` (its "no content" value),
        which has nothing to drop. A failure here is a memory failure like any other: it
        drops the block (fail-open) unless ``strict``.
        """
        if not isinstance(content, str) or not content.strip():
            return None
        try:
            tokenizer = get_tokenizer()  # what Memory counts with unless told otherwise
            truncated = truncate_context(content, tokens_to_truncate, lambda s: len(tokenizer(s)))
        except Exception as exc:
            FailurePolicy(strict=self.strict, on_error=self.on_error, logger=logger).handle(
                exc, "shrink the user's memory"
            )
            return None
        return truncated.strip("\n") if truncated is not None else None

    # -- writing ------------------------------------------------------------------------------
    async def _aput(self, messages: list[ChatMessage]) -> None:
        converted = to_memobase_messages(messages)
        if not converted:
            return
        try:
            await self._user.arecord(converted)
        except Exception as exc:
            FailurePolicy(strict=self.strict, on_error=self.on_error, logger=logger).handle(
                exc, "record messages"
            )
