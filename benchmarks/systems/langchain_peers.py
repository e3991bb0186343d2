"""LangChain peers with long-term memory: mem0 as its docs wire it, and LangMem.

Both run inside the same ``create_agent`` loop as ``MemobaseMiddleware`` (a middleware that
puts the memory into the system prompt before the model call and hands the finished turn to
the memory after it), so the LangChain rows compare like with like.

* **mem0, as documented**: mem0's quickstart searches the user's memories for the incoming
  message and, after the reply, ``add``\\ s the exchange (user + assistant message, one call)
  for that ``user_id``. The ``add`` runs in a background thread (one per system), so the
  user waits for the search (one embedding call and the vector search), not for extraction.
* **LangMem** (``langmem`` from PyPI), its documented background set-up: a
  ``create_memory_store_manager`` wrapped in a ``ReflectionExecutor`` (the "delayed
  processing" guide), an ``InMemoryStore`` with an embedding index, and the hot-path
  quickstart's prompt (search the store for the incoming message, put the hits in the
  system prompt). Every turn submits the session so far with ``after_seconds`` = 30 min
  (the guide: "in practice would choose longer (30-60 min)"); a new turn of the same thread
  cancels the pending one, so a session is processed once, 30 minutes after it ends.

  LangMem 0.0.30's ``LocalReflectionExecutor`` does not always cancel the pending task:
  when its worker discards an already-cancelled task it also forgets the thread's *current*
  task (``_pending_tasks.pop(thread_id)`` in ``_process_queue``), so the next ``submit``
  leaves that one alive and a session ends up processed several times. The benchmark
  cancels the superseded future itself (``Future.cancel``, which the worker honours), so
  LangMem is measured as its guide describes it; as shipped it would cost more.
"""

from __future__ import annotations

import concurrent.futures
import re
import time
from typing import TYPE_CHECKING, Any

from langchain.agents import create_agent
from langchain.agents.middleware import AgentMiddleware, AgentState, ModelRequest
from langchain_core.messages import AIMessage, HumanMessage, SystemMessage
from pydantic import SecretStr

from benchmarks.conversations import Turn
from benchmarks.mem0_check import make_mem0, mem0_documented_prompt
from benchmarks.systems.base import BenchSystem
from benchmarks.systems.langchain_systems import ScriptedChatModel

if TYPE_CHECKING:
    from benchmarks.simclock import SimClock

__all__ = [
    "LANGMEM_DELAY_S",
    "LangChainLangMem",
    "LangChainMem0Documented",
]

#: LangMem's debounce delay: the guide's "in practice 30-60 min", lower end.
LANGMEM_DELAY_S = 1800


def _last_human(messages: list[Any]) -> str:
    for message in reversed(messages):
        if isinstance(message, HumanMessage):
            return str(message.content)
    return ""


def _with_system(request: ModelRequest[Any], text: str) -> ModelRequest[Any]:
    system = request.system_message
    base = str(system.content) + "\n\n" if system is not None else ""
    return request.override(system_message=SystemMessage(content=base + text))


_MEM0_DOC_HIT = re.compile(r"User Memories:\n- \S")


class _Mem0Middleware(AgentMiddleware[AgentState[Any], Any]):
    def __init__(self, system: LangChainMem0Documented) -> None:
        super().__init__()
        self.system = system

    def wrap_model_call(self, request: ModelRequest[Any], handler: Any) -> Any:
        query = _last_human(list(request.messages))
        found = self.system.client.search(query, filters={"user_id": self.system.user_id})
        results = found.get("results", []) if isinstance(found, dict) else list(found)
        return handler(_with_system(request, mem0_documented_prompt(results)))

    def after_agent(self, state: AgentState[Any], runtime: Any) -> dict[str, Any] | None:
        messages = list(state["messages"])
        user = _last_human(messages)
        reply = next((m for m in reversed(messages) if isinstance(m, AIMessage)), None)
        exchange = [
            {"role": "user", "content": user},
            {"role": "assistant", "content": str(reply.content) if reply else ""},
        ]
        self.system.submit(exchange)
        return None


class LangChainMem0Documented(BenchSystem):
    name = (
        "langchain: create_agent + mem0 OSS as documented (search per turn; one add per "
        "exchange, background thread)"
    )
    framework = "langchain"
    peer = True
    uses_llm = True
    long_term = True
    waits_for_model = True

    def setup(self) -> None:
        self.client: Any = make_mem0(
            self.env.llm.url_for(), self.env.workdir, "mem0-doc-lc", background=True
        )
        self.pool = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="mem0-add")
        self.pending: list[concurrent.futures.Future[Any]] = []
        self.user_id = ""
        self.agent: Any = create_agent(
            ScriptedChatModel(script=self.env.script), middleware=[_Mem0Middleware(self)]
        )

    def submit(self, exchange: list[dict[str, str]]) -> None:
        self.pending = [f for f in self.pending if not f.done()]
        self.pending.append(self.pool.submit(self.client.add, exchange, user_id=self.user_id))

    def begin_session(self, user_id: str, session_index: int) -> None:
        self.user_id = user_id

    def run_turn(self, turn: Turn) -> None:
        self.agent.invoke({"messages": [HumanMessage(content=turn.user)]})

    def injected(self, prompt: str) -> bool:
        return bool(_MEM0_DOC_HIT.search(prompt))

    def settle(self) -> None:
        for future in self.pending:
            future.result()
        self.pending = []

    def sim_elapse(self, clock: SimClock, seconds: float) -> None:
        self.settle()  # a background add takes seconds; the next turn is a minute away

    def drain(self) -> None:
        self.settle()

    def close(self) -> None:
        pool = getattr(self, "pool", None)
        if pool is not None:
            pool.shutdown(wait=True)
        client = getattr(self, "client", None)
        if client is not None:
            client.close()


_LANGMEM_HIT = re.compile(r"<memories>\n\s*\S")


class _LangMemMiddleware(AgentMiddleware[AgentState[Any], Any]):
    def __init__(self, system: LangChainLangMem) -> None:
        super().__init__()
        self.system = system

    def wrap_model_call(self, request: ModelRequest[Any], handler: Any) -> Any:
        query = _last_human(list(request.messages))
        items = self.system.store.search(("memories", self.system.user_id), query=query)
        memories = "\n".join(str(item.value.get("content", item.value)) for item in items)
        text = f"## Memories\n<memories>\n{memories}\n</memories>"
        return handler(_with_system(request, text))

    def after_agent(self, state: AgentState[Any], runtime: Any) -> dict[str, Any] | None:
        messages = list(state["messages"])
        user = _last_human(messages)
        reply = next((m for m in reversed(messages) if isinstance(m, AIMessage)), None)
        self.system.observe(user, str(reply.content) if reply else "")
        return None


class LangChainLangMem(BenchSystem):
    name = (
        "langchain: create_agent + LangMem (create_memory_store_manager + ReflectionExecutor, "
        "30 min debounce; InMemoryStore search per turn)"
    )
    framework = "langchain"
    peer = True
    uses_llm = True
    long_term = True
    waits_for_model = True

    def setup(self) -> None:
        try:
            from langchain_openai import ChatOpenAI, OpenAIEmbeddings
            from langgraph.store.memory import InMemoryStore
            from langmem import ReflectionExecutor, create_memory_store_manager
        except ImportError as exc:
            raise RuntimeError(
                f"langmem is not installed ({exc}); pip install 'memobase-integrations[bench]'"
            ) from exc
        url = self.env.llm.url_for()
        model = ChatOpenAI(
            model="stand-in", base_url=url, api_key="placeholder-bench", max_retries=0
        )
        embed = OpenAIEmbeddings(
            model="stand-in-embed",
            # The fields' own names (their aliases base_url/api_key are what mypy cannot see).
            openai_api_base=url,
            openai_api_key=SecretStr("placeholder-bench"),
            dimensions=64,
            check_embedding_ctx_length=False,
            max_retries=0,
        )
        self.store: Any = InMemoryStore(index={"dims": 64, "embed": embed})
        manager = create_memory_store_manager(model, store=self.store)  # namespace per user
        self.executor: Any = ReflectionExecutor(manager, store=self.store)
        self.user_id = ""
        self.thread = ""
        self.sessions: dict[str, list[dict[str, str]]] = {}
        self.pending: dict[str, concurrent.futures.Future[Any]] = {}
        self.agent: Any = create_agent(
            ScriptedChatModel(script=self.env.script), middleware=[_LangMemMiddleware(self)]
        )

    def _config(self) -> dict[str, Any]:
        return {"configurable": {"langgraph_user_id": self.user_id, "thread_id": self.thread}}

    def observe(self, user: str, reply: str) -> None:
        """The turn is over: (re)schedule the thread's reflection, as the guide does."""
        messages = self.sessions.setdefault(self.thread, [])
        messages += [{"role": "user", "content": user}, {"role": "assistant", "content": reply}]
        self._supersede(self.thread)
        self.pending[self.thread] = self.executor.submit(
            {"messages": list(messages)},
            config=self._config(),
            after_seconds=LANGMEM_DELAY_S,
            thread_id=self.thread,
        )

    def _supersede(self, thread: str) -> None:
        """Cancel the thread's pending task (what ``submit`` is documented to do; see the
        module doc for why the benchmark does it explicitly)."""
        previous = self.pending.get(thread)
        if previous is not None:
            previous.cancel()

    def begin_session(self, user_id: str, session_index: int) -> None:
        self.user_id = user_id
        self.thread = f"{user_id}:{session_index}"

    def run_turn(self, turn: Turn) -> None:
        self.agent.invoke({"messages": [HumanMessage(content=turn.user)]})

    def injected(self, prompt: str) -> bool:
        return bool(_LANGMEM_HIT.search(prompt))

    def settle(self) -> None:
        """The debounce delay has passed for every thread: resubmitting the thread's last
        payload with ``after_seconds=0`` cancels the pending task and runs it now (what
        the executor does when the 30 minutes are up), and we wait for it."""
        for thread, future in list(self.pending.items()):
            if future.done():
                continue
            user_id = thread.split(":", 1)[0]
            config = {"configurable": {"langgraph_user_id": user_id, "thread_id": thread}}
            self._supersede(thread)
            now = self.executor.submit(
                {"messages": list(self.sessions[thread])},
                config=config,
                after_seconds=0,
                thread_id=thread,
            )
            now.result(timeout=600)
        self.pending.clear()

    def sim_elapse(self, clock: SimClock, seconds: float) -> None:
        if seconds >= LANGMEM_DELAY_S:
            self.settle()

    def drain(self) -> None:
        self.settle()

    def close(self) -> None:
        executor = getattr(self, "executor", None)
        if executor is None:
            return
        # Cancelled tasks stay queued until the worker pops them; LangMem's shutdown drain
        # would run them regardless, so let the worker discard them first.
        queue = executor._task_queue
        deadline = time.monotonic() + 10.0
        while not queue.empty() and time.monotonic() < deadline:
            time.sleep(0.05)
        executor.shutdown(wait=True, cancel_futures=True)
