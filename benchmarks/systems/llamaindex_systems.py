"""LlamaIndex systems: ``SimpleChatEngine`` with no memory, the default ``Memory``,
``Memory`` + ``FactExtractionMemoryBlock``, ``MemobaseMemory``, and mem0's ``Mem0Memory``.

The chat LLM is a scripted fake (replies with the conversation's own text after the run's chat
latency, and keeps its prompt). Only the fact block's LLM and mem0's LLM/embedder reach the
stand-in, served from its own process (:class:`~benchmarks.llm.ServedBenchLLM`).
"""

from __future__ import annotations

import concurrent.futures
import re
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from llama_index.core.base.llms.types import (
    ChatMessage,
    ChatResponse,
    CompletionResponse,
    CompletionResponseGen,
    LLMMetadata,
    MessageRole,
)
from llama_index.core.bridge.pydantic import PrivateAttr
from llama_index.core.chat_engine import SimpleChatEngine
from llama_index.core.llms import CustomLLM
from llama_index.core.memory import Memory
from llama_index.core.memory.memory_blocks import FactExtractionMemoryBlock, StaticMemoryBlock
from llama_index.core.memory.types import BaseMemory

from benchmarks.conversations import Turn
from benchmarks.mem0_check import make_mem0, mem0_documented_prompt
from benchmarks.systems.base import BenchEnv, BenchSystem, Script
from benchmarks.systems.langchain_systems import EMBEDDED_NOTE, REMOTE_NOTE
from benchmarks.systems.memobase_env import MemobaseFactory, memobase_injected

if TYPE_CHECKING:
    from benchmarks.simclock import SimClock

_FACT_HIT = re.compile(r"<fact>[^<]*\S[^<]*</fact>")
_MEM0_DOC_HIT = re.compile(r"User Memories:\n- \S")

__all__ = [
    "FACT_BLOCK_MEMORY",
    "LlamaDefaultMemory",
    "LlamaFactExtraction",
    "LlamaMem0",
    "LlamaMem0Documented",
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
        return CompletionResponse(text=self.script.answer(prompt))

    def stream_complete(
        self, prompt: str, formatted: bool = False, **kwargs: Any
    ) -> CompletionResponseGen:
        reply = self.script.answer(prompt)
        yield CompletionResponse(text=reply, delta=reply)


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
    name = (
        "llamaindex: Memory + FactExtractionMemoryBlock (token_limit 1000, flush 250; one "
        "block per user)"
    )
    peer = True
    uses_llm = True
    long_term = True

    def injected(self, prompt: str) -> bool:
        return bool(_FACT_HIT.search(prompt))

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
    long_term = True

    def __init__(self, env: BenchEnv, backend: str) -> None:
        super().__init__(env)
        self.backend = backend
        self.uses_llm = backend == "embedded"
        note = EMBEDDED_NOTE if backend == "embedded" else REMOTE_NOTE
        self.name = f"llamaindex: SimpleChatEngine + MemobaseMemory ({note})"

    def setup(self) -> None:
        self.factory = MemobaseFactory(self.env, self.backend, "llamaindex")

    def begin_session(self, user_id: str, session_index: int) -> None:
        from llamaindex_memobase import MemobaseMemory

        self.factory.users.add(user_id)
        memory = MemobaseMemory.from_defaults(
            user_id, self.factory.memobase, session_id=f"{user_id}:{session_index}"
        )
        self._engine(memory)

    def injected(self, prompt: str) -> bool:
        return memobase_injected(prompt)

    def settle(self) -> None:
        self.factory.settle()

    def sim_elapse(self, clock: SimClock, seconds: float) -> None:
        self.factory.sim_elapse(clock, seconds)

    def drain(self) -> None:
        self.factory.drain()

    def close(self) -> None:
        self.factory.close()


class LlamaMem0(_LlamaSystem):
    """mem0's own LlamaIndex integration, as shipped: ``Mem0Memory`` over an OSS
    ``mem0.Memory``. It calls ``add`` for every user and every assistant message and
    ``search`` on every ``get``, all on the caller's thread."""

    name = (
        "llamaindex: SimpleChatEngine + Mem0Memory as shipped (mem0 OSS; add per message and "
        "search per turn, on the caller's thread)"
    )
    peer = True
    uses_llm = True
    long_term = True
    waits_for_model = True

    def setup(self) -> None:
        self.client: Any = make_mem0(self.env.llm.url_for(), self.env.workdir, "mem0-li")

    def begin_session(self, user_id: str, session_index: int) -> None:
        from llama_index.memory.mem0 import Mem0Memory

        memory = Mem0Memory(
            primary_memory=Memory.from_defaults(session_id=f"{user_id}:{session_index}"),
            context={"user_id": user_id},
            client=self.client,
        )
        self._engine(memory)

    def injected(self, prompt: str) -> bool:
        from llama_index.memory.mem0.utils import (
            DEFAULT_INTRO_PREFERENCES,
            DEFAULT_OUTRO_PREFERENCES,
        )

        start = prompt.find(DEFAULT_INTRO_PREFERENCES)
        end = prompt.find(DEFAULT_OUTRO_PREFERENCES, start + 1)
        return (
            start >= 0
            and end > start
            and bool(prompt[start + len(DEFAULT_INTRO_PREFERENCES) : end].strip())
        )

    def close(self) -> None:
        client = getattr(self, "client", None)
        if client is not None:
            client.close()


class Mem0DocumentedMemory(BaseMemory):
    """mem0 the way its docs wire it into a chat loop, as a LlamaIndex memory: the default
    short-term ``Memory`` plus, on ``get``, a search of the user's memories for the incoming
    message (in the system prompt as "User Memories"), and, once the assistant's reply is
    ``put``, one ``add`` of the exchange in a background thread."""

    primary: Memory
    user_id: str
    _system: Any = PrivateAttr()
    _user_text: str = PrivateAttr(default="")

    @classmethod
    def class_name(cls) -> str:
        return "Mem0DocumentedMemory"

    @classmethod
    def from_defaults(cls, **kwargs: Any) -> Mem0DocumentedMemory:
        raise NotImplementedError("built by the benchmark")

    def bind(self, system: LlamaMem0Documented) -> Mem0DocumentedMemory:
        self._system = system
        return self

    def get(self, input: str | None = None, **kwargs: Any) -> list[ChatMessage]:
        messages = self.primary.get(input=input, **kwargs)
        query = input or next(
            (str(m.content) for m in reversed(messages) if m.role == MessageRole.USER), ""
        )
        found = self._system.client.search(query, filters={"user_id": self.user_id})
        results = found.get("results", []) if isinstance(found, dict) else list(found)
        system = ChatMessage(role=MessageRole.SYSTEM, content=mem0_documented_prompt(results))
        return [system, *messages]

    def get_all(self) -> list[ChatMessage]:
        return self.primary.get_all()

    def put(self, message: ChatMessage) -> None:
        self.primary.put(message)
        if message.role == MessageRole.USER:
            self._user_text = str(message.content or "")
        elif message.role == MessageRole.ASSISTANT:
            exchange = [
                {"role": "user", "content": self._user_text},
                {"role": "assistant", "content": str(message.content or "")},
            ]
            self._system.submit(exchange, self.user_id)

    def set(self, messages: list[ChatMessage]) -> None:
        self.primary.set(messages)

    def reset(self) -> None:
        self.primary.reset()


class LlamaMem0Documented(_LlamaSystem):
    name = (
        "llamaindex: SimpleChatEngine + mem0 OSS as documented (search per turn; one add per "
        "exchange, background thread)"
    )
    peer = True
    uses_llm = True
    long_term = True
    waits_for_model = True

    def setup(self) -> None:
        self.client: Any = make_mem0(
            self.env.llm.url_for(), self.env.workdir, "mem0-doc-li", background=True
        )
        self.pool = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="mem0-add")
        self.pending: list[concurrent.futures.Future[Any]] = []

    def submit(self, exchange: list[dict[str, str]], user_id: str) -> None:
        self.pending = [f for f in self.pending if not f.done()]
        self.pending.append(self.pool.submit(self.client.add, exchange, user_id=user_id))

    def begin_session(self, user_id: str, session_index: int) -> None:
        memory = Mem0DocumentedMemory(
            primary=Memory.from_defaults(session_id=f"{user_id}:{session_index}"),
            user_id=user_id,
        ).bind(self)
        self._engine(memory)

    def injected(self, prompt: str) -> bool:
        return bool(_MEM0_DOC_HIT.search(prompt))

    def settle(self) -> None:
        for future in self.pending:
            future.result()
        self.pending = []

    def sim_elapse(self, clock: SimClock, seconds: float) -> None:
        self.settle()

    def drain(self) -> None:
        self.settle()

    def close(self) -> None:
        pool = getattr(self, "pool", None)
        if pool is not None:
            pool.shutdown(wait=True)
        client = getattr(self, "client", None)
        if client is not None:
            client.close()
