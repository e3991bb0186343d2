"""The demo's LlamaIndex app: ``SimpleChatEngine`` + ``MemobaseMemory``.

Imported only when the demo runs (the core never imports LlamaIndex). Offline, the LLM is
LlamaIndex's own ``MockFunctionCallingLLM`` with a response generator that answers with
:func:`offline_reply`; with an endpoint configured and ``llama-index-llms-openai-like`` (or
``llama-index-llms-openai``) installed it is a real model. The exact messages the LLM
received are captured from LlamaIndex's instrumentation (``LLMChatStartEvent``), which fires
for every LLM.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from llama_index.core.base.llms.types import ChatMessage, MessageRole
from llama_index.core.chat_engine import SimpleChatEngine
from llama_index.core.instrumentation.event_handlers import BaseEventHandler
from llama_index.core.instrumentation.events.llm import LLMChatStartEvent
from llama_index.core.llms import LLM
from llama_index.core.llms.mock import MockFunctionCallingLLM
from llama_index_instrumentation import get_dispatcher
from llama_index_instrumentation.base import BaseEvent
from pydantic import PrivateAttr

from llamaindex_memobase import MemobaseMemory
from memobase_integrations import Memobase

from .common import DemoSetup, Exchange, offline_reply

__all__ = ["LlamaIndexRunner", "demo_fake_llm"]


def _fake_answer(messages: Sequence[ChatMessage], **kwargs: Any) -> ChatMessage:
    systems = [m.content or "" for m in messages if m.role == MessageRole.SYSTEM]
    users = [m.content or "" for m in messages if m.role == MessageRole.USER]
    return ChatMessage(
        role=MessageRole.ASSISTANT, content=offline_reply(systems, users[-1] if users else "")
    )


def demo_fake_llm() -> LLM:
    """LlamaIndex's mock LLM with rule-based answers that use the injected memory."""
    return MockFunctionCallingLLM(response_generator=_fake_answer, is_chat_model=True)


class _SystemPromptCapture(BaseEventHandler):
    """Keeps the system messages of the last LLM chat call (any LLM)."""

    _system_prompts: list[str] = PrivateAttr(default_factory=list)

    @classmethod
    def class_name(cls) -> str:
        return "MemobaseDemoSystemPromptCapture"

    def handle(self, event: BaseEvent, **kwargs: Any) -> None:
        if isinstance(event, LLMChatStartEvent):
            self._system_prompts = [
                m.content or "" for m in event.messages if m.role == MessageRole.SYSTEM
            ]

    @property
    def system_prompts(self) -> list[str]:
        return list(self._system_prompts)


def _llm(setup: DemoSetup, notes: list[str]) -> tuple[LLM, str]:
    if not setup.online:
        return demo_fake_llm(), "MockFunctionCallingLLM (fake)"
    key = setup.llm.api_key.get_secret_value() if setup.llm.api_key else "not-needed"
    try:
        from llama_index.llms.openai_like import (  # type: ignore[import-not-found,unused-ignore]
            OpenAILike,
        )

        llm = OpenAILike(
            model=setup.chat_model,
            api_base=setup.llm.base_url or "https://api.openai.com/v1",
            api_key=key,
            is_chat_model=True,
        )
        return llm, f"OpenAILike {setup.chat_model}"
    except ImportError:
        notes.append(
            "llama-index-llms-openai-like is not installed, so the LlamaIndex chat engine uses "
            "the fake LLM (memory extraction still uses your endpoint). pip install "
            "llama-index-llms-openai-like to chat with a real model."
        )
        return demo_fake_llm(), "MockFunctionCallingLLM (fake)"


class LlamaIndexRunner:
    """A new ``SimpleChatEngine`` + ``MemobaseMemory`` (new session id) per session."""

    def __init__(
        self,
        memobase: Memobase,
        user_id: str,
        setup: DemoSetup,
        notes: list[str],
        system_prompt: str,
    ) -> None:
        self._memobase = memobase
        self._user_id = user_id
        self._system_prompt = system_prompt
        self._llm, llm_label = _llm(setup, notes)
        self.label = f"SimpleChatEngine({llm_label}, memory=MemobaseMemory(...))"
        self._capture = _SystemPromptCapture()
        get_dispatcher().add_event_handler(self._capture)
        self._engine: SimpleChatEngine | None = None

    def new_session(self) -> None:
        memory = MemobaseMemory.from_defaults(user_id=self._user_id, memobase=self._memobase)
        self._engine = SimpleChatEngine.from_defaults(
            llm=self._llm, memory=memory, system_prompt=self._system_prompt
        )

    def ask(self, text: str) -> Exchange:
        if self._engine is None:
            self.new_session()
        assert self._engine is not None
        response = self._engine.chat(text)
        return Exchange(reply=str(response.response), system_prompts=self._capture.system_prompts)

    def close(self) -> None:
        dispatcher = get_dispatcher()
        if self._capture in dispatcher.event_handlers:
            dispatcher.event_handlers.remove(self._capture)
