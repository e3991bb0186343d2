"""LangChain 1.x systems: ``create_agent`` bare, with classic chat history, with Memobase.

The chat model is a scripted fake that answers with the conversation's own reply, after the
run's chat latency (none in the instant mode, the hosted latency model in the hosted mode),
and keeps the prompt it was given. The mem0 and LangMem peers live in ``langchain_peers.py``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from langchain.agents import create_agent
from langchain.agents.middleware import AgentMiddleware, AgentState, ModelRequest
from langchain_core.chat_history import InMemoryChatMessageHistory
from langchain_core.language_models.chat_models import BaseChatModel
from langchain_core.messages import AIMessage, BaseMessage, HumanMessage
from langchain_core.outputs import ChatGeneration, ChatResult
from langchain_core.runnables import RunnableLambda
from langchain_core.runnables.history import RunnableWithMessageHistory

from benchmarks.conversations import Turn
from benchmarks.systems.base import BenchEnv, BenchSystem, Script
from benchmarks.systems.memobase_env import MemobaseFactory, memobase_injected

if TYPE_CHECKING:
    from benchmarks.simclock import SimClock

__all__ = [
    "EMBEDDED_NOTE",
    "REMOTE_NOTE",
    "LangChainChatHistory",
    "LangChainMemobase",
    "LangChainNoMemory",
    "LangChainNoopMiddleware",
    "ScriptedChatModel",
]


class ScriptedChatModel(BaseChatModel):
    """Answers every call with ``script.reply``; no I/O, no tokens."""

    script: Script

    @property
    def _llm_type(self) -> str:
        return "scripted-fake"

    def _generate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: Any = None,
        **kwargs: Any,
    ) -> ChatResult:
        prompt = "\n".join(str(m.content) for m in messages)
        reply = self.script.answer(prompt)
        return ChatResult(generations=[ChatGeneration(message=AIMessage(content=reply))])


class LangChainNoMemory(BenchSystem):
    """``create_agent`` with no memory at all: the LangChain baseline."""

    name = "langchain: create_agent, no memory"
    framework = "langchain"
    baseline = True

    def setup(self) -> None:
        self.agent: Any = create_agent(ScriptedChatModel(script=self.env.script))

    def begin_session(self, user_id: str, session_index: int) -> None:
        self.user_id = user_id

    def run_turn(self, turn: Turn) -> None:
        self.agent.invoke({"messages": [HumanMessage(content=turn.user)]})


class NoopMiddleware(AgentMiddleware[AgentState[Any], Any]):
    """The same three hooks MemobaseMiddleware uses, doing nothing: what LangGraph charges
    for a middleware's extra graph nodes before any memory work."""

    def before_agent(self, state: AgentState[Any], runtime: Any) -> dict[str, Any] | None:
        return None

    def wrap_model_call(self, request: ModelRequest[Any], handler: Any) -> Any:
        return handler(request)

    def after_agent(self, state: AgentState[Any], runtime: Any) -> dict[str, Any] | None:
        return None


class LangChainNoopMiddleware(BenchSystem):
    """Reference row: ``create_agent`` + a middleware with empty hooks."""

    name = "langchain: create_agent + empty middleware (reference)"
    framework = "langchain"

    def setup(self) -> None:
        self.agent: Any = create_agent(
            ScriptedChatModel(script=self.env.script), middleware=[NoopMiddleware()]
        )

    def begin_session(self, user_id: str, session_index: int) -> None:
        self.user_id = user_id

    def run_turn(self, turn: Turn) -> None:
        self.agent.invoke({"messages": [HumanMessage(content=turn.user)]})


class LangChainChatHistory(BenchSystem):
    """The classic pattern: ``RunnableWithMessageHistory`` + ``InMemoryChatMessageHistory``
    around the same agent (the history is replayed into each call and appended after it)."""

    name = (
        "langchain: create_agent + InMemoryChatMessageHistory (RunnableWithMessageHistory; "
        "short-term only, reference)"
    )
    framework = "langchain"

    def setup(self) -> None:
        agent: Any = create_agent(ScriptedChatModel(script=self.env.script))
        self.histories: dict[str, InMemoryChatMessageHistory] = {}

        def call_agent(inputs: dict[str, Any]) -> BaseMessage:
            out = agent.invoke({"messages": [*inputs["history"], *inputs["input"]]})
            message: BaseMessage = out["messages"][-1]
            return message

        def history(session_id: str) -> InMemoryChatMessageHistory:
            return self.histories.setdefault(session_id, InMemoryChatMessageHistory())

        self.chain = RunnableWithMessageHistory(
            RunnableLambda(call_agent),
            history,
            input_messages_key="input",
            history_messages_key="history",
        )

    def begin_session(self, user_id: str, session_index: int) -> None:
        self.config: Any = {"configurable": {"session_id": f"{user_id}:{session_index}"}}

    def run_turn(self, turn: Turn) -> None:
        self.chain.invoke({"input": [HumanMessage(content=turn.user)]}, config=self.config)


#: How the remote rows are named: the loopback server answers with a canned context and
#: does no processing, so these rows measure the client's hot path only.
REMOTE_NOTE = "remote, fake loopback server: canned context, no processing"
EMBEDDED_NOTE = "embedded SQLite, default FlushPolicy, worker process"


class LangChainMemobase(BenchSystem):
    """``create_agent`` + ``MemobaseMiddleware`` on the embedded or remote backend."""

    framework = "langchain"
    memobase = True
    long_term = True

    def __init__(self, env: BenchEnv, backend: str) -> None:
        super().__init__(env)
        self.backend = backend
        self.uses_llm = backend == "embedded"
        note = EMBEDDED_NOTE if backend == "embedded" else REMOTE_NOTE
        self.name = f"langchain: create_agent + MemobaseMiddleware ({note})"

    def setup(self) -> None:
        from langchain_memobase import MemobaseMiddleware

        self.factory = MemobaseFactory(self.env, self.backend, "langchain")
        middleware = MemobaseMiddleware(self.factory.memobase)
        self.agent: Any = create_agent(
            ScriptedChatModel(script=self.env.script), middleware=[middleware]
        )

    def begin_session(self, user_id: str, session_index: int) -> None:
        self.factory.users.add(user_id)
        self.config: Any = {
            "configurable": {"user_id": user_id, "thread_id": f"{user_id}:{session_index}"}
        }

    def run_turn(self, turn: Turn) -> None:
        self.agent.invoke({"messages": [HumanMessage(content=turn.user)]}, config=self.config)

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
