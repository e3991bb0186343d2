"""Framework-side test doubles for the LlamaIndex adapter tests (the backend is real: the
in-memory engine, see ``support.spy.SpyBackend``).

* :class:`RecordingLLM`: a chat LLM that remembers every message list it was sent.
* :class:`RecordingFunctionLLM`: LlamaIndex's mock function-calling LLM, remembering too.
* :class:`StaticRetriever`: a retriever for the context chat engines.
* :func:`pack`: a context string in Memobase's default English layout (for the pure
  context-text helpers).
"""

from __future__ import annotations

import copy
import uuid
from collections.abc import AsyncGenerator, Generator, Sequence
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
        response: ChatResponse = super().chat(messages, **kwargs)
        return response

    async def achat(self, messages: Sequence[ChatMessage], **kwargs: Any) -> ChatResponse:
        return self.chat(messages, **kwargs)

    def stream_chat(self, messages: Sequence[ChatMessage], **kwargs: Any) -> ChatResponseGen:
        self.calls.append([copy.deepcopy(m) for m in messages])
        stream: ChatResponseGen = super().stream_chat(messages, **kwargs)
        return stream

    async def astream_chat(
        self, messages: Sequence[ChatMessage], **kwargs: Any
    ) -> ChatResponseAsyncGen:
        self.calls.append([copy.deepcopy(m) for m in messages])
        stream: ChatResponseAsyncGen = await super().astream_chat(messages, **kwargs)
        return stream


class StaticRetriever(BaseRetriever):
    """Always retrieves the same small document."""

    def _retrieve(self, query_bundle: QueryBundle) -> list[NodeWithScore]:
        return [NodeWithScore(node=TextNode(text="Opening hours are 9 to 5."), score=1.0)]
