"""LlamaIndex systems: ``SimpleChatEngine`` with no memory, the default ``Memory``,
``Memory`` + ``FactExtractionMemoryBlock``, ``MemobaseMemory``, and mem0's ``Mem0Memory``.

The chat LLM is a scripted fake (instant, replies with the conversation's own text). Only the
fact block's LLM and mem0's LLM/embedder reach the stand-in, served from its own process
(:class:`~benchmarks.llm.ServedBenchLLM`).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

from llama_index.core.base.llms.types import (
    ChatMessage,
    ChatResponse,
    CompletionResponse,
    CompletionResponseGen,
    LLMMetadata,
    MessageRole,
)
from llama_index.core.chat_engine import SimpleChatEngine
from llama_index.core.llms import CustomLLM
from llama_index.core.memory import Memory
from llama_index.core.memory.memory_blocks import FactExtractionMemoryBlock, StaticMemoryBlock
from llama_index.core.memory.types import BaseMemory

from benchmarks.conversations import Turn
from benchmarks.mem0_check import mem0_config
from benchmarks.systems.base import BenchEnv, BenchSystem, Script
from benchmarks.systems.memobase_env import MemobaseFactory

__all__ = [
    "FACT_BLOCK_MEMORY",
    "LlamaDefaultMemory",
    "LlamaFactExtraction",
    "LlamaMem0",
    "LlamaMemobase",
    "LlamaNoMemory",
    "LlamaStaticBlock",
]

#: Memory settings for the fact block: the defaults (30k token limit) would hand it messages
#: only after ~21k tokens of one session, i.e. never in these ~750-token sessions. These make
#: it extract once ~500 tokens of a session are in the FIFO and then every ~250 tokens: about
#: twice per session, a little more often than Memobase's 1024-token buffer threshold.
FACT_BLOCK_MEMORY: dict[str, Any] = {
    "token_limit": 1000,
    "chat_history_token_ratio": 0.5,
    "token_flush_size": 250,
}


class ScriptedLLM(CustomLLM):
    """The chat engine's LLM: answers with ``script.reply`` at once."""

    script: Script

    @property
    def metadata(self) -> LLMMetadata:
        return LLMMetadata(context_window=128_000, num_output=256, model_name="scripted-fake")

    def complete(self, prompt: str, formatted: bool = False, **kwargs: Any) -> CompletionResponse:
        return CompletionResponse(text=self.script.reply)

    def stream_complete(
        self, prompt: str, formatted: bool = False, **kwargs: Any
    ) -> CompletionResponseGen:
        yield CompletionResponse(text=self.script.reply, delta=self.script.reply)


class StandInChatLLM(CustomLLM):
    """A LlamaIndex LLM that asks the benchmark's stand-in endpoint (for the fact block)."""

    client: Any
    aclient: Any

    @property
    def metadata(self) -> LLMMetadata:
        return LLMMetadata(context_window=128_000, num_output=1024, model_name="stand-in")

    @staticmethod
    def _payload(messages: Sequence[ChatMessage]) -> list[dict[str, str]]:
        return [{"role": m.role.value, "content": m.content or ""} for m in messages]

    def chat(self, messages: Sequence[ChatMessage], **kwargs: Any) -> ChatResponse:
        out = self.client.chat.completions.create(
            model="stand-in", messages=self._payload(messages)
        )
        text = out.choices[0].message.content or ""
        return ChatResponse(message=ChatMessage(role=MessageRole.ASSISTANT, content=text))

    async def achat(self, messages: Sequence[ChatMessage], **kwargs: Any) -> ChatResponse:
        out = await self.aclient.chat.completions.create(
            model="stand-in", messages=self._payload(messages)
        )
        text = out.choices[0].message.content or ""
        return ChatResponse(message=ChatMessage(role=MessageRole.ASSISTANT, content=text))

    def complete(self, prompt: str, formatted: bool = False, **kwargs: Any) -> CompletionResponse:
        return CompletionResponse(
            text=self.chat([ChatMessage(role="user", content=prompt)]).message.content or ""
        )

    def stream_complete(
        self, prompt: str, formatted: bool = False, **kwargs: Any
    ) -> CompletionResponseGen:
        yield self.complete(prompt)


class NoMemory(BaseMemory):
    """Keeps nothing: the LlamaIndex framework baseline."""

    @classmethod
    def class_name(cls) -> str:
        return "NoMemory"

    @classmethod
    def from_defaults(cls, **kwargs: Any) -> NoMemory:
        return cls()

    def get(self, input: str | None = None, **kwargs: Any) -> list[ChatMessage]:
        return []

    def get_all(self) -> list[ChatMessage]:
        return []

    def put(self, message: ChatMessage) -> None:
        return None

    def set(self, messages: list[ChatMessage]) -> None:
        return None

    def reset(self) -> None:
        return None


class _LlamaSystem(BenchSystem):
    framework = "llamaindex"

    def _engine(self, memory: BaseMemory) -> None:
        self.engine = SimpleChatEngine.from_defaults(
            llm=ScriptedLLM(script=self.env.script), memory=memory
        )

    def run_turn(self, turn: Turn) -> None:
        self.engine.chat(turn.user)


class LlamaNoMemory(_LlamaSystem):
    """Not a configuration anyone ships (the engine always has a memory): it shows what the
    default short-term ``Memory`` itself costs per turn."""

    name = "llamaindex: SimpleChatEngine, no-op memory (reference)"

    def begin_session(self, user_id: str, session_index: int) -> None:
        self._engine(NoMemory())


class LlamaDefaultMemory(_LlamaSystem):
    """What ``SimpleChatEngine.from_defaults()`` uses: the LlamaIndex baseline."""

    name = "llamaindex: SimpleChatEngine + default Memory (no long-term memory)"
    baseline = True

    def begin_session(self, user_id: str, session_index: int) -> None:
        self._engine(Memory.from_defaults(session_id=f"{user_id}:{session_index}"))


#: About the size of a real Memobase context (a dozen profile lines and a few events).
STATIC_TEXT = "\n".join(
    f"- interest::hobby_{i}: likes hiking, jazz and green tea; plays chess on weekends"
    for i in range(12)
)


class LlamaStaticBlock(_LlamaSystem):
    """Reference row: default ``Memory`` + a ``StaticMemoryBlock`` of context-sized text.
    Any block with content makes ``Memory.get`` render its Jinja template every turn."""

    name = "llamaindex: default Memory + StaticMemoryBlock (reference)"

    def begin_session(self, user_id: str, session_index: int) -> None:
        block = StaticMemoryBlock(name="profile", static_content=STATIC_TEXT)
        memory = Memory.from_defaults(
            session_id=f"{user_id}:{session_index}", memory_blocks=[block]
        )
        self._engine(memory)


class LlamaFactExtraction(_LlamaSystem):
    name = "llamaindex: Memory + FactExtractionMemoryBlock"
    peer = True

    def setup(self) -> None:
        self.llm = StandInChatLLM(
            client=self.env.llm.openai_client(), aclient=self.env.llm.async_openai_client()
        )
        self.blocks: dict[str, FactExtractionMemoryBlock] = {}

    def begin_session(self, user_id: str, session_index: int) -> None:
        # One block per user, kept across sessions: facts live only in the block instance.
        block = self.blocks.setdefault(user_id, FactExtractionMemoryBlock(llm=self.llm))
        memory = Memory.from_defaults(
            session_id=f"{user_id}:{session_index}", memory_blocks=[block], **FACT_BLOCK_MEMORY
        )
        self._engine(memory)


class LlamaMemobase(_LlamaSystem):
    memobase = True

    def __init__(self, env: BenchEnv, backend: str) -> None:
        super().__init__(env)
        self.backend = backend
        self.name = f"llamaindex: SimpleChatEngine + MemobaseMemory ({backend})"

    def setup(self) -> None:
        self.factory = MemobaseFactory(self.env, self.backend, "llamaindex")

    def begin_session(self, user_id: str, session_index: int) -> None:
        from llamaindex_memobase import MemobaseMemory

        memory = MemobaseMemory.from_defaults(
            user_id, self.factory.memobase, session_id=f"{user_id}:{session_index}"
        )
        self._engine(memory)

    def drain(self) -> None:
        self.factory.drain()

    def close(self) -> None:
        self.factory.close()


class LlamaMem0(_LlamaSystem):
    """mem0's own LlamaIndex integration: ``Mem0Memory`` over an OSS ``mem0.Memory``."""

    name = "llamaindex: SimpleChatEngine + Mem0Memory (mem0 OSS)"
    peer = True

    def setup(self) -> None:
        os.environ.setdefault("MEM0_TELEMETRY", "False")  # no phoning home (read at import)
        os.environ.setdefault("MEM0_DIR", str(self.env.workdir / "mem0"))
        try:
            from mem0 import Memory as Mem0
        except ImportError as exc:
            raise RuntimeError(
                f"mem0 is not installed ({exc}); pip install 'memobase-integrations[bench]'"
            ) from exc

        # mem0 builds its own openai clients from the URL: it runs unchanged.
        config = mem0_config(
            self.env.llm.url_for(), self.env.workdir / "mem0-history.db", collection="bench"
        )
        self.client: Any = Mem0.from_config(config)

    def begin_session(self, user_id: str, session_index: int) -> None:
        from llama_index.memory.mem0 import Mem0Memory

        memory = Mem0Memory(
            primary_memory=Memory.from_defaults(session_id=f"{user_id}:{session_index}"),
            context={"user_id": user_id},
            client=self.client,
        )
        self._engine(memory)

    def close(self) -> None:
        client = getattr(self, "client", None)
        if client is not None:
            client.close()
